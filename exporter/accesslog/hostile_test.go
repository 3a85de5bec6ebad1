package accesslog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// stepTailer is a tailer driven by hand, one poll at a time, so a rotation
// can land exactly between two polls.
type stepTailer struct {
	t     *testing.T
	tl    *tailer
	lines []string
}

func newStepTailer(t *testing.T, path string) *stepTailer {
	st := &stepTailer{t: t}
	st.tl = newTailer(path, true, tailHooks{line: func(line []byte, _ int64) { st.lines = append(st.lines, string(line)) }})
	if err := st.tl.open(true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.tl.close)
	return st
}

func (st *stepTailer) poll() {
	st.t.Helper()
	if _, err := st.tl.follow(context.Background()); err != nil {
		st.t.Fatal(err)
	}
}

func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		// The second batch is longer, so it ends past the old offset.
		out = append(out, fmt.Sprintf(`{"n":%d,"path":"/%s/%d"}`, i, prefix, i))
	}
	return out
}

func write(t *testing.T, f *os.File, lines []string) {
	t.Helper()
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
}

// copytruncate: the rotation copies the log and truncates it, and the
// server writes again at once, past the offset the tailer had reached,
// before the tailer polls. The size never looks smaller than the offset,
// yet every line of both halves is read.
func TestCopytruncateThenRewritePastOffsetLosesNoLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		// appendMode is how the server opened its log: with O_APPEND it
		// writes at the new end (0); without, at its old offset, leaving
		// a hole of NUL bytes before its next line.
		appendMode bool
	}{{"writer with O_APPEND", true}, {"writer without O_APPEND (hole)", false}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "access.log")
			flags := os.O_CREATE | os.O_WRONLY
			if tc.appendMode {
				flags |= os.O_APPEND
			}
			w, err := os.OpenFile(path, flags, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			st := newStepTailer(t, path)
			first := numbered("a", 0, 20)
			write(t, w, first)
			st.poll()
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			second := numbered("rotated-and-longer", 20, 40)
			write(t, w, second)
			st.poll()
			want := append(append([]string{}, first...), second...)
			if got := strings.Join(st.lines, "\n"); got != strings.Join(want, "\n") {
				t.Fatalf("read %d lines, want %d:\n%s", len(st.lines), len(want), got)
			}
		})
	}
}

// The same through a running Source, many times, with the rewrite landing
// anywhere relative to the polls.
func TestCopytruncateUnderLoadLosesNoLine(t *testing.T) {
	for trial := range 5 {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("access-%d.log", trial))
		appendTo(t, path, "")
		r := start(t, Options{Path: path, Format: FormatNginx})
		r.waitOpen()
		var want []string
		for i := range 20 {
			p := fmt.Sprintf("/before/%d", i)
			want = append(want, p)
			appendTo(t, path, nginxLine(p))
		}
		r.waitFor(want...)
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
		var burst strings.Builder
		for i := range 20 {
			p := fmt.Sprintf("/after-the-rotation/%d", i)
			want = append(want, p)
			burst.WriteString(nginxLine(p))
		}
		appendTo(t, path, burst.String())
		r.waitFor(want...)
		r.stop()
	}
}

func mkfifo(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "access.fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A path that is not a regular file is refused at once with what it is,
// instead of blocking in open (a FIFO without writer) or reading forever
// (/dev/zero).
func TestSpecialFilesAreRefusedAtStart(t *testing.T) {
	for _, tc := range []struct {
		name, path, want string
	}{
		{"named pipe", mkfifo(t), "named pipe (FIFO), not a regular file"},
		{"/dev/zero", "/dev/zero", "character device, not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := New(Options{Path: tc.path, Format: FormatJSON, FromStart: true})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- src.Run(context.Background(), func(*traffic.Request) {}) }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
					t.Fatalf("got %v, want an error naming %s and saying %q", err, tc.path, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return: it blocked on the special file")
			}
		})
	}
}

// A regular log replaced by a FIFO is refused and waited out: the source
// says it is not ready and why, stops at once when asked, and follows the
// log again once a regular file takes the path.
func TestFIFOReplacingTheLogMakesItUnready(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	appendTo(t, path, "")
	r := start(t, Options{Path: path, Format: FormatNginx})
	if err := r.src.Ready(); err == nil {
		// Not open yet is fine; it must become ready.
		r.waitOpen()
	}
	r.waitOpen()
	if err := r.src.Ready(); err != nil {
		t.Fatalf("ready: %v", err)
	}
	appendTo(t, path, nginxLine("/1"))
	r.waitFor("/1")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for err = r.src.Ready(); err == nil || !strings.Contains(err.Error(), "named pipe"); err = r.src.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("ready says %v with a FIFO at the log's path", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, nginxLine("/2"))
	r.waitFor("/1", "/2")
	if err := r.src.Ready(); err != nil {
		t.Fatalf("not ready again on a regular file: %v", err)
	}
	// Cancellation ends Run promptly (r.stop fails the test after 5 s).
	begin := time.Now()
	r.stop()
	if d := time.Since(begin); d > time.Second {
		t.Errorf("stop took %s", d)
	}
}

// Ready tells a missing log apart from a followed one.
func TestReadyWhileTheLogIsMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "later.log")
	r := start(t, Options{Path: path, Format: FormatNginx})
	deadline := time.Now().Add(5 * time.Second)
	for err := r.src.Ready(); err == nil || !strings.Contains(err.Error(), "to appear"); err = r.src.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("ready says %v while %s does not exist", err, path)
		}
		time.Sleep(10 * time.Millisecond)
	}
	appendTo(t, path, nginxLine("/a"))
	r.waitFor("/a")
	if err := r.src.Ready(); err != nil {
		t.Fatalf("not ready with the log open: %v", err)
	}
}
