package main

import (
	"bufio"
	"bytes"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/httpserver/httpservertest"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// The real simulator with --web.read-timeout and --web.idle-timeout of 2 s:
// stalled request bodies and idle keep-alive connections are cut off on the
// API and the metrics address, while a stream that lasts longer than both
// timeouts is answered in full.
func TestSlowClientsAreCutOffAndStreamsAreNot(t *testing.T) {
	bin := testenv.Binary(t, name)
	api, metrics := testenv.Addr(testenv.FreePort(t)), testenv.Addr(testenv.FreePort(t))
	cmd := exec.Command(bin, "serve", "--web.listen-address="+api, "--metrics.listen-address="+metrics,
		"--web.read-timeout=2s", "--web.idle-timeout=2s",
		"--pacing.ttft-median=10ms", "--pacing.token-min=50ms", "--pacing.token-max=50ms")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("simulator log:\n%s", out.String())
		}
	}()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + metrics + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("simulator not ready")
		}
	}
	closedNearTimeout := func(t *testing.T, what string, outs []httpservertest.Outcome, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range outs {
			if o.Err != nil {
				t.Fatalf("%s %d: %v (sent %q)", what, i, o.Err, o.Response)
			}
			if o.Closed < 1500*time.Millisecond || o.Closed > 10*time.Second {
				t.Errorf("%s %d closed after %s, want about 2s", what, i, o.Closed)
			}
		}
	}
	t.Run("stalled body on the API", func(t *testing.T) {
		outs, err := httpservertest.StalledBodies(api, "/v1/chat/completions", "", 20, 20*time.Second)
		closedNearTimeout(t, "connection", outs, err)
	})
	for _, addr := range []string{api, metrics} {
		t.Run("idle keep-alive on "+addr, func(t *testing.T) {
			path := "/v1/models"
			if addr == metrics {
				path = "/metrics"
			}
			outs, err := httpservertest.IdleKeepAlives(addr, path, 20, 20*time.Second)
			closedNearTimeout(t, "connection", outs, err)
		})
	}
	t.Run("a 3s stream is not cut", func(t *testing.T) {
		body := `{"model":"glm-4-9b-chat","stream":true,"max_tokens":60,"messages":[{"role":"user","content":"hi"}]}`
		begin := time.Now()
		resp, err := http.Post("http://"+api+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		done := false
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			done = done || strings.TrimSpace(sc.Text()) == "data: [DONE]"
		}
		if took := time.Since(begin); !done || took < 2500*time.Millisecond {
			t.Fatalf("stream ended after %s, [DONE] seen: %v (%v)", took, done, sc.Err())
		}
	})
}
