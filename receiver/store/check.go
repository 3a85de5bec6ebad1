package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CorruptError says that the store file cannot be trusted. The receiver
// refuses to start on it rather than start empty: the file may hold
// accepted notifications that were never delivered.
type CorruptError struct {
	Path   string
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("store %s is damaged: %s. The receiver does not start on a damaged store, so the notifications it holds are not dropped without a word: "+
		"move the file aside for inspection (mv %s %s.damaged), then start again with an empty store (undelivered notifications in it are lost; "+
		"Alertmanager sends firing alerts again at its repeat_interval), or restore the file from a backup", e.Path, e.Reason, e.Path, e.Path)
}

// Layout of bbolt's meta pages (go.etcd.io/bbolt/internal/common): a
// 16-byte page header, then magic, version, page size, flags, root bucket
// (page id, sequence), freelist page, high-water page id, txid, checksum.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeader     = 16
	metaBytes      = 56 // up to the checksum
	metaPageOffset = pageHeader
)

type meta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	hwm      uint64
	txid     uint64
}

func readMeta(b []byte) (meta, error) {
	if len(b) < pageHeader+metaBytes+8 {
		return meta{}, errors.New("short")
	}
	m := b[metaPageOffset:]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != boltMagic {
		return meta{}, errors.New("no bbolt marker")
	}
	if v := le.Uint32(m[4:]); v != boltVersion {
		return meta{}, fmt.Errorf("bbolt format version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:metaBytes])
	if le.Uint64(m[metaBytes:]) != h.Sum64() {
		return meta{}, errors.New("checksum mismatch")
	}
	return meta{pageSize: le.Uint32(m[8:]), root: le.Uint64(m[16:]), freelist: le.Uint64(m[32:]), hwm: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, nil
}

// precheck looks at the file before bbolt maps it: bbolt trusts its meta
// pages, and a file shorter than they say makes the mapped reads fault
// (SIGBUS) instead of failing.
func precheck(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat store %s: %w", path, err)
	}
	size := st.Size()
	if size == 0 {
		return &CorruptError{Path: path, Reason: "the file is empty (0 bytes), so whatever it held is gone; the receiver never leaves an empty file behind (it creates its store under another name and renames it), so something else truncated it"}
	}
	head := make([]byte, 2*maxPage)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read store %s: %w", path, err)
	}
	head = head[:n]
	m0, err0 := readMeta(head)
	var m1 meta
	err1 := errors.New("missing")
	// The second meta page sits one page size in; take the size from the first, else try the usual ones.
	for _, ps := range pageSizes(m0, err0) {
		if int(ps) < len(head) {
			if m1, err1 = readMeta(head[ps:]); err1 == nil {
				break
			}
		}
	}
	best, bestErr := m0, err0
	if err1 == nil && (err0 != nil || m1.txid > m0.txid) {
		best, bestErr = m1, nil
	}
	if bestErr != nil {
		return &CorruptError{Path: path, Reason: fmt.Sprintf("neither of its two header pages is valid (first: %v; second: %v): it is not a receiver store, or its first pages were overwritten", err0, err1)}
	}
	if need := int64(best.hwm) * int64(best.pageSize); need > size {
		return &CorruptError{Path: path, Reason: fmt.Sprintf("the file is truncated: it has %d bytes but its last commit (transaction %d) needs %d", size, best.txid, need)}
	}
	w := &walker{f: f, m: best, seen: map[uint64]bool{}}
	if err := w.tree(best.root, 0); err != nil {
		return &CorruptError{Path: path, Reason: "its pages are inconsistent: " + err.Error()}
	}
	if best.freelist != noFreelist {
		if _, err := w.page(best.freelist, freelistPage); err != nil {
			return &CorruptError{Path: path, Reason: "its free page list is inconsistent: " + err.Error()}
		}
	}
	return nil
}

// Page kinds and element layout of bbolt's B+tree pages.
const (
	branchPage   = 0x01
	leafPage     = 0x02
	freelistPage = 0x10
	bucketLeaf   = 0x01
	elementBytes = 16
	bucketHeader = 16 // root page id, sequence
	noFreelist   = 0xffffffffffffffff
	maxDepth     = 64
)

// walker reads every page reachable from the root bucket with plain reads
// and checks what bbolt asserts (a page's own id and kind, element bounds,
// child ids below the high-water mark). bbolt rebuilds its free list on
// open in a goroutine of its own, where such an assertion is a panic no
// caller can recover; after this walk it cannot happen.
type walker struct {
	f    *os.File
	m    meta
	seen map[uint64]bool
}

func (w *walker) page(id uint64, kinds uint16) ([]byte, error) {
	if id < 2 || id >= w.m.hwm {
		return nil, fmt.Errorf("page %d is outside the file's %d pages", id, w.m.hwm)
	}
	if w.seen[id] {
		return nil, fmt.Errorf("page %d is referenced twice", id)
	}
	w.seen[id] = true
	ps := int64(w.m.pageSize)
	hdr := make([]byte, pageHeader)
	if _, err := w.f.ReadAt(hdr, int64(id)*ps); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(hdr); got != id {
		return nil, fmt.Errorf("page %d says it is page %d", id, got)
	}
	if flags := le.Uint16(hdr[8:]); flags&kinds == 0 {
		return nil, fmt.Errorf("page %d has unexpected kind %#x", id, flags)
	}
	overflow := uint64(le.Uint32(hdr[12:]))
	if id+overflow >= w.m.hwm {
		return nil, fmt.Errorf("page %d runs past the end of the file", id)
	}
	b := make([]byte, int64(1+overflow)*ps)
	if _, err := w.f.ReadAt(b, int64(id)*ps); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return b, nil
}

// tree checks the B+tree rooted at page id and every bucket inside it.
func (w *walker) tree(id uint64, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("tree deeper than %d levels at page %d", maxDepth, id)
	}
	p, err := w.page(id, branchPage|leafPage)
	if err != nil {
		return err
	}
	return w.elements(id, p, depth)
}

func (w *walker) elements(id uint64, p []byte, depth int) error {
	le := binary.LittleEndian
	flags, count := le.Uint16(p[8:]), int(le.Uint16(p[10:]))
	if pageHeader+count*elementBytes > len(p) {
		return fmt.Errorf("page %d claims %d elements", id, count)
	}
	for i := 0; i < count; i++ {
		at := pageHeader + i*elementBytes
		e := p[at : at+elementBytes]
		if flags&branchPage != 0 {
			pos, ksize := int(le.Uint32(e[0:])), int(le.Uint32(e[4:]))
			if at+pos+ksize > len(p) {
				return fmt.Errorf("page %d: element %d lies outside the page", id, i)
			}
			if err := w.tree(le.Uint64(e[8:]), depth+1); err != nil {
				return err
			}
			continue
		}
		eflags, pos, ksize, vsize := le.Uint32(e[0:]), int(le.Uint32(e[4:])), int(le.Uint32(e[8:])), int(le.Uint32(e[12:]))
		if at+pos+ksize+vsize > len(p) || pos < 0 || ksize < 0 || vsize < 0 {
			return fmt.Errorf("page %d: element %d lies outside the page", id, i)
		}
		if eflags&bucketLeaf == 0 {
			continue
		}
		v := p[at+pos+ksize : at+pos+ksize+vsize]
		if len(v) < bucketHeader {
			return fmt.Errorf("page %d: bucket %d has a short header", id, i)
		}
		if root := le.Uint64(v); root != 0 {
			if err := w.tree(root, depth+1); err != nil {
				return err
			}
			continue
		}
		// An inline bucket carries its one leaf page in the value.
		inline := v[bucketHeader:]
		if len(inline) < pageHeader || le.Uint16(inline[8:])&leafPage == 0 {
			return fmt.Errorf("page %d: inline bucket %d is not a leaf", id, i)
		}
		if err := w.elements(id, inline, depth+1); err != nil {
			return err
		}
	}
	return nil
}

const maxPage = 64 << 10

func pageSizes(m meta, err error) []uint32 {
	if err == nil && m.pageSize >= 512 && m.pageSize <= maxPage {
		return []uint32{m.pageSize}
	}
	return []uint32{uint32(os.Getpagesize()), 4096, 8192, 16384, 65536}
}

// openChecked opens the bbolt file after precheck and verifies every page
// (bbolt's consistency check) before the receiver trusts it. A panic or a
// memory fault while doing so is a damaged file, reported as such.
func openChecked(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	if err := precheck(path); err != nil {
		return nil, err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			}
			db, err = nil, &CorruptError{Path: path, Reason: fmt.Sprintf("reading it failed: %v", r)}
		}
	}()
	db, err = bolt.Open(path, 0o600, opts)
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: another process holds it (is a second receiver using the same storage.path?)", path)
		}
		return nil, &CorruptError{Path: path, Reason: err.Error()}
	}
	var problems []string
	err = db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			if len(problems) < 5 {
				problems = append(problems, e.Error())
			}
		}
		return nil
	})
	if err == nil && len(problems) > 0 {
		err = &CorruptError{Path: path, Reason: "its pages are inconsistent (" + strings.Join(problems, "; ") + ")"}
	}
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return db, nil
}

// create makes a new store file atomically: it is initialised under a
// temporary name, synced and renamed, so a crash never leaves an empty or
// half-written receiver.db that would later look like a damaged store.
func create(path string, opts *bolt.Options, init func(*bolt.DB) error) error {
	tmp := path + ".new"
	_ = os.Remove(tmp)
	o := *opts
	o.Timeout = time.Second
	db, err := bolt.Open(tmp, 0o600, &o)
	if err != nil {
		return fmt.Errorf("create store %s: %w", tmp, err)
	}
	if err := init(db); err != nil {
		return errors.Join(fmt.Errorf("initialise store %s: %w", tmp, err), db.Close())
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("close new store %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("create store %s: %w", path, err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("sync store directory: %w", err)
	}
	return errors.Join(d.Sync(), d.Close())
}
