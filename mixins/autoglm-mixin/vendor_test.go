package mixin

import (
	"encoding/json"
	"github.com/open-autoglm/autoglm-monitor/dashboards"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonnet "github.com/google/go-jsonnet"

	"github.com/open-autoglm/autoglm-monitor/dashboards/lint"
)

// Users import the mixin from vendor/ (jsonnet -J vendor) and override
// _config; that must work with nothing but the mixin directory.
func TestImportFromVendorWithOverrides(t *testing.T) {
	vendor := filepath.Join(t.TempDir(), "vendor")
	dst := filepath.Join(vendor, "autoglm-mixin")
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ext := filepath.Ext(p)
		if d.IsDir() || (ext != ".jsonnet" && ext != ".libsonnet" && ext != ".json") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(p)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, p), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	vm := jsonnet.MakeVM()
	vm.Importer(&jsonnet.FileImporter{JPaths: []string{vendor}})
	out, err := vm.EvaluateAnonymousSnippet("mine.jsonnet", `
local mixin = (import 'autoglm-mixin/mixin.libsonnet') + {
  _config+:: { exporterSelector: 'job="gw"', qpsThreshold: 1234, cooldownSeconds: 60 },
};
{ alerts: mixin.prometheusAlerts, rules: mixin.prometheusRules, dashboards: std.objectFields(mixin.grafanaDashboards) }`)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Alerts struct {
			Groups []struct {
				Rules []struct {
					Alert         string `json:"alert"`
					Expr          string `json:"expr"`
					KeepFiringFor string `json:"keep_firing_for"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"alerts"`
		Dashboards []string `json:"dashboards"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if files, err := dashboards.Generate(); err != nil || len(got.Dashboards) != len(files) {
		t.Errorf("got dashboards %v, the generator makes %d (%v)", got.Dashboards, len(files), err)
	}
	var qps bool
	for _, g := range got.Alerts.Groups {
		for _, r := range g.Rules {
			if _, err := lint.Parse(r.Expr); err != nil {
				t.Errorf("%s: %v", r.Alert, err)
			}
			if r.Alert == "AutoGLMHighQPS" {
				qps = true
				if !strings.Contains(r.Expr, `{job="gw"} > 1234`) || r.KeepFiringFor != "60s" {
					t.Errorf("overrides not applied: %s keep_firing_for %s", r.Expr, r.KeepFiringFor)
				}
			}
		}
	}
	if !qps {
		t.Fatal("AutoGLMHighQPS not rendered")
	}

	out, err = vm.EvaluateAnonymousSnippet("off.jsonnet", `
local mixin = (import 'autoglm-mixin/mixin.libsonnet') + { _config+:: { baselineAlerts: false } };
[r.alert for g in mixin.prometheusAlerts.groups for r in g.rules]`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := json.Unmarshal([]byte(out), &names); err != nil {
		t.Fatal(err)
	}
	if len(names) < 15 || strings.Contains(strings.Join(names, ","), "Baseline") {
		t.Errorf("baselineAlerts: false should drop only the baseline alerts, got %v", names)
	}
}

// The shipped rules must mean what the example config says: 5000 requests/s
// per instance, 5% errors, 300 s cooldown.
func TestRenderedAlertsUseSharedConfigDefaults(t *testing.T) {
	want := map[string]struct{ threshold, keep string }{
		"AutoGLMHighQPS":       {"> 5000", "5m"},
		"AutoGLMHighErrorRate": {"> 0.05", "5m"},
	}
	seen := map[string]bool{}
	for _, r := range alerts(t) {
		w, ok := want[r.Alert]
		if !ok {
			continue
		}
		seen[r.Alert] = true
		if !strings.Contains(r.Expr, w.threshold) {
			t.Errorf("%s: expression lacks %q:\n%s", r.Alert, w.threshold, r.Expr)
		}
		if r.KeepFiringFor.String() != w.keep {
			t.Errorf("%s: keep_firing_for %s, want %s", r.Alert, r.KeepFiringFor, w.keep)
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("alerts missing: saw %v", seen)
	}
}
