package redact

import (
	"net/url"
	"strings"
	"testing"
)

func TestRedactorScrubsKnownSecretsAndPatterns(t *testing.T) {
	secret := "SEC0123456789abcdef+/="
	r := New(secret, "ab")
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
	if got := (*Redactor)(nil).String("https://h/p?key=K1234"); got != "https://h/p?key=<secret>" {
		t.Errorf("a nil redactor must still apply the patterns: %q", got)
	}
}

// Providers echo phone numbers in error bodies; they are masked wherever
// the redactor runs (logs, audit records, error answers).
func TestPhonesAreMasked(t *testing.T) {
	for in, want := range map[string]string{
		`gateway answered HTTP 400: {"error":"invalid number 13800001234"}`:    `gateway answered HTTP 400: {"error":"invalid number 138****1234"}`,
		"PhoneNumber +8613912345678 LimitExceeded":                             "PhoneNumber +86139****5678 LimitExceeded",
		"numbers 13800001234,13900005678 and 008615012345678":                  "numbers 138****1234,139****5678 and 0086150****5678",
		"+14155550123: undeliverable":                                          "+141****0123: undeliverable",
		"PhoneNumbers=13800001234&SignName=x":                                  "PhoneNumbers=138****1234&SignName=x",
		"ts 1700000000000, template SMS_13800001234, request 12345678901 done": "ts 1700000000000, template SMS_13800001234, request 12345678901 done",
	} {
		if got := New().String(in); got != want {
			t.Errorf("String(%q)\n = %q\nwant %q", in, got, want)
		}
	}
}
