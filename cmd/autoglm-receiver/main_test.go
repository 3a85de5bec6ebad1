package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

const (
	dingToken  = "DTSECRETaccesstoken0123456789"
	dingSign   = "SECsigningsecret9876543210abc"
	authToken  = "bearer-SECRET-4711-token"
	hookSecret = "HOOKSECRETqueryparam42"
)

func e2eConfig(dir, sinkURL, extraRoute string) string {
	return fmt.Sprintf(`receiver:
  storage: {path: %s}
  webhook: {auth_token: %q}
  retry: {initial_backoff: 100ms, max_backoff: 1s, expire_after: 1h, escalate_after_failures: 1}
  channels:
    hook: {type: webhook, url: "%s/hook?token=%s"}
    bot:  {type: dingtalk, url: "http://127.0.0.1:1/robot/send?access_token=%s", secret: %q}
    console: {type: file, path: %s}
  routes:%s
    - name: pager
      matchers: ['severity="critical"']
      channels: [hook, console]
    - name: chat
      matchers: ['severity="warning"']
      channels: [bot]
      fallback: [hook]
  default_route: {channels: [console]}
`, filepath.Join(dir, "store"), authToken, sinkURL, hookSecret, dingToken, dingSign, filepath.Join(dir, "console.jsonl"), extraRoute)
}

func waitUntil(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

func TestEndToEndDeliveryAuditMetricsAndSecrets(t *testing.T) {
	bin := testenv.Binary(t, name)
	dir := t.TempDir()
	sk := newSink(t)
	cfg := writeConfig(t, dir, e2eConfig(dir, sk.srv.URL, ""))
	p := start(t, bin, cfg, testenv.FreePort(t), nil)
	ctx := context.Background()

	if code, err := post(ctx, p.url, payload("E2E", 0, "firing", nil)); err != nil || code != 401 {
		t.Fatalf("without token: %d %v, want 401", code, err)
	}
	auth := []string{"Authorization", "Bearer " + authToken}
	if code, err := post(ctx, p.url, []byte(`{"version":"4"`), auth...); err != nil || code != 400 {
		t.Fatalf("malformed: %d %v, want 400", code, err)
	}
	if code, err := post(ctx, p.url, payload("E2E", 0, "firing", nil), auth...); err != nil || code != 200 {
		t.Fatalf("critical: %d %v", code, err)
	}
	if code, err := post(ctx, p.url, payload("E2E", 0, "resolved", nil), auth...); err != nil || code != 200 {
		t.Fatalf("resolved: %d %v", code, err)
	}
	// Warning goes to the broken robot and escalates to the webhook after one failure.
	if code, err := post(ctx, p.url, payload("E2W", 1, "firing", map[string]string{"severity": "warning"}), auth...); err != nil || code != 200 {
		t.Fatalf("warning: %d %v", code, err)
	}
	waitUntil(t, "deliveries", 10*time.Second, func() bool {
		c, _ := sk.snapshot()
		return c[groupKeyOf("E2E", 0)+"/firing"] == 1 && c[groupKeyOf("E2E", 0)+"/resolved"] == 1 && c[groupKeyOf("E2W", 1)+"/firing"] == 1
	})
	_, order := sk.snapshot()
	if strings.Index(strings.Join(order, " "), "/firing") > strings.Index(strings.Join(order, " "), "/resolved") {
		t.Errorf("resolved overtook firing: %v", order)
	}
	logLine := regexp.MustCompile(`msg="notification delivered" channel=hook alertname=E2E00000 route=pager`)
	waitUntil(t, "delivery log line", 5*time.Second, func() bool { return logLine.MatchString(p.logs.String()) })
	waitUntil(t, "console channel", 5*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "console.jsonl"))
		return strings.Count(string(b), "E2E00000") >= 2
	})

	var recs []auditRecord
	var rawAudit string
	outcomes := map[string]int{}
	waitUntil(t, "audit of the fallback delivery", 5*time.Second, func() bool {
		recs, rawAudit = audit(t, p.url, "alertname=E2W00001")
		clear(outcomes)
		for _, r := range recs {
			outcomes[r.Channel+":"+r.Outcome]++
		}
		return outcomes["hook:delivered"] == 1
	})
	if outcomes[":received"] != 1 || outcomes["bot:retry"] < 1 || outcomes["bot:escalated"] != 1 || outcomes["hook:delivered"] != 1 {
		t.Errorf("audit of escalated warning = %v", outcomes)
	}
	for _, r := range recs {
		if r.Channel == "bot" && r.Outcome == "retry" && !strings.Contains(r.Target, "127.0.0.1") {
			t.Errorf("target should name the host: %q", r.Target)
		}
	}
	waitUntil(t, "hook deliveries audited", 5*time.Second, func() bool {
		recs, _ := audit(t, p.url, "channel=hook&status=delivered")
		return len(recs) == 3
	})
	if recs, _ := audit(t, p.url, "channel=hook&status=delivered"); len(recs) != 3 {
		t.Errorf("hook deliveries in audit = %d, want 3", len(recs))
	}

	m := metricsText(t, p.url)
	for _, want := range []string{
		`autoglm_receiver_alerts_received_total{alertname="E2E00000",severity="critical",status="firing"} 1`,
		`autoglm_receiver_notifications_total{channel="hook",outcome="delivered"} 3`,
		`autoglm_receiver_notifications_total{channel="bot",outcome="escalated"} 1`,
		`autoglm_receiver_webhook_requests_total{code="401"} 1`,
		`autoglm_receiver_webhook_requests_total{code="400"} 1`,
		`autoglm_receiver_delivery_duration_seconds_bucket{channel="hook"`,
		`autoglm_receiver_queue_depth`, `autoglm_receiver_oldest_pending_seconds`, `autoglm_receiver_build_info{`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(m)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}

	// Reload through SIGHUP with a new route in front.
	if err := os.WriteFile(cfg, []byte(e2eConfig(dir, sk.srv.URL, "\n    - name: reloaded\n      matchers: ['team=\"new\"']\n      channels: [hook]")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "reload", 5*time.Second, func() bool { return strings.Contains(p.logs.String(), "configuration reloaded") })
	if code, _ := post(ctx, p.url, payload("E2R", 2, "firing", map[string]string{"team": "new"}), auth...); code != 200 {
		t.Fatalf("after reload: %d", code)
	}
	waitUntil(t, "reloaded route", 5*time.Second, func() bool {
		return regexp.MustCompile(`msg="notification delivered" channel=hook alertname=E2R00002 route=reloaded`).MatchString(p.logs.String())
	})
	// With webhook auth on, the audit API and reload need the token too.
	for _, ep := range []struct{ method, path string }{{"GET", "/api/v1/notifications"}, {"POST", "/-/reload"}} {
		if code := request(t, ep.method, p.url+ep.path); code != 401 {
			t.Errorf("%s %s without the token answered %d, want 401", ep.method, ep.path, code)
		}
	}
	// A broken config is rejected by /-/reload and the old one keeps running.
	if err := os.WriteFile(cfg, []byte("receiver:\n  routes: [{channels: [nope]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := request(t, "POST", p.url+"/-/reload", auth...); code != 500 {
		t.Errorf("bad reload answered %d", code)
	}

	p.stop(t)
	for what, text := range map[string]string{"logs": p.logs.String(), "audit": rawAudit, "metrics": m} {
		for _, secret := range []string{dingToken, dingSign, authToken, hookSecret} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contain secret %q", what, secret)
			}
		}
	}
}

func request(t testing.TB, method, url string, hdr ...string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// Authentication fails closed: a token file that is empty or cannot be read
// stops the binary with an error naming the key, instead of starting open.
func TestAuthTokenFileFailsClosed(t *testing.T) {
	bin := testenv.Binary(t, name)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty-token")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, want string
	}{
		{"empty", empty, "is empty"},
		{"missing", filepath.Join(dir, "no-such-token"), "cannot read secret file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, dir, fmt.Sprintf("receiver:\n  storage: {path: %s}\n  webhook: {auth_token_file: %s}\n  channels: {c: {type: file}}\n  routes: [{channels: [c]}]\n",
				filepath.Join(dir, "store"), tc.file))
			out := runFailing(t, bin, cfg)
			for _, w := range []string{"receiver.webhook.auth_token_file", tc.want} {
				if !strings.Contains(out, w) {
					t.Errorf("error does not say %q:\n%s", w, out)
				}
			}
		})
	}
}

// crashConfig delivers every notification to the sink through the webhook channel.
func crashConfig(dir, sinkURL string) string {
	return fmt.Sprintf(`receiver:
  storage: {path: %s}
  retry: {initial_backoff: 50ms, max_backoff: 500ms, expire_after: 1h}
  channels:
    hook: {type: webhook, url: "%s/hook"}
  routes:
    - name: all
      matchers: ['severity=~".+"']
      channels: [hook]
`, filepath.Join(dir, "store"), sinkURL)
}

// crashResult is what the crash scenario measured.
type crashResult struct {
	Sent, Acked, Failed, Resent int
	Delivered, Lost, Dups       int
	Uncertain, UnexplainedDups  int
}

// runCrash sends n payloads with the given concurrency, SIGKILLs the receiver
// after killAfter acknowledgements, restarts it, re-sends everything that was
// not acknowledged plus every 10th acknowledged payload (Alertmanager retries
// and cluster duplicates) and counts deliveries at the sink.
func runCrash(t testing.TB, n, conc, killAfter int) crashResult {
	bin := testenv.Binary(t, name)
	dir := t.TempDir()
	sk := newSink(t)
	cfg := writeConfig(t, dir, crashConfig(dir, sk.srv.URL))
	port := testenv.FreePort(t)
	p := start(t, bin, cfg, port, nil)

	var acked sync.Map
	var res crashResult
	var ackCount, failCount atomic.Int64
	jobs := make(chan int)
	var wg sync.WaitGroup
	var killOnce sync.Once
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				code, err := post(context.Background(), p.url, payload("Crash", i, "firing", nil))
				if err == nil && code == 200 {
					acked.Store(i, true)
					if ackCount.Add(1) == int64(killAfter) {
						killOnce.Do(func() { _ = p.cmd.Process.Signal(syscall.SIGKILL) })
					}
					continue
				}
				failCount.Add(1)
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	p.kill()
	res.Sent, res.Acked, res.Failed = n, int(ackCount.Load()), int(failCount.Load())

	p2 := start(t, bin, cfg, port, nil)
	for i := 0; i < n; i++ {
		_, ok := acked.Load(i)
		if ok && i%10 != 0 {
			continue
		}
		res.Resent++
		if code, err := post(context.Background(), p2.url, payload("Crash", i, "firing", nil)); err != nil || code != 200 {
			t.Fatalf("re-send %d after restart: %d %v", i, code, err)
		}
	}
	waitUntil(t, "all payloads delivered", 60*time.Second, func() bool {
		c, _ := sk.snapshot()
		return len(c) >= n
	})
	// A duplicate could still be on its way while a delivery is pending; an
	// empty outbox means every send has finished.
	waitUntil(t, "empty outbox", 30*time.Second, func() bool {
		return strings.Contains(metricsText(t, p2.url), "\nautoglm_receiver_queue_depth 0\n")
	})
	counts, _ := sk.snapshot()
	uncertain := map[string]bool{}
	recs, _ := audit(t, p2.url, "status=uncertain")
	for _, r := range recs {
		uncertain[r.GroupKey+"/"+r.Status] = true
	}
	res.Uncertain = len(uncertain)
	for i := 0; i < n; i++ {
		k := groupKeyOf("Crash", i) + "/firing"
		switch c := counts[k]; {
		case c == 0:
			if _, ok := acked.Load(i); ok {
				res.Lost++
			}
		case c > 1:
			res.Dups += c - 1
			if !uncertain[k] {
				res.UnexplainedDups += c - 1
			}
		}
		if counts[k] > 0 {
			res.Delivered++
		}
	}
	p2.stop(t)
	return res
}

func TestCrashUnderLoadLosesNothingAndDuplicatesNothing(t *testing.T) {
	res := runCrash(t, 1500, 16, 600)
	t.Logf("crash test: %+v", res)
	if res.Acked < 600 || res.Failed == 0 {
		t.Fatalf("the kill did not happen mid-load: %+v", res)
	}
	if res.Lost != 0 {
		t.Errorf("%d payloads answered 200 were never delivered", res.Lost)
	}
	if res.Delivered != res.Sent {
		t.Errorf("delivered %d of %d distinct payloads", res.Delivered, res.Sent)
	}
	// A send interrupted by SIGKILL after the provider accepted it cannot be
	// told apart from one that never left; such deliveries are audited as
	// uncertain and resent. Any other duplicate is a bug.
	if res.UnexplainedDups != 0 {
		t.Errorf("%d duplicate deliveries were not interrupted sends", res.UnexplainedDups)
	}
	// Every provider answer is stored before the next send: a kill can leave
	// at most the one message in flight on the (single) channel uncertain.
	if res.Dups > 1 {
		t.Errorf("%d duplicates after SIGKILL: more than the one message in flight on the channel", res.Dups)
	}
}

func TestThroughRealAlertmanager(t *testing.T) {
	amBin := testenv.Alertmanager(t)
	bin := testenv.Binary(t, name)
	dir := t.TempDir()
	sk := newSink(t)
	cfg := writeConfig(t, dir, crashConfig(dir, sk.srv.URL))
	p := start(t, bin, cfg, testenv.FreePort(t), nil)

	amPort := testenv.FreePort(t)
	amCfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(amCfg, []byte(fmt.Sprintf(`route:
  receiver: autoglm
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: autoglm
    webhook_configs:
      - url: %s/webhook
        send_resolved: true
`, p.url)), 0o600); err != nil {
		t.Fatal(err)
	}
	amLogs := &testenv.LogBuffer{}
	am := exec.Command(amBin, "--config.file="+amCfg, "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+testenv.Addr(amPort), "--cluster.listen-address=")
	am.Stdout, am.Stderr = amLogs, amLogs
	if err := am.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = am.Process.Kill()
		_ = am.Wait()
	})
	amURL := "http://" + testenv.Addr(amPort)
	waitUntil(t, "alertmanager ready", 20*time.Second, func() bool {
		resp, err := http.Get(amURL + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	postAlert := func(ends time.Time) {
		t.Helper()
		body := fmt.Sprintf(`[{"labels":{"alertname":"LLMHighErrorRate","severity":"critical","route":"/v1/chat/completions"},
"annotations":{"summary":"error rate above 5%%"},"startsAt":%q,"endsAt":%q,"generatorURL":"http://prometheus/graph"}]`,
			time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), ends.UTC().Format(time.RFC3339))
		resp, err := http.Post(amURL+"/api/v2/alerts", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("alertmanager refused the alert: %d", resp.StatusCode)
		}
	}
	key := `{}:{alertname="LLMHighErrorRate"}`
	postAlert(time.Now().Add(time.Hour))
	waitUntil(t, "firing notification through alertmanager", 20*time.Second, func() bool {
		c, _ := sk.snapshot()
		return c[key+"/firing"] >= 1
	})
	postAlert(time.Now().Add(-time.Second))
	waitUntil(t, "resolved notification through alertmanager", 20*time.Second, func() bool {
		c, _ := sk.snapshot()
		return c[key+"/resolved"] == 1
	})
	counts, order := sk.snapshot()
	if counts[key+"/firing"] != 1 {
		t.Errorf("firing delivered %d times", counts[key+"/firing"])
	}
	if order[0] != key+"/firing" {
		t.Errorf("order %v", order)
	}
	if !strings.Contains(p.logs.String(), `msg="notification delivered" channel=hook alertname=LLMHighErrorRate route=all`) {
		t.Errorf("delivery log line missing:\n%s", p.logs)
	}
	recs, _ := audit(t, p.url, "status=received")
	if len(recs) < 2 || recs[0].Alertnames[0] != "LLMHighErrorRate" {
		t.Errorf("received audit = %+v", recs)
	}
}

// runFailing runs the binary with cfg and returns its output; it must exit with status 1.
func runFailing(t *testing.T, bin, cfg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--config.file="+cfg, "--web.listen-address="+testenv.Addr(testenv.FreePort(t))).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("want exit status 1, got %v:\n%s", err, out)
	}
	return string(out)
}

// An empty configuration, or one without channels, would answer every
// notification 200 "unrouted" and deliver none: the binary refuses to start.
func TestConfigurationThatDeliversNothingRefusesToStart(t *testing.T) {
	bin := testenv.Binary(t, name)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"empty", "", []string{"receiver.channels: no channel is configured", "receiver.storage.path: is required"}},
		{"no channels", "receiver:\n  storage: {path: " + filepath.Join(dir, "s") + "}\n", []string{"receiver.channels", "receiver.routes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := runFailing(t, bin, writeConfig(t, dir, tc.body))
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not say %q:\n%s", w, out)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "s")); err == nil {
				t.Error("a store was created for a configuration that was refused")
			}
		})
	}
	// Nothing may have been written relative to the working directory either.
	if _, err := os.Stat("data"); err == nil {
		t.Error("a data directory appeared in the working directory")
	}
}

// A store file emptied behind the receiver's back stops it with an error
// naming the file and what to do, instead of a receiver that starts empty.
func TestDamagedStoreStopsTheBinary(t *testing.T) {
	bin := testenv.Binary(t, name)
	dir := t.TempDir()
	db := filepath.Join(dir, "store", "receiver.db")
	if err := os.MkdirAll(filepath.Dir(db), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out := runFailing(t, bin, writeConfig(t, dir, crashConfig(dir, "http://127.0.0.1:1")))
	for _, w := range []string{db + " is damaged", "empty (0 bytes)", "mv " + db} {
		if !strings.Contains(out, w) {
			t.Errorf("output does not say %q:\n%s", w, out)
		}
	}
}
