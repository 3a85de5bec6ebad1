package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/open-autoglm/autoglm-monitor/receiver/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/route"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

type recorder struct {
	mu sync.Mutex
	ds []*store.Delivery
}

func (r *recorder) Enqueue(ds []*store.Delivery) {
	r.mu.Lock()
	r.ds = append(r.ds, ds...)
	r.mu.Unlock()
}

const testConfig = `receiver:
  storage: {path: /tmp/r}
  channels: {sms: {type: file}, im: {type: file}, mail: {type: file}}
  routes:
    - name: pager
      matchers: ['severity="critical"']
      channels: [sms, im]
      fallback: [mail]
      escalate_after: 2m
    - name: chat
      matchers: ['severity="warning"']
      channels: [im, mail]
`

type fixture struct {
	api   *API
	store *store.Store
	rec   *recorder
	reg   *prometheus.Registry
	srv   *httptest.Server
	now   time.Time
}

func newFixture(t *testing.T, token string) *fixture {
	t.Helper()
	f, err := config.Parse([]byte(testConfig), "c.yml")
	if err != nil {
		t.Fatal(err)
	}
	router, err := route.New(f)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 10, 1, 0, 0, time.UTC)
	st, err := store.Open(t.TempDir(), store.Options{Now: func() time.Time { return now }, CommitDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	reg := prometheus.NewRegistry()
	a, err := New(Options{Store: st, Engine: rec, Now: func() time.Time { return now }, Registerer: reg},
		&Config{Router: router, MaxBodyBytes: 16 << 10, AuthToken: token})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.Register(mux)
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "Reloaded.\n") })
	srv := httptest.NewServer(a.Protect(mux))
	fx := &fixture{api: a, store: st, rec: rec, reg: reg, srv: srv, now: now}
	t.Cleanup(func() {
		srv.Close()
		_ = st.Close()
	})
	return fx
}

func (fx *fixture) post(t *testing.T, body []byte, hdr map[string]string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, fx.srv.URL+"/webhook", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := fx.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("answer is not JSON (%d): %s", resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeFixtureCoversEveryField(t *testing.T) {
	m, err := Decode(bytes.NewReader(read(t, "full.json")))
	if err != nil {
		t.Fatal(err)
	}
	a := m.Alerts[0]
	checks := map[string]bool{
		"version":             m.Version == "4",
		"groupKey":            strings.HasPrefix(m.GroupKey, "{}/{severity="),
		"truncatedAlerts":     m.TruncatedAlerts == 3,
		"status":              m.Status == "firing",
		"receiver":            m.Receiver == "autoglm",
		"groupLabels":         m.GroupLabels["alertname"] == "LLMHighErrorRate",
		"commonLabels":        m.CommonLabels["route"] == "/v1/chat/completions",
		"commonAnnotations":   m.CommonAnnotations["runbook_url"] != "",
		"externalURL":         m.ExternalURL == "http://alertmanager.example.com:9093",
		"notification_reason": m.NotificationReason == "new_alerts",
		"routeLabels":         m.RouteLabels["team"] == "llm",
		"alerts":              len(m.Alerts) == 2,
		"alert.status":        a.Status == "firing",
		"alert.labels":        a.Labels["instance"] == "gpu-node-1:9810",
		"alert.annotations":   a.Annotations["dashboard_url"] != "",
		"alert.startsAt":      a.StartsAt.Equal(time.Date(2026, 1, 1, 10, 0, 0, 123e6, time.UTC)),
		"alert.endsAt":        a.EndsAt.IsZero(),
		"alert.generatorURL":  strings.Contains(a.GeneratorURL, "g0.expr"),
		"alert.fingerprint":   a.Fingerprint == "c4f6e1d2a3b4c5d6",
	}
	for field, ok := range checks {
		if !ok {
			t.Errorf("field %s not decoded", field)
		}
	}
}

func TestWebhook(t *testing.T) {
	full := read(t, "full.json")
	big := bytes.Repeat([]byte(" "), 20<<10)
	for _, tc := range []struct {
		name      string
		body      []byte
		hdr       map[string]string
		code      int
		errSubstr string
		field     string
	}{
		{"full payload", full, nil, 200, "", ""},
		{"resolved", read(t, "resolved.json"), nil, 200, "", ""},
		{"minimal warning", read(t, "warning-minimal.json"), nil, 200, "", ""},
		{"syntax error", []byte(`{"version":"4",`), nil, 400, "truncated JSON", ""},
		{"garbage", []byte(`{"version":"4" x}`), nil, 400, "invalid JSON at byte", ""},
		{"empty body", nil, nil, 400, "empty body", ""},
		{"wrong type", []byte(`{"version":"4","groupKey":"g","status":5}`), nil, 400, "status", "status"},
		{"bad time", []byte(`{"version":"4","groupKey":"g","status":"firing","alerts":[{"status":"firing","labels":{"a":"b"},"startsAt":"yesterday"}]}`), nil, 400, "RFC 3339", ""},
		{"unknown version", bytes.Replace(full, []byte(`"version": "4"`), []byte(`"version": "3"`), 1), nil, 400, "version", "version"},
		{"missing group key", bytes.Replace(full, []byte(`"groupKey"`), []byte(`"groupKeyX"`), 1), nil, 400, "groupKey", "groupKey"},
		{"bad status", bytes.Replace(full, []byte(`"status": "firing",
  "receiver"`), []byte(`"status": "burning",
  "receiver"`), 1), nil, 400, "burning", "status"},
		{"bad alert status", []byte(`{"version":"4","groupKey":"g","status":"firing","alerts":[{"status":"x","labels":{"a":"b"},"startsAt":"2026-01-01T00:00:00Z"}]}`), nil, 400, "", "alerts[0].status"},
		{"no labels", []byte(`{"version":"4","groupKey":"g","status":"firing","alerts":[{"status":"firing","startsAt":"2026-01-01T00:00:00Z"}]}`), nil, 400, "", "alerts[0].labels"},
		{"no alerts", []byte(`{"version":"4","groupKey":"g","status":"firing","alerts":[]}`), nil, 400, "at least one alert", "alerts"},
		{"trailing data", append(append([]byte{}, full...), []byte(`{}`)...), nil, 400, "after the JSON object", ""},
		{"too large", append(append([]byte{}, full...), big...), nil, 413, "max_body_bytes", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, "")
			code, out := fx.post(t, tc.body, tc.hdr)
			if code != tc.code {
				t.Fatalf("code = %d, want %d: %v", code, tc.code, out)
			}
			if tc.code != 200 {
				if out["status"] != "error" || !strings.Contains(fmt.Sprint(out["error"]), tc.errSubstr) {
					t.Errorf("error body %v does not mention %q", out, tc.errSubstr)
				}
				if tc.field != "" && out["field"] != tc.field {
					t.Errorf("field = %v, want %s", out["field"], tc.field)
				}
				if len(fx.rec.ds) != 0 {
					t.Error("rejected payload was enqueued")
				}
				if recs, _, _ := fx.store.Audit(store.Query{}); len(recs) != 0 {
					t.Error("rejected payload was stored")
				}
			}
		})
	}
}

func TestWebhookStoresRoutesAndDeduplicates(t *testing.T) {
	fx := newFixture(t, "")
	code, out := fx.post(t, read(t, "full.json"), nil)
	if code != 200 || out["accepted"] != float64(2) || out["duplicates"] != float64(0) {
		t.Fatalf("first post: %d %v", code, out)
	}
	pending, err := fx.store.Pending()
	if err != nil || len(pending) != 2 {
		t.Fatalf("answered 200 but outbox has %d (%v)", len(pending), err)
	}
	d := fx.rec.ds[0]
	if d.Channel != "sms" || d.Route != "pager" || d.Priority != notify.P1 || d.TruncatedAlerts != 3 ||
		!d.EscalateAt.Equal(fx.now.Add(2*time.Minute)) || d.Fallback[0] != "mail" || d.Data.Alerts[1].Fingerprint != "d5a7f2e3b4c5d6e7" {
		t.Errorf("delivery = %+v", d)
	}
	// Alertmanager retry or a cluster peer: identical payload.
	code, out = fx.post(t, read(t, "full.json"), nil)
	if code != 200 || out["accepted"] != float64(0) || out["duplicates"] != float64(2) {
		t.Fatalf("re-sent payload: %d %v", code, out)
	}
	if len(fx.rec.ds) != 2 {
		t.Fatalf("duplicate enqueued: %d deliveries", len(fx.rec.ds))
	}
	// The resolved message is a different notification.
	if code, out = fx.post(t, read(t, "resolved.json"), nil); code != 200 || out["accepted"] != float64(2) {
		t.Fatalf("resolved: %d %v", code, out)
	}
	want := `
# HELP autoglm_receiver_alerts_received_total Alerts received in webhook payloads (identical re-sent notifications excluded).
# TYPE autoglm_receiver_alerts_received_total counter
autoglm_receiver_alerts_received_total{alertname="LLMHighErrorRate",severity="critical",status="firing"} 2
autoglm_receiver_alerts_received_total{alertname="LLMHighErrorRate",severity="critical",status="resolved"} 1
# HELP autoglm_receiver_webhook_requests_total Webhook requests by HTTP status code.
# TYPE autoglm_receiver_webhook_requests_total counter
autoglm_receiver_webhook_requests_total{code="200"} 3
`
	if err := testutil.GatherAndCompare(fx.reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	recs, _, err := fx.store.Audit(store.Query{Outcome: store.OutcomeDuplicate})
	if err != nil || len(recs) != 1 || recs[0].Count != 2 {
		t.Errorf("duplicate audit = %+v %v", recs, err)
	}
}

func TestAuthTokenProtectsEveryDataAndControlEndpoint(t *testing.T) {
	fx := newFixture(t, "s3cr3t-token")
	for _, tc := range []struct {
		hdr  map[string]string
		code int
	}{
		{nil, 401},
		{map[string]string{"Authorization": "Bearer wrong"}, 401},
		{map[string]string{"Authorization": "Basic s3cr3t-token"}, 401},
		{map[string]string{"Authorization": "Bearer s3cr3t-token"}, 200},
	} {
		if code, out := fx.post(t, read(t, "full.json"), tc.hdr); code != tc.code || strings.Contains(fmt.Sprint(out), "s3cr3t") {
			t.Errorf("%v: code %d, want %d (%v)", tc.hdr, code, tc.code, out)
		}
		for _, ep := range []struct{ method, path string }{{"GET", "/api/v1/notifications"}, {"POST", "/-/reload"}} {
			req, _ := http.NewRequest(ep.method, fx.srv.URL+ep.path, nil)
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			resp, err := fx.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code || strings.Contains(string(b), "s3cr3t") {
				t.Errorf("%s %s with %v: %d %s, want %d", ep.method, ep.path, tc.hdr, resp.StatusCode, b, tc.code)
			}
			if tc.code == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", ep.path)
			}
		}
	}
	// Only the protected endpoints ask for the token.
	resp, err := http.Get(fx.srv.URL + "/-/healthy")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 401 {
		t.Error("an unprotected endpoint asked for the token")
	}
}

// A client without credentials that declares a body and never sends it is
// answered 401 at once, and the connection is closed.
func TestMissingCredentialsAnsweredBeforeTheBody(t *testing.T) {
	fx := newFixture(t, "s3cr3t-token")
	conn, err := net.Dial("tcp", fx.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer while the body is outstanding: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !resp.Close {
		t.Fatalf("got %d (close=%v), want 401 and the connection closed", resp.StatusCode, resp.Close)
	}
}

func TestWebhookStoreUnavailableIs503(t *testing.T) {
	fx := newFixture(t, "")
	if err := fx.store.Close(); err != nil {
		t.Fatal(err)
	}
	code, out := fx.post(t, read(t, "full.json"), nil)
	if code != 503 || out["status"] != "error" {
		t.Fatalf("code %d %v, want 503 so Alertmanager retries", code, out)
	}
	if len(fx.rec.ds) != 0 {
		t.Error("enqueued without storing")
	}
}

func TestWebhookMethodAndChunkedLimit(t *testing.T) {
	fx := newFixture(t, "")
	resp, err := http.Get(fx.srv.URL + "/webhook")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET /webhook = %d", resp.StatusCode)
	}
	// Without Content-Length the limit still holds.
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(read(t, "full.json")[:100])
		_, _ = pw.Write(bytes.Repeat([]byte("x"), 32<<10))
		_ = pw.Close()
	}()
	resp, err = http.Post(fx.srv.URL+"/webhook", "application/json", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("chunked oversize = %d, want 413", resp.StatusCode)
	}
}

func TestNotificationsAPI(t *testing.T) {
	fx := newFixture(t, "")
	t0 := fx.now
	var recs []*store.Record
	for i := 0; i < 30; i++ {
		ch, outcome := "im", store.OutcomeDelivered
		if i%3 == 0 {
			ch, outcome = "sms", store.OutcomeRetry
		}
		recs = append(recs, &store.Record{Time: t0.Add(time.Duration(i) * time.Second), Outcome: outcome, Channel: ch,
			Alertnames: []string{fmt.Sprintf("A%d", i%2)}})
	}
	if _, err := fx.store.Apply(nil, nil, recs); err != nil {
		t.Fatal(err)
	}
	get := func(q string) (int, map[string]any) {
		resp, err := http.Get(fx.srv.URL + "/api/v1/notifications?" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, out
	}
	for _, tc := range []struct {
		q    string
		code int
		n    int
	}{
		{"", 200, 30},
		{"channel=sms", 200, 10},
		{"status=retry&alertname=A0", 200, 5},
		{"from=" + t0.Add(10*time.Second).Format(time.RFC3339) + "&to=" + t0.Add(19*time.Second).Format(time.RFC3339), 200, 10},
		{fmt.Sprintf("from=%d", t0.Add(25*time.Second).Unix()), 200, 5},
		{"limit=0", 400, 0},
		{"limit=abc", 400, 0},
		{"from=tomorrow", 400, 0},
		{"cursor=nothex", 400, 0},
		{"from=" + t0.Add(time.Minute).Format(time.RFC3339) + "&to=" + t0.Format(time.RFC3339), 400, 0},
		// Values that would match everything or nothing are refused, naming the parameter.
		{"from=NaN", 400, 0},
		{"to=nan", 400, 0},
		{"from=%2BInf", 400, 0},
		{"to=-Inf", 400, 0},
		{"from=1e19", 400, 0},
		{"to=1e19", 400, 0},
		{"from=1e400", 400, 0},
		{"from=-1", 400, 0},
		{"to=9999-01-01T00:00:00Z", 400, 0},
		{"from=1.5", 200, 30},
	} {
		code, out := get(tc.q)
		if code != tc.code {
			t.Errorf("%q: code %d, want %d: %v", tc.q, code, tc.code, out)
			continue
		}
		if param, _, _ := strings.Cut(tc.q, "="); code == 400 && (param == "from" || param == "to") {
			if msg, _ := out["error"].(string); !strings.HasPrefix(msg, out["field"].(string)+": ") || !strings.Contains(tc.q, out["field"].(string)+"=") {
				t.Errorf("%q: the error does not name %s: %v", tc.q, param, out)
			}
		}
		if code == 200 {
			if data, _ := out["data"].([]any); len(data) != tc.n {
				t.Errorf("%q: %d records, want %d", tc.q, len(data), tc.n)
			}
		}
	}
	seen := map[string]bool{}
	cursor := ""
	for page := 0; page < 10; page++ {
		code, out := get("limit=7&cursor=" + cursor)
		if code != 200 {
			t.Fatalf("page %d: %d %v", page, code, out)
		}
		for _, r := range out["data"].([]any) {
			seen[r.(map[string]any)["cursor"].(string)] = true
		}
		cursor, _ = out["next_cursor"].(string)
		if cursor == "" {
			break
		}
	}
	if len(seen) != 30 {
		t.Errorf("pagination saw %d distinct records, want 30", len(seen))
	}
}

// Alert names come from the payload: past MaxAlertnames distinct values they
// are counted as "other", so a sender cannot grow /metrics without bound.
func TestAlertsReceivedLabelsAreBounded(t *testing.T) {
	fx := newFixture(t, "")
	const n = MaxAlertnames + 300
	for i := 0; i < n; i++ {
		sev := "critical"
		if i%2 == 1 {
			sev = fmt.Sprintf("sev-%d", i)
		}
		body := fmt.Sprintf(`{"version":"4","groupKey":"{}:{alertname=\"N%[1]d\"}","status":"firing","receiver":"r",
"groupLabels":{"alertname":"N%[1]d"},"commonLabels":{"alertname":"N%[1]d","severity":%[2]q},"commonAnnotations":{},"externalURL":"http://am",
"alerts":[{"status":"firing","labels":{"alertname":"N%[1]d","severity":%[2]q},"annotations":{},"startsAt":"2026-01-01T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"f%[1]d"}]}`, i, sev)
		if code, out := fx.post(t, []byte(body), nil); code != 200 {
			t.Fatalf("payload %d: %d %v", i, code, out)
		}
	}
	long := strings.Repeat("x", 200)
	body := `{"version":"4","groupKey":"g-long","status":"firing","receiver":"r","groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am",
"alerts":[{"status":"firing","labels":{"alertname":"` + long + `"},"annotations":{},"startsAt":"2026-01-01T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"long"}]}`
	if code, out := fx.post(t, []byte(body), nil); code != 200 {
		t.Fatalf("long name: %d %v", code, out)
	}
	mfs, err := fx.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names, sevs := map[string]bool{}, map[string]bool{}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() != "autoglm_receiver_alerts_received_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			total += m.GetCounter().GetValue()
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "alertname":
					names[l.GetValue()] = true
				case "severity":
					sevs[l.GetValue()] = true
				}
			}
		}
	}
	if len(names) != MaxAlertnames+1 || !names["other"] || names[long] {
		t.Errorf("%d alertname values (other: %v), want %d plus other", len(names), names["other"], MaxAlertnames)
	}
	if len(sevs) > 14 || !sevs["critical"] || !sevs["other"] {
		t.Errorf("severity values = %d: %v", len(sevs), sevs)
	}
	if total != n+1 {
		t.Errorf("counted %v alerts, want %d: bounding must not lose counts", total, n+1)
	}
}
