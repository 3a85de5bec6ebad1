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
