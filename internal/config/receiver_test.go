package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const receiverBase = `receiver:
  storage: {path: /tmp/r}
  channels:
    a: {type: file}
    b: {type: file}
`

func TestReceiverDefaultsAndKeys(t *testing.T) {
	f, err := Parse([]byte(receiverBase+`  routes:
    - name: pager
      matchers: ['severity="critical"', 'route=~"/v1/.*"']
      channels: [a]
      fallback: [b]
      escalate_after: 2m
      continue: true
    - matchers: ['{severity="warning", team!="x"}']
      channels: [b]
  default_route: {channels: [a]}
  retry: {initial_backoff: 2s, max_backoff: 1m, jitter: 0.1, expire_after: 30m, escalate_after_failures: 2}
  webhook: {max_body_bytes: 1024}
  priorities: {page: P1}
`), "r.yml")
	if err != nil {
		t.Fatal(err)
	}
	r := f.Receiver
	if r.Storage.Path != "/tmp/r" || r.Storage.DedupWindow.D() != time.Hour {
		t.Errorf("storage = %+v", r.Storage)
	}
	if len(r.Routes) != 2 || r.Routes[0].EscalateAfter.D() != 2*time.Minute || !r.Routes[0].Continue {
		t.Errorf("routes = %+v", r.Routes)
	}
	ms, err := r.Routes[0].ParsedMatchers()
	if err != nil || len(ms) != 2 || ms[1].Name != "route" {
		t.Errorf("matchers = %v, %v", ms, err)
	}
	ms, err = r.Routes[1].ParsedMatchers()
	if err != nil || len(ms) != 2 {
		t.Errorf("braced matchers = %v, %v", ms, err)
	}
	if r.Retry.InitialBackoff.D() != 2*time.Second || r.Retry.EscalateAfterFailures != 2 || r.Webhook.MaxBodyBytes != 1024 {
		t.Errorf("retry/webhook = %+v %+v", r.Retry, r.Webhook)
	}
	for sev, want := range map[string]string{"critical": "P1", "warning": "P2", "info": "P3", "": "P3", "page": "P1"} {
		if got := r.PriorityOf(sev); got != want {
			t.Errorf("PriorityOf(%q) = %s, want %s", sev, got, want)
		}
	}
	if r.Routes[0].RouteName(0) != "pager" || r.Routes[1].RouteName(1) != "routes[1]" || r.DefaultRoute.RouteName(-1) != "default" {
		t.Errorf("route names wrong")
	}
}

func TestReceiverBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"bad matcher", "  routes:\n    - matchers: ['severity=~\"(\"']\n      channels: [a]\n", []string{"r.yml:7", "receiver.routes[0].matchers[0]", "invalid matcher"}},
		{"garbage matcher", "  routes:\n    - matchers: ['not a matcher']\n      channels: [a]\n", []string{"r.yml:7", "receiver.routes[0].matchers[0]"}},
		{"unknown channel", "  routes:\n    - channels: [a, nope]\n", []string{"r.yml:7", "receiver.routes[0].channels[1]", "nope"}},
		{"unknown fallback", "  routes:\n    - channels: [a]\n      fallback: [zz]\n", []string{"receiver.routes[0].fallback[0]", "zz"}},
		{"no channels", "  routes:\n    - matchers: ['a=b']\n", []string{"receiver.routes[0].channels", "at least one"}},
		{"negative escalate", "  routes:\n    - channels: [a]\n      fallback: [b]\n      escalate_after: -1m\n", []string{"r.yml", "line 9", "-1m"}},
		{"escalate without fallback", "  routes:\n    - channels: [a]\n      escalate_after: 1m\n", []string{"r.yml:8", "no fallback"}},
		{"default with matchers", "  default_route: {matchers: ['a=b'], channels: [a]}\n", []string{"receiver.default_route.matchers", "cannot have matchers"}},
		{"bad priority", "  priorities: {critical: P0}\n", []string{"r.yml:6", "receiver.priorities.critical", "P0"}},
		{"bad jitter", "  retry: {jitter: 1.5}\n", []string{"receiver.retry.jitter"}},
		{"max below initial", "  retry: {initial_backoff: 1m, max_backoff: 1s}\n", []string{"receiver.retry.max_backoff"}},
		{"zero body", "  webhook: {max_body_bytes: 0}\n", []string{"receiver.webhook.max_body_bytes"}},
		{"unknown key", "  retyr: {}\n", []string{"r.yml", "retyr"}},
		{"bad external url", "  external_url: foo\n", []string{"receiver.external_url"}},
		{"token twice", "  webhook: {auth_token: x, auth_token_file: y}\n", []string{"auth_token", "not both"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(receiverBase+tc.body), "r.yml")
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

func TestReceiverAuthTokenFileNeverInErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tok"), []byte("tok-SECRET-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(cfg, []byte(receiverBase+"  webhook: {auth_token_file: tok}\n  retry: {jitter: 9}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(cfg)
	if err == nil {
		t.Fatal("expected jitter error")
	}
	if strings.Contains(err.Error(), "tok-SECRET-1") {
		t.Fatalf("secret in error: %v", err)
	}
	if err := os.WriteFile(cfg, []byte(receiverBase+"  webhook: {auth_token_file: tok}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err = Load(cfg); err != nil {
		t.Fatal(err)
	}
	tok, err := f.ResolveSecret("receiver.webhook.auth_token", f.Receiver.Webhook.AuthToken, f.Receiver.Webhook.AuthTokenFile)
	if err != nil || tok.Value() != "tok-SECRET-1" {
		t.Fatalf("token = %v, %v", tok, err)
	}
}

// receiverSpec (the specification's block) is shared with channels_test.go.
func TestReceiverSpecificationRoutesLoad(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "smtp")
	if err := os.WriteFile(pw, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Parse([]byte(strings.Replace(receiverSpec, "/run/secrets/smtp", pw, 1)), "spec.yml")
	if err != nil {
		t.Fatal(err)
	}
	r := f.Receiver
	if r.Storage.Path != "/var/lib/autoglm-receiver" || len(r.Channels) != 5 || len(r.Routes) != 2 {
		t.Fatalf("receiver = %+v", r)
	}
	if got := r.Routes[0]; got.EscalateAfter.D() != 2*time.Minute || got.Fallback[0] != "oncall-mail" || got.Channels[0] != "oncall-sms" {
		t.Errorf("route 0 = %+v", got)
	}
	if ms, err := r.Routes[1].ParsedMatchers(); err != nil || ms[0].Value != "warning" {
		t.Errorf("route 1 matchers = %v %v", ms, err)
	}
}
