package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/rulegen/rules"
)

func set(t *testing.T, errorRate float64) *rules.Set {
	t.Helper()
	s, err := rules.Build(rules.Input{
		Mode: rules.ModeLiteral, ErrorRate: errorRate, QPSThreshold: 100, Cooldown: time.Minute, For: time.Minute,
		ConfirmWindow: time.Hour, MaxSeries: 10, ExporterJob: "e", RefitInterval: time.Hour,
		SLIs: []rules.SLI{{SLI: sli.SLIs()[1]}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeProm is a reload endpoint plus the /metrics it verifies against.
type fakeProm struct {
	mu      sync.Mutex
	reloads int
	status  int
	ok      int
	stamp   time.Time
}

func (f *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/-/reload":
		if r.Method != http.MethodPost {
			http.Error(w, "method", http.StatusMethodNotAllowed)
			return
		}
		f.reloads++
		if f.status != 0 {
			http.Error(w, "failed to reload config: bad rule file", f.status)
			return
		}
		f.stamp = time.Now()
	case "/metrics":
		fmt.Fprintf(w, "# TYPE prometheus_config_last_reload_successful gauge\nprometheus_config_last_reload_successful %d\n", f.ok)
		fmt.Fprintf(w, "prometheus_config_last_reload_success_timestamp_seconds %g\n", float64(f.stamp.Unix()))
	default:
		http.NotFound(w, r)
	}
}

func TestDirWritesOnlyChangesAndReloadsOnce(t *testing.T) {
	prom := &fakeProm{ok: 1}
	srv := httptest.NewServer(prom)
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "rules")
	d := &Dir{Path: dir, ReloadURL: srv.URL + "/-/reload"}
	ctx := context.Background()

	res, err := d.Deliver(ctx, set(t, 0.05))
	if err != nil || res.Written != 2 || !res.Reloaded || prom.reloads != 1 {
		t.Fatalf("first delivery: %+v, %v, reloads %d", res, err, prom.reloads)
	}
	for _, f := range []string{rules.RecordingFile, rules.AlertsFile, rules.InhibitFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	res, err = d.Deliver(ctx, set(t, 0.05))
	if err != nil || res.Written != 0 || res.Reloaded || prom.reloads != 1 {
		t.Fatalf("unchanged delivery must neither write nor reload: %+v, %v, reloads %d", res, err, prom.reloads)
	}
	res, err = d.Deliver(ctx, set(t, 0.07))
	if err != nil || res.Written != 1 || !res.Reloaded || prom.reloads != 2 {
		t.Fatalf("changed delivery: %+v, %v, reloads %d", res, err, prom.reloads)
	}
	b, err := os.ReadFile(filepath.Join(dir, rules.AlertsFile))
	if err != nil || !strings.Contains(string(b), "> 0.07") {
		t.Fatalf("alerts file not updated: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestDirReloadFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		prom *fakeProm
		want string
	}{
		{"reload endpoint fails", &fakeProm{ok: 1, status: http.StatusInternalServerError}, "500"},
		{"prometheus rejected the config", &fakeProm{ok: 0}, "last_reload_successful is 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.prom)
			defer srv.Close()
			dir := t.TempDir()
			d := &Dir{Path: dir, ReloadURL: srv.URL + "/-/reload"}
			_, err := d.Deliver(context.Background(), set(t, 0.05))
			var re *ReloadError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a ReloadError mentioning %q", err, tc.want)
			}
			// The files are valid and stay; the next delivery retries the reload.
			for _, f := range []string{rules.RecordingFile, rules.AlertsFile} {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil || rules.Validate(b) != nil {
					t.Fatalf("%s missing or invalid after a failed reload: %v", f, err)
				}
			}
			tc.prom.mu.Lock()
			tc.prom.status, tc.prom.ok = 0, 1
			tc.prom.mu.Unlock()
			res, err := d.Deliver(context.Background(), set(t, 0.05))
			if err != nil || !res.Reloaded || res.Written != 0 {
				t.Fatalf("retry after recovery: %+v, %v", res, err)
			}
		})
	}
}

func TestDirUnwritableKeepsOldFiles(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	dir := t.TempDir()
	d := &Dir{Path: dir}
	if _, err := d.Deliver(context.Background(), set(t, 0.05)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o755)
	if _, err := d.Deliver(context.Background(), set(t, 0.07)); err == nil {
		t.Fatal("write into a read-only directory succeeded")
	}
	b, _ := os.ReadFile(filepath.Join(dir, rules.AlertsFile))
	if !strings.Contains(string(b), "> 0.05") {
		t.Fatal("old rules lost")
	}
}

func TestWriteAtomicNeverLeavesAPartialFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.yml")
	if err := WriteAtomic(p, []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := WriteAtomic(filepath.Join(dir, "missing", "f.yml"), []byte("x")); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	if err := WriteAtomic(p, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Fatalf("content = %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want 1", len(entries))
	}
}

func TestMimirRuler(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := rules.Validate([]byte("groups:\n" + indent(string(b)))); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("X-Scope-OrgID")+" "+r.Header.Get("Content-Type"))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	m := &MimirRuler{URL: srv.URL, Tenant: "team-a", Namespace: "autoglm"}
	res, err := m.Deliver(context.Background(), set(t, 0.05))
	if err != nil || res.Written != 3 {
		t.Fatalf("push: %+v, %v", res, err)
	}
	if want := "POST /prometheus/config/v1/rules/autoglm team-a application/yaml"; got[0] != want {
		t.Fatalf("request = %q, want %q", got[0], want)
	}
	res, err = m.Deliver(context.Background(), set(t, 0.07))
	if err != nil || res.Written != 1 {
		t.Fatalf("only the changed group must be pushed again: %+v, %v", res, err)
	}
	bad := &MimirRuler{URL: srv.URL + "/nowhere", Namespace: "x", Client: &http.Client{}}
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "per-tenant rule group limit reached", http.StatusBadRequest)
	}))
	defer srv2.Close()
	bad.URL = srv2.URL
	if _, err := bad.Deliver(context.Background(), set(t, 0.05)); err == nil || !strings.Contains(err.Error(), "limit reached") {
		t.Fatalf("err = %v", err)
	}
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if i == 0 {
			lines[i] = "- " + l
			continue
		}
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestPrometheusRuleFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k8s", "rules.yml")
	pr := &PrometheusRuleFile{Path: p, Namespace: "monitoring"}
	if res, err := pr.Deliver(context.Background(), set(t, 0.05)); err != nil || res.Written != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	if res, err := pr.Deliver(context.Background(), set(t, 0.05)); err != nil || res.Written != 0 {
		t.Fatalf("unchanged object rewritten: %+v %v", res, err)
	}
	b, _ := os.ReadFile(p)
	if !strings.Contains(string(b), "kind: PrometheusRule") || !strings.Contains(string(b), "namespace: monitoring") {
		t.Fatalf("object:\n%s", b)
	}
}
