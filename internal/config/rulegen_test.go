package config

import (
	"strings"
	"testing"
	"time"
)

func TestRulegenDefaultsAreValid(t *testing.T) {
	f, err := Parse([]byte("rulegen: {}\n"), "ok.yml")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	r := f.Rulegen
	if r.Mode != ModeSeries || r.History.D() != 6*7*24*time.Hour || r.Step.D() != time.Minute {
		t.Errorf("defaults = mode %q history %s step %s", r.Mode, r.History, r.Step)
	}
	if !r.Enabled("latency_p95") {
		t.Error("SLIs must be enabled by default")
	}
}

func TestRulegenFullSection(t *testing.T) {
	body := `
rulegen:
  prometheus:
    url: https://thanos.example:10902
    basic_auth:
      username: rulegen
      password: hunter2
    tls_config:
      insecure_skip_verify: true
    chunk_size: 12h
    parallelism: 2
    timeout: 30s
    retries: 5
  history: 2w
  step: 5m
  refit_interval: 30m
  mode: literal
  k: 2.5
  min_traffic: 1
  max_series: 50
  incident_windows:
    - {start: 2026-11-01T10:00:00Z, end: 2026-11-01T12:00:00Z}
  slis:
    ttft_p95: {enabled: false}
    latency_p95: {static_upper: 30}
  output:
    rule_dir: /etc/prometheus/rules.d
    reload_url: http://127.0.0.1:9090/-/reload
    prometheusrule: {path: /tmp/pr.yml, namespace: monitoring, labels: {release: kps}}
    mimir_ruler: {url: http://mimir:8080, tenant: team-a, namespace: autoglm}
`
	f, err := Parse([]byte(body), "full.yml")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	r := f.Rulegen
	if r.Prometheus.HTTP.BasicAuth == nil || string(r.Prometheus.HTTP.BasicAuth.Password) != "hunter2" {
		t.Errorf("basic auth not decoded or not redacted: %+v", r.Prometheus.HTTP.BasicAuth)
	}
	if !r.Prometheus.HTTP.TLSConfig.InsecureSkipVerify || r.Prometheus.ChunkSize.D() != 12*time.Hour || r.Prometheus.Retries != 5 {
		t.Errorf("prometheus = %+v", r.Prometheus)
	}
	if r.Mode != ModeLiteral || r.K != 2.5 || r.MaxSeries != 50 || r.Step.D() != 5*time.Minute {
		t.Errorf("rulegen = %+v", r)
	}
	if r.Enabled("ttft_p95") || !r.Enabled("latency_p95") || *r.SLIs["latency_p95"].StaticUpper != 30 {
		t.Errorf("slis = %+v", r.SLIs)
	}
	if got := r.IncidentWindows[0].End.Sub(r.IncidentWindows[0].Start); got != 2*time.Hour {
		t.Errorf("incident window = %s", got)
	}
	if r.Output.MimirRuler.Tenant != "team-a" || r.Output.PrometheusRule.Labels["release"] != "kps" {
		t.Errorf("output = %+v", r.Output)
	}
}

func TestRulegenBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"unknown key under inline http client", "rulegen:\n  prometheus:\n    url: http://p:9090\n    basic_auht: {}\n", []string{"line 4", "basic_auht"}},
		{"bad mode", "rulegen:\n  mode: magic\n", []string{"bad.yml:2", "rulegen.mode", "magic"}},
		{"url without scheme", "rulegen:\n  prometheus:\n    url: prometheus:9090\n", []string{"bad.yml:3", "rulegen.prometheus.url"}},
		{"credentials in url", "rulegen:\n  prometheus:\n    url: http://u:pw@p:9090\n", []string{"rulegen.prometheus.url", "credentials"}},
		{"two auth methods", "rulegen:\n  prometheus:\n    url: http://p:9090\n    bearer_token: x\n    basic_auth: {username: a, password: b}\n", []string{"rulegen.prometheus", "HTTP client"}},
		{"zero parallelism", "rulegen:\n  prometheus:\n    parallelism: 0\n", []string{"bad.yml:3", "rulegen.prometheus.parallelism"}},
		{"bad duration", "rulegen:\n  history: six weeks\n", []string{"line 2", "six weeks"}},
		{"chunk below step", "rulegen:\n  step: 5m\n  prometheus:\n    chunk_size: 1m\n", []string{"bad.yml:4", "chunk_size", "at least one step"}},
		{"k out of range", "rulegen:\n  k: 0\n", []string{"bad.yml:2", "rulegen.k"}},
		{"unknown sli", "rulegen:\n  slis:\n    latency_p42: {enabled: true}\n", []string{"bad.yml:3", "rulegen.slis.latency_p42", "known:"}},
		{"ratio static above 1", "rulegen:\n  slis:\n    error_ratio:\n      static_upper: 5\n", []string{"bad.yml:4", "static_upper", "[0, 1]"}},
		{"incident window reversed", "rulegen:\n  incident_windows:\n    - start: 2026-11-02T00:00:00Z\n      end: 2026-11-01T00:00:00Z\n", []string{"bad.yml:4", "incident_windows[0].end"}},
		{"reload without dir", "rulegen:\n  output:\n    reload_url: http://p:9090/-/reload\n", []string{"bad.yml:3", "rule_dir"}},
		{"prometheusrule without namespace", "rulegen:\n  output:\n    prometheusrule:\n      path: /tmp/x.yml\n", []string{"prometheusrule.namespace"}},
		{"mimir without namespace", "rulegen:\n  output:\n    mimir_ruler:\n      url: http://m:8080\n", []string{"mimir_ruler.namespace"}},
		{"kubernetes bad kind", "rulegen:\n  output:\n    kubernetes:\n      kind: secret\n", []string{"bad.yml:4", "rulegen.output.kubernetes.kind", "secret"}},
		{"kubernetes keys without kind", "rulegen:\n  output:\n    kubernetes:\n      name: x\n", []string{"rulegen.output.kubernetes.kind", "must be set"}},
		{"kubernetes bad name", "rulegen:\n  output:\n    kubernetes:\n      kind: configmap\n      name: Not_A_Name\n", []string{"bad.yml:5", "rulegen.output.kubernetes.name"}},
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

func TestRulegenErrorsNeverShowSecrets(t *testing.T) {
	body := "rulegen:\n  mode: bad\n  prometheus:\n    url: http://p:9090\n    bearer_token: s3cr3t-token\n    basic_auth: {username: a, password: s3cr3t-pw}\n"
	_, err := Parse([]byte(body), "bad.yml")
	if err == nil {
		t.Fatal("expected an error")
	}
	for _, s := range []string{"s3cr3t-token", "s3cr3t-pw"} {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("secret leaked: %v", err)
		}
	}
}
