package oncallapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/action"
	"github.com/open-autoglm/autoglm-monitor/receiver/escalation"
	"github.com/open-autoglm/autoglm-monitor/receiver/oncall"
	"github.com/open-autoglm/autoglm-monitor/receiver/silence"
)

var t0 = time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC) // Monday 10:00 in Shanghai

// fakeIncidents holds one incident and records claims, like the escalator does.
type fakeIncidents struct {
	mu        sync.Mutex
	in        escalation.Incident
	announced []string
	silences  []escalation.Silenced
	fail      error
}

func (f *fakeIncidents) Claim(g action.GroupID, by, channel string, announce []string) (*escalation.Incident, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, false, f.fail
	}
	if g.String() != f.in.ID {
		return nil, false, escalation.ErrUnknown
	}
	in := f.in
	if f.in.Claimed != nil {
		return &in, false, nil
	}
	f.in.Claimed = &escalation.Claim{By: by, Channel: channel, At: t0}
	f.announced = append(f.announced, announce...)
	in = f.in
	return &in, true, nil
}

func (f *fakeIncidents) Silenced(g action.GroupID, s escalation.Silenced) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.silences = append(f.silences, s)
	return nil
}

func (f *fakeIncidents) Incident(g action.GroupID) (escalation.Incident, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.in, g.String() == f.in.ID
}

type fakeSilencer struct {
	reqs []silence.Request
	fail bool
}

func (s *fakeSilencer) Create(_ context.Context, r silence.Request) (silence.Result, error) {
	if s.fail {
		return silence.Result{}, errors.New("alertmanager down")
	}
	s.reqs = append(s.reqs, r)
	return silence.Result{ID: "sil-1", EndsAt: r.Now.Add(r.Duration)}, nil
}

const groupKey = `{}:{alertname="LLMHighErrorRate"}`

func setup(t *testing.T, now *time.Time) (*httptest.Server, *action.Signer, *fakeIncidents, *fakeSilencer) {
	t.Helper()
	clock := func() time.Time { return *now }
	signer, err := action.NewSigner(clock, []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	oc := &oncall.Config{
		People: map[string]oncall.Person{"ann": {Name: "Ann Li", Phone: "+8613800000001"}, "bob": {Phone: "+8613800000002"}},
		Schedules: map[string]oncall.ScheduleConfig{"sre": {TimeZone: "Asia/Shanghai", Layers: []oncall.LayerConfig{
			{Members: []string{"ann", "bob"}, Start: "2026-03-02 09:00", Rotation: config.Duration(7 * 24 * time.Hour)}}}},
	}
	scheds, err := oc.CompileAll()
	if err != nil {
		t.Fatal(err)
	}
	inc := &fakeIncidents{in: escalation.Incident{ID: action.GroupOf(groupKey).String(), GroupKey: groupKey, Name: "LLMHighErrorRate", Priority: "P1",
		Labels: map[string]string{"alertname": "LLMHighErrorRate"}, Channels: []string{"ops-dingtalk", "oncall-sms"}}}
	sil := &fakeSilencer{}
	api := New(Options{Incidents: inc, Now: clock}, &Config{Signer: signer, Silencer: sil, Schedules: scheds, People: oc.People,
		Announce: func(chs []string) []string { return chs[:1] }})
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, signer, inc, sil
}

func token(t *testing.T, s *action.Signer, c action.Claims) string {
	t.Helper()
	tok, err := s.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func do(t *testing.T, method, u string, form url.Values, jsonAnswer bool) (int, map[string]any, string) {
	t.Helper()
	var req *http.Request
	if form != nil {
		req, _ = http.NewRequest(method, u, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req, _ = http.NewRequest(method, u, nil)
	}
	if jsonAnswer {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	var m map[string]any
	if jsonAnswer {
		_ = json.NewDecoder(resp.Body).Decode(&m)
	} else {
		buf := make([]byte, 1<<16)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
	}
	return resp.StatusCode, m, b.String()
}

func TestGetShowsAFormAndNeverActs(t *testing.T) {
	now := t0
	srv, s, inc, _ := setup(t, &now)
	tok := token(t, s, action.Claims{Kind: action.Claim, Group: action.GroupOf(groupKey), Channel: "ops-dingtalk", Recipient: "ann", Expires: t0.Add(time.Hour)})
	code, _, html := do(t, "GET", srv.URL+ActionsPrefix+tok, nil, false)
	if code != 200 || !strings.Contains(html, `<form method="post">`) || !strings.Contains(html, `value="Ann Li"`) || !strings.Contains(html, "LLMHighErrorRate") {
		t.Errorf("GET = %d\n%s", code, html)
	}
	if inc.in.Claimed != nil {
		t.Error("a GET claimed the group (link previews would)")
	}
}

func TestClaimRecordsWhoAndChannelOnce(t *testing.T) {
	now := t0
	srv, s, inc, _ := setup(t, &now)
	tok := token(t, s, action.Claims{Kind: action.Claim, Group: action.GroupOf(groupKey), Channel: "ops-dingtalk", Recipient: "ann", Expires: t0.Add(time.Hour)})
	code, m, _ := do(t, "POST", srv.URL+ActionsPrefix+tok, url.Values{"by": {"Ann Li"}}, true)
	if code != 200 || m["claimed"] != true || m["action"] != "claim" {
		t.Fatalf("claim = %d %v", code, m)
	}
	if c := inc.in.Claimed; c == nil || c.By != "Ann Li" || c.Channel != "ops-dingtalk" {
		t.Errorf("claim = %+v", c)
	}
	if len(inc.announced) != 1 || inc.announced[0] != "ops-dingtalk" {
		t.Errorf("announced in %v", inc.announced)
	}
	// Someone else follows the same (or their own) link later: the first claim stands.
	code, m, _ = do(t, "POST", srv.URL+ActionsPrefix+tok, url.Values{"by": {"Bob"}}, true)
	by, _ := m["claimed_by"].(map[string]any)
	if code != 200 || m["claimed"] != false || by["by"] != "Ann Li" {
		t.Errorf("second claim = %d %v", code, m)
	}
	// Without a name in the form, the addressee of the link is who claims.
	_, _, html := do(t, "POST", srv.URL+ActionsPrefix+tok, url.Values{}, false)
	if !strings.Contains(html, "Ann Li") {
		t.Errorf("default name: %s", html)
	}
}

func TestLinksThatMustNotWork(t *testing.T) {
	now := t0
	srv, s, inc, _ := setup(t, &now)
	g := action.GroupOf(groupKey)
	good := token(t, s, action.Claims{Kind: action.Claim, Group: g, Expires: t0.Add(time.Hour)})
	other := token(t, s, action.Claims{Kind: action.Claim, Group: action.GroupOf("another group"), Expires: t0.Add(time.Hour)})
	forger, _ := action.NewSigner(func() time.Time { return t0 }, []byte("another-key-another-key-another-key"))
	forged := token(t, forger, action.Claims{Kind: action.Claim, Group: g, Expires: t0.Add(time.Hour)})
	for _, tc := range []struct {
		name, tok string
		form      url.Values
		method    string
		want      int
	}{
		{"forged", forged, url.Values{"by": {"x"}}, "POST", 403},
		{"garbage", "not-a-token", url.Values{"by": {"x"}}, "POST", 403},
		{"unknown group", other, url.Values{"by": {"x"}}, "POST", 404},
		{"name with a line break", good, url.Values{"by": {"a\nb"}}, "POST", 400},
		{"name too long", good, url.Values{"by": {strings.Repeat("x", 65)}}, "POST", 400},
		{"wrong method", good, nil, "DELETE", 405},
	} {
		code, m, _ := do(t, tc.method, srv.URL+ActionsPrefix+tc.tok, tc.form, true)
		if code != tc.want || m["status"] != "error" {
			t.Errorf("%s: %d %v, want %d", tc.name, code, m, tc.want)
		}
	}
	now = t0.Add(time.Hour)
	if code, m, _ := do(t, "POST", srv.URL+ActionsPrefix+good, url.Values{"by": {"x"}}, true); code != 410 || !strings.Contains(m["error"].(string), "expired") {
		t.Errorf("expired: %d %v", code, m)
	}
	if inc.in.Claimed != nil {
		t.Errorf("a refused link claimed: %+v", inc.in.Claimed)
	}
}

func TestSilenceCreatesTheSilenceAndClaims(t *testing.T) {
	now := t0
	srv, s, inc, sil := setup(t, &now)
	tok := token(t, s, action.Claims{Kind: action.Silence, Silence: 4 * time.Hour, Group: action.GroupOf(groupKey), Channel: "oncall-sms", Recipient: "bob", Expires: t0.Add(time.Hour)})
	code, m, _ := do(t, "POST", srv.URL+ActionsPrefix+tok, url.Values{}, true)
	if code != 200 || m["action"] != "silence" {
		t.Fatalf("silence = %d %v", code, m)
	}
	if len(sil.reqs) != 1 || sil.reqs[0].Duration != 4*time.Hour || sil.reqs[0].Labels["alertname"] != "LLMHighErrorRate" || sil.reqs[0].CreatedBy != "bob via oncall-sms" {
		t.Errorf("silence request = %+v", sil.reqs)
	}
	if len(inc.silences) != 1 || inc.silences[0].ID != "sil-1" || !inc.silences[0].Until.Equal(t0.Add(4*time.Hour)) {
		t.Errorf("silences = %+v", inc.silences)
	}
	if inc.in.Claimed == nil || inc.in.Claimed.By != "bob" {
		t.Errorf("silencing did not stop the chain: %+v", inc.in.Claimed)
	}
	sil.fail = true
	if code, _, _ := do(t, "POST", srv.URL+ActionsPrefix+tok, url.Values{}, true); code != 502 {
		t.Errorf("alertmanager down: %d", code)
	}
}

func TestOnCallNowAndNext(t *testing.T) {
	now := t0
	srv, _, _, _ := setup(t, &now)
	var out struct {
		Schedules []scheduleJSON `json:"schedules"`
	}
	get := func(q string) int {
		resp, err := http.Get(srv.URL + "/api/v1/oncall" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out.Schedules = nil
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode
	}
	if code := get(""); code != 200 || len(out.Schedules) != 1 {
		t.Fatalf("oncall = %d %+v", code, out)
	}
	sc := out.Schedules[0]
	if sc.Name != "sre" || sc.TimeZone != "Asia/Shanghai" || sc.Now.Person != "ann" || sc.Now.Name != "Ann Li" || sc.Next.Person != "bob" ||
		!sc.Now.Until.Equal(time.Date(2026, 3, 9, 1, 0, 0, 0, time.UTC)) || !sc.Next.From.Equal(sc.Now.Until) {
		t.Errorf("sre = %+v", sc)
	}
	if code := get("?at=2026-03-10T00:00:00Z&schedule=sre"); code != 200 || out.Schedules[0].Now.Person != "bob" {
		t.Errorf("at a later instant: %d %+v", code, out)
	}
	if code := get("?at=yesterday"); code != 400 {
		t.Errorf("bad at: %d", code)
	}
	if code := get("?schedule=nope"); code != 404 {
		t.Errorf("unknown schedule: %d", code)
	}
}
