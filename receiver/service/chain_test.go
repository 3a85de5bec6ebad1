package service

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/oncall"
	"github.com/open-autoglm/autoglm-monitor/receiver/providertest"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

// chainFakes are the providers of the chain: a DingTalk robot, Aliyun SMS
// and Aliyun voice, reached in-process so the whole receiver runs on the
// test's fake clock.
type chainFakes struct {
	ding  *providertest.DingTalk
	sms   *providertest.Aliyun
	voice *providertest.AliyunVoice
	proc  *providertest.InProcess
}

func newChainFakes(t *testing.T) *chainFakes {
	f := &chainFakes{
		ding:  providertest.NewDingTalk(t, "ding-token", "SECding"),
		sms:   providertest.NewAliyun(t, "LTAIsms", "sms-secret", "AutoGLM", "SMS_1"),
		voice: providertest.NewAliyunVoice(t, "LTAIvoice", "voice-secret", "TTS_1"),
		proc:  &providertest.InProcess{},
	}
	f.proc.Add(f.ding.URL(), f.ding.Handler())
	f.proc.Add(f.sms.URL(), f.sms.Handler())
	f.proc.Add(f.voice.URL(), f.voice.Handler())
	return f
}

func chainConfig(t *testing.T, dir string, f *chainFakes) *config.Config {
	t.Helper()
	y := fmt.Sprintf(`receiver:
  storage: {path: %s}
  external_url: https://receiver.example.com
  actions: {key: "0123456789abcdef0123456789abcdef"}
  channels:
    ops-dingtalk: {type: dingtalk, url: "%s", secret: SECding}
    oncall-sms: {type: sms, provider: aliyun, endpoint: "%s", access_key_id: LTAIsms, access_key_secret: sms-secret, sign_name: AutoGLM, template_code: SMS_1, phone_numbers: ["13900000000"]}
    oncall-voice: {type: voice, provider: aliyun, endpoint: "%s", access_key_id: LTAIvoice, access_key_secret: voice-secret, tts_code: TTS_1}
  oncall:
    people:
      ann: {name: Ann, phone: "+8613800000001"}
      bob: {name: Bob, phone: "+8613800000002"}
    schedules:
      sre:
        time_zone: Asia/Shanghai
        layers: [{members: [ann, bob], start: "1999-12-27 09:00", rotation: 1w}]
    chains:
      p1:
        - {after: 0s, channels: [ops-dingtalk], schedules: [sre]}
        - {after: 5m, channels: [oncall-sms], schedules: [sre]}
        - {after: 10m, channels: [oncall-voice], schedules: [sre]}
  routes:
    - name: pager
      matchers: ['severity="critical"']
      channels: [ops-dingtalk]
      chain: p1
`, filepath.Join(dir, "store"), f.ding.URL(), f.sms.URL(), f.voice.URL())
	c, err := config.Parse([]byte(y), filepath.Join(dir, "autoglm.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const p1Body = `{"version":"4","groupKey":"{}:{alertname=\"LLMHighErrorRate\"}","status":"firing","receiver":"autoglm",
"groupLabels":{"alertname":"LLMHighErrorRate"},"commonLabels":{"alertname":"LLMHighErrorRate","severity":"critical"},
"alerts":[{"status":"firing","labels":{"alertname":"LLMHighErrorRate","severity":"critical"},"annotations":{"summary":"error rate 12%"},"startsAt":"2000-01-01T00:00:00Z","fingerprint":"01"}]}`

// runChain starts the receiver in the bubble and posts a P1 at the bubble's start.
func runChain(t *testing.T, f *chainFakes) (*Service, *http.ServeMux, func()) {
	t.Helper()
	s, err := New(chainConfig(t, t.TempDir(), f), Options{Transport: f.proc})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Register(mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("POST", "/webhook", strings.NewReader(p1Body)))
	if w.Code != 200 {
		t.Fatalf("webhook: %d %s", w.Code, w.Body)
	}
	return s, mux, func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func TestUnclaimedP1ReachesTheVoiceStepOnTime(t *testing.T) {
	f := newChainFakes(t)
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		_, _, stop := runChain(t, f)
		defer stop()
		at := func(d time.Duration) {
			time.Sleep(start.Add(d).Sub(time.Now()))
			synctest.Wait()
		}
		at(time.Second)
		if n := len(f.ding.Messages()); n < 1 {
			t.Fatalf("IM step: %d messages at +1s", n)
		}
		card := f.ding.Messages()[0].ActionCard
		if card == nil || len(card.Btns) != 3 || !strings.Contains(card.Btns[0].ActionURL, "https://receiver.example.com/api/v1/actions/") {
			t.Fatalf("the P1 card lacks its claim and silence buttons: %+v", f.ding.Messages()[0])
		}
		at(5*time.Minute - 5*time.Second)
		if n := len(f.sms.Messages()); n != 0 {
			t.Errorf("texted before the 5m step: %d", n)
		}
		at(5*time.Minute + 5*time.Second)
		if m := f.sms.Messages(); len(m) != 1 || m[0].Phone != "+8613800000001" {
			t.Errorf("SMS step at +5m: %+v", m)
		}
		at(10*time.Minute - 5*time.Second)
		if n := len(f.voice.Calls()); n != 0 {
			t.Errorf("called before the 10m step: %d", n)
		}
		at(10*time.Minute + 5*time.Second)
		calls := f.voice.Calls()
		if len(calls) != 1 || calls[0].Phone != "13800000001" {
			t.Fatalf("voice step at +10m: %+v", calls)
		}
		if d := calls[0].Placed.Sub(start); d < 10*time.Minute || d > 10*time.Minute+5*time.Second {
			t.Errorf("voice call placed at +%s, want +10m ± 5s", d)
		}
	})
}

func TestClaimStopsTheChainWithinASecond(t *testing.T) {
	f := newChainFakes(t)
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		s, mux, stop := runChain(t, f)
		defer stop()
		time.Sleep(7 * time.Minute)
		synctest.Wait()
		if len(f.sms.Messages()) != 1 {
			t.Fatalf("SMS step did not happen before the claim")
		}
		// Ann opens the claim button of the card and confirms with her name.
		link := f.ding.Messages()[0].ActionCard.Btns[0].ActionURL
		path := strings.TrimPrefix(link, "https://receiver.example.com")
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 || !strings.Contains(w.Body.String(), "<form") {
			t.Fatalf("GET the link: %d", w.Code)
		}
		req := httptest.NewRequest("POST", path, strings.NewReader(url.Values{"by": {"Ann"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		w = httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"claimed":true`) {
			t.Fatalf("claim: %d %s", w.Code, w.Body)
		}
		claimedAt := time.Now()
		time.Sleep(time.Second)
		synctest.Wait()
		// Within a second the claim is stored and announced in the IM channel.
		recs, _, err := s.store.Audit(store.Query{Outcome: store.OutcomeClaimed})
		if err != nil || len(recs) != 1 || recs[0].By != "Ann" || recs[0].Channel != "ops-dingtalk" || recs[0].Time.Sub(claimedAt) > time.Second {
			t.Fatalf("claim audit = %+v, %v", recs, err)
		}
		msgs := f.ding.Messages()
		if last := msgs[len(msgs)-1].Content(); !strings.Contains(last, "Ann claimed") {
			t.Errorf("no announcement in DingTalk: %q", last)
		}
		// Nobody is called at +10m, or later.
		time.Sleep(start.Add(30 * time.Minute).Sub(time.Now()))
		synctest.Wait()
		if n := len(f.voice.Calls()); n != 0 {
			t.Errorf("%d calls after the claim at +%s", n, claimedAt.Sub(start))
		}
		steps, _, _ := s.store.Audit(store.Query{Outcome: store.OutcomeEscalationStep})
		if len(steps) != 2 {
			t.Errorf("%d escalation steps audited, want 2 (IM, SMS)", len(steps))
		}
	})
}

func TestScheduleChangesAreAuditedOnReload(t *testing.T) {
	f := newChainFakes(t)
	dir := t.TempDir()
	rc := chainConfig(t, dir, f)
	s, err := New(rc, Options{Transport: f.proc})
	if err != nil {
		t.Fatal(err)
	}
	defer s.store.Close()
	first, _, _ := s.store.Audit(store.Query{Outcome: store.OutcomeScheduleChanged})
	if len(first) == 0 {
		t.Fatal("the first load of the schedules is not audited")
	}
	// Same configuration again: nothing changed, nothing audited.
	if err := s.Reload(chainConfig(t, dir, f)); err != nil {
		t.Fatal(err)
	}
	if again, _, _ := s.store.Audit(store.Query{Outcome: store.OutcomeScheduleChanged}); len(again) != len(first) {
		t.Errorf("an unchanged reload audited %d changes", len(again)-len(first))
	}
	next := chainConfig(t, dir, f)
	sc := next.OnCall.Schedules["sre"]
	sc.Overrides = append(sc.Overrides, oncallOverride("bob", "2026-02-16 10:00", "2026-02-18 10:00"))
	next.OnCall.Schedules["sre"] = sc
	if err := s.Reload(next); err != nil {
		t.Fatal(err)
	}
	recs, _, _ := s.store.Audit(store.Query{Outcome: store.OutcomeScheduleChanged})
	if len(recs) != len(first)+1 || !strings.Contains(recs[0].Detail, "schedule sre: override added: bob from 2026-02-16 10:00 to 2026-02-18 10:00") {
		t.Errorf("after adding an override: %+v", recs)
	}
	for _, r := range recs {
		if strings.Contains(r.Detail, "+8613800000001") {
			t.Errorf("a schedule change shows a phone number: %q", r.Detail)
		}
	}
}

func oncallOverride(person, from, to string) oncall.OverrideConfig {
	return oncall.OverrideConfig{Person: person, From: from, To: to}
}
