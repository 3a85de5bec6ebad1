package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"github.com/open-autoglm/autoglm-monitor/exporter/kafka/kafkatest"
	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
	"github.com/open-autoglm/autoglm-monitor/receiver/providertest"
)

// e2eFaults is the incident of the end-to-end test: quiet while the exact
// request count is measured and the live levels are calibrated, then an
// error burst that the static and the baseline error alerts must catch,
// and the simulated engine shrinking to 2 % of its capacity (a queue-driven
// time-to-first-token incident the saturation and TTFT alerts must catch),
// and, with the burst, the quickstart's latency regression.
const e2eFaults = `phases:
  - name: error-burst
    start: 40s
    duration: 6m
    error_ratio: 0.6
    status_codes: [500, 503]
  - name: engine-shrinks
    start: 60s
    duration: 20m
    capacity_ratio: 0.02
  - name: latency-regression
    start: 40s
    duration: 6m
    added_latency: 1500ms
    ttft_multiplier: 4
    token_multiplier: 2
`

// The channels added to the quickstart configuration, pointing at fakes that
// enforce the DingTalk and WeCom robot contracts.
const (
	dingTalkToken  = "e2e-dingtalk-token"
	dingTalkSecret = "SECe2e-dingtalk-signing-secret"
	weComKey       = "e2e-wecom-key"
)

// Dashboard panels whose query legitimately has no data in this scenario;
// each entry says why. Anything else without data fails the test.
var panelsWithoutData = func() map[string]string {
	m := map[string]string{
		"alerting.json/Dead letters by channel#0": "every notification of the scenario is delivered; a dead letter needs a channel failing for receiver.retry.expire_after",
		// rulegen publishes bound="lower" only for SLIs that alert below their
		// band (request_rate: a traffic drop); the panels draw it when present.
		"baselines.json/SLI error ratio and its baseline#3": "no lower bound for an upper-only SLI",
		"baselines.json/SLI latency p95 and its baseline#3": "no lower bound for an upper-only SLI",
		"baselines.json/SLI latency p99 and its baseline#3": "no lower bound for an upper-only SLI",
		"baselines.json/SLI ttft p95 and its baseline#3":    "no lower bound for an upper-only SLI",
		// The spike band of a rate is expected ± 1.5k·σ at least; where
		// calibration saw a few dozen requests σ is wide and the lower spike
		// limit would be below zero, which rulegen does not publish.
		"baselines.json/SLI request rate and its baseline#5": "no spike lower limit above zero for routes calibrated on few requests",
		// The quickstart's engine is the simulator's vLLM; it has no GPU.
		"engine.json/Engine time to first token p95 and queue time p95#1": "TGI's queue time; the simulator speaks vLLM",
		"engine.json/GPU utilisation#0":                                   "no DCGM exporter: the simulator has no GPU",
		"engine.json/GPU framebuffer memory used#0":                       "no DCGM exporter: the simulator has no GPU",
	}
	// The quickstart gives tail latencies no history (a young p95 is not a
	// level: see backfill in prom.go), so rulegen has no band for them until
	// it has seen two hours of live traffic; their objectives apply meanwhile.
	for _, sli := range []string{"latency p95", "latency p99", "ttft p95"} {
		for _, target := range []int{1, 2, 4} {
			m[fmt.Sprintf("baselines.json/SLI %s and its baseline#%d", sli, target)] = "no tail-latency history in the quickstart: the objective applies until rulegen has two hours of live traffic"
		}
	}
	return m
}()

// bins returns a directory holding our four binaries: make test's bin/, or a fresh build.
func bins(t *testing.T) string {
	t.Helper()
	names := []string{"autoglm-exporter", "autoglm-llmsim", "autoglm-receiver", "autoglm-rulegen"}
	if dir := os.Getenv("AUTOGLM_BIN"); dir != "" {
		ok := true
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
				ok = false
			}
		}
		if ok {
			return dir
		}
	}
	dir := t.TempDir()
	args := []string{"build", "-o", dir + "/"}
	for _, n := range names {
		args = append(args, "./cmd/"+n)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = testenv.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build binaries: %v\n%s", err, out)
	}
	return dir
}

func freePorts(t *testing.T) Ports {
	t.Helper()
	seen := map[int]bool{}
	next := func() int {
		for range 100 {
			if p := testenv.FreePort(t); !seen[p] {
				seen[p] = true
				return p
			}
		}
		t.Fatal("no distinct free ports")
		return 0
	}
	return Ports{LLMSim: next(), LLMSimMetrics: next(), Exporter: next(), Rulegen: next(), Receiver: next(),
		Prometheus: next(), Alertmanager: next(), SMTP: next()}
}

// addIMChannels adds the DingTalk and WeCom robots to every route of the receiver.
func addIMChannels(t *testing.T, content []byte, dingURL, weComURL string) []byte {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(content, &doc); err != nil {
		t.Fatalf("parse autoglm.yml: %v", err)
	}
	// The error ratio of a route is NaN (0/0) in the seconds before its
	// first request, and one NaN sample makes the baseline rules'
	// avg_over_time confirmation NaN for the whole confirm window: keep the
	// window short so the baseline alert can fire within the test.
	doc["rulegen"].(map[string]any)["confirm_window"] = "1m"
	rc := doc["receiver"].(map[string]any)
	ch := rc["channels"].(map[string]any)
	ch["ops-dingtalk"] = map[string]any{"type": "dingtalk", "url": dingURL, "secret": dingTalkSecret, "at_mobiles": []string{"13800000000"}}
	ch["ops-wecom"] = map[string]any{"type": "wecom", "url": weComURL}
	for _, r := range rc["routes"].([]any) {
		route := r.(map[string]any)
		route["channels"] = append(route["channels"].([]any), "ops-dingtalk", "ops-wecom")
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatalf("write autoglm.yml: %v", err)
	}
	return out
}

// addKafkaOutput points the exporter's request events at broker.
func addKafkaOutput(t *testing.T, content []byte, broker, topic string) []byte {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(content, &doc); err != nil {
		t.Fatalf("parse autoglm.yml: %v", err)
	}
	exp := doc["exporter"].(map[string]any)
	exp["outputs"] = map[string]any{"kafka": map[string]any{"brokers": []string{broker}, "topic": topic, "key": "route"}}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatalf("write autoglm.yml: %v", err)
	}
	return out
}

// checkKafkaEvents compares the topic with the count-bounded load: one
// event per answered request, none twice, each with its route and status
// and without any text of the prompt or the completion.
func checkKafkaEvents(t *testing.T, recs []*kgo.Record, sum loadSummary) {
	t.Helper()
	if int64(len(recs)) != sum.Responses {
		t.Errorf("the topic holds %d events, the load generator got %d responses", len(recs), sum.Responses)
	}
	ids := make(map[string]bool, len(recs))
	byStatus := map[string]int64{}
	for _, r := range recs {
		var ev struct {
			ID     string `json:"event_id"`
			Route  string `json:"http_route"`
			Status int    `json:"http_response_status_code"`
		}
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Fatalf("event %q: %v", r.Value, err)
		}
		if ids[ev.ID] {
			t.Errorf("event %s is on the topic twice", ev.ID)
		}
		ids[ev.ID] = true
		if ev.Route == "" || ev.Status == 0 {
			t.Errorf("event without route or status: %s", r.Value)
		}
		if string(r.Key) != ev.Route {
			t.Errorf("event keyed %q, want its route %q", r.Key, ev.Route)
		}
		for _, field := range []string{`"messages"`, `"prompt"`, `"content"`, `"choices"`} {
			if strings.Contains(string(r.Value), field) {
				t.Errorf("event carries request or response content (%s): %s", field, r.Value)
			}
		}
		byStatus[fmt.Sprint(ev.Status)]++
	}
	for status, n := range sum.ByStatus {
		if byStatus[status] != n {
			t.Errorf("status %s: %d events, %d responses", status, byStatus[status], n)
		}
	}
	t.Logf("topic: %d events by status %v", len(recs), byStatus)
}

type loadSummary struct {
	Sent      int64            `json:"sent"`
	Responses int64            `json:"responses"`
	ByStatus  map[string]int64 `json:"responses_by_status"`
	Errors    map[string]int64 `json:"errors_by_kind"`
}

// TestEndToEnd runs the whole chain on loopback: simulator → exporter →
// Prometheus → rules (mixin and rulegen, on a backfilled week) →
// Alertmanager → receiver → DingTalk/WeCom fakes, a console file and SMTP.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test takes minutes")
	}
	testenv.Prometheus(t)
	testenv.Alertmanager(t)
	testenv.Promtool(t)
	repo := testenv.RepoRoot(t)
	binDir := bins(t)

	ding := providertest.NewDingTalk(t, dingTalkToken, dingTalkSecret)
	wecom := providertest.NewWeCom(t, weComKey)
	// The exporter's request events go to a broker speaking Kafka's
	// protocol, so the exporter dashboard's Kafka row is checked with data
	// and every counted request is checked on the topic.
	broker := kafkatest.Start(t, "autoglm.requests", 2)
	work := t.TempDir()
	faults := filepath.Join(work, "e2e-faults.yml")
	if err := os.WriteFile(faults, []byte(e2eFaults), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	var exact loadSummary
	var events []*kgo.Record
	var exactBefore, exactAfter float64
	start := time.Now()
	s, err := Start(ctx, Options{
		Repo: repo, Work: filepath.Join(work, "stack"), Bin: binDir,
		Ports:      freePorts(t),
		FaultsFile: faults, Speed: 4, Calibration: 15 * time.Second, LoadDuration: 10 * time.Minute,
		Rewrite: func(file string, b []byte) []byte {
			if file == "autoglm.yml" {
				return addKafkaOutput(t, addIMChannels(t, b, ding.URL(), wecom.URL()), broker.Addr(), broker.Topic)
			}
			return b
		},
		BeforeTraffic: func(ctx context.Context, s *Stack) error {
			exactBefore, exactAfter, exact = exactCount(ctx, t, s)
			// Nothing else has reached the simulator yet: the topic holds
			// exactly the events of the count-bounded load.
			events = broker.Consume(int(exact.Responses), 3*time.Second, 45*time.Second)
			return nil
		},
		Say: func(format string, args ...any) {
			t.Logf("[%5.1fs] %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
		},
	})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	defer func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop stack: %v", err)
		}
		assertStopped(t, s)
	}()
	fail := func(t *testing.T, format string, args ...any) {
		t.Helper()
		if err := s.Err(); err != nil {
			t.Fatalf(format+"\nwhile a process of the stack had died: %v", append(args, err)...)
		}
		t.Fatalf(format+"\nprocess logs:%s", append(args, s.Tails(3000))...)
	}

	t.Run("request counts equal the load generator's", func(t *testing.T) {
		if exact.Sent == 0 || exact.Sent != exact.Responses {
			t.Fatalf("load generator sent %d and got %d responses (errors %v): want every request answered", exact.Sent, exact.Responses, exact.Errors)
		}
		if got := exactAfter - exactBefore; got != float64(exact.Responses) {
			t.Fatalf("Prometheus counted %v requests (%v → %v), the load generator got %d responses", got, exactBefore, exactAfter, exact.Responses)
		}
		t.Logf("load generator: %d responses %v; Prometheus: %v → %v", exact.Responses, exact.ByStatus, exactBefore, exactAfter)
	})

	if err := s.Prepared(ctx); err != nil {
		fail(t, "calibration, backfill or rulegen failed: %v", err)
	}

	t.Run("every counted request is one event on the Kafka topic", func(t *testing.T) {
		checkKafkaEvents(t, events, exact)
	})

	t.Run("recording rules have values", func(t *testing.T) {
		for _, r := range sli.RecordingRules() {
			vec := waitVector(ctx, s, r.Record, time.Minute)
			if len(vec) == 0 {
				fail(t, "recording rule %s has no value", r.Record)
			}
			finite := 0
			for _, smp := range vec {
				if !math.IsNaN(float64(smp.Value)) && !math.IsInf(float64(smp.Value), 0) {
					finite++
				}
			}
			if finite == 0 {
				t.Errorf("recording rule %s has only non-finite values: %v", r.Record, vec)
			}
		}
	})

	t.Run("baselines were fitted on the backfilled history", func(t *testing.T) {
		vec := waitVector(ctx, s, sli.RulegenBaseline+`{sli="error_ratio", bound="upper"}`, 2*time.Minute)
		if len(vec) == 0 {
			fail(t, "rulegen exposes no error_ratio baseline")
		}
	})

	// The static limits (alert_rules.error_rate through rulegen and the
	// mixin's warning and critical error ratio) see the burst first.
	staticAlerts := []string{"AutoGLMHighErrorRate/warning", "AutoGLMHighErrorRate/critical"}
	baselineAlerts := []string{"AutoGLMErrorRatioAboveBaseline/warning"}
	waitAlerts := func(t *testing.T, want []string, deadline time.Time) {
		t.Helper()
		var firing map[string]bool
		for time.Now().Before(deadline) && ctx.Err() == nil {
			firing = map[string]bool{}
			vec, err := s.Query(ctx, `ALERTS{alertstate="firing"}`)
			if err == nil {
				for _, smp := range vec {
					firing[string(smp.Metric["alertname"])+"/"+string(smp.Metric["severity"])] = true
				}
			}
			if hasAll(firing, want) {
				t.Logf("firing after %.0fs: %v", time.Since(start).Seconds(), keys(firing))
				return
			}
			sleep(ctx, 5*time.Second)
		}
		fail(t, "alerts firing %v, want all of %v", keys(firing), want)
	}
	t.Run("the incident fires the static alerts", func(t *testing.T) {
		waitAlerts(t, staticAlerts, time.Now().Add(4*time.Minute))
	})

	t.Run("every channel delivered and the audit lists each delivery", func(t *testing.T) {
		channels := []string{"console", "oncall-mail", "ops-dingtalk", "ops-wecom"}
		var audit map[string]int
		deadline := time.Now().Add(3 * time.Minute)
		received := func() map[string]int {
			return map[string]int{"ops-dingtalk": dingTalkNotifications(ding.Messages()), "ops-wecom": weComNotifications(wecom.Messages()), "oncall-mail": int(s.Mail().Count())}
		}
		for time.Now().Before(deadline) && ctx.Err() == nil {
			// Notifications keep flowing while incidents last: the audit read
			// between two reads of the fakes must hold every message accepted
			// before it and none that was not accepted by the second read.
			before := received()
			audit, err = deliveredByChannel(ctx, s)
			after := received()
			ok := true
			for _, c := range channels {
				ok = ok && audit[c] > 0
			}
			for c, n := range before {
				// Each notification a fake accepted (a split message counts
				// once) is one delivery the audit shows.
				ok = ok && audit[c] >= n && audit[c] <= after[c]
			}
			if ok && err == nil {
				t.Logf("deliveries by channel: %v", audit)
				return
			}
			sleep(ctx, 3*time.Second)
		}
		fail(t, "audit deliveries %v (err %v); fakes accepted dingtalk=%d wecom=%d mail=%d", audit, err,
			len(ding.Messages()), len(wecom.Messages()), s.Mail().Count())
	})

	t.Run("the messages name the alert", func(t *testing.T) {
		msgs := ding.Messages()
		if len(msgs) == 0 {
			t.Fatal("no DingTalk message")
		}
		// Every message is headed by the alert it is about; the error burst
		// is named by the static limit's alert or the learned band's.
		heading := regexp.MustCompile(`\] AutoGLM[A-Za-z]+`)
		errorNamed := false
		for i, m := range msgs {
			if !heading.MatchString(m.Content()) {
				t.Errorf("DingTalk message %d does not name its alert: %q", i, m.Content())
			}
			errorNamed = errorNamed || containsAny(m.Content(), []string{"AutoGLMHighErrorRate", "AutoGLMErrorRatioAboveBaseline"})
		}
		if !errorNamed {
			t.Errorf("no DingTalk message names the error alerts")
		}
		if !heading.Match(s.Mail().Last()) {
			t.Errorf("mail does not name an alert:\n%s", s.Mail().Last())
		}
		ds, err := s.Deliveries()
		if err != nil || len(ds) == 0 {
			t.Fatalf("receiver log has no `notification delivered` line (err %v)", err)
		}
		if ds[0].Channel == "" || ds[0].Alertname == "" {
			t.Errorf("delivery line lacks channel or alertname: %q", ds[0].Line)
		}
	})

	t.Run("every scheduled fault reached a person within five minutes", func(t *testing.T) {
		reports, err := s.FaultsReached(ctx)
		if err != nil {
			fail(t, "waiting for the faults to reach a person: %v (so far %v)", err, reports)
		}
		for _, r := range reports {
			t.Log(r)
			if r.Delivery == nil || r.Delivery.Time.Sub(r.Began) > FaultDeadline {
				t.Errorf("%s", r)
			}
		}
	})

	// Alertmanager groups the routes of an alert: one incident is one
	// message per channel, alert and severity, listing its routes — never one
	// message per route. Checked once every group firing now has had its
	// group_wait (30 s), and before any has reached its group_interval (5 m).
	t.Run("one message per channel, alert and severity, listing the routes", func(t *testing.T) {
		sleep(ctx, 45*time.Second)
		firing := map[string]map[string]bool{} // alertname/severity → routes
		vec, err := s.Query(ctx, `ALERTS{alertstate="firing", job="autoglm-exporter"}`)
		if err != nil {
			t.Fatal(err)
		}
		for _, smp := range vec {
			k := string(smp.Metric["alertname"]) + "/" + string(smp.Metric["severity"])
			if firing[k] == nil {
				firing[k] = map[string]bool{}
			}
			firing[k][string(smp.Metric[sli.LabelRoute])] = true
		}
		recs, err := auditRecords(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		perGroup := map[string]map[string]int{} // channel → group key → firing messages
		groups := map[string]bool{}
		for _, r := range recs {
			if r.Outcome != "delivered" || r.Status != "firing" {
				continue
			}
			if perGroup[r.Channel] == nil {
				perGroup[r.Channel] = map[string]int{}
			}
			perGroup[r.Channel][r.GroupKey]++
			groups[r.GroupKey] = true
		}
		series := 0
		for _, routes := range firing {
			series += len(routes)
		}
		t.Logf("firing alerts (alertname/severity → routes): %v; groups notified: %d", firing, len(groups))
		for gk := range groups {
			if strings.Contains(gk, sli.LabelRoute) {
				t.Errorf("group %s is per route: Alertmanager must group the routes of a job", gk)
			}
		}
		for _, ch := range []string{"console", "oncall-mail", "ops-dingtalk", "ops-wecom"} {
			total := 0
			for gk, n := range perGroup[ch] {
				total += n
				if n != 1 {
					t.Errorf("%s got %d messages for group %s within its group_interval, want 1", ch, n, gk)
				}
			}
			if total != len(groups) {
				t.Errorf("%s got %d firing messages for %d groups", ch, total, len(groups))
			}
			t.Logf("%s: %d firing messages for %d firing alert series", ch, total, series)
		}
		// The error burst hits several routes; one DingTalk message lists them.
		multi := ""
		for k, routes := range firing {
			if len(routes) > len(multi) && strings.HasPrefix(k, "AutoGLMHighErrorRate/") {
				multi = k
			}
		}
		if multi == "" || len(firing[multi]) < 2 {
			t.Fatalf("the error burst fires on fewer than two routes (%v): the scenario cannot show grouping", firing)
		}
		name := strings.SplitN(multi, "/", 2)[0]
		found := false
		for _, m := range ding.Messages() {
			c := m.Content()
			if !strings.Contains(c, name) {
				continue
			}
			all := true
			for r := range firing[multi] {
				all = all && strings.Contains(c, r)
			}
			found = found || all
		}
		if !found {
			t.Errorf("no DingTalk message about %s lists all of its routes %v", multi, firing[multi])
		}
	})

	// The engine shrank a minute in: requests queue for its few slots, its
	// KV cache fills, time to first token climbs far beyond anything in the
	// history (the TTFT baseline's spike twin fires at once), and the
	// saturation alert follows after its two minutes. The TTFT alert's
	// message must say the engine was saturated.
	t.Run("the engine incident fires the saturation and TTFT alerts", func(t *testing.T) {
		dl, _ := ctx.Deadline()
		waitAlerts(t, []string{"AutoGLMEngineSaturated/warning", "AutoGLMTTFTAboveBaseline/warning"}, dl.Add(-90*time.Second))
		desc, err := alertDescription(ctx, s, "AutoGLMTTFTAboveBaseline")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(desc, "The engine serving this route is saturated") {
			t.Errorf("TTFT alert does not say the engine was saturated: %q", desc)
		}
		if vec := waitVector(ctx, s, sli.RouteSaturated+" == 1", time.Minute); len(vec) == 0 {
			t.Errorf("no route is joined to the saturated engine")
		}
	})

	// A baseline alert waits for its learned policy's "for" (five minutes),
	// so it comes last.
	t.Run("the incident fires the baseline alert", func(t *testing.T) {
		dl, _ := ctx.Deadline()
		waitAlerts(t, baselineAlerts, dl.Add(-30*time.Second))
	})

	// Last, so that the baseline alert panels have their alert too.
	t.Run("every dashboard panel has data", func(t *testing.T) {
		checkDashboards(ctx, t, s, filepath.Join(repo, "dashboards", "json"))
	})
}

// alertDescription returns the description of a firing alert from Prometheus' alerts API.
func alertDescription(ctx context.Context, s *Stack, name string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, URL(s.Ports().Prometheus)+"/api/v1/alerts", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("alerts API: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Alerts []struct {
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
				State       string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("alerts API: %w", err)
	}
	for _, a := range body.Data.Alerts {
		if a.Labels["alertname"] == name && a.State == "firing" {
			return a.Annotations["description"], nil
		}
	}
	return "", fmt.Errorf("no firing %s in the alerts API", name)
}

// exactCount sends a count-bounded load before any other traffic and reads
// Prometheus' request count before and after it.
func exactCount(ctx context.Context, t *testing.T, s *Stack) (before, after float64, sum loadSummary) {
	t.Helper()
	const total = `sum(` + sli.HTTPDuration + `_count)`
	before, _ = s.Scalar(ctx, total)
	out := s.Path("exact-load.json")
	cmd := exec.CommandContext(ctx, filepath.Join(s.opts.Bin, "autoglm-llmsim"), "load",
		"--target="+URL(s.Ports().LLMSim), "--mode=open", "--rate=40", "--count=200", "--duration=60s",
		"--max-tokens=16", "--prompt-tokens=64", "--seed=7", "--output="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("count-bounded load: %v\n%s", err, b)
		return
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Errorf("read load summary: %v", err)
		return
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Errorf("parse load summary: %v\n%s", err, b)
		return
	}
	// Wait for the exporter to see the last response and for a scrape after it.
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		after, _ = s.Scalar(ctx, total)
		if after-before >= float64(sum.Responses) {
			break
		}
		sleep(ctx, time.Second)
	}
	// One more scrape interval: a count above the generator's would show now.
	sleep(ctx, 6*time.Second)
	after, _ = s.Scalar(ctx, total)
	return before, after, sum
}

func waitVector(ctx context.Context, s *Stack, q string, timeout time.Duration) model.Vector {
	deadline := time.Now().Add(timeout)
	for {
		vec, err := s.Query(ctx, q)
		if err == nil && len(vec) > 0 {
			return vec
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil
		}
		sleep(ctx, 2*time.Second)
	}
}

type auditRecord struct {
	Outcome    string   `json:"outcome"`
	Channel    string   `json:"channel"`
	GroupKey   string   `json:"group_key"`
	Status     string   `json:"status"`
	Alertnames []string `json:"alertnames"`
}

// deliveredByChannel counts the deliveries of the receiver's audit API.
func deliveredByChannel(ctx context.Context, s *Stack) (map[string]int, error) {
	recs, err := auditRecords(ctx, s)
	out := map[string]int{}
	for _, r := range recs {
		if r.Outcome == "delivered" {
			out[r.Channel]++
		}
	}
	return out, err
}

// auditRecords pages through the delivered records of the receiver's audit API.
func auditRecords(ctx context.Context, s *Stack) ([]auditRecord, error) {
	var out []auditRecord
	cursor := ""
	for range 100 {
		url := URL(s.Ports().Receiver) + "/api/v1/notifications?status=delivered&limit=1000"
		if cursor != "" {
			url += "&cursor=" + cursor
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return out, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return out, fmt.Errorf("audit API: %w", err)
		}
		var body struct {
			Data []auditRecord `json:"data"`
			Next string        `json:"next_cursor"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			return out, fmt.Errorf("audit API answered %s (decode: %v)", resp.Status, err)
		}
		out = append(out, body.Data...)
		if body.Next == "" || len(body.Data) == 0 {
			return out, nil
		}
		cursor = body.Next
	}
	return out, fmt.Errorf("audit API pagination did not end")
}

var grafanaVar = regexp.MustCompile(`\$\{?(\w+)(?::\w+)?\}?`)

// panelQuery replaces Grafana's variables so Prometheus can run the query.
func panelQuery(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(v string) string {
		switch name := grafanaVar.FindStringSubmatch(v)[1]; name {
		case "__rate_interval":
			return "1m"
		case "__interval":
			return "15s"
		case "__range":
			return "15m"
		case "namespace", "service":
			// Grafana's "All" (.*): outside Kubernetes series have no namespace.
			return ".*"
		default:
			// Every variable is used in a regex matcher and allows "All".
			return ".+"
		}
	})
}

type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func checkDashboards(ctx context.Context, t *testing.T, s *Stack, dir string) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in %s (%v)", dir, err)
	}
	var walk func(file string, ps []panel)
	queries := 0
	walk = func(file string, ps []panel) {
		for _, p := range ps {
			walk(file, p.Panels)
			for i, tg := range p.Targets {
				if tg.Expr == "" {
					continue
				}
				queries++
				key := fmt.Sprintf("%s/%s#%d", filepath.Base(file), p.Title, i)
				q := panelQuery(tg.Expr)
				vec, err := s.Query(ctx, q)
				if err != nil {
					t.Errorf("%s: query %q: %v", key, q, err)
					continue
				}
				_, allowed := panelsWithoutData[key]
				switch {
				case len(vec) == 0 && !allowed:
					t.Errorf("%s: no data for %q", key, q)
				case len(vec) > 0 && allowed:
					t.Logf("%s: has data now; it can leave the allow-list", key)
				}
			}
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels []panel `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		walk(f, d.Panels)
	}
	if queries < 20 {
		t.Errorf("found only %d panel queries; the dashboards have more", queries)
	}
}

// assertStopped checks that no process of the stack outlived Stop.
func assertStopped(t *testing.T, s *Stack) {
	t.Helper()
	for _, p := range s.procs.all {
		if exited, _ := p.Exited(); !exited {
			t.Errorf("%s (pid %d) still runs after Stop", p.Name, p.cmd.Process.Pid)
		}
	}
}

func hasAll(set map[string]bool, want []string) bool {
	for _, w := range want {
		if !set[w] {
			return false
		}
	}
	return true
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// continuation is the "(k/n)" prefix of every part after the first of a
// message the channels had to split.
var continuation = regexp.MustCompile(`^\((\d+)/\d+\)`)

func notifications(texts []string) int {
	n := 0
	for _, t := range texts {
		if m := continuation.FindStringSubmatch(t); m != nil && m[1] != "1" {
			continue
		}
		n++
	}
	return n
}

func dingTalkNotifications(msgs []providertest.DingTalkMessage) int {
	texts := make([]string, 0, len(msgs))
	for _, m := range msgs {
		switch {
		case m.Markdown != nil:
			texts = append(texts, m.Markdown.Text)
		case m.ActionCard != nil:
			texts = append(texts, m.ActionCard.Text)
		}
	}
	return notifications(texts)
}

func weComNotifications(msgs []providertest.WeComMessage) int {
	texts := make([]string, 0, len(msgs))
	for _, m := range msgs {
		// A template card only follows a message with its actions.
		switch {
		case m.Markdown != nil:
			texts = append(texts, m.Markdown.Content)
		case m.Text != nil:
			texts = append(texts, m.Text.Content)
		}
	}
	return notifications(texts)
}
