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

	"github.com/open-autoglm/autoglm-monitor/internal/config"
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
  channels:
    ding: {type: dingtalk, url_file: %s, secret_file: %s, at_mobiles: ["13800000000"]}
    wc: {type: wecom, url: %q, message_type: text, language: en}
    ali: {type: sms, provider: aliyun, endpoint: %q, access_key_id: LTAIid, access_key_secret_file: %s, sign_name: AutoGLM, template_code: SMS_1, phone_numbers: ["13800000000"],
          template_params: [{name: name, value: "{{ .Name }}"}]}
    tc: {type: sms, provider: tencent, endpoint: %q, secret_id: AKIDid, secret_key: tc-secret, sms_sdk_app_id: "1400000000", sign_name: AutoGLM, template_id: "100", phone_numbers: ["+8613800000000"]}
    hook: {type: webhook, url: %q, headers: {X-Team: sre}}
    log: {type: file, path: %s, templates: {title: "T:{{ .Name }}"}}
`, write("dingurl", ding.URL()), write("dingsecret", "SECding"), wc.URL(), ali.URL(), write("alisecret", "ali-secret"), tc.URL(), hook.URL, out)
	f, err := config.Parse([]byte(cfgText), filepath.Join(dir, "c.yml"))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	for name, c := range f.Receiver.Channels {
		ch, err := Build(name, c, f, Options{})
		if err != nil {
			t.Fatalf("build %s: %v", name, err)
		}
		if err := ch.Notify(context.Background(), fixture.Notification("LLMHighErrorRate", 1, 50)); err != nil {
			t.Fatalf("%s: %v", name, err)
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
	f, err := config.Parse([]byte(fmt.Sprintf("receiver:\n  channels:\n    d: {type: dingtalk, url: %q, templates: {markdown: \"{{ index .Alerts 9 }}\"}}\n", ding.URL())), "c.yml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	ch, err := Build("d", f.Receiver.Channels["d"], f, Options{OnTemplateError: func(c string, fl tmpl.Failure) { got = append(got, c+"/"+fl.Template+"/"+fl.Source) }})
	if err != nil {
		t.Fatal(err)
	}
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

func TestRateLimitAndTarget(t *testing.T) {
	for _, tc := range []struct {
		c      config.Channel
		rate   int
		target string
	}{
		{config.Channel{Type: "dingtalk", URL: "https://oapi.dingtalk.com/robot/send?access_token=SECRET"}, 20, "https://oapi.dingtalk.com/robot/send?<redacted>"},
		{config.Channel{Type: "wecom", URL: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=SECRET"}, 20, "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?<redacted>"},
		{config.Channel{Type: "email", SMTP: config.SMTP{Host: "smtp.example.com", Port: 587}, To: []string{"a@b"}}, 0, "smtp://smtp.example.com:587 to 1 recipients"},
		{config.Channel{Type: "sms", Provider: "aliyun", PhoneNumbers: []string{"13800001234"}}, 0, "sms aliyun [138****1234]"},
		{config.Channel{Type: "file"}, 0, "stdout"},
	} {
		if got := RateLimit(tc.c); got != tc.rate {
			t.Errorf("%s rate = %d", tc.c.Type, got)
		}
		if got := Target(tc.c); got != tc.target || strings.Contains(got, "SECRET") {
			t.Errorf("%s target = %q", tc.c.Type, got)
		}
	}
}

func TestBuildReportsUnreadableSecretFile(t *testing.T) {
	c := config.Channel{Type: "dingtalk", URLFile: "/nonexistent/url"}
	_, err := Build("d", c, &config.File{}, Options{})
	if err == nil || !strings.Contains(err.Error(), "url_file") {
		t.Fatalf("got %v", err)
	}
}
