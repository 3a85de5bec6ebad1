package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/httpserver/httpservertest"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// goroutines reads go_goroutines from the receiver's /metrics.
func goroutines(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	m := regexp.MustCompile(`(?m)^go_goroutines (\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no go_goroutines in /metrics")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// The real receiver, with --web.read-timeout and --web.idle-timeout of 2 s:
// clients that announce a body and never send it get their 401 at once when
// they lack credentials and are cut off at the read timeout when they have
// them; idle keep-alive connections are closed at the idle timeout; nothing
// is left behind.
func TestSlowAndIdleClientsAreCutOff(t *testing.T) {
	bin := testenv.Binary(t, name)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`receiver:
  storage: {path: %s}
  webhook: {auth_token: %q}
  channels:
    console: {type: file, path: %s}
  routes:
    - name: all
      matchers: ['severity=~".+"']
      channels: [console]
`, filepath.Join(dir, "store"), authToken, filepath.Join(dir, "console.jsonl")))
	port := testenv.FreePort(t)
	p := start(t, bin, cfg, port, nil, "--web.read-timeout=2s", "--web.idle-timeout=2s", "--log.level=info")
	addr := testenv.Addr(port)
	before := goroutines(t, p.url)
	const n = 100

	t.Run("no credentials: 401 before the body", func(t *testing.T) {
		out, err := httpservertest.StalledBodies(addr, "/webhook", "", n, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range out {
			if o.Err != nil || !strings.HasPrefix(o.Status(), "HTTP/1.1 401") {
				t.Fatalf("connection %d: %v, got %q", i, o.Err, o.Response)
			}
			if o.FirstByte > time.Second || o.Closed > time.Second {
				t.Errorf("connection %d: 401 after %s, closed after %s: the receiver waited for the body", i, o.FirstByte, o.Closed)
			}
		}
	})
	t.Run("credentials, stalled body: closed at the read timeout", func(t *testing.T) {
		out, err := httpservertest.StalledBodies(addr, "/webhook", "Authorization: Bearer "+authToken+"\r\n", n, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range out {
			if o.Err != nil {
				t.Fatalf("connection %d: %v", i, o.Err)
			}
			if o.Closed < 1500*time.Millisecond || o.Closed > 10*time.Second {
				t.Errorf("connection %d closed after %s, want about the 2s read timeout (sent %q)", i, o.Closed, o.Response)
			}
		}
	})
	t.Run("idle keep-alive: closed at the idle timeout", func(t *testing.T) {
		out, err := httpservertest.IdleKeepAlives(addr, "/-/healthy", n, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range out {
			if o.Err != nil || !strings.HasPrefix(o.Status(), "HTTP/1.1 200") {
				t.Fatalf("connection %d: %v, got %q", i, o.Err, o.Response)
			}
			if o.Closed < 1500*time.Millisecond || o.Closed > 10*time.Second {
				t.Errorf("connection %d closed after %s, want about the 2s idle timeout", i, o.Closed)
			}
		}
	})
	// Every connection's goroutines are gone again.
	waitUntil(t, "goroutines back to where they were", 10*time.Second, func() bool { return goroutines(t, p.url) <= before+5 })
	if code, err := post(t.Context(), p.url, payload("Slow", 1, "firing", nil), "Authorization", "Bearer "+authToken); err != nil || code != 200 {
		t.Fatalf("a well-behaved webhook after the hostile ones: %d %v\n%s", code, err, p.logs)
	}
	p.stop(t)
}
