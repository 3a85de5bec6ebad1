package sms

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/fixture"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/providertest"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

const (
	akID     = "LTAI5tExampleID"
	akSecret = "aliyun-secret-9f8e7d"
	tcID     = "AKIDexampleSecretId"
	tcKey    = "tencent-key-1a2b3c"
)

var phones = []string{"13800000000", "13900000000"}

func aliyunNotifier(t *testing.T, fake *providertest.Aliyun, mutate func(*Config)) *Notifier {
	t.Helper()
	cfg := Config{Provider: "aliyun", Endpoint: fake.URL(), AccessKeyID: akID, AccessKeySecret: fileconfig.Secret(akSecret), SignName: "AutoGLM", TemplateCode: "SMS_1", PhoneNumbers: phones}
	if mutate != nil {
		mutate(&cfg)
	}
	cfg.HTTP = DefaultConfig().HTTP
	n, err := New(&cfg, tmpl.New(tmpl.Options{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func tencentNotifier(t *testing.T, fake *providertest.Tencent, mutate func(*Config)) *Notifier {
	t.Helper()
	cfg := Config{Provider: "tencent", Endpoint: fake.URL(), SecretID: tcID, SecretKey: fileconfig.Secret(tcKey), SMSSdkAppID: "1400000000", SignName: "AutoGLM", TemplateID: "100", PhoneNumbers: []string{"+8613800000000"}}
	if mutate != nil {
		mutate(&cfg)
	}
	cfg.HTTP = DefaultConfig().HTTP
	n, err := New(&cfg, tmpl.New(tmpl.Options{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func assertNoSecrets(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range []string{akSecret, tcKey, "Signature=", "Authorization"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error leaks %q: %v", s, err)
		}
	}
}

func TestAliyunDeliversSignedAndTruncated(t *testing.T) {
	fake := providertest.NewAliyun(t, akID, akSecret, "AutoGLM", "SMS_1")
	n := aliyunNotifier(t, fake, nil)
	// A summary far over the 35-character variable limit, in Chinese.
	if err := n.Notify(context.Background(), fixture.Notification("LLMHighErrorRate", 1, 300)); err != nil {
		t.Fatalf("notify: %v", err)
	}
	msgs := fake.Messages()
	if len(msgs) != 2 || msgs[0].Phone != phones[0] || msgs[1].Phone != phones[1] {
		t.Fatalf("accepted %+v", msgs)
	}
	p := msgs[0].Params
	if p["alertname"] != "LLMHighErrorRate" || p["status"] != "告警" || p["severity"] != "critical" {
		t.Errorf("params %v", p)
	}
	if n := utf8.RuneCountInString(p["summary"]); n != AliyunParamChars || !strings.HasSuffix(p["summary"], "…") {
		t.Errorf("summary %q has %d runes, want truncated to %d", p["summary"], n, AliyunParamChars)
	}
}

func TestAliyunErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mutate    func(*Config)
		setup     func(*providertest.Aliyun)
		wantClass notify.Class
		wantCode  string
		wantAfter time.Duration
	}{
		{"wrong secret", func(c *Config) { c.AccessKeySecret = "other-secret" }, nil, notify.Config, "SignatureDoesNotMatch", 0},
		{"unknown key id", func(c *Config) { c.AccessKeyID = "LTAIother" }, nil, notify.Config, "InvalidAccessKeyId.NotFound", 0},
		{"unapproved template", func(c *Config) { c.TemplateCode = "SMS_2" }, nil, notify.Config, "isv.SMS_TEMPLATE_ILLEGAL", 0},
		{"gateway down", nil, func(a *providertest.Aliyun) { a.FailAlways(providertest.Failure{Status: 503, Body: "upstream down"}) }, notify.Retry, "503", 0},
		{"minute limit", nil, func(a *providertest.Aliyun) { a.PerMinute = 0; a.PerDay = 0; a.PerHour = 0; a.PerMinute = 1 }, notify.Retry, "isv.BUSINESS_LIMIT_CONTROL", time.Minute},
		{"daily limit gives up", nil, func(a *providertest.Aliyun) { a.PerDay = 1 }, notify.Permanent, "isv.BUSINESS_LIMIT_CONTROL", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := providertest.NewAliyun(t, akID, akSecret, "AutoGLM", "SMS_1")
			if tc.setup != nil {
				tc.setup(fake)
			}
			n := aliyunNotifier(t, fake, tc.mutate)
			err := n.Notify(context.Background(), fixture.Notification("A", 1, 10))
			if strings.Contains(tc.name, "limit") {
				// The first message passes; the limit bites on the second.
				if err != nil {
					t.Fatalf("first: %v", err)
				}
				err = n.Notify(context.Background(), fixture.Notification("B", 1, 10))
			}
			class, code, after := notify.Classify(err)
			if class != tc.wantClass || code != tc.wantCode || after != tc.wantAfter {
				t.Fatalf("got %v (class %s code %s after %s)", err, class, code, after)
			}
			assertNoSecrets(t, err)
			if strings.Contains(err.Error(), "13800000000") {
				t.Errorf("error shows the full phone number: %v", err)
			}
		})
	}
}

func TestRetryOnlyReachesMissingNumbers(t *testing.T) {
	fake := providertest.NewAliyun(t, akID, akSecret, "AutoGLM", "SMS_1")
	n := aliyunNotifier(t, fake, nil)
	// The first number gets it, the gateway fails for the second.
	fake.FailNext(providertest.Failure{}, providertest.Failure{Status: 502, Body: "bad gateway"})
	first := fixture.Notification("A", 1, 10)
	err := n.Notify(context.Background(), first)
	if c, _, _ := notify.Classify(err); c != notify.Retry || !strings.Contains(err.Error(), "139****0000") {
		t.Fatalf("want a retry naming the masked second number, got %v", err)
	}
	if err := n.Notify(context.Background(), first); err != nil {
		t.Fatalf("retry: %v", err)
	}
	count := map[string]int{}
	for _, m := range fake.Messages() {
		count[m.Phone]++
	}
	if count[phones[0]] != 1 || count[phones[1]] != 1 {
		t.Fatalf("deliveries per number %v, want exactly one each", count)
	}
	// A different notification goes to everyone again.
	if err := n.Notify(context.Background(), fixture.Notification("B", 1, 10)); err != nil {
		t.Fatal(err)
	}
	if got := len(fake.Messages()); got != 4 {
		t.Fatalf("accepted %d, want 4", got)
	}
}

func TestTencentDelivers(t *testing.T) {
	fake := providertest.NewTencent(t, tcID, tcKey, "1400000000", "AutoGLM", "100")
	n := tencentNotifier(t, fake, nil)
	if err := n.Notify(context.Background(), fixture.Notification("LLMHighLatency", 3, 200), fixture.Notification("Other", 1, 10)); err != nil {
		t.Fatalf("notify: %v", err)
	}
	msgs := fake.Messages()
	if len(msgs) != 1 {
		t.Fatalf("accepted %d", len(msgs))
	}
	p := msgs[0].Params
	if p["1"] != "告警" || !strings.HasPrefix(p["2"], "LLMHighLatency") || utf8.RuneCountInString(p["4"]) > TencentParamChars {
		t.Errorf("params %v", p)
	}
}

func TestTencentErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mutate    func(*Config)
		setup     func(*providertest.Tencent)
		second    bool
		wantClass notify.Class
		wantCode  string
		wantAfter time.Duration
	}{
		{"wrong key", func(c *Config) { c.SecretKey = "nope" }, nil, false, notify.Config, "AuthFailure.SignatureFailure", 0},
		{"unknown id", func(c *Config) { c.SecretID = "AKIDother" }, nil, false, notify.Config, "AuthFailure.SecretIdNotFound", 0},
		{"wrong app", func(c *Config) { c.SMSSdkAppID = "1" }, nil, false, notify.Config, "InvalidParameterValue.SdkAppIdNotExist", 0},
		{"thirty seconds", nil, func(f *providertest.Tencent) { f.PerThirtySeconds = 1 }, true, notify.Retry, "LimitExceeded.PhoneNumberThirtySecondLimit", 30 * time.Second},
		{"one hour", nil, func(f *providertest.Tencent) { f.PerHour = 1 }, true, notify.Retry, "LimitExceeded.PhoneNumberOneHourLimit", time.Hour},
		{"daily", nil, func(f *providertest.Tencent) { f.PerDay = 1 }, true, notify.Permanent, "LimitExceeded.PhoneNumberDailyLimit", 0},
		{"gateway down", nil, func(f *providertest.Tencent) { f.FailAlways(providertest.Failure{Status: 500, Body: "x"}) }, false, notify.Retry, "500", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := providertest.NewTencent(t, tcID, tcKey, "1400000000", "AutoGLM", "100")
			if tc.setup != nil {
				tc.setup(fake)
			}
			n := tencentNotifier(t, fake, tc.mutate)
			err := n.Notify(context.Background(), fixture.Notification("A", 1, 10))
			if tc.second {
				if err != nil {
					t.Fatalf("first: %v", err)
				}
				err = n.Notify(context.Background(), fixture.Notification("B", 1, 10))
			}
			class, code, after := notify.Classify(err)
			if class != tc.wantClass || code != tc.wantCode || after != tc.wantAfter {
				t.Fatalf("got %v (class %s code %s after %s)", err, class, code, after)
			}
			assertNoSecrets(t, err)
		})
	}
}

func TestSignatureExpiresWithSkewedClock(t *testing.T) {
	fake := providertest.NewTencent(t, tcID, tcKey, "1400000000", "AutoGLM", "100")
	n, err := New(&Config{HTTP: DefaultConfig().HTTP, Provider: "tencent", Endpoint: fake.URL(), SecretID: tcID, SecretKey: fileconfig.Secret(tcKey), SMSSdkAppID: "1400000000", SignName: "AutoGLM", TemplateID: "100", PhoneNumbers: []string{"+8613800000000"}},
		nil, func() time.Time { return time.Now().Add(-10 * time.Minute) })
	if err != nil {
		t.Fatal(err)
	}
	err = n.Notify(context.Background(), fixture.Notification("A", 1, 10))
	if c, code, _ := notify.Classify(err); c != notify.Retry || code != "AuthFailure.SignatureExpire" {
		t.Fatalf("got %v", err)
	}
}

func TestGenericGateway(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]string
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			http.Error(w, "bad json: "+string(b), 400)
			return
		}
		mu.Lock()
		got = append(got, m)
		auth = append(auth, r.Header.Get("X-Token")+"|"+r.URL.Query().Get("to"))
		mu.Unlock()
		if m["phone"] == "13900000000" {
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	n, err := New(&Config{
		HTTP: DefaultConfig().HTTP, Provider: "generic", PhoneNumbers: phones, Method: "POST",
		Gateway: ep(srv.URL + "/send?to={{ .Phone }}&token=gw-secret"),
		Headers: map[string]string{"X-Token": "tok-{{ .Priority }}"},
		Body:    `{"phone":{{ printf "%q" .Phone }},"text":{{ printf "%q" .Message }},"name":{{ printf "%q" (index .Params "alertname") }}}`,
	}, tmpl.New(tmpl.Options{Language: "en"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Notify(context.Background(), fixture.Notification("A", 1, 10))
	if c, code, _ := notify.Classify(err); c != notify.Retry || code != "503" {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), "gw-secret") {
		t.Fatalf("error leaks the gateway token: %v", err)
	}
	if len(got) != 2 || got[0]["phone"] != phones[0] || !strings.Contains(got[0]["text"], "[P1][FIRING] A") || got[0]["name"] != "A" || auth[0] != "tok-P1|13800000000" {
		t.Fatalf("gateway saw %v %v", got, auth)
	}
}

// ep is the url key of a channel.
func ep(u string) chanhttp.Endpoint { return chanhttp.Endpoint{URL: fileconfig.Secret(u)} }
