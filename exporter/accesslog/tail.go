package accesslog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

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

	hooks tailHooks
}

type tailHooks struct {
	line    func(line []byte, lineNo int64)
	tooLong func(lineNo int64)
	rotated func(kind string)
	opened  func(open bool)
	read    func(n int)
}

func newTailer(path string, fromStart bool, h tailHooks) *tailer {
	return &tailer{path: path, fromStart: fromStart, poll: 250 * time.Millisecond, maxLine: 64 << 10,
		quiet: time.Second, buf: make([]byte, 64<<10), hooks: h}
}

// run follows the file until ctx ends. It returns an error only for
// conditions polling cannot fix (e.g. the path is a directory).
func (t *tailer) run(ctx context.Context) error {
	first := true
	timer := time.NewTimer(0)
	defer timer.Stop()
	defer t.close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if t.f == nil {
			err := t.open(first)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			first = false
		}
		if t.f != nil {
			if err := t.follow(); err != nil {
				return err
			}
		}
		timer.Reset(t.poll)
	}
}

func (t *tailer) open(atStart bool) error {
	f, err := os.Open(t.path)
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
	t.f, t.info, t.off, t.lineNo, t.pending, t.skipping = f, info, 0, 0, t.pending[:0], false
	t.rotatedAt = time.Time{}
	if atStart && !t.fromStart {
		if t.off, err = f.Seek(0, io.SeekEnd); err != nil {
			t.close()
			return fmt.Errorf("seek %s: %w", t.path, err)
		}
	}
	if t.hooks.opened != nil {
		t.hooks.opened(true)
	}
	return nil
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
}

// follow reads what is new, then checks for truncation and rotation.
func (t *tailer) follow() error {
	n, err := t.drain()
	if err != nil {
		return err
	}
	info, err := t.f.Stat()
	if err != nil {
		return fmt.Errorf("stat open access log: %w", err)
	}
	if info.Size() < t.off {
		// Truncated in place (copytruncate): start over on the same file.
		if _, err := t.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("seek truncated access log: %w", err)
		}
		t.off, t.lineNo, t.pending, t.skipping = 0, 0, t.pending[:0], false
		if t.hooks.rotated != nil {
			t.hooks.rotated("truncate")
		}
		_, err := t.drain()
		return err
	}
	cur, err := os.Stat(t.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Renamed or removed and not replaced yet: keep draining the old file.
		return nil
	case err != nil:
		return fmt.Errorf("stat %s: %w", t.path, err)
	case os.SameFile(cur, t.info):
		t.rotatedAt = time.Time{}
		return nil
	}
	// The path is a new file. Switch once the old one has been quiet, so
	// lines its writer adds before reopening are not lost.
	now := time.Now()
	if t.rotatedAt.IsZero() || n > 0 {
		t.rotatedAt = now
		if t.quiet > 0 {
			return nil
		}
	}
	if now.Sub(t.rotatedAt) < t.quiet {
		return nil
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
		return err
	}
	if t.f != nil {
		_, err = t.drain()
	}
	return err
}

// drain reads to EOF, emitting complete lines and keeping a partial one.
func (t *tailer) drain() (int, error) {
	total := 0
	for {
		n, err := t.f.Read(t.buf)
		if n > 0 {
			total += n
			t.off += int64(n)
			if t.hooks.read != nil {
				t.hooks.read(n)
			}
			t.split(t.buf[:n])
		}
		if errors.Is(err, io.EOF) || (n == 0 && err == nil) {
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("read access log: %w", err)
		}
	}
}

func (t *tailer) split(b []byte) {
	for len(b) > 0 {
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
