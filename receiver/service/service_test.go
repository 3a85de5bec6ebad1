package service

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/open-autoglm/autoglm-monitor/receiver/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

const body = `{"version":"4","groupKey":"g1","status":"firing","receiver":"x","commonLabels":{"alertname":"SvcTest","severity":"critical"},
"alerts":[{"status":"firing","labels":{"alertname":"SvcTest","severity":"critical"},"annotations":{},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"01"}]}`

func cfg(t *testing.T, dir, channels string) *config.Config {
	t.Helper()
	f, err := config.Parse([]byte(fmt.Sprintf("receiver:\n  storage: {path: %s}\n  channels:\n%s  routes:\n    - channels: [console]\n",
		filepath.Join(dir, "store"), channels)), filepath.Join(dir, "c.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestTemplateFailureIsAuditedAndDeliveredWithBuiltin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		out := filepath.Join(dir, "out.jsonl")
		good := fmt.Sprintf("    console: {type: file, path: %s, templates: {title: '{{ .NoSuchField.X }}'}}\n", out)
		s, err := New(cfg(t, dir, good), Options{Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		s.Register(mux)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()
		if err := s.Ready(); err != nil {
			t.Fatal(err)
		}

		rec := httptest.NewRecorder()
		s.Protect(mux).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewBufferString(body)))
		if rec.Code != 200 {
			t.Fatalf("webhook = %d %s", rec.Code, rec.Body)
		}
		synctest.Wait()
		recs, _, _ := s.store.Audit(store.Query{Channel: "console"})
		outcomes := map[string]bool{}
		for _, r := range recs {
			outcomes[r.Outcome] = true
		}
		if !outcomes[store.OutcomeTemplating] || !outcomes[store.OutcomeDelivered] {
			t.Fatalf("want a template_error and a delivery with the built-in template, got %+v", recs)
		}
		b, err := os.ReadFile(out)
		if err != nil || !strings.Contains(string(b), "SvcTest") {
			t.Fatalf("notification not written with the built-in template: %s %v", b, err)
		}

		if err := s.Reload(cfg(t, dir, good)); err != nil {
			t.Fatalf("reload of a good configuration: %v", err)
		}
	})
}
