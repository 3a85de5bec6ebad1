package mixin

import (
	"bytes"
	"github.com/open-autoglm/autoglm-monitor/dashboards"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-jsonnet/formatter"
	"github.com/prometheus/prometheus/model/rulefmt"
	"go.yaml.in/yaml/v3"

	"github.com/open-autoglm/autoglm-monitor/dashboards/lint"
	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

const runbookBase = "https://github.com/open-autoglm/autoglm-monitor/blob/main/mixins/autoglm-mixin/runbook.md"

func TestGeneratedSourcesInSync(t *testing.T) {
	src, err := Sources()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range src {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%v (run go generate ./mixins/autoglm-mixin/...)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date; run go generate ./mixins/autoglm-mixin/...", name)
		}
	}
}

func TestRenderedFilesInSync(t *testing.T) {
	out, err := Render(".")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range out {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%v (run go generate ./mixins/autoglm-mixin/...)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the rendered mixin; run go generate ./mixins/autoglm-mixin/...", name)
		}
	}
	entries, err := os.ReadDir(DashboardsOut)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := out[filepath.Join(DashboardsOut, e.Name())]; !ok {
			t.Errorf("%s/%s is not rendered any more; remove it", DashboardsOut, e.Name())
		}
	}
	if files, err := dashboards.Generate(); err != nil || len(entries) != len(files) {
		t.Errorf("dashboards_out has %d dashboards, the generator makes %d (%v)", len(entries), len(files), err)
	}
}

func TestJsonnetIsFormatted(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "vendor" || d.Name() == DashboardsOut) {
			return filepath.SkipDir
		}
		if ext := filepath.Ext(p); ext != ".jsonnet" && ext != ".libsonnet" {
			return nil
		}
		n++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		want, err := formatter.Format(p, string(b), formatter.DefaultOptions())
		if err != nil {
			t.Errorf("%s: %v", p, err)
			return nil
		}
		if want != string(b) {
			t.Errorf("%s is not formatted like jsonnetfmt", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("found only %d jsonnet files", n)
	}
}

// A recording rule added to internal/sli must get a jsonnet name, or alerts cannot refer to it.
func TestRecordsCoverEveryRecordingRule(t *testing.T) {
	named := map[string]bool{}
	for _, v := range Records() {
		named[v] = true
	}
	for _, r := range sli.RecordingRules() {
		if !named[r.Record] {
			t.Errorf("recording rule %s has no entry in Records()", r.Record)
		}
		delete(named, r.Record)
	}
	for n := range named {
		t.Errorf("Records() names %s, which internal/sli does not define", n)
	}
}

func readRules(t *testing.T, name string) *rulefmt.RuleGroups {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	g, err := lint.ParseRules(b, name)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestRecordingRulesComeFromSLI(t *testing.T) {
	var got []sli.Rule
	for _, g := range readRules(t, RulesFile).Groups {
		for _, r := range g.Rules {
			got = append(got, sli.Rule{Record: r.Record, Expr: r.Expr})
		}
	}
	want := append(sli.RecordingRules(), sli.EngineRecordingRules()...)
	if len(got) != len(want) {
		t.Fatalf("%d recording rules rendered, internal/sli defines %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("rule %d: rendered %+v, want %+v", i, got[i], want[i])
		}
	}
}

func alerts(t *testing.T) []rulefmt.Rule {
	t.Helper()
	var out []rulefmt.Rule
	for _, g := range readRules(t, AlertsFile).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s holds a recording rule; recording rules belong in %s", g.Name, RulesFile)
			}
			out = append(out, r)
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d alerting rules rendered", len(out))
	}
	return out
}

func alertNames(t *testing.T) []string {
	seen := map[string]bool{}
	var names []string
	for _, r := range alerts(t) {
		if !seen[r.Alert] {
			seen[r.Alert] = true
			names = append(names, r.Alert)
		}
	}
	sort.Strings(names)
	return names
}

func TestAlertsFollowGuidelines(t *testing.T) {
	for _, r := range alerts(t) {
		for _, err := range lint.CheckAlert(r, "AutoGLM", runbookBase) {
			t.Error(err)
		}
		if _, err := lint.Parse(r.Expr); err != nil {
			t.Errorf("alert %s: %v", r.Alert, err)
		}
	}
}

func TestGuidelineCheckRejectsViolations(t *testing.T) {
	good := func() rulefmt.Rule {
		return rulefmt.Rule{
			Alert:  "AutoGLMThing",
			Expr:   "up == 0",
			Labels: map[string]string{"severity": "warning"},
			Annotations: map[string]string{
				"summary":       "Thing is broken",
				"description":   "{{ $labels.instance }} is broken.",
				"runbook_url":   runbookBase + "#autoglmthing",
				"dashboard_url": "http://grafana/d/x",
			},
		}
	}
	cases := []struct {
		name   string
		modify func(*rulefmt.Rule)
		want   string
	}{
		{"no prefix", func(r *rulefmt.Rule) { r.Alert = "ThingBroken" }, "CamelCase"},
		{"snake case", func(r *rulefmt.Rule) { r.Alert = "AutoGLM_thing" }, "CamelCase"},
		{"bad severity", func(r *rulefmt.Rule) { r.Labels["severity"] = "page" }, "severity"},
		{"templated summary", func(r *rulefmt.Rule) { r.Annotations["summary"] = "{{ $labels.job }} broken" }, "static"},
		{"no description", func(r *rulefmt.Rule) { delete(r.Annotations, "description") }, "description"},
		{"static description", func(r *rulefmt.Rule) { r.Annotations["description"] = "Broken." }, "templated"},
		{"no runbook", func(r *rulefmt.Rule) { delete(r.Annotations, "runbook_url") }, "runbook_url"},
		{"foreign runbook", func(r *rulefmt.Rule) { r.Annotations["runbook_url"] = "https://example.com/x" }, "runbook_url"},
		{"no dashboard", func(r *rulefmt.Rule) { delete(r.Annotations, "dashboard_url") }, "dashboard_url"},
	}
	if errs := lint.CheckAlert(good(), "AutoGLM", runbookBase); len(errs) != 0 {
		t.Fatalf("valid alert rejected: %v", errs)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := good()
			c.modify(&r)
			errs := lint.CheckAlert(r, "AutoGLM", runbookBase)
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			if !strings.Contains(strings.Join(msgs, "\n"), c.want) {
				t.Fatalf("want an error mentioning %q, got %q", c.want, msgs)
			}
		})
	}
}

func TestEveryAlertHasARunbookSection(t *testing.T) {
	b, err := os.ReadFile("runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (\S+)\s*$`).FindAllStringSubmatch(string(b), -1) {
		sections[m[1]] = true
	}
	names := map[string]bool{}
	for _, name := range append(alertNames(t), rulegenAlertNames(t)...) {
		names[name] = true
	}
	for name := range names {
		if !sections[name] {
			t.Errorf("runbook.md has no section for %s", name)
		}
		delete(sections, name)
	}
	for s := range sections {
		t.Errorf("runbook.md has a section for %s, which is not an alert", s)
	}
	for _, body := range regexp.MustCompile(`(?m)^## `).Split(string(b), -1)[1:] {
		for _, part := range []string{"**Meaning**", "**Impact**", "**Diagnosis**", "**Mitigation**"} {
			if !strings.Contains(body, part) {
				t.Errorf("runbook section %q lacks %s", strings.SplitN(body, "\n", 2)[0], part)
			}
		}
	}
}

type unitTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// Every alert needs a unit test where it fires and one where it stays silent.
func TestEveryAlertHasUnitTests(t *testing.T) {
	files, err := filepath.Glob("tests/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no unit tests found: %v", err)
	}
	fires, silent := map[string]int{}, map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var u unitTests
		if err := yaml.Unmarshal(b, &u); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tc := range u.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname]++
				} else {
					silent[a.Alertname]++
				}
			}
		}
	}
	for _, name := range alertNames(t) {
		if fires[name] == 0 {
			t.Errorf("%s has no unit test in which it fires", name)
		}
		if silent[name] == 0 {
			t.Errorf("%s has no unit test in which it stays silent", name)
		}
	}
}

func run(t *testing.T, tool string, args ...string) string {
	t.Helper()
	cmd := exec.Command(tool, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(tool), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPromtoolCheckRules(t *testing.T) {
	promtool := testenv.Promtool(t)
	out := run(t, promtool, "check", "rules", AlertsFile, RulesFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("unexpected promtool output:\n%s", out)
	}
}

func TestPromtoolUnitTests(t *testing.T) {
	promtool := testenv.Promtool(t)
	files, err := filepath.Glob("tests/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no unit tests found: %v", err)
	}
	out := run(t, promtool, append([]string{"test", "rules"}, files...)...)
	if strings.Count(out, "SUCCESS") != len(files) {
		t.Fatalf("not every unit test file succeeded:\n%s", out)
	}
}

const alertmanagerConfig = "../../deploy/alertmanager/alertmanager.yml"

func TestAlertmanagerConfig(t *testing.T) {
	amtool := testenv.Amtool(t)
	out := run(t, amtool, "check-config", alertmanagerConfig)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("unexpected amtool output:\n%s", out)
	}
}

// Inhibit rules name alerts by regular expression; a renamed alert would
// silently stop being inhibited, so every name they mention must exist.
func TestInhibitRulesNameRealAlerts(t *testing.T) {
	b, err := os.ReadFile(alertmanagerConfig)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Route struct {
			Routes []struct {
				Receiver string `yaml:"receiver"`
			} `yaml:"routes"`
		} `yaml:"route"`
		InhibitRules []struct {
			Source []string `yaml:"source_matchers"`
			Target []string `yaml:"target_matchers"`
		} `yaml:"inhibit_rules"`
		Receivers []struct {
			Webhooks []struct {
				URL string `yaml:"url"`
			} `yaml:"webhook_configs"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, n := range append(alertNames(t), rulegenAlertNames(t)...) {
		known[n] = true
	}
	exact := regexp.MustCompile(`alertname="(\w+)"`)
	alternatives := regexp.MustCompile(`alertname=~"(\w+)\(([\w|]+)\)"`)
	mentioned := 0
	for _, ir := range cfg.InhibitRules {
		for _, m := range append(ir.Source, ir.Target...) {
			for _, x := range exact.FindAllStringSubmatch(m, -1) {
				mentioned++
				if !known[x[1]] {
					t.Errorf("inhibit rule names unknown alert %s", x[1])
				}
			}
			for _, x := range alternatives.FindAllStringSubmatch(m, -1) {
				for _, alt := range strings.Split(x[2], "|") {
					mentioned++
					if !known[x[1]+alt] {
						t.Errorf("inhibit rule names unknown alert %s", x[1]+alt)
					}
				}
			}
		}
	}
	if mentioned < 10 {
		t.Fatalf("inhibit rules mention only %d alerts; parsing is broken", mentioned)
	}
	for _, r := range cfg.Receivers {
		for _, w := range r.Webhooks {
			if w.URL != "http://127.0.0.1:9812/webhook" {
				t.Errorf("webhook %s does not point at the receiver", w.URL)
			}
		}
	}
}

// rulegenAlertNames are the alerts autoglm-rulegen generates; their
// runbook_url points at this mixin's runbook. They are read from rulegen's
// source so a new or renamed alert there fails here until the runbook follows.
func rulegenAlertNames(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, dir := range []string{"rules", "slo", "forecast"} {
		fs, err := filepath.Glob("../../rulegen/" + dir + "/*.go")
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, fs...)
	}
	seen := map[string]bool{}
	var names []string
	literal := regexp.MustCompile(`"(AutoGLM[A-Z][A-Za-z0-9]*)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range literal.FindAllStringSubmatch(string(b), -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				names = append(names, m[1])
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("found no alert names in rulegen/rules; is the scan out of date?")
	}
	sort.Strings(names)
	return names
}
