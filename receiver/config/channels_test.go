package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The configuration block of the receiver specification, verbatim.
const receiverSpec = `receiver:
  storage: {path: /var/lib/autoglm-receiver}
  channels:
    ops-dingtalk: {type: dingtalk, url: "https://oapi.dingtalk.com/robot/send?access_token=T", secret: S, at_mobiles: ["13800000000"]}
    ops-wecom:    {type: wecom, url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K"}
    oncall-mail:  {type: email, smtp: {host: smtp.example.com, port: 587, username: U, password_file: /run/secrets/smtp, tls: starttls}, from: alerts@example.com, to: [oncall@example.com]}
    oncall-sms:   {type: sms, provider: aliyun, endpoint: "https://dysmsapi.aliyuncs.com", access_key_id: ID, access_key_secret: SECRET, sign_name: N, template_code: SMS_1, phone_numbers: ["13800000000"]}
    tencent-sms:  {type: sms, provider: tencent, endpoint: "https://sms.tencentcloudapi.com", secret_id: ID, secret_key: KEY, sms_sdk_app_id: "1400000000", sign_name: N, template_id: "100", phone_numbers: ["+8613800000000"]}
  routes:
    - matchers: ['severity="critical"']
      channels: [oncall-sms, ops-dingtalk]
      fallback: [oncall-mail]
      escalate_after: 2m
    - matchers: ['severity="warning"']
      channels: [ops-wecom, oncall-mail]
`

func TestReceiverSpecificationChannelsLoad(t *testing.T) {
	dir := t.TempDir()
	// password_file points at /run/secrets/smtp in the specification; point it
	// at a real file here so the load can resolve it.
	pw := filepath.Join(dir, "smtp")
	if err := os.WriteFile(pw, []byte("mail-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := strings.Replace(receiverSpec, "/run/secrets/smtp", pw, 1)
	f, err := Parse([]byte(body), filepath.Join(dir, "c.yml"))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	ch := f.Channels
	if len(ch) != 5 {
		t.Fatalf("channels = %d", len(ch))
	}
	dt := ch["ops-dingtalk"].DingTalk
	if ch["ops-dingtalk"].Type != "dingtalk" || dt.URL.Value() != "https://oapi.dingtalk.com/robot/send?access_token=T" || dt.Secret.Value() != "S" || dt.AtMobiles[0] != "13800000000" {
		t.Errorf("dingtalk = %+v", dt)
	}
	if m := ch["oncall-mail"].Email; m.SMTP.Host != "smtp.example.com" || m.SMTP.Port != 587 || m.SMTP.Username != "U" || m.SMTP.TLS != "starttls" || m.From != "alerts@example.com" || m.To[0] != "oncall@example.com" {
		t.Errorf("email = %+v", m)
	}
	if s := ch["oncall-sms"].SMS; s.Provider != "aliyun" || s.AccessKeyID != "ID" || s.AccessKeySecret.Value() != "SECRET" || s.SignName != "N" || s.TemplateCode != "SMS_1" {
		t.Errorf("aliyun = %+v", s)
	}
	if s := ch["tencent-sms"].SMS; s.Provider != "tencent" || s.SecretID != "ID" || s.SecretKey.Value() != "KEY" || s.SMSSdkAppID != "1400000000" || s.TemplateID != "100" || s.PhoneNumbers[0] != "+8613800000000" {
		t.Errorf("tencent = %+v", s)
	}
	if got := ch["oncall-mail"].Email.SMTP.Password.Value(); got != "mail-pass" {
		t.Errorf("password_file not resolved into the password")
	}
}

func TestChannelValidation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		channel string
		want    []string // substrings of the error; nil = valid
	}{
		{"file to stdout", `{type: file}`, nil},
		{"webhook", `{type: webhook, url: "http://127.0.0.1:9/hook"}`, nil},
		{"generic sms", `{type: sms, provider: generic, url: "http://gw/send?to={{ .Phone }}", body: '{"t":"{{ .Message }}"}', phone_numbers: ["13800000000"]}`, nil},
		{"dingtalk actioncard with templates", `{type: dingtalk, url: "https://x/robot/send?access_token=T", message_type: actioncard, language: en, templates: {title: "{{ .Name }}"}, timeout: 5s}`, nil},
		{"missing type", `{url: "https://x"}`, []string{"c.yml:5", "receiver.channels.x.type", "is required"}},
		{"unknown type", `{type: pager}`, []string{"receiver.channels.x.type", `"pager"`}},
		{"dingtalk without token", `{type: dingtalk, url: "https://oapi.dingtalk.com/robot/send"}`, []string{"receiver.channels.x.url", "access_token"}},
		{"dingtalk bad scheme", `{type: dingtalk, url: "ftp://h/robot/send?access_token=T"}`, []string{"receiver.channels.x.url", "http or https"}},
		{"dingtalk bad message type", `{type: dingtalk, url: "https://h/r?access_token=T", message_type: text}`, []string{"message_type", "markdown or actioncard"}},
		{"dingtalk bad mobile", `{type: dingtalk, url: "https://h/r?access_token=T", at_mobiles: ["138-abc"]}`, []string{"at_mobiles[0]", "138-abc"}},
		{"wecom without key", `{type: wecom, url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"}`, []string{"receiver.channels.x.url", "key"}},
		{"wecom text ok with @all", `{type: wecom, url: "https://h/s?key=K", message_type: text, mentioned_mobile_list: ["@all", "13800000000"]}`, nil},
		{"wecom actioncard", `{type: wecom, url: "https://h/s?key=K", message_type: actioncard}`, []string{"markdown or text"}},
		{"email missing host and to", `{type: email, from: a@example.com}`, []string{"smtp.host", "receiver.channels.x.to"}},
		{"email bad tls", `{type: email, smtp: {host: h, tls: ssl}, from: a@example.com, to: [b@example.com]}`, []string{"smtp.tls", "starttls, tls or none"}},
		{"email bad address", `{type: email, smtp: {host: h}, from: "not an address", to: [b@example.com]}`, []string{"receiver.channels.x.from"}},
		{"email password without user", `{type: email, smtp: {host: h, password: p}, from: a@example.com, to: [b@example.com]}`, []string{"smtp.username"}},
		{"email both password forms", `{type: email, smtp: {host: h, username: u, password: p, password_file: f}, from: a@example.com, to: [b@example.com]}`, []string{"smtp.password", "not both"}},
		{"email missing password file", `{type: email, smtp: {host: h, username: u, password_file: /nonexistent/pw}, from: a@example.com, to: [b@example.com]}`, []string{"smtp.password_file", "/nonexistent/pw"}},
		{"sms without provider", `{type: sms, phone_numbers: ["13800000000"]}`, []string{"provider", "aliyun, tencent or generic"}},
		{"aliyun missing fields", `{type: sms, provider: aliyun, phone_numbers: ["13800000000"]}`, []string{"access_key_id", "access_key_secret", "sign_name", "template_code"}},
		{"tencent missing fields", `{type: sms, provider: tencent, phone_numbers: ["+8613800000000"]}`, []string{"secret_id", "secret_key", "sms_sdk_app_id", "template_id"}},
		{"sms bad phone", `{type: sms, provider: generic, url: "http://gw", body: x, phone_numbers: ["call me"]}`, []string{"phone_numbers[0]"}},
		{"sms no phones", `{type: sms, provider: generic, url: "http://gw", body: x}`, []string{"phone_numbers", "at least one"}},
		{"aliyun param without name", `{type: sms, provider: aliyun, access_key_id: I, access_key_secret: S, sign_name: N, template_code: T, phone_numbers: ["13800000000"], template_params: [{value: "{{ .Name }}"}]}`, []string{"template_params[0].name"}},
		{"bad template", `{type: file, templates: {title: "{{ .Name "}}`, []string{"templates.title", "does not parse"}},
		{"unknown template name", `{type: file, templates: {body: "x"}}`, []string{"templates.body", "unknown template"}},
		{"bad language", `{type: file, language: fr}`, []string{"language", "zh or en"}},
		{"unknown key", `{type: file, tokn: x}`, []string{"tokn"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "metrics:\n  interval: 10s\nreceiver:\n  channels:\n    x: " + tc.channel + "\n" + routed
			_, err := Parse([]byte(body), "c.yml")
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("expected an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestChannelErrorsNeverShowSecrets(t *testing.T) {
	body := `receiver:
  channels:
    a: {type: dingtalk, url: "https://oapi.dingtalk.com/robot/send?token=TOPSECRET", secret: SECVALUE}
    b: {type: wecom, url: "ftp://qyapi/send?key=KEYVALUE"}
`
	_, err := Parse([]byte(body), "c.yml")
	if err == nil {
		t.Fatal("expected errors")
	}
	for _, s := range []string{"TOPSECRET", "SECVALUE", "KEYVALUE"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error leaks %s: %v", s, err)
		}
	}
}

func TestGenericGatewayTemplateErrorsNameTheKey(t *testing.T) {
	body := "receiver:\n  channels:\n    g: {type: sms, provider: generic, url: \"http://gw/send?token=GWSECRET&to={{ .Phone \", body: ok, headers: {X-A: \"{{ end }}\"}, phone_numbers: [\"13800000000\"]}\n"
	_, err := Parse([]byte(body), "c.yml")
	if err == nil {
		t.Fatal("expected errors")
	}
	for _, w := range []string{"receiver.channels.g.url", "receiver.channels.g.headers.X-A"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}
	if strings.Contains(err.Error(), "GWSECRET") {
		t.Errorf("error leaks the gateway token: %v", err)
	}
}
