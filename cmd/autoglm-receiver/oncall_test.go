package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
	"github.com/open-autoglm/autoglm-monitor/receiver/providertest"
)

const (
	feishuToken  = "feishu-robot-token-5150"
	feishuSign   = "SECfeishuSigning77"
	aliKeySecret = "aliyun-voice-Secret-31"
	tcVoiceKey   = "tencent-voice-Key-62"
	cbToken      = "callback-Token-0123456789"
	actionKey    = "action-signing-key-0123456789abcdef"
)

// startAlertmanager runs the real Alertmanager with a receiver that drops everything.
func startAlertmanager(t *testing.T, dir string) string {
	t.Helper()
	bin := testenv.Alertmanager(t)
	cfg := filepath.Join(dir, "am.yml")
	if err := os.WriteFile(cfg, []byte("route: {receiver: blackhole}\nreceivers: [{name: blackhole}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "am"), "--web.listen-address="+testenv.Addr(port), "--cluster.listen-address=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://" + testenv.Addr(port)
	waitUntil(t, "alertmanager ready", 20*time.Second, func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return base
}

func onCallConfig(dir, am, feishuURL, dingURL, aliURL, tcURL string) string {
	return fmt.Sprintf(`receiver:
  storage: {path: %s}
  external_url: http://receiver.example.com
  actions: {key_file: action.key, silences: [1h, 4h]}
  silences: {alertmanagers: [%s]}
  channels:
    lark: {type: feishu, url: "%s", secret: %s}
    ding: {type: dingtalk, url: "%s"}
    phone: {type: voice, provider: aliyun, endpoint: "%s", access_key_id: LTAIvoice, access_key_secret: %s, tts_code: TTS_1}
    tphone: {type: voice, provider: tencent, endpoint: "%s", secret_id: AKIDvoice, secret_key: %s, voice_sdk_app_id: "1400006666", template_id: "4356", callback_token: %s}
  oncall:
    people:
      ann: {name: Ann Li, phone: "+8613800000001", feishu_open_id: ou_ann}
      bob: {name: Bob Wu, phone: "+8613800000002"}
    schedules:
      sre:
        time_zone: Asia/Shanghai
        layers: [{name: weekly, members: [ann, bob], start: "2026-01-05 10:00", rotation: 1w}]
        overrides: [{person: ann, from: "2020-01-01 00:00", to: "2040-01-01 00:00"}]
    chains:
      p1:
        - {after: 0s, channels: [lark, ding], schedules: [sre]}
        - {after: 3s, channels: [phone, tphone], schedules: [sre]}
  routes:
    - name: pager
      matchers: ['severity="critical"']
      channels: [lark, ding]
      chain: p1
`, filepath.Join(dir, "store"), am, feishuURL, feishuSign, dingURL, aliURL, aliKeySecret, tcURL, tcVoiceKey, cbToken)
}

func p1(name string) []byte {
	return []byte(fmt.Sprintf(`{"version":"4","groupKey":"{}:{alertname=\"%s\"}","status":"firing","receiver":"autoglm",
"groupLabels":{"alertname":"%s"},"commonLabels":{"alertname":"%s","severity":"critical"},"commonAnnotations":{"summary":"error rate 12%%"},
"alerts":[{"status":"firing","labels":{"alertname":"%s","severity":"critical","route":"/v1/chat/completions"},"annotations":{"summary":"error rate 12%%"},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"%x"}]}`, name, name, name, name, name))
}

// act follows an action link the way a person does: open it, then confirm with a name.
func act(t *testing.T, base, link, by string) map[string]any {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(base + u.Path)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "<form") {
		t.Fatalf("GET %s: %d", u.Path, resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", base+u.Path, strings.NewReader(url.Values{"by": {by}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d %v", u.Path, resp.StatusCode, out)
	}
	return out
}

func TestOnCallThroughTheBinary(t *testing.T) {
	bin := testenv.Binary(t, name)
	dir := t.TempDir()
	am := startAlertmanager(t, dir)
	lark := providertest.NewFeishu(t, feishuToken, feishuSign)
	ding := providertest.NewDingTalk(t, "ding-oncall-token", "")
	ali := providertest.NewAliyunVoice(t, "LTAIvoice", aliKeySecret, "TTS_1")
	tc := providertest.NewTencentVoice(t, "AKIDvoice", tcVoiceKey, "1400006666", "4356")
	if err := os.WriteFile(filepath.Join(dir, "action.key"), []byte(actionKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, onCallConfig(dir, am, lark.URL(), ding.URL(), ali.URL(), tc.URL()))
	port := testenv.FreePort(t)
	p := start(t, bin, cfg, port, nil)
	tc.CallbackURL = p.url + "/api/v1/voice/tencent/" + cbToken
	ctx := context.Background()

	// Who is on call: the override puts Ann on call now; Bob after it.
	resp, err := http.Get(p.url + "/api/v1/oncall")
	if err != nil {
		t.Fatal(err)
	}
	var oc struct {
		Schedules []struct {
			Name string
			Now  struct{ Person, Name, Layer string }
		}
	}
	_ = json.NewDecoder(resp.Body).Decode(&oc)
	resp.Body.Close()
	if len(oc.Schedules) != 1 || oc.Schedules[0].Now.Person != "ann" || oc.Schedules[0].Now.Layer != "override" {
		t.Errorf("oncall = %+v", oc)
	}

	// Group A: nobody claims it. Feishu and DingTalk get cards with buttons at once, calls follow after 3s.
	if code, err := post(ctx, p.url, p1("GroupA")); err != nil || code != 200 {
		t.Fatalf("webhook A: %d %v", code, err)
	}
	waitUntil(t, "Feishu card of A", 10*time.Second, func() bool { return len(lark.Messages()) >= 1 && len(ding.Messages()) >= 1 })
	card := lark.Messages()[0]
	if b := card.Buttons(); len(b) != 3 || b[0].Text != "认领" || b[1].Text != "静默 1 小时" || !strings.HasPrefix(b[0].URL, "http://receiver.example.com/api/v1/actions/") {
		t.Fatalf("Feishu buttons = %+v", card.Buttons())
	}
	if !strings.Contains(card.Markdown(), "<at id=ou_ann></at>") {
		t.Errorf("Feishu card does not mention Ann:\n%s", card.Markdown())
	}
	waitUntil(t, "calls of A", 15*time.Second, func() bool { return len(ali.Calls()) == 1 && len(tc.Calls()) == 1 })
	if ali.Calls()[0].Phone != "13800000001" || tc.Calls()[0].Phone != "+8613800000001" {
		t.Errorf("called %s and %s, want Ann", ali.Calls()[0].Phone, tc.Calls()[0].Phone)
	}
	// Tencent reports the answered call to the receiver.
	waitUntil(t, "call result", 10*time.Second, func() bool {
		recs, _ := audit(t, p.url, "status=call_answered")
		return len(recs) == 1
	})

	// Silence A from DingTalk's card for 4 hours: the silence is in the real Alertmanager.
	dingCard := ding.Messages()[0].ActionCard
	if dingCard == nil || len(dingCard.Btns) != 3 {
		t.Fatalf("DingTalk card = %+v", ding.Messages()[0])
	}
	out := act(t, p.url, dingCard.Btns[2].ActionURL, "Bob Wu")
	if out["action"] != "silence" {
		t.Fatalf("silence answer = %v", out)
	}
	resp, err = http.Get(am + "/api/v2/silences")
	if err != nil {
		t.Fatal(err)
	}
	var sil []struct {
		CreatedBy string
		EndsAt    time.Time
		Status    struct{ State string }
		Matchers  []struct{ Name, Value string }
	}
	_ = json.NewDecoder(resp.Body).Decode(&sil)
	resp.Body.Close()
	if len(sil) != 1 || sil[0].Status.State != "active" || sil[0].CreatedBy != "Bob Wu via ding" || len(sil[0].Matchers) != 1 || sil[0].Matchers[0].Value != "GroupA" {
		t.Errorf("silences in Alertmanager = %+v", sil)
	} else if d := time.Until(sil[0].EndsAt); d < 3*time.Hour+50*time.Minute || d > 4*time.Hour+time.Minute {
		t.Errorf("silence ends in %s, want 4h", d)
	}

	// Group B: Ann claims it from the Feishu card before the call step: nobody is called.
	if code, err := post(ctx, p.url, p1("GroupB")); err != nil || code != 200 {
		t.Fatalf("webhook B: %d %v", code, err)
	}
	var cardB providertest.FeishuMessage
	waitUntil(t, "Feishu card of B", 10*time.Second, func() bool {
		for _, m := range lark.Messages() {
			if strings.Contains(m.Title(), "GroupB") {
				cardB = m
				return true
			}
		}
		return false
	})
	out = act(t, p.url, cardB.Buttons()[0].URL, "Ann Li")
	if out["claimed"] != true {
		t.Fatalf("claim = %v", out)
	}
	time.Sleep(5 * time.Second)
	if n := len(ali.Calls()); n != 1 {
		t.Errorf("%d Aliyun calls after the claim of B, want only A's", n)
	}
	waitUntil(t, "claim announced in Feishu", 10*time.Second, func() bool {
		msgs := lark.Messages()
		return strings.Contains(msgs[len(msgs)-1].Markdown(), "Ann Li claimed")
	})
	recs, rawAudit := audit(t, p.url, "status=claimed")
	claims := map[string]auditRecord{}
	for _, r := range recs {
		claims[r.GroupKey] = r
	}
	if c := claims[`{}:{alertname="GroupB"}`]; c.By != "Ann Li" || c.Channel != "lark" {
		t.Errorf("claim of B audited as %+v", c)
	}
	if c := claims[`{}:{alertname="GroupA"}`]; c.By != "Bob Wu" || c.Channel != "ding" {
		t.Errorf("silencing A did not claim it: %+v", c)
	}
	steps, _ := audit(t, p.url, "status=escalation_step")
	// A: the route's IM messages (2 channels) and the calls (2 channels); B: its IM messages only.
	if len(steps) != 6 {
		t.Errorf("%d escalation steps audited, want 6", len(steps))
	}
	changes, _ := audit(t, p.url, "status=schedule_changed")
	if len(changes) == 0 {
		t.Error("the first load of the schedules is not audited")
	}
	p.stop(t)
	for _, secret := range []string{feishuToken, feishuSign, aliKeySecret, tcVoiceKey, cbToken, actionKey} {
		if strings.Contains(p.logs.String(), secret) || strings.Contains(rawAudit, secret) {
			t.Errorf("logs or audit contain secret %q", secret)
		}
	}
}

func TestOnCallConfigErrorsNameFileAndLine(t *testing.T) {
	bin := testenv.Binary(t, name)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, `receiver:
  storage: {path: `+filepath.Join(dir, "store")+`}
  channels:
    lark: {type: feishu, url: "https://open.feishu.cn/open-apis/bot/v2/hook/"}
  oncall:
    people: {ann: {phone: "12ab"}}
    schedules: {sre: {time_zone: Mars/Base, layers: [{members: [zed], start: "2026-01-05 10:00", rotation: 1w}]}}
  routes:
    - channels: [lark]
      chain: p9
`)
	raw, err := exec.Command(bin, "--config.file="+cfg).CombinedOutput()
	out := strings.ReplaceAll(string(raw), `\"`, `"`)
	if err == nil {
		t.Fatalf("bad configuration accepted:\n%s", out)
	}
	for _, want := range []string{
		"autoglm.yml:4: receiver.channels.lark.url: must be a custom robot webhook",
		"autoglm.yml:6: receiver.oncall.people.ann.phone",
		"autoglm.yml:7: receiver.oncall.schedules.sre.time_zone: unknown time zone",
		"receiver.oncall.schedules.sre.layers[0].members[0]: \"zed\" is not defined",
		"autoglm.yml:10: receiver.routes[0].chain: chain \"p9\" is not defined",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
