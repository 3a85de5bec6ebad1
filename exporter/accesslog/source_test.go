package accesslog

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

func nginxLine(path string) string {
	return fmt.Sprintf(`127.0.0.1 - - [25/Nov/2026:17:52:38 +0000] "POST %s HTTP/1.1" 200 10 "-" "ua" 0.100 0.099 321`+"\n", path)
}

// running is a Source under test with what it has produced so far.
type running struct {
	t      *testing.T
	src    *Source
	mu     sync.Mutex
	paths  []string
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, o Options) *running {
	t.Helper()
	src, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	src.poll, src.quiet = 10*time.Millisecond, 300*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, src: src, cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- src.Run(ctx, func(req *traffic.Request) {
			r.mu.Lock()
			r.paths = append(r.paths, req.Path)
			r.mu.Unlock()
		})
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		r.t.Error("source did not stop")
	}
}

// waitOpen waits until the source has the file open (and, at start, seeked to its end).
func (r *running) waitOpen() {
	r.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); testutil.ToFloat64(r.src.m.open) != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			r.t.Fatal("source did not open the file")
		}
	}
}

func (r *running) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.paths...)
}

// waitFor waits until exactly want has been produced, and a little longer to catch extras.
func (r *running) waitFor(want ...string) {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && len(r.got()) < len(want) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if got := r.got(); strings.Join(got, " ") != strings.Join(want, " ") {
		r.t.Fatalf("got requests %v, want %v", got, want)
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStartsAtEndByDefault(t *testing.T) {
	for _, fromStart := range []bool{false, true} {
		t.Run(fmt.Sprint("from_start=", fromStart), func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "access.log")
			appendTo(t, log, nginxLine("/old1")+nginxLine("/old2"))
			r := start(t, Options{Path: log, Format: FormatNginx, FromStart: fromStart})
			r.waitOpen()
			appendTo(t, log, nginxLine("/new1"))
			if fromStart {
				r.waitFor("/old1", "/old2", "/new1")
			} else {
				r.waitFor("/new1")
			}
		})
	}
}

func TestFileAppearingLaterIsReadFromStart(t *testing.T) {
	log := filepath.Join(t.TempDir(), "later.log")
	r := start(t, Options{Path: log, Format: FormatNginx})
	time.Sleep(50 * time.Millisecond)
	if v := testutil.ToFloat64(r.src.m.open); v != 0 {
		t.Fatalf("file_open %v before the file exists", v)
	}
	appendTo(t, log, nginxLine("/a")+nginxLine("/b"))
	r.waitFor("/a", "/b")
	if v := testutil.ToFloat64(r.src.m.open); v != 1 {
		t.Fatalf("file_open %v after the file appeared", v)
	}
}

func TestRotationByRename(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "access.log")
	appendTo(t, log, "")
	r := start(t, Options{Path: log, Format: FormatNginx})
	r.waitOpen()
	// The writer keeps its descriptor across the rename, as nginx does until USR1.
	w, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, _ = w.WriteString(nginxLine("/1"))
	r.waitFor("/1")
	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, log, nginxLine("/new-file"))
	// Several polls later, but within the quiet period, the writer still uses the old file.
	time.Sleep(100 * time.Millisecond)
	_, _ = w.WriteString(nginxLine("/2-late-in-old-file"))
	r.waitFor("/1", "/2-late-in-old-file", "/new-file")
	appendTo(t, log, nginxLine("/3"))
	r.waitFor("/1", "/2-late-in-old-file", "/new-file", "/3")
	if v := testutil.ToFloat64(r.src.m.rotations.WithLabelValues("rename")); v != 1 {
		t.Fatalf("rename rotations %v, want 1", v)
	}
}

func TestRotationByRenameWithGap(t *testing.T) {
	// The old file is moved away and the new one only appears later.
	log := filepath.Join(t.TempDir(), "access.log")
	appendTo(t, log, "")
	r := start(t, Options{Path: log, Format: FormatNginx})
	r.waitOpen()
	appendTo(t, log, nginxLine("/1"))
	r.waitFor("/1")
	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	appendTo(t, log, nginxLine("/2"))
	r.waitFor("/1", "/2")
}

func TestRotationByTruncate(t *testing.T) {
	log := filepath.Join(t.TempDir(), "access.log")
	appendTo(t, log, "")
	r := start(t, Options{Path: log, Format: FormatNginx})
	r.waitOpen()
	appendTo(t, log, nginxLine("/1")+nginxLine("/2")+nginxLine("/3"))
	r.waitFor("/1", "/2", "/3")
	if err := os.Truncate(log, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(40 * time.Millisecond)
	appendTo(t, log, nginxLine("/4"))
	r.waitFor("/1", "/2", "/3", "/4")
	if v := testutil.ToFloat64(r.src.m.rotations.WithLabelValues("truncate")); v != 1 {
		t.Fatalf("truncate rotations %v, want 1", v)
	}
}

func TestPartialLinesWaitForNewline(t *testing.T) {
	log := filepath.Join(t.TempDir(), "access.log")
	appendTo(t, log, "")
	r := start(t, Options{Path: log, Format: FormatNginx})
	r.waitOpen()
	line := nginxLine("/split")
	appendTo(t, log, line[:20])
	time.Sleep(60 * time.Millisecond)
	appendTo(t, log, line[20:])
	r.waitFor("/split")
	if v := testutil.ToFloat64(r.src.m.parseErrors.WithLabelValues(reasonSyntax)); v != 0 {
		t.Fatalf("a split line counted %v syntax errors", v)
	}
}

func TestBadLinesAreCountedNotLogged(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	log := filepath.Join(t.TempDir(), "access.json")
	secret := "PROMPT-do-not-log-me"
	appendTo(t, log, strings.Join([]string{
		`{"status":200,"request_time":0.5,"uri":"/ok1"}`,
		`{"status":"` + secret + `","request_time":0.5}`,
		`not json ` + secret,
		``,
		`{"status":200,"uri":"/` + secret + `"}`,
		`{"status":200,"request_time":0.5,"uri":"/long","pad":"` + strings.Repeat("x", 70<<10) + `"}`,
		`{"status":200,"request_time":0.5,"uri":"/ok2"}`,
	}, "\n")+"\n")
	r := start(t, Options{Path: log, Format: FormatJSON, FromStart: true, Logger: logger})
	r.waitFor("/ok1", "/ok2")
	r.stop()
	want := `
# HELP autoglm_exporter_accesslog_lines_total Lines read from the access log.
# TYPE autoglm_exporter_accesslog_lines_total counter
autoglm_exporter_accesslog_lines_total 6
# HELP autoglm_exporter_accesslog_parse_errors_total Lines that could not be parsed, by reason.
# TYPE autoglm_exporter_accesslog_parse_errors_total counter
autoglm_exporter_accesslog_parse_errors_total{reason="bad_duration"} 0
autoglm_exporter_accesslog_parse_errors_total{reason="bad_json"} 1
autoglm_exporter_accesslog_parse_errors_total{reason="bad_number"} 0
autoglm_exporter_accesslog_parse_errors_total{reason="bad_status"} 1
autoglm_exporter_accesslog_parse_errors_total{reason="bad_time"} 0
autoglm_exporter_accesslog_parse_errors_total{reason="missing_field"} 1
autoglm_exporter_accesslog_parse_errors_total{reason="syntax"} 0
autoglm_exporter_accesslog_parse_errors_total{reason="too_long"} 1
# HELP autoglm_exporter_accesslog_requests_total Lines parsed into requests.
# TYPE autoglm_exporter_accesslog_requests_total counter
autoglm_exporter_accesslog_requests_total 2
`
	if err := testutil.CollectAndCompare(r.src.Collector(), strings.NewReader(want),
		"autoglm_exporter_accesslog_lines_total", "autoglm_exporter_accesslog_parse_errors_total",
		"autoglm_exporter_accesslog_requests_total"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if strings.Contains(out, secret) || strings.Contains(out, "xxxx") {
		t.Fatalf("log output quotes line content:\n%s", out)
	}
	for _, want := range []string{"line=2", "reason=bad_status", "line=3", "reason=bad_json", "line=6", "reason=too_long"} {
		if !strings.Contains(out, want) {
			t.Errorf("log output lacks %q:\n%s", want, out)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestCollectorLint(t *testing.T) {
	src, err := New(Options{Path: "/nonexistent", Format: FormatEnvoy})
	if err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.CollectAndLint(src.Collector())
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("lint: %v", problems)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Format: FormatNginx}, "path is empty"},
		{Options{Path: "/x", Format: "apache"}, `unknown format "apache"`},
		{Options{Path: "/x", Format: FormatNginx, Fields: map[string]string{"status": "s"}}, "json format only"},
		{Options{Path: "/x", Format: FormatJSON, Fields: map[string]string{"status": "s"}}, "must be mapped"},
	} {
		if _, err := New(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestRunFailsOnDirectory(t *testing.T) {
	src, err := New(Options{Path: t.TempDir(), Format: FormatNginx})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := src.Run(ctx, func(*traffic.Request) {}); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Fatalf("error %v, want it to say the path is a directory", err)
	}
}
