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

// routed completes a section that needs no routes of its own: a store and a default route.
const routed = "  storage: {path: /tmp/r}\n  default_route: {channels: [x]}\n"

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
	r := f
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
	if err := os.WriteFile(cfg, []byte(receiverBase+"  webhook: {auth_token_file: tok}\n  retry: {jitter: 9}\n  default_route: {channels: [a]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(cfg)
	if err == nil {
		t.Fatal("expected jitter error")
	}
	if strings.Contains(err.Error(), "tok-SECRET-1") {
		t.Fatalf("secret in error: %v", err)
	}
	if err := os.WriteFile(cfg, []byte(receiverBase+"  webhook: {auth_token_file: tok}\n  default_route: {channels: [a]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tok := f.AuthToken(); tok != "tok-SECRET-1" {
		t.Fatalf("token = %q", tok)
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
	r := f
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

// Authentication fails closed: a token file that is empty or unreadable is a
// load error, never a receiver without authentication.
func TestAuthTokenFileFailsClosed(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"empty": "", "blank": " \n\t\n"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Parse([]byte(receiverBase+"  webhook: {auth_token_file: "+p+"}\n"), "r.yml")
		if err == nil || !strings.Contains(err.Error(), "r.yml:6: receiver.webhook.auth_token_file") || !strings.Contains(err.Error(), "is empty") {
			t.Errorf("%s token file: %v", name, err)
		}
	}
	_, err := Parse([]byte(receiverBase+"  webhook: {auth_token_file: "+filepath.Join(dir, "missing")+"}\n"), "r.yml")
	if err == nil || !strings.Contains(err.Error(), "receiver.webhook.auth_token_file") {
		t.Errorf("missing token file: %v", err)
	}
	_, err = Parse([]byte(receiverBase+"  webhook: {auth_token: \"two words\"}\n"), "r.yml")
	if err == nil || !strings.Contains(err.Error(), "whitespace") || strings.Contains(err.Error(), "two words") {
		t.Errorf("token with a space: %v", err)
	}
	c, err := Parse([]byte(receiverBase+"  default_route: {channels: [a]}\n"), "r.yml")
	if err != nil || c.AuthToken() != "" {
		t.Errorf("no token configured: %q %v", c.AuthToken(), err)
	}
}

// Channel keys, including Prometheus' http_config and the SMTP tls_config,
// are decoded strictly from the shared file with file, line and key.
func TestChannelHTTPSettingsAreStrict(t *testing.T) {
	ok := receiverBase + `    hook: {type: webhook, url: "https://h/x", timeout: 3s, http_config: {proxy_url: "http://127.0.0.1:3128", tls_config: {insecure_skip_verify: true}, follow_redirects: false}}
    mail: {type: email, smtp: {host: h, tls_config: {server_name: relay.internal}}, from: a@example.com, to: [b@example.com]}
  default_route: {channels: [a]}
`
	c, err := Parse([]byte(ok), "r.yml")
	if err != nil {
		t.Fatal(err)
	}
	h := c.Channels["hook"].Webhook
	if h.HTTP.Timeout.D() != 3*time.Second || h.HTTP.HTTPConfig.ProxyURL.String() != "http://127.0.0.1:3128" || !h.HTTP.HTTPConfig.TLSConfig.InsecureSkipVerify || h.HTTP.HTTPConfig.FollowRedirects {
		t.Errorf("webhook http settings = %+v", h.HTTP)
	}
	if d := c.Channels["a"].File; d == nil {
		t.Error("file channel not decoded")
	}
	if c.Channels["mail"].Email.SMTP.TLSConfig.ServerName != "relay.internal" {
		t.Error("smtp tls_config not decoded")
	}
	// Without http_config, Prometheus' defaults apply.
	c, err = Parse([]byte(receiverBase+"    hook: {type: webhook, url: \"https://h/x\"}\n  default_route: {channels: [a]}\n"), "r.yml")
	if err != nil || !c.Channels["hook"].Webhook.HTTP.HTTPConfig.FollowRedirects || !c.Channels["hook"].Webhook.HTTP.HTTPConfig.EnableHTTP2 {
		t.Errorf("defaults not applied: %v", err)
	}
	for _, tc := range []struct{ body, want string }{
		{"    hook: {type: webhook, url: \"https://h/x\", http_config: {proxy_ulr: \"http://p\"}}\n", "line 6: field proxy_ulr not found"},
		{"    mail: {type: email, smtp: {host: h, tls_config: {ca_fil: x}}, from: a@example.com, to: [b@example.com]}\n", "line 6: field ca_fil not found"},
		{"    hook: {type: webhook, url: \"https://h/x\", http_config: {basic_auth: {username: u, password: p, password_file: f}}}\n", "r.yml:6: receiver.channels.hook.http_config"},
		{"    empty:\n", "receiver.channels.empty: is empty"},
	} {
		_, err := Parse([]byte(receiverBase+tc.body), "r.yml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.body, err, tc.want)
		}
	}
}

func TestBearerTokenAndBasicAuthCannotBeCombined(t *testing.T) {
	dir := t.TempDir()
	web := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(web, []byte("basic_auth_users:\n  am: $2y$10$abcdefghijklmnopqrstuuJ3x6dWcBYb2sM7VX1p9e0W0bqk5C7Gi\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tls := filepath.Join(dir, "tls.yml")
	if err := os.WriteFile(tls, []byte("tls_server_config: {cert_file: c, key_file: k}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	with, err := Parse([]byte(receiverBase+"  webhook: {auth_token: tok-123}\n  default_route: {channels: [a]}\n"), "r.yml")
	if err != nil {
		t.Fatal(err)
	}
	without, err := Parse([]byte(receiverBase+"  default_route: {channels: [a]}\n"), "r.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := with.CheckWebConfig(web); err == nil || !strings.Contains(err.Error(), "Authorization header") {
		t.Errorf("token + basic auth: %v", err)
	}
	for _, ok := range []error{with.CheckWebConfig(tls), with.CheckWebConfig(""), without.CheckWebConfig(web)} {
		if ok != nil {
			t.Errorf("unexpected error: %v", ok)
		}
	}
}

// A receiver that would answer every notification 200 and deliver none
// does not load: no channels, no routes, or no explicit store.
func TestReceiverThatCannotDeliverIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"empty file", "", []string{"receiver.channels", "no channel is configured", "receiver.storage.path", "is required"}},
		{"empty section", "receiver: {}\n", []string{"receiver.channels", "receiver.routes", "no route and no default_route"}},
		{"no channels", "receiver:\n  storage: {path: /tmp/r}\n  channels: {}\n", []string{"r.yml:3: receiver.channels", "deliver none"}},
		{"no routes", "receiver:\n  storage: {path: /tmp/r}\n  channels: {a: {type: file}}\n", []string{"receiver.routes", "dropped as unrouted"}},
		{"no store", "receiver:\n  channels: {a: {type: file}}\n  default_route: {channels: [a]}\n", []string{"receiver.storage.path", "/var/lib/autoglm-receiver", "postgres.dsn"}},
		{"both stores", "receiver:\n  storage: {path: /tmp/r, postgres: {dsn: \"postgres://u@h/db\"}}\n  channels: {a: {type: file}}\n  default_route: {channels: [a]}\n", []string{"receiver.storage.postgres", "not both"}},
		{"bad dsn", "receiver:\n  storage: {postgres: {dsn: \"postgres://u:pw-SECRET-9@h:notaport/db\"}}\n  channels: {a: {type: file}}\n  default_route: {channels: [a]}\n", []string{"receiver.storage.postgres.dsn", "not a valid"}},
		{"short lease", "receiver:\n  storage: {postgres: {dsn: \"postgres://u@h/db\", lease: 1s}}\n  channels: {a: {type: file}}\n  default_route: {channels: [a]}\n", []string{"receiver.storage.postgres.lease", "[3s, 10m]"}},
		{"missing password file", "receiver:\n  storage: {postgres: {dsn: \"postgres://u@h/db\", password_file: /nonexistent/pg}}\n  channels: {a: {type: file}}\n  default_route: {channels: [a]}\n", []string{"receiver.storage.postgres.password_file", "/nonexistent/pg"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.body), "r.yml")
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "pw-SECRET-9") {
				t.Errorf("the DSN password is in the error: %v", err)
			}
		})
	}
}

// A relative store path is relative to the configuration file, not to the
// directory the binary was started in; the PostgreSQL password file is
// read at load and every DSN secret is redacted.
func TestStoragePathsAndPostgresSecrets(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(cfg, []byte("receiver:\n  storage: {path: data/receiver}\n  channels: {a: {type: file}}\n  default_route: {channels: [a]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "data", "receiver"); c.Storage.Path != want {
		t.Errorf("storage path = %s, want %s", c.Storage.Path, want)
	}
	if err := os.WriteFile(filepath.Join(dir, "pgpass"), []byte("pg-SECRET-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("receiver:\n  storage: {postgres: {dsn: \"postgres://autoglm:dsn-SECRET@127.0.0.1:5432/autoglm\", password_file: pgpass}}\n  channels: {a: {type: file}}\n  default_route: {channels: [a]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pg := c.Storage.Postgres
	if pg.Password.Value() != "pg-SECRET-pass" || pg.Lease.D() != DefaultLease {
		t.Errorf("postgres = %+v", pg)
	}
	secrets := strings.Join(c.Secrets(), "\n")
	for _, s := range []string{"pg-SECRET-pass", "dsn-SECRET", "postgres://autoglm:dsn-SECRET@127.0.0.1:5432/autoglm"} {
		if !strings.Contains(secrets, s) {
			t.Errorf("Secrets() lacks %q", s)
		}
	}
}
