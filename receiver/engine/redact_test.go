package engine

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://oapi.dingtalk.com/robot/send?access_token=abc123":                    "https://oapi.dingtalk.com/robot/send?access_token=<secret>",
		"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K-9":                    "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<secret>",
		"https://user:pw@gw.example.com/sms?to=1":                                     "https://gw.example.com/sms?to=1",
		"https://oapi.dingtalk.com/robot/send?access_token=a&timestamp=1&sign=zz%2Bq": "https://oapi.dingtalk.com/robot/send?access_token=<secret>&sign=<secret>&timestamp=1",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactorScrubsKnownSecretsAndPatterns(t *testing.T) {
	secret := "SEC0123456789abcdef+/="
	r := NewRedactor(secret, "ab")
	for _, in := range []string{
		`Post "https://oapi.dingtalk.com/robot/send?access_token=TTT&sign=x": dial tcp: refused`,
		"signature mismatch for " + secret,
		"query had secret=" + url.QueryEscape(secret),
		"smtp://alice:hunter2@mail.example.com rejected",
	} {
		out := r.String(in)
		for _, bad := range []string{"TTT", secret, url.QueryEscape(secret), "hunter2"} {
			if strings.Contains(out, bad) {
				t.Errorf("%q leaked %q in %q", in, bad, out)
			}
		}
	}
	if got := r.String("table about"); got != "table about" {
		t.Errorf("short secrets must not blank ordinary words: %q", got)
	}
}

func TestSecretsOfChannels(t *testing.T) {
	f, err := config.Parse([]byte(`receiver:
  channels:
    d: {type: dingtalk, url: "https://oapi.dingtalk.com/robot/send?access_token=TOKEN-D", secret: SEC-SIGNING}
    m: {type: email, smtp: {host: smtp.example.com, port: 587, username: u, password: PASS-M, tls: starttls}, from: a@example.com, to: [oncall@example.com]}
    s: {type: sms, provider: aliyun, endpoint: "https://dysmsapi.aliyuncs.com", access_key_id: ID, access_key_secret: ALI-SECRET, sign_name: N, template_code: SMS_1, phone_numbers: ["13800000000"]}
`), "c.yml")
	if err != nil {
		t.Skipf("channel configuration not available yet: %v", err)
	}
	var all []string
	for _, name := range []string{"d", "m", "s"} {
		c := f.Receiver.Channels[name]
		all = append(all, Secrets(c, f)...)
	}
	joined := fmt.Sprint(all)
	for _, want := range []string{"TOKEN-D", "SEC-SIGNING", "PASS-M", "ALI-SECRET"} {
		if !strings.Contains(joined, want) {
			t.Errorf("Secrets misses %s", want)
		}
	}
}
