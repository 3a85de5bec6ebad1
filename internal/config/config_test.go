package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSpecificationFileLoadsUnchanged(t *testing.T) {
	f, err := Load("testdata/spec.yml")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if got := f.Metrics.Interval.D(); got != 10*time.Second {
		t.Errorf("interval = %s, want 10s", got)
	}
	if got := strings.Join(f.Metrics.Endpoints, ","); got != "/v1/generate,/v1/chat/completions" {
		t.Errorf("endpoints = %s", got)
	}
	if f.AlertRules.QPSThreshold != 5000 || f.AlertRules.ErrorRate != 0.05 || f.AlertRules.Cooldown.D() != 300*time.Second {
		t.Errorf("alert_rules = %+v", f.AlertRules)
	}
}

func TestBadInputNamesFileLineAndKey(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"unknown key", "metrics:\n  interval: 10s\n  intervall: 5s\n", []string{"bad.yml", "line 3", "intervall"}},
		{"bad duration", "metrics:\n  interval: ten\n", []string{"bad.yml", "line 2", "ten"}},
		{"ratio out of range", "alert_rules:\n  error_rate: 5\n", []string{"bad.yml:2", "alert_rules.error_rate", "[0, 1]"}},
		{"route without slash", "metrics:\n  endpoints:\n    - /v1/a\n    - v1/b\n", []string{"bad.yml:4", "metrics.endpoints[1]", "v1/b"}},
		{"unknown section", "exporterr: {}\n", []string{"bad.yml", "line 1", "exporterr"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.body), "bad.yml")
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

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2")
	for _, out := range []string{s.String(), fmt.Sprintf("%v %s %+v %#v", s, s, s, s)} {
		if strings.Contains(out, "hunter2") {
			t.Fatalf("secret leaked: %q", out)
		}
	}
	b, err := s.MarshalJSON()
	if err != nil || strings.Contains(string(b), "hunter2") {
		t.Fatalf("secret leaked in JSON: %s %v", b, err)
	}
}

func TestResolveSecretFromFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &File{path: cfg}
	got, err := f.ResolveSecret("receiver.x.password", "", "pw")
	if err != nil || got.Value() != "s3cret" {
		t.Fatalf("got %q, %v", got.Value(), err)
	}
	if _, err := f.ResolveSecret("receiver.x.password", "a", "pw"); err == nil {
		t.Fatal("both inline and file must be rejected")
	}
	_, err = f.ResolveSecret("receiver.x.password", "", "missing")
	if err == nil || !strings.Contains(err.Error(), "password_file") {
		t.Fatalf("missing file error should name the key: %v", err)
	}
}
