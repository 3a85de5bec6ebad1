package channels

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/open-autoglm/autoglm-monitor/receiver/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/fixture"
	"github.com/open-autoglm/autoglm-monitor/receiver/providertest"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// Every channel type is built from a configuration file and delivers to a
// fake provider; secrets come from *_file fields.
func TestBuildEveryTypeFromConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ding := providertest.NewDingTalk(t, "dtoken", "SECding")
	wc := providertest.NewWeCom(t, "wkey")
	ali := providertest.NewAliyun(t, "LTAIid", "ali-secret", "AutoGLM", "SMS_1")
	tc := providertest.NewTencent(t, "AKIDid", "tc-secret", "1400000000", "AutoGLM", "100")
	var mu sync.Mutex
	var hooks [][]byte
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		hooks = append(hooks, b)
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	out := filepath.Join(dir, "alerts.jsonl")
	cfgText := fmt.Sprintf(`receiver:
  storage: {path: /tmp/r}
  channels:
    ding: {type: dingtalk, url_file: %s, secret_file: %s, at_mobiles: ["13800000000"]}
    wc: {type: wecom, url: %q, message_type: text, language: en}
    ali: {type: sms, provider: aliyun, endpoint: %q, access_key_id: LTAIid, access_key_secret_file: %s, sign_name: AutoGLM, template_code: SMS_1, phone_numbers: ["13800000000"],
          template_params: [{name: name, value: "{{ .Name }}"}]}
    tc: {type: sms, provider: tencent, endpoint: %q, secret_id: AKIDid, secret_key: tc-secret, sms_sdk_app_id: "1400000000", sign_name: AutoGLM, template_id: "100", phone_numbers: ["+8613800000000"]}
    hook: {type: webhook, url: %q, headers: {X-Team: sre}}
    log: {type: file, path: %s, templates: {title: "T:{{ .Name }}"}}
  default_route: {channels: [log]}
`, write("dingurl", ding.URL()), write("dingsecret", "SECding"), wc.URL(), ali.URL(), write("alisecret", "ali-secret"), tc.URL(), hook.URL, out)
	f, err := config.Parse([]byte(cfgText), filepath.Join(dir, "c.yml"))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	ints, err := Build(f, Options{})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if len(ints) != 6 {
		t.Fatalf("built %d channels, want 6", len(ints))
	}
	for _, in := range ints {
		if err := in.Notifier.Notify(context.Background(), fixture.Notification("LLMHighErrorRate", 1, 50)); err != nil {
			t.Fatalf("%s: %v", in.Name, err)
		}
	}
	if m := ding.Messages(); len(m) != 1 || !strings.Contains(m[0].Content(), "@13800000000") {
		t.Errorf("dingtalk got %+v", m)
	}
	if m := wc.Messages(); len(m) != 1 || m[0].MsgType != "text" || !strings.Contains(m[0].Content(), "FIRING") {
		t.Errorf("wecom got %+v", m)
	}
	if m := ali.Messages(); len(m) != 1 || m[0].Params["name"] != "LLMHighErrorRate" {
		t.Errorf("aliyun got %+v", m)
	}
	if m := tc.Messages(); len(m) != 1 {
		t.Errorf("tencent got %+v", m)
	}
	var payload map[string]any
	if len(hooks) != 1 || json.Unmarshal(hooks[0], &payload) != nil || payload["version"] != "4" || payload["priority"] != "P1" {
		t.Errorf("webhook got %s", hooks)
	}
	b, err := os.ReadFile(out)
	if err != nil || !bytes.Contains(b, []byte(`"title":"T:LLMHighErrorRate"`)) {
		t.Errorf("file got %s (%v)", b, err)
	}
}

func TestTemplateFailuresReachTheCallback(t *testing.T) {
	ding := providertest.NewDingTalk(t, "tok", "")
	f, err := config.Parse([]byte(fmt.Sprintf("receiver:\n  storage: {path: /tmp/r}\n  channels:\n    d: {type: dingtalk, url: %q, templates: {markdown: \"{{ index .Alerts 9 }}\"}}\n  default_route: {channels: [d]}\n", ding.URL())), "c.yml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	in, err := New("d", f.Channels["d"], "", Options{OnTemplateError: func(c string, fl tmpl.Failure) { got = append(got, c+"/"+fl.Template+"/"+fl.Source) }})
	if err != nil {
		t.Fatal(err)
	}
	ch := in.Notifier
	if err := ch.Notify(context.Background(), fixture.Notification("A", 1, 10)); err != nil {
		t.Fatalf("a template bug must not fail delivery: %v", err)
	}
	if strings.Join(got, ",") != "d/markdown/channel" {
		t.Errorf("reported %v", got)
	}
	if m := ding.Messages(); len(m) != 1 || !strings.Contains(m[0].Content(), "A") {
		t.Errorf("built-in not used: %+v", m)
	}
	// A reporter in the context (set by the engine per delivery) wins.
	var fromCtx int
	ctx := tmpl.WithReporter(context.Background(), func(tmpl.Failure) { fromCtx++ })
	if err := ch.Notify(ctx, fixture.Notification("A", 1, 10)); err != nil || fromCtx != 1 || len(got) != 1 {
		t.Errorf("context reporter: err=%v ctx=%d options=%d", err, fromCtx, len(got))
	}
}

func TestRateLimitTargetAndSecrets(t *testing.T) {
	f, err := config.Parse([]byte(`receiver:
  storage: {path: /tmp/r}
  channels:
    d: {type: dingtalk, url: "https://oapi.dingtalk.com/robot/send?access_token=TOKEN-D", secret: SEC-SIGNING}
    w: {type: wecom, url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY-W", http_config: {proxy_url: "http://proxyuser:PROXY-PW@127.0.0.1:3128"}}
    m: {type: email, smtp: {host: smtp.example.com, port: 587, username: u, password: PASS-M}, from: a@example.com, to: [oncall@example.com]}
    s: {type: sms, provider: aliyun, access_key_id: ID, access_key_secret: ALI-SECRET, sign_name: N, template_code: SMS_1, phone_numbers: ["13800001234"]}
    h: {type: webhook, url: "https://hooks.example.com/x", headers: {Authorization: "Bearer HOOK-TOKEN"}, http_config: {basic_auth: {username: u, password: BASIC-PW}}}
    f: {type: file}
  default_route: {channels: [f]}
`), "c.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		rate   int
		target string
	}{
		{"d", 20, "https://oapi.dingtalk.com/robot/send?<redacted>"},
		{"w", 20, "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?<redacted>"},
		{"m", 0, "smtp://smtp.example.com:587 to 1 recipients"},
		{"s", 0, "sms aliyun [138****1234]"},
		{"h", 0, "https://hooks.example.com/x"},
		{"f", 0, "stdout"},
	} {
		in, err := New(tc.name, f.Channels[tc.name], "", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if in.PerMinute != tc.rate || in.Target != tc.target {
			t.Errorf("%s: rate %d target %q, want %d %q", tc.name, in.PerMinute, in.Target, tc.rate, tc.target)
		}
	}
	joined := strings.Join(f.Secrets(), " ")
	for _, want := range []string{"TOKEN-D", "SEC-SIGNING", "KEY-W", "PROXY-PW", "PASS-M", "ALI-SECRET", "HOOK-TOKEN", "BASIC-PW"} {
		if !strings.Contains(joined, want) {
			t.Errorf("Secrets misses %s", want)
		}
	}
}

func TestUnreadableSecretFileFailsTheLoad(t *testing.T) {
	_, err := config.Parse([]byte("receiver:\n  storage: {path: /tmp/r}\n  channels:\n    d: {type: dingtalk, url_file: /nonexistent/url}\n"), "c.yml")
	if err == nil || !strings.Contains(err.Error(), "receiver.channels.d.url_file") {
		t.Fatalf("got %v", err)
	}
}
