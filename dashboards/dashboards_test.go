package dashboards

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/open-autoglm/autoglm-monitor/dashboards/lint"
)

func TestCommittedJSONMatchesGenerator(t *testing.T) {
	files, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, f := range files {
		want[f.Name] = true
		got, err := os.ReadFile(filepath.Join("json", f.Name))
		if err != nil {
			t.Fatalf("%v (run go generate ./dashboards/...)", err)
		}
		if !bytes.Equal(got, f.JSON) {
			t.Errorf("json/%s differs from the generator output; run go generate ./dashboards/...", f.Name)
		}
	}
	entries, err := os.ReadDir("json")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !want[e.Name()] {
			t.Errorf("json/%s is not produced by the generator; remove it", e.Name())
		}
	}
}

// Links, dashboard_url annotations and bookmarks depend on these; changing one is a breaking change.
func TestUIDsAreStable(t *testing.T) {
	want := map[string]string{
		"overview.json":  "autoglm-overview",
		"models.json":    "autoglm-models",
		"baselines.json": "autoglm-baselines",
		"alerting.json":  "autoglm-alerting",
		"exporter.json":  "autoglm-exporter",
		"engine.json":    "autoglm-engine",
		"slo.json":       "autoglm-slo",
	}
	files, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Fatalf("got %d dashboards, want %d", len(files), len(want))
	}
	for _, f := range files {
		d, err := lint.ParseDashboard(f.JSON)
		if err != nil {
			t.Fatal(err)
		}
		if d.UID != want[f.Name] || f.UID != d.UID {
			t.Errorf("%s: uid %q, want %q", f.Name, d.UID, want[f.Name])
		}
	}
}

func TestDashboardsPassLinter(t *testing.T) {
	paths, err := filepath.Glob("json/*.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no dashboards found: %v", err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			d, err := lint.ParseDashboard(b)
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range lint.CheckDashboard(d) {
				t.Error(err)
			}
			exprs := d.Exprs()
			if len(exprs) < 5 {
				t.Fatalf("only %d expressions found; the decoder is missing targets", len(exprs))
			}
			for where, e := range exprs {
				if _, err := lint.Parse(e); err != nil {
					t.Errorf("%s: %v", where, err)
				}
			}
		})
	}
}

// The linter must reject what it claims to reject, or the test above proves nothing.
func TestLinterRejectsViolations(t *testing.T) {
	good := func() map[string]string {
		return map[string]string{
			"editable": `false`,
			"unit":     `"reqps"`,
			"desc":     `"Requests per second."`,
			"expr":     `sum(rate(http_server_request_duration_seconds_count{job=~\"$job\", instance=~\"$instance\"}[$__rate_interval]))`,
			"dsvar":    `{"type": "datasource", "name": "datasource", "query": "prometheus"},`,
			"jobvar":   `{"type": "query", "name": "job", "query": "label_values(up, job)", "datasource": {"uid": "${datasource}"}},`,
			"uid":      `"autoglm-test"`,
		}
	}
	render := func(v map[string]string) []byte {
		s := `{"uid": UID, "title": "T", "editable": EDITABLE,
		  "templating": {"list": [DSVAR JOBVAR
		    {"type": "query", "name": "instance", "query": "label_values(up, instance)", "datasource": {"uid": "${datasource}"}}]},
		  "panels": [{"id": 1, "type": "timeseries", "title": "P", "description": DESC,
		    "datasource": {"uid": "${datasource}"}, "fieldConfig": {"defaults": {"unit": UNIT}},
		    "targets": [{"refId": "A", "datasource": {"uid": "${datasource}"}, "expr": "EXPR"}]}]}`
		for k, val := range v {
			s = strings.ReplaceAll(s, strings.ToUpper(k), val)
		}
		return []byte(s)
	}
	cases := []struct {
		name, key, value, want string
	}{
		{"editable", "editable", `true`, "editable"},
		{"no unit", "unit", `""`, "no unit"},
		{"no description", "desc", `""`, "no description"},
		{"fixed rate window", "expr", `sum(rate(http_server_request_duration_seconds_count{job=~\"$job\", instance=~\"$instance\"}[5m]))`, "$__rate_interval"},
		{"no job filter", "expr", `sum(rate(http_server_request_duration_seconds_count{instance=~\"$instance\"}[$__rate_interval]))`, "job variable"},
		{"no instance filter", "expr", `sum(rate(http_server_request_duration_seconds_count{job=~\"$job\"}[$__rate_interval]))`, "instance variable"},
		{"hard-coded job", "expr", `sum(rate(http_server_request_duration_seconds_count{job=\"x\", instance=~\"$instance\"}[$__rate_interval]))`, "job variable"},
		{"undefined variable", "expr", `sum(rate(http_server_request_duration_seconds_count{job=~\"$job\", instance=~\"$instance\", http_route=~\"$nope\"}[$__rate_interval]))`, "undefined variable"},
		{"bad promql", "expr", `sum(rate(x[$__rate_interval])`, "parse"},
		{"no datasource variable", "dsvar", ``, "datasource variable"},
		{"no job variable", "jobvar", ``, "missing job variable"},
		{"unstable uid", "uid", `"this uid is far too long to be a stable grafana uid"`, "uid"},
	}
	if errs := lint.CheckDashboard(mustParse(t, render(good()))); len(errs) != 0 {
		t.Fatalf("the valid dashboard is rejected: %v", errs)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := good()
			v[c.key] = c.value
			errs := lint.CheckDashboard(mustParse(t, render(v)))
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			sort.Strings(msgs)
			if !strings.Contains(strings.Join(msgs, "\n"), c.want) {
				t.Fatalf("want an error mentioning %q, got %q", c.want, msgs)
			}
		})
	}
}

func mustParse(t *testing.T, b []byte) *lint.Dashboard {
	t.Helper()
	d, err := lint.ParseDashboard(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	return d
}
