package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

func accessLogConfig(t *testing.T, logPath string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "c.yml")
	if err := os.WriteFile(cfg, []byte("exporter:\n  source: accesslog\n  ports: [8000]\n  accesslog:\n    path: "+logPath+"\n    format: json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// exporterProc is the exporter binary reading an access log at logPath.
type exporterProc struct {
	cmd  *exec.Cmd
	out  *testenv.LogBuffer
	done chan error
}

func startExporter(t *testing.T, logPath, addr string) *exporterProc {
	t.Helper()
	p := &exporterProc{out: &testenv.LogBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(testenv.Binary(t, "autoglm-exporter"), "--config.file="+accessLogConfig(t, logPath), "--web.listen-address="+addr)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	return p
}

// An access-log path that is a named pipe or a device stops the exporter at
// once with a message saying what the path is.
func TestAccessLogSpecialFileStopsTheExporter(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "access.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{fifo, "named pipe (FIFO)"},
		{"/dev/zero", "character device"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			p := startExporter(t, tc.path, testenv.Addr(testenv.FreePort(t)))
			select {
			case err := <-p.done:
				if out := p.out.String(); err == nil || !strings.Contains(out, tc.want) || !strings.Contains(out, tc.path) {
					t.Fatalf("exit %v, output:\n%s\nwant a failure naming %s as a %s", err, out, tc.path, tc.want)
				}
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
				t.Fatalf("exporter still running after 10s with %s as its access log:\n%s", tc.path, p.out)
			}
		})
	}
}

// While its access log does not exist the exporter says it is not ready and
// why, and SIGTERM stops it at once.
func TestAccessLogMissingIsNotReadyAndStopsOnSIGTERM(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "not-yet.log")
	addr := testenv.Addr(testenv.FreePort(t))
	p := startExporter(t, logPath, addr)
	defer func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}()
	ready := func() (int, string) {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return 0, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	var code int
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, body = ready(); code == http.StatusServiceUnavailable {
			break
		}
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, logPath) {
		t.Fatalf("/-/ready = %d %q with no access log, want 503 naming %s\n%s", code, body, logPath, p.out)
	}
	if err := os.WriteFile(logPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, body = ready(); code == http.StatusOK {
			break
		}
	}
	if code != http.StatusOK {
		t.Fatalf("/-/ready = %d %q once the log exists", code, body)
	}
	begin := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		p.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatalf("exporter did not stop on SIGTERM:\n%s", p.out)
	}
	if d := time.Since(begin); d > 6*time.Second {
		t.Errorf("SIGTERM took %s", d)
	}
}
