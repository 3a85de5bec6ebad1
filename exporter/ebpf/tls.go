package ebpf

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// TLS libraries, as the tls_processes metric names them.
const (
	libOpenSSL       = "openssl"
	libGo            = "go"
	libBoringSSL     = "boringssl"
	libOpenSSLStatic = "openssl-static"
	libGnuTLS        = "gnutls"
	libNSS           = "nss"
	libWolfSSL       = "wolfssl"
	libMbedTLS       = "mbedtls"
	libJava          = "java"
	libRustls        = "rustls"
)

const (
	statusAttached    = "attached"
	statusUnsupported = "unsupported"
)

// Cookies of the OpenSSL probes (COOKIE_* in capture.bpf.c).
const (
	cookieWrite = 1
	cookieEx    = 2
)

const (
	// recheckInterval bounds how often a process without a known TLS
	// library is looked at again (it may load one later).
	recheckInterval = 30 * time.Second
	maxGoBinaries   = 64 // GO_BINARIES
)

// tlsProcess is what was found in one serving process.
type tlsProcess struct {
	libraries map[string]string // library → status
	links     []link.Link       // PID-filtered probes (OpenSSL)
	checked   time.Time
}

// goProbes are the probes on one Go executable; they fire in every process
// running it.
type goProbes struct {
	index uint32
	links []link.Link
}

// tlsProbes finds the TLS libraries of the processes serving the observed
// ports and attaches the plaintext probes: OpenSSL per process, Go's
// crypto/tls per executable. Libraries it cannot probe are reported by name.
type tlsProbes struct {
	logger *slog.Logger
	objs   *captureObjects
	now    func() time.Time
	ports  []uint16
	// serving marks a process found holding an observed port.
	serving func(pid uint32) error
	// lastScan is when the processes holding the ports were last listed.
	lastScan time.Time

	mu      sync.Mutex
	procs   map[uint32]*tlsProcess
	goBins  map[string]*goProbes // by dev:inode of the executable
	badBins map[string]string    // executables that cannot be probed, and why
	closed  bool

	pending chan uint32
	done    chan struct{}
}

func newTLSProbes(logger *slog.Logger, objs *captureObjects, ports []uint16, serving func(uint32) error) *tlsProbes {
	t := &tlsProbes{
		logger:  logger,
		objs:    objs,
		now:     time.Now,
		ports:   ports,
		serving: serving,
		procs:   map[uint32]*tlsProcess{},
		goBins:  map[string]*goProbes{},
		badBins: map[string]string{},
		pending: make(chan uint32, 256),
		done:    make(chan struct{}),
	}
	go t.loop()
	return t
}

// loop examines the processes notice reports, off the event reader. A
// process not seen before may be one of several new ones sharing a
// listening socket (nginx's master and workers): all processes holding the
// ports are listed again, at most once a second, and the new ones examined
// before they serve a connection.
func (t *tlsProbes) loop() {
	defer close(t.done)
	for pid := range t.pending {
		t.examine(pid)
		if t.now().Sub(t.lastScan) < time.Second {
			continue
		}
		t.lastScan = t.now()
		owners, err := portOwners(t.ports)
		if err != nil {
			t.logger.Debug("listing the processes that serve the ports", "err", err)
		}
		for _, o := range owners {
			t.mu.Lock()
			_, known := t.procs[o]
			if !known {
				t.procs[o] = &tlsProcess{checked: t.now()}
			}
			t.mu.Unlock()
			if known {
				continue
			}
			if err := t.serving(o); err != nil {
				t.logger.Warn("marking a serving process", "pid", o, "err", err)
			}
			t.examine(o)
		}
	}
}

// notice reports a process seen serving a connection: it is examined unless
// it was examined recently.
func (t *tlsProbes) notice(pid uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.procs[pid]
	if t.closed || (p != nil && (len(p.libraries) > 0 || t.now().Sub(p.checked) < recheckInterval)) {
		return
	}
	select {
	case t.pending <- pid:
		if p == nil {
			p = &tlsProcess{}
			t.procs[pid] = p
		}
		p.checked = t.now() // not again until examined
	default: // busy: the next connection of this process asks again
	}
}

// examine looks for TLS libraries in pid and attaches what it can.
func (t *tlsProbes) examine(pid uint32) {
	proc := procRoot + "/" + strconv.FormatUint(uint64(pid), 10)
	maps, err := mappedFiles(pid)
	if err != nil {
		return // gone
	}
	exe, err := os.Readlink(proc + "/exe")
	if err != nil {
		return
	}
	found := map[string]string{}
	var links []link.Link
	var exeMapping mapping
	for _, m := range maps {
		if m.path == exe {
			exeMapping = m
		}
		base := path.Base(m.path)
		switch {
		case strings.HasPrefix(base, "libssl.so"):
			l, err := t.attachOpenSSL(pid, proc+"/root"+m.path)
			if err != nil {
				found[libOpenSSL] = statusUnsupported
				t.logger.Warn("TLS library cannot be probed: its connections are not decrypted",
					"pid", pid, "exe", exe, "library", libOpenSSL, "path", m.path, "err", err)
				continue
			}
			found[libOpenSSL] = statusAttached
			links = append(links, l...)
		case strings.HasPrefix(base, "libgnutls.so"):
			found[libGnuTLS] = statusUnsupported
		case strings.HasPrefix(base, "libnss3.so"):
			found[libNSS] = statusUnsupported
		case strings.HasPrefix(base, "libwolfssl.so"):
			found[libWolfSSL] = statusUnsupported
		case strings.HasPrefix(base, "libmbedtls.so"):
			found[libMbedTLS] = statusUnsupported
		case base == "libjava.so":
			found[libJava] = statusUnsupported
		}
	}
	if exeMapping.inode != 0 {
		t.examineExecutable(pid, proc+"/exe", exeMapping, found)
	}
	for lib, status := range found {
		if status == statusUnsupported {
			t.logger.Warn("TLS library not supported: TLS connections of this process are not decrypted",
				"pid", pid, "exe", exe, "library", lib)
		}
	}
	attached := false
	for _, status := range found {
		attached = attached || status == statusAttached
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		closeLinks(links)
		return
	}
	p := t.procs[pid]
	if p == nil {
		p = &tlsProcess{}
		t.procs[pid] = p
	}
	if len(p.links) > 0 && len(links) > 0 {
		closeLinks(p.links) // examined again: the new probes replace the old
	}
	if len(links) > 0 || len(p.links) == 0 {
		p.links = links
	}
	p.libraries = found
	p.checked = t.now()
	if attached {
		if err := t.objs.TlsProcesses.Put(pid, uint8(1)); err != nil {
			t.logger.Warn("marking a process with TLS probes", "pid", pid, "err", err)
		}
		t.logger.Info("TLS plaintext probes attached", "pid", pid, "exe", exe, "libraries", found)
	}
}

// examineExecutable looks at the executable itself: Go's crypto/tls, or a
// statically linked TLS library.
func (t *tlsProbes) examineExecutable(pid uint32, exe string, m mapping, found map[string]string) {
	id := m.dev + ":" + strconv.FormatUint(m.inode, 10)
	t.mu.Lock()
	gp, bad := t.goBins[id], t.badBins[id]
	t.mu.Unlock()
	switch {
	case gp != nil:
		found[libGo] = statusAttached
		return
	case bad != "":
		if bad != "none" {
			found[bad] = statusUnsupported
		}
		return
	}
	b, err := inspectGo(exe)
	switch {
	case errors.Is(err, errNotGo):
		lib := staticTLS(exe)
		if lib == "" {
			lib = "none"
		} else {
			found[lib] = statusUnsupported
		}
		t.mu.Lock()
		t.badBins[id] = lib
		t.mu.Unlock()
		return
	case err != nil && b != nil && b.read.addr == 0 && strings.Contains(err.Error(), "not linked"):
		t.mu.Lock()
		t.badBins[id] = "none"
		t.mu.Unlock()
		return
	case err != nil:
		t.logger.Warn("Go TLS probes cannot be placed: TLS connections of this executable are not decrypted", "pid", pid, "exe", m.path, "err", err)
		found[libGo] = statusUnsupported
		t.mu.Lock()
		t.badBins[id] = libGo
		t.mu.Unlock()
		return
	}
	gp, err = t.attachGo(exe, b)
	if err != nil {
		t.logger.Warn("Go TLS probes cannot be attached", "pid", pid, "exe", m.path, "err", err)
		found[libGo] = statusUnsupported
		return
	}
	t.logger.Info("Go crypto/tls probes attached", "exe", m.path, "go", b.version, "layout", b.layoutSource,
		"return_probes", len(b.read.rets)+len(b.write.rets), "tcp_conn_check", b.layout.TcpConnItab != 0)
	t.mu.Lock()
	t.goBins[id] = gp
	t.mu.Unlock()
	found[libGo] = statusAttached
}

// attachOpenSSL attaches the OpenSSL probes to lib for pid only, so that
// other processes using the library pay nothing.
func (t *tlsProbes) attachOpenSSL(pid uint32, lib string) ([]link.Link, error) {
	ex, err := link.OpenExecutable(lib)
	if err != nil {
		return nil, err
	}
	var links []link.Link
	fail := func(err error) ([]link.Link, error) {
		closeLinks(links)
		return nil, err
	}
	l, err := ex.Uprobe("SSL_set_fd", t.objs.SslSetFd, &link.UprobeOptions{PID: int(pid)})
	if err != nil {
		return fail(fmt.Errorf("SSL_set_fd: %w", err))
	}
	links = append(links, l)
	for _, fn := range []struct {
		name     string
		cookie   uint64
		optional bool
	}{
		{"SSL_read", 0, false},
		{"SSL_write", cookieWrite, false},
		{"SSL_read_ex", cookieEx, true}, // OpenSSL 1.1.1 and later
		{"SSL_write_ex", cookieEx | cookieWrite, true},
	} {
		// The return probe first: an entry whose return is not watched
		// would leave the call in flight.
		r, err := ex.Uretprobe(fn.name, t.objs.SslReturn, &link.UprobeOptions{PID: int(pid)})
		if err != nil {
			if fn.optional && errors.Is(err, link.ErrNoSymbol) {
				continue
			}
			return fail(fmt.Errorf("%s: %w", fn.name, err))
		}
		links = append(links, r)
		e, err := ex.Uprobe(fn.name, t.objs.SslEnter, &link.UprobeOptions{PID: int(pid), Cookie: fn.cookie})
		if err != nil {
			return fail(fmt.Errorf("%s: %w", fn.name, err))
		}
		links = append(links, e)
	}
	return links, nil
}

// attachGo describes the binary to the kernel side and attaches the entry
// and RET probes of (*Conn).Read and (*Conn).Write, for every process
// running it.
func (t *tlsProbes) attachGo(exe string, b *goBinary) (*goProbes, error) {
	t.mu.Lock()
	index := uint32(len(t.goBins))
	t.mu.Unlock()
	if index >= maxGoBinaries {
		return nil, fmt.Errorf("more than %d Go executables", maxGoBinaries)
	}
	if err := t.objs.GoBinaries.Put(index, &b.layout); err != nil {
		return nil, fmt.Errorf("describing the binary: %w", err)
	}
	ex, err := link.OpenExecutable(exe)
	if err != nil {
		return nil, err
	}
	gp := &goProbes{index: index}
	for i, fn := range []goFunc{b.read, b.write} {
		cookie := uint64(index)<<1 | uint64(i)
		for _, off := range fn.rets {
			l, err := ex.Uprobe(fn.name, t.objs.GoTlsReturn, &link.UprobeOptions{Address: fn.offset, Offset: off, Cookie: cookie})
			if err != nil {
				closeLinks(gp.links)
				return nil, fmt.Errorf("%s+%#x: %w", fn.name, off, err)
			}
			gp.links = append(gp.links, l)
		}
		l, err := ex.Uprobe(fn.name, t.objs.GoTlsEnter, &link.UprobeOptions{Address: fn.offset, Cookie: cookie})
		if err != nil {
			closeLinks(gp.links)
			return nil, fmt.Errorf("%s: %w", fn.name, err)
		}
		gp.links = append(gp.links, l)
	}
	return gp, nil
}

// staticTLS names a TLS library linked into a (non-Go) executable: its
// functions have no stable symbols or layouts to probe.
func staticTLS(exe string) string {
	f, err := elf.Open(exe)
	if err != nil {
		return ""
	}
	defer f.Close()
	hasSSLRead := false
	for _, get := range []func() ([]elf.Symbol, error){f.Symbols, f.DynamicSymbols} {
		syms, _ := get()
		for _, s := range syms {
			if s.Name == "SSL_read" && s.Section != elf.SHN_UNDEF {
				hasSSLRead = true
			}
		}
	}
	for _, name := range []string{".rodata", ".data.rel.ro"} {
		sec := f.Section(name)
		if sec == nil {
			continue
		}
		switch containsAny(sec.Open(), "BoringSSL", "rustls") {
		case "BoringSSL":
			return libBoringSSL
		case "rustls":
			return libRustls
		}
	}
	if hasSSLRead {
		return libOpenSSLStatic
	}
	return ""
}

// containsAny returns the first of needles found in r.
func containsAny(r io.Reader, needles ...string) string {
	const chunk = 1 << 20
	br := bufio.NewReaderSize(r, chunk)
	longest := 0
	for _, n := range needles {
		longest = max(longest, len(n))
	}
	var carry []byte
	buf := make([]byte, chunk)
	for {
		n, err := br.Read(buf)
		window := append(carry, buf[:n]...)
		for _, needle := range needles {
			if bytes.Contains(window, []byte(needle)) {
				return needle
			}
		}
		if len(window) > longest {
			carry = append(carry[:0], window[len(window)-longest:]...)
		}
		if err != nil {
			return ""
		}
	}
}

// counts returns live processes by library and status, for the metrics.
func (t *tlsProbes) counts() map[[2]string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[[2]string]int{}
	for _, p := range t.procs {
		for lib, status := range p.libraries {
			out[[2]string{lib, status}]++
		}
	}
	return out
}

// forgetDead drops the processes that are gone and their probes.
func (t *tlsProbes) forgetDead(alive map[uint32]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for pid, p := range t.procs {
		ok, known := alive[pid]
		if !known {
			ok = pathExists(procRoot + "/" + strconv.FormatUint(uint64(pid), 10))
		}
		if ok {
			continue
		}
		closeLinks(p.links)
		delete(t.procs, pid)
		if err := t.objs.TlsProcesses.Delete(pid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			t.logger.Warn("forgetting a TLS process", "pid", pid, "err", err)
		}
	}
}

// close detaches every probe.
func (t *tlsProbes) close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.pending)
	t.mu.Unlock()
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.procs {
		closeLinks(p.links)
	}
	for _, g := range t.goBins {
		closeLinks(g.links)
	}
	return nil
}

func closeLinks(links []link.Link) {
	for _, l := range links {
		_ = l.Close()
	}
}
