package httpserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// toolkitHash is exporter-toolkit's bcrypt hash of "fakepassword".
const toolkitHash = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"

// serve runs h behind Serve on a free loopback port and returns its address.
func serve(t *testing.T, h http.Handler, to Timeouts, webConfig string) string {
	t.Helper()
	addr := testenv.Addr(testenv.FreePort(t))
	systemd := false
	flags := &web.FlagConfig{WebListenAddresses: &[]string{addr}, WebSystemdSocket: &systemd, WebConfigFile: &webConfig}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, &http.Server{Handler: h}, flags, to, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("server on %s did not start: %v", addr, err)
		}
	}
}

// closedWithin sends req on a new connection and waits for the server to
// close it; it returns what the server sent and how long it took.
func closedWithin(t *testing.T, addr, req string, limit time.Duration) (string, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	begin := time.Now()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(begin.Add(limit))
	got, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s (received %q)", limit, got)
	}
	return string(got), time.Since(begin)
}

// requireAuth answers 401 without reading the body unless the bearer token is right.
func requireAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good" {
			http.Error(w, "missing or invalid bearer token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

var readAll = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "read %d bytes\n", len(b))
})

func TestStalledBodyIsClosedAtTheReadTimeout(t *testing.T) {
	addr := serve(t, requireAuth(readAll), Timeouts{ReadBody: time.Second, Idle: time.Minute}, "")
	// Credentials are right, the body never comes.
	_, took := closedWithin(t, addr, "POST /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\nContent-Length: 100\r\n\r\n0123456789", 10*time.Second)
	if took < 900*time.Millisecond {
		t.Errorf("closed after %s, before the read timeout", took)
	}
}

func TestSlowHeadersAreClosed(t *testing.T) {
	addr := serve(t, readAll, Timeouts{ReadBody: time.Second, Idle: time.Minute}, "")
	// The read timeout caps the header timeout too.
	closedWithin(t, addr, "POST /x HTTP/1.1\r\nHost: x\r\n", 10*time.Second)
}

func TestIdleKeepAliveIsClosed(t *testing.T) {
	addr := serve(t, readAll, Timeouts{ReadBody: time.Minute, Idle: time.Second}, "")
	got, took := closedWithin(t, addr, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n", 10*time.Second)
	if !strings.HasPrefix(got, "HTTP/1.1 200") || strings.Contains(strings.ToLower(got), "connection: close") {
		t.Fatalf("want a keep-alive 200 first, got %q", got)
	}
	if took < 900*time.Millisecond {
		t.Errorf("closed after %s, before the idle timeout", took)
	}
}

// A client without credentials gets its 401 at once, not after sending (or
// failing to send) the body it announced.
func TestUnauthorizedIsAnsweredBeforeTheBody(t *testing.T) {
	for _, tc := range []struct {
		name      string
		handler   http.Handler
		webConfig func(t *testing.T) string
		auth      string
	}{
		{"handler's own auth", requireAuth(readAll), func(*testing.T) string { return "" }, ""},
		{"wrong token", requireAuth(readAll), func(*testing.T) string { return "" }, "Authorization: Bearer bad\r\n"},
		{"web.config.file basic auth", readAll, func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "web.yml")
			if err := os.WriteFile(p, []byte("basic_auth_users:\n  u: "+toolkitHash+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serve(t, tc.handler, Timeouts{ReadBody: 20 * time.Second, Idle: time.Minute}, tc.webConfig(t))
			got, took := closedWithin(t, addr, "POST /x HTTP/1.1\r\nHost: x\r\n"+tc.auth+"Content-Length: 100000\r\n\r\n{", 10*time.Second)
			if !strings.HasPrefix(got, "HTTP/1.1 401") {
				t.Fatalf("got %q, want a 401", got)
			}
			if took > 5*time.Second {
				t.Errorf("401 took %s: it waited for the body", took)
			}
		})
	}
}

// The body deadline ends with the body: an answer that streams for longer
// than the read timeout is not cut, and its request context stays alive.
func TestStreamOutlivesTheReadTimeout(t *testing.T) {
	const chunks = 6
	stream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range chunks {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(400 * time.Millisecond):
			}
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
		}
	})
	addr := serve(t, stream, Timeouts{ReadBody: time.Second, Idle: time.Second}, "")
	resp, err := http.Post("http://"+addr+"/x", "application/json", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			n++
		}
	}
	if n != chunks {
		t.Fatalf("received %d of %d events over %s (read timeout 1s): %v", n, chunks, time.Duration(chunks)*400*time.Millisecond, sc.Err())
	}
}

// A body that arrives in pieces within the read timeout is read in full.
func TestSlowBodyWithinTheReadTimeout(t *testing.T) {
	addr := serve(t, readAll, Timeouts{ReadBody: 3 * time.Second, Idle: time.Minute}, "")
	pr, pw := io.Pipe()
	go func() {
		for range 5 {
			time.Sleep(100 * time.Millisecond)
			_, _ = pw.Write([]byte("0123456789"))
		}
		_ = pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/x", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 50
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(b) != "read 50 bytes\n" {
		t.Fatalf("got %q", b)
	}
}
