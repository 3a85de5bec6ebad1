package accesslog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrNotRegular is a path that is not a regular file (a named pipe, a
// device, a socket): following it would block on open or read without end.
var ErrNotRegular = errors.New("not a regular file")

// fingerprintLen is how many of the last bytes read are kept to recognise
// a file rewritten in place behind the reader.
const fingerprintLen = 64

// maxDrain bounds what one poll reads, so a file that grows faster than it
// can be read still lets the tailer see cancellation and rotation.
const maxDrain = 16 << 20

// tailer follows one path by polling. It is ours rather than a library's
// because the semantics matter here: only a file present at start is
// skipped to its end; a file that appears later, or replaces a rotated one,
// is read from its first byte; the old file is drained before switching;
// a truncated file is re-read from the start.
type tailer struct {
	path      string
	fromStart bool
	poll      time.Duration
	maxLine   int
	// quiet is how long a rotated-away file must stay unchanged before we
	// switch to its replacement (writers reopen a moment after a rename).
	quiet time.Duration

	f       *os.File
	info    os.FileInfo
	off     int64
	lineNo  int64
	pending []byte
	// skipping drops the rest of an over-long line.
	skipping bool
	buf      []byte
	// rotatedAt is when the path was first seen pointing elsewhere.
	rotatedAt time.Time
	// fp holds the last bytes read, those before off: if the file no longer
	// has them there, it was truncated and written again past off between
	// two reads (copytruncate followed by a burst), which its size alone
	// cannot show.
	fp []byte
	// fpCheck is reused for reading those bytes back.
	fpCheck []byte
	// state says why the log is not being read, for readiness ("" when it is).
	state atomic.Pointer[string]

	hooks tailHooks
}

type tailHooks struct {
	line    func(line []byte, lineNo int64)
	tooLong func(lineNo int64)
	rotated func(kind string)
	opened  func(open bool)
	read    func(n int)
	// refused is told once when the path turns into something that is not
	// a regular file.
	refused func(err error)
}

func newTailer(path string, fromStart bool, h tailHooks) *tailer {
	t := &tailer{path: path, fromStart: fromStart, poll: 250 * time.Millisecond, maxLine: 64 << 10,
		quiet: time.Second, buf: make([]byte, 64<<10), fp: make([]byte, 0, fingerprintLen),
		fpCheck: make([]byte, fingerprintLen), hooks: h}
	t.setState("waiting for " + path + " to be opened")
	return t
}

func (t *tailer) setState(s string) { t.state.Store(&s) }

// ready returns why the log is not being followed, or nil.
func (t *tailer) ready() error {
	if s := *t.state.Load(); s != "" {
		return errors.New(s)
	}
	return nil
}

// run follows the file until ctx ends. It returns an error only for
// conditions polling cannot fix: a directory, or a path that is not a
// regular file when the tailer starts (a named pipe or device becoming the
// path later is refused and waited out, reported through ready).
func (t *tailer) run(ctx context.Context) error {
	first := true
	timer := time.NewTimer(0)
	defer timer.Stop()
	defer t.close()
	warned := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if t.f == nil {
			err := t.open(first)
			switch {
			case errors.Is(err, ErrNotRegular) && first:
				return err
			case errors.Is(err, ErrNotRegular):
				t.setState("access log " + t.path + ": " + err.Error())
				if warned != err.Error() && t.hooks.refused != nil {
					t.hooks.refused(err)
				}
				warned = err.Error()
			case errors.Is(err, fs.ErrNotExist):
				t.setState("waiting for " + t.path + " to appear")
			case err != nil:
				return err
			}
			first = false
		}
		more := false
		if t.f != nil {
			warned = ""
			var err error
			if more, err = t.follow(ctx); err != nil {
				return err
			}
		}
		if more {
			timer.Reset(0)
		} else {
			timer.Reset(t.poll)
		}
	}
}

func (t *tailer) open(atStart bool) error {
	// O_NONBLOCK: opening a named pipe must not wait for a writer. It does
	// nothing to the reads of a regular file, the only kind kept open.
	f, err := os.OpenFile(t.path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("stat %s: %w", t.path, err)
	}
	if info.IsDir() {
		_ = f.Close()
		return fmt.Errorf("access log %s is a directory", t.path)
	}
	if !info.Mode().IsRegular() {
		_ = f.Close()
		return fmt.Errorf("it is a %s, %w: point exporter.accesslog.path at the file the server appends to", fileKind(info.Mode()), ErrNotRegular)
	}
	t.f, t.info, t.off, t.lineNo, t.pending, t.skipping = f, info, 0, 0, t.pending[:0], false
	t.rotatedAt, t.fp = time.Time{}, t.fp[:0]
	if atStart && !t.fromStart {
		if t.off, err = f.Seek(0, io.SeekEnd); err != nil {
			t.close()
			return fmt.Errorf("seek %s: %w", t.path, err)
		}
		t.fp, err = t.readBack(t.fp[:0])
		if err != nil {
			t.close()
			return err
		}
	}
	t.setState("")
	if t.hooks.opened != nil {
		t.hooks.opened(true)
	}
	return nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeDevice != 0:
		return "block device"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeSymlink != 0:
		return "symbolic link"
	}
	return "special file (" + m.Type().String() + ")"
}

// readBack reads the up to fingerprintLen bytes before off into dst.
func (t *tailer) readBack(dst []byte) ([]byte, error) {
	from := max(t.off-fingerprintLen, 0)
	dst = dst[:t.off-from]
	n, err := t.f.ReadAt(dst, from)
	if err != nil && !errors.Is(err, io.EOF) {
		return dst[:0], fmt.Errorf("read access log: %w", err)
	}
	return dst[:n], nil
}

func (t *tailer) close() {
	if t.f == nil {
		return
	}
	_ = t.f.Close()
	t.f = nil
	if t.hooks.opened != nil {
		t.hooks.opened(false)
	}
	t.setState("access log " + t.path + " is not open")
}

// follow reads what is new, then checks for truncation and rotation. It
// reports more when it stopped at maxDrain with data left to read.
func (t *tailer) follow(ctx context.Context) (more bool, err error) {
	n, more, err := t.drain(ctx)
	if err != nil || more {
		return more, err
	}
	info, err := t.f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat open access log: %w", err)
	}
	if info.Size() < t.off {
		// Truncated in place (copytruncate): start over on the same file.
		if err := t.restart(); err != nil {
			return false, err
		}
		_, more, err := t.drain(ctx)
		return more, err
	}
	cur, err := os.Stat(t.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Renamed or removed and not replaced yet: keep draining the old file.
		return false, nil
	case err != nil:
		return false, fmt.Errorf("stat %s: %w", t.path, err)
	case os.SameFile(cur, t.info):
		t.rotatedAt = time.Time{}
		return false, nil
	}
	// The path is a new file. Switch once the old one has been quiet, so
	// lines its writer adds before reopening are not lost.
	now := time.Now()
	if t.rotatedAt.IsZero() || n > 0 {
		t.rotatedAt = now
		if t.quiet > 0 {
			return false, nil
		}
	}
	if now.Sub(t.rotatedAt) < t.quiet {
		return false, nil
	}
	if len(t.pending) > 0 && !t.skipping {
		// The old file ended without a newline: that last line is complete.
		t.emit(t.pending)
	}
	t.close()
	if t.hooks.rotated != nil {
		t.hooks.rotated("rename")
	}
	if err := t.open(false); err != nil && !errors.Is(err, fs.ErrNotExist) {
		if errors.Is(err, ErrNotRegular) {
			// Refused; run waits for a regular file to take the path.
			return false, nil
		}
		return false, err
	}
	if t.f != nil {
		_, more, err = t.drain(ctx)
	}
	return more, err
}

// restart reads the open file again from its first byte, after it was
// truncated in place.
func (t *tailer) restart() error {
	if _, err := t.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("seek truncated access log: %w", err)
	}
	t.off, t.lineNo, t.pending, t.skipping, t.fp = 0, 0, t.pending[:0], false, t.fp[:0]
	if t.hooks.rotated != nil {
		t.hooks.rotated("truncate")
	}
	return nil
}

// rewritten reports whether the bytes before off are no longer those read:
// the file was truncated and written again past off since the last read.
func (t *tailer) rewritten() (bool, error) {
	if len(t.fp) == 0 {
		return false, nil
	}
	got, err := t.readBack(t.fpCheck[:0])
	if err != nil {
		return false, err
	}
	return !bytes.Equal(got, t.fp), nil
}

// drain reads to EOF (or maxDrain bytes, reporting more), emitting complete
// lines and keeping a partial one.
func (t *tailer) drain(ctx context.Context) (total int, more bool, err error) {
	for {
		if ctx.Err() != nil {
			return total, false, nil
		}
		if total >= maxDrain {
			return total, true, nil
		}
		// Before every read: a truncation followed at once by writes past
		// the old offset leaves a file longer than off, and reading on from
		// off would skip the start of the new content.
		if again, err := t.rewritten(); err != nil {
			return total, false, err
		} else if again {
			if err := t.restart(); err != nil {
				return total, false, err
			}
		}
		n, err := t.f.Read(t.buf)
		if n > 0 {
			total += n
			t.off += int64(n)
			if t.hooks.read != nil {
				t.hooks.read(n)
			}
			t.remember(t.buf[:n])
			t.split(t.buf[:n])
		}
		if errors.Is(err, io.EOF) || (n == 0 && err == nil) {
			return total, false, nil
		}
		if err != nil {
			return total, false, fmt.Errorf("read access log: %w", err)
		}
	}
}

// remember keeps the last fingerprintLen bytes read.
func (t *tailer) remember(b []byte) {
	if len(b) >= fingerprintLen {
		t.fp = append(t.fp[:0], b[len(b)-fingerprintLen:]...)
		return
	}
	if drop := len(t.fp) + len(b) - fingerprintLen; drop > 0 {
		t.fp = append(t.fp[:0], t.fp[drop:]...)
	}
	t.fp = append(t.fp, b...)
}

func (t *tailer) split(b []byte) {
	for len(b) > 0 {
		if len(t.pending) == 0 && !t.skipping {
			// A writer without O_APPEND keeps its offset across a
			// copytruncate and leaves a hole of NUL bytes before its next
			// line: the hole is not part of any line.
			b = bytes.TrimLeft(b, "\x00")
			if len(b) == 0 {
				return
			}
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if !t.skipping {
				if len(t.pending)+len(b) > t.maxLine {
					t.skipping = true
					t.pending = t.pending[:0]
				} else {
					t.pending = append(t.pending, b...)
				}
			}
			return
		}
		switch {
		case t.skipping:
			t.skipping = false
			t.lineNo++
			if t.hooks.tooLong != nil {
				t.hooks.tooLong(t.lineNo)
			}
		case len(t.pending) > 0:
			if len(t.pending)+i > t.maxLine {
				t.lineNo++
				if t.hooks.tooLong != nil {
					t.hooks.tooLong(t.lineNo)
				}
			} else {
				t.pending = append(t.pending, b[:i]...)
				t.emit(t.pending)
			}
		default:
			if i > t.maxLine {
				t.lineNo++
				if t.hooks.tooLong != nil {
					t.hooks.tooLong(t.lineNo)
				}
			} else {
				t.emit(b[:i])
			}
		}
		t.pending = t.pending[:0]
		b = b[i+1:]
	}
}

func (t *tailer) emit(line []byte) {
	t.lineNo++
	line = bytes.TrimSuffix(line, []byte{'\r'})
	t.hooks.line(line, t.lineNo)
}
