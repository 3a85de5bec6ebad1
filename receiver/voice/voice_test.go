package voice

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/fixture"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/oncall"
	"github.com/open-autoglm/autoglm-monitor/receiver/providertest"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

const (
	akID     = "LTAI5tVoiceExampleID"
	akSecret = "aliyun-voice-secret-5e6f"
	tcID     = "AKIDvoiceExampleSecretId"
	tcKey    = "tencent-voice-key-7a8b"
	cbToken  = "cb-token-0123456789abcdef"
)

func file(t *testing.T) *config.File {
	t.Helper()
	f, err := config.Parse([]byte("{}"), filepath.Join(t.TempDir(), "autoglm.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

type recorder struct {
	mu    sync.Mutex
	calls []Call
}

func (r *recorder) add(c Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
}

func (r *recorder) all() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

func newNotifier(t *testing.T, c *Config, now func() time.Time, rec *recorder) *Notifier {
	t.Helper()
	if err := c.Validate("receiver.channels.phone", file(t)); err != nil {
		t.Fatal(err)
	}
	n, err := New(c, tmpl.New(tmpl.Options{}), Options{Now: now, OnCall: rec.add})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func noSecrets(t *testing.T, err error) {
	t.Helper()
	for _, s := range []string{akSecret, tcKey, cbToken} {
		if err != nil && strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains a secret", err)
		}
	}
}

func TestAliyunCallAndAnsweredResult(t *testing.T) {
	fake := providertest.NewAliyunVoice(t, akID, akSecret, "TTS_100")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	fake.SetNow(clock)
	fake.ReportAfter = 2 * time.Minute
	fake.SetOutcome("13900000000", providertest.CallOutcome{Code: "200003", Description: "用户收到呼叫但未接听"})
	rec := &recorder{}
	n := newNotifier(t, &Config{Provider: "aliyun", Endpoint: fake.URL(), AccessKeyID: akID, AccessKeySecret: akSecret, TTSCode: "TTS_100",
		PhoneNumbers: []string{"+8613800000000", "13900000000"}, PlayTimes: 3}, clock, rec)

	if err := n.Notify(context.Background(), fixture.Notification("LLMHighErrorRate", 3, 300)); err != nil {
		t.Fatal(err)
	}
	calls := fake.Calls()
	if len(calls) != 2 || calls[0].Phone != "13800000000" || calls[0].PlayTimes != 3 || calls[0].Template != "TTS_100" {
		t.Fatalf("calls = %+v", calls)
	}
	if p := calls[0].Params; p["alertname"] != "LLMHighErrorRate(3)" || p["status"] != "告警" || p["severity"] != "critical" || len([]rune(p["summary"])) > ParamChars {
		t.Errorf("TTS params = %v", p)
	}
	placed := rec.all()
	if len(placed) != 2 || placed[0].ID != calls[0].CallID || placed[0].Phone != "+86138****0000" || placed[0].Provider != "aliyun" || len(placed[0].Notifications) != 1 {
		t.Fatalf("OnCall = %+v", placed)
	}
	// The provider has the detail a while after the call.
	if _, err := n.Query(context.Background(), placed[0]); !errors.Is(err, ErrPending) {
		t.Errorf("early query: %v", err)
	}
	now = now.Add(3 * time.Minute)
	res, err := n.Query(context.Background(), placed[0])
	if err != nil || !res.Answered || res.Status != "200000" || res.Duration != 20*time.Second || res.CallID != placed[0].ID {
		t.Errorf("answered call = %+v, %v", res, err)
	}
	res, err = n.Query(context.Background(), placed[1])
	if err != nil || res.Answered || res.Status != "200003" || res.Description != "用户收到呼叫但未接听" {
		t.Errorf("unanswered call = %+v, %v", res, err)
	}
}

func TestAliyunFlowControlRetriesOnlyTheMissingNumber(t *testing.T) {
	fake := providertest.NewAliyunVoice(t, akID, akSecret, "TTS_100")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	fake.SetNow(clock)
	rec := &recorder{}
	n := newNotifier(t, &Config{Provider: "aliyun", Endpoint: fake.URL(), AccessKeyID: akID, AccessKeySecret: akSecret, TTSCode: "TTS_100", PhoneNumbers: []string{"13800000000"}}, clock, rec)
	if err := n.Notify(context.Background(), fixture.Notification("A", 1, 10)); err != nil {
		t.Fatal(err)
	}
	// A second group within the minute hits the per-number limit of one call a minute.
	b := fixture.Notification("B", 1, 10)
	err := n.Notify(context.Background(), b)
	var e *notify.Error
	if !errors.As(err, &e) || e.Class != notify.Retry || e.Code != "isv.BUSINESS_LIMIT_CONTROL" || e.RetryAfter != time.Minute || !strings.Contains(err.Error(), "138****0000") {
		t.Fatalf("flow control: %v", err)
	}
	now = now.Add(time.Minute)
	if err := n.Notify(context.Background(), b); err != nil {
		t.Fatalf("after a minute: %v", err)
	}
	// Re-sending an already-called notification calls nobody again.
	if err := n.Notify(context.Background(), b); err != nil || len(fake.Calls()) != 2 {
		t.Errorf("repeat: %v, %d calls", err, len(fake.Calls()))
	}
	// Six calls an hour exceed 5/h: hour-level flow control waits an hour.
	for i := 0; i < 3; i++ {
		now = now.Add(time.Minute)
		_ = n.Notify(context.Background(), fixture.Notification(string(rune('C'+i)), 1, 10))
	}
	now = now.Add(time.Minute)
	err = n.Notify(context.Background(), fixture.Notification("Z", 1, 10))
	if !errors.As(err, &e) || e.RetryAfter != time.Hour {
		t.Errorf("sixth call in an hour: %v", err)
	}
}

func TestAliyunConfigurationErrors(t *testing.T) {
	fake := providertest.NewAliyunVoice(t, akID, akSecret, "TTS_100")
	for _, tc := range []struct {
		name string
		c    Config
		code string
	}{
		{"unknown key", Config{AccessKeyID: "LTAIother", AccessKeySecret: akSecret, TTSCode: "TTS_100"}, "InvalidAccessKeyId.NotFound"},
		{"wrong secret", Config{AccessKeyID: akID, AccessKeySecret: "wrong-secret-value", TTSCode: "TTS_100"}, "SignatureDoesNotMatch"},
		{"unapproved template", Config{AccessKeyID: akID, AccessKeySecret: akSecret, TTSCode: "TTS_999"}, "isv.TTS_TEMPLATE_ILLEGAL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			c.Provider, c.Endpoint, c.PhoneNumbers = "aliyun", fake.URL(), []string{"13800000000"}
			n := newNotifier(t, &c, nil, &recorder{})
			err := n.Notify(context.Background(), fixture.Notification("A", 1, 10))
			var e *notify.Error
			if !errors.As(err, &e) || e.Class != notify.Config || e.Code != tc.code {
				t.Fatalf("err = %v", err)
			}
			noSecrets(t, err)
		})
	}
}

func TestTencentCallAndCallbackResults(t *testing.T) {
	fake := providertest.NewTencentVoice(t, tcID, tcKey, "1400006666", "4356")
	var mu sync.Mutex
	results := map[string]Result{}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/voice/tencent/", TencentCallbackHandler(cbToken, func(r Result) {
		mu.Lock()
		defer mu.Unlock()
		results[r.CallID] = r
	}))
	cb := httptest.NewServer(mux)
	t.Cleanup(cb.Close)
	fake.CallbackURL = cb.URL + "/api/v1/voice/tencent/" + cbToken
	fake.SetOutcome("+8613900000000", providertest.CallOutcome{Code: "1"})
	fake.SetOutcome("+8613700000000", providertest.CallOutcome{Code: "5", Description: "无人接听"})
	rec := &recorder{}
	n := newNotifier(t, &Config{Provider: "tencent", Endpoint: fake.URL(), SecretID: tcID, SecretKey: tcKey, VoiceSdkAppID: "1400006666", TemplateID: "4356", CallbackToken: cbToken,
		PhoneNumbers: []string{"13800000000", "+8613900000000", "+8613700000000"}}, nil, rec)
	if err := n.Notify(context.Background(), fixture.Notification("LLMHighLatency", 1, 2000)); err != nil {
		t.Fatal(err)
	}
	fake.WaitCallbacks()
	calls := fake.Calls()
	if len(calls) != 3 || calls[0].Phone != "+8613800000000" || calls[0].PlayTimes != 2 || calls[0].Params["2"] != "LLMHighLatency" {
		t.Fatalf("calls = %+v", calls)
	}
	total := 0
	for _, v := range calls[0].Params {
		total += len([]rune(v))
	}
	if total > TencentContentChars {
		t.Errorf("content of %d characters", total)
	}
	placed := rec.all()
	mu.Lock()
	defer mu.Unlock()
	if r := results[placed[0].ID]; !r.Answered || r.Status != "0" || r.Duration != 15*time.Second {
		t.Errorf("answered = %+v", r)
	}
	if r := results[placed[1].ID]; r.Answered || r.Status != "1" || r.Description != "not answered" {
		t.Errorf("not answered = %+v", r)
	}
	if r := results[placed[2].ID]; r.Answered || r.Status != "failure_code=5" || r.Description != "无人接听" {
		t.Errorf("failure = %+v", r)
	}
	if _, err := n.Query(context.Background(), placed[0]); !errors.Is(err, ErrNoQuery) {
		t.Errorf("tencent query: %v", err)
	}
}

func TestTencentCallbackHandlerRefusesStrangers(t *testing.T) {
	called := false
	h := TencentCallbackHandler(cbToken, func(Result) { called = true })
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/api/v1/voice/tencent/wrong-token", `{"voiceprompt_callback":{"callid":"x","result":"0"}}`, 404},
		{"GET", "/api/v1/voice/tencent/" + cbToken, "", 405},
		{"POST", "/api/v1/voice/tencent/" + cbToken, `{"other":1}`, 400},
		{"POST", "/api/v1/voice/tencent/" + cbToken, `not json`, 400},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
		if w.Code != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, w.Code, tc.want)
		}
	}
	if called {
		t.Error("a refused callback reached the recorder")
	}
}

func TestTencentErrorsAndRecipients(t *testing.T) {
	fake := providertest.NewTencentVoice(t, tcID, tcKey, "1400006666", "4356")
	fake.PerHour = 1
	base := Config{Provider: "tencent", Endpoint: fake.URL(), SecretID: tcID, SecretKey: tcKey, VoiceSdkAppID: "1400006666", TemplateID: "4356", PhoneNumbers: []string{"+8613800000000"}}
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		class notify.Class
		code  string
	}{
		{"wrong app", func(c *Config) { c.VoiceSdkAppID = "1400000000" }, notify.Config, "InvalidParameterValue.SdkAppidNotExist"},
		{"wrong template", func(c *Config) { c.TemplateID = "1" }, notify.Config, "FailedOperation.TemplateIncorrectOrUnapproved"},
		{"wrong key", func(c *Config) { c.SecretKey = "not-the-key" }, notify.Config, "AuthFailure.SignatureFailure"},
		{"unknown id", func(c *Config) { c.SecretID = "AKIDnobody" }, notify.Config, "AuthFailure.SecretIdNotFound"},
	} {
		c := base
		tc.edit(&c)
		n := newNotifier(t, &c, nil, &recorder{})
		err := n.Notify(context.Background(), fixture.Notification("A", 1, 10))
		var e *notify.Error
		if !errors.As(err, &e) || e.Class != tc.class || e.Code != tc.code {
			t.Errorf("%s: %v", tc.name, err)
		}
		noSecrets(t, err)
	}
	// Escalation steps call the people on call, not the configured numbers.
	n := newNotifier(t, &base, nil, &recorder{})
	ctx := oncall.WithRecipients(context.Background(), []oncall.Recipient{
		{ID: "ann", Person: oncall.Person{Phone: "13600000000"}}, {ID: "bob", Person: oncall.Person{FeishuOpenID: "ou_bob"}},
	})
	if err := n.Notify(ctx, fixture.Notification("B", 1, 10)); err != nil {
		t.Fatal(err)
	}
	if calls := fake.Calls(); len(calls) != 1 || calls[0].Phone != "+8613600000000" {
		t.Errorf("calls = %+v", calls)
	}
	// Frequency policy of the console: a second call within the hour is refused, and retried later.
	err := n.Notify(ctx, fixture.Notification("C", 1, 10))
	var e *notify.Error
	if !errors.As(err, &e) || e.Class != notify.Retry || e.Code != "LimitExceeded.DeliveryFrequencyLimit" {
		t.Errorf("frequency limit: %v", err)
	}
	nobody := oncall.WithRecipients(context.Background(), []oncall.Recipient{{ID: "bob", Person: oncall.Person{FeishuOpenID: "ou_bob"}}})
	if err := n.Notify(nobody, fixture.Notification("D", 1, 10)); !errors.As(err, &e) || e.Class != notify.Permanent {
		t.Errorf("nobody with a phone: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	f := file(t)
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{}, "receiver.channels.phone.provider: is required"},
		{Config{Provider: "twilio"}, `unknown voice provider "twilio"`},
		{Config{Provider: "aliyun"}, "receiver.channels.phone.tts_code: is required"},
		{Config{Provider: "aliyun", AccessKeyID: "x", AccessKeySecret: "y", TTSCode: "T", PlayTimes: 4}, "receiver.channels.phone.play_times: must be within 1..3"},
		{Config{Provider: "tencent", SecretID: "x", SecretKey: "y", VoiceSdkAppID: "1", TemplateID: "2", CallbackToken: "short"}, "callback_token: must be at least 16"},
		{Config{Provider: "tencent", SecretID: "x", SecretKeyFile: "nope", VoiceSdkAppID: "1", TemplateID: "2"}, "secret_key_file: cannot read secret file"},
		{Config{Provider: "aliyun", AccessKeyID: "x", AccessKeySecret: "y", TTSCode: "T", PhoneNumbers: []string{"call-me"}}, `phone_numbers[0]: "call-me" is not a phone number`},
		{Config{Provider: "aliyun", AccessKeyID: "x", AccessKeySecret: "y", TTSCode: "T", TemplateParams: []Param{{Name: "a", Value: "{{ .Nope"}}}, "template_params[0].value: template does not parse"},
	} {
		err := tc.c.Validate("receiver.channels.phone", f)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("errors %v, want %q", err, tc.want)
		}
	}
	c := Config{Provider: "tencent", SecretKey: tcKey, CallbackToken: cbToken, PhoneNumbers: []string{"13800000000"}}
	s := strings.Join(c.Secrets(), ",")
	if !strings.Contains(s, tcKey) || !strings.Contains(s, cbToken) {
		t.Errorf("secrets = %q", s)
	}
	if c.Target() != "voice tencent [138****0000]" {
		t.Errorf("target = %q", c.Target())
	}
}
