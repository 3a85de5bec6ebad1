package rules

import (
	"bytes"
	"flag"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func ptr(v float64) *float64 { return &v }

// fixture is a small but complete input: two routes, one without history.
func fixture(mode string) Input {
	in := Input{
		Mode:          mode,
		QPSThreshold:  5000,
		ErrorRate:     0.05,
		Cooldown:      5 * time.Minute,
		MinTraffic:    0.5,
		For:           5 * time.Minute,
		ConfirmWindow: time.Hour,
		MaxSeries:     100,
		ExporterJob:   "autoglm-exporter",
		RefitInterval: time.Hour,
	}
	for _, s := range sli.SLIs() {
		st := SLI{SLI: s, Policy: Policy{For: 10 * time.Minute, KeepFiringFor: 15 * time.Minute}}
		if s.Kind == sli.KindRatio {
			st.StaticUpper = ptr(0.05)
		}
		if s.Name == "latency_p95" {
			st.StaticUpper = ptr(30)
		}
		chat := map[string]string{"job": "autoglm-exporter", sli.LabelRoute: "/v1/chat/completions"}
		gen := map[string]string{"job": "autoglm-exporter", sli.LabelRoute: "/v1/generate"}
		if len(s.By) == 3 {
			chat[sli.LabelModel], gen[sli.LabelModel] = "glm-4", "glm-4"
		}
		st.Series = []Series{
			{Labels: chat, Fitted: true, Lower: 10, Expected: 20, Upper: 35, SpikeLower: 4, SpikeUpper: 60, Policy: Policy{For: 5 * time.Minute, KeepFiringFor: 10 * time.Minute}},
			{Labels: gen, Lower: math.NaN(), Expected: math.NaN(), Upper: math.NaN(), SpikeLower: math.NaN(), SpikeUpper: math.NaN()},
		}
		if s.Kind == sli.KindRatio {
			st.Series[0].Lower, st.Series[0].Expected, st.Series[0].Upper = math.NaN(), 0.01, 0.03
			st.Series[0].SpikeLower, st.Series[0].SpikeUpper = math.NaN(), 0.08
		}
		in.SLIs = append(in.SLIs, st)
	}
	return in
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read golden file (run go test -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; run `go test ./rulegen/rules -update` and review the diff\n--- got ---\n%s", name, got)
	}
}

func TestGolden(t *testing.T) {
	for _, mode := range []string{ModeSeries, ModeLiteral} {
		t.Run(mode, func(t *testing.T) {
			set, err := Build(fixture(mode))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range set.FileNames() {
				golden(t, mode+"-"+f, set.Rendered[f])
			}
			golden(t, InhibitFile, set.Inhibit)
		})
	}
}

func writeSet(t *testing.T, dir, prefix string, set *Set) {
	t.Helper()
	for _, f := range set.FileNames() {
		if err := os.WriteFile(filepath.Join(dir, prefix+f), set.Rendered[f], 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPromtool runs the real promtool on freshly generated output: `check
// rules`, and `test rules` with an injected incident, a seasonal peak,
// hysteresis, the static fallback and the traffic guard.
func TestPromtool(t *testing.T) {
	promtool := testenv.Promtool(t)
	dir := t.TempDir()
	for _, mode := range []string{ModeSeries, ModeLiteral} {
		set, err := Build(fixture(mode))
		if err != nil {
			t.Fatal(err)
		}
		writeSet(t, dir, mode+"-", set)
		tf, err := os.ReadFile(filepath.Join("testdata", mode+"-alerts.test.yml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, mode+"-alerts.test.yml"), tf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.rules.yml"))
	if err != nil || len(files) != 4 {
		t.Fatalf("generated files = %v, %v", files, err)
	}
	run := func(args ...string) string {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := run(append([]string{"check", "rules"}, files...)...)
	if strings.Count(out, "SUCCESS") != 4 {
		t.Errorf("promtool check rules:\n%s", out)
	}
	out = run("test", "rules", "series-alerts.test.yml", "literal-alerts.test.yml")
	if strings.Count(out, "SUCCESS") != 2 {
		t.Errorf("promtool test rules:\n%s", out)
	}
}

// TestPromtoolCatchesABrokenRule proves the promtool check above can fail.
func TestPromtoolCatchesABrokenRule(t *testing.T) {
	promtool := testenv.Promtool(t)
	p := filepath.Join(t.TempDir(), "bad.rules.yml")
	if err := os.WriteFile(p, []byte("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(x[5m]) >\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", p).CombinedOutput(); err == nil {
		t.Fatalf("promtool accepted a broken rule:\n%s", out)
	}
}

func TestInhibitRulesAcceptedByAlertmanager(t *testing.T) {
	amtool := testenv.Amtool(t)
	inh, err := InhibitRules()
	if err != nil {
		t.Fatal(err)
	}
	cfg := "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n" + string(inh)
	p := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(amtool, "check-config", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}
}

// identity is what Alertmanager sees of a rule: its name and static labels.
func identity(set *Set) map[string]bool {
	ids := map[string]bool{}
	for _, g := range set.Groups() {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			keys := make([]string, 0, len(r.Labels))
			for k := range r.Labels {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			id := r.Alert
			for _, k := range keys {
				id += "," + k + "=" + r.Labels[k]
			}
			ids[id] = true
		}
	}
	return ids
}

func TestAlertIdentitySurvivesRefits(t *testing.T) {
	for _, mode := range []string{ModeSeries, ModeLiteral} {
		t.Run(mode, func(t *testing.T) {
			a, err := Build(fixture(mode))
			if err != nil {
				t.Fatal(err)
			}
			in := fixture(mode)
			for i := range in.SLIs {
				for j := range in.SLIs[i].Series {
					s := &in.SLIs[i].Series[j]
					s.Lower, s.Expected, s.Upper = s.Lower*1.7, s.Expected*1.3, s.Upper*2.9
					s.SpikeLower, s.SpikeUpper = s.SpikeLower*1.7, s.SpikeUpper*2.9
				}
			}
			b, err := Build(in)
			if err != nil {
				t.Fatal(err)
			}
			ia, ib := identity(a), identity(b)
			if len(ia) == 0 || len(ia) != len(ib) {
				t.Fatalf("identities differ: %v vs %v", ia, ib)
			}
			for id := range ia {
				if !ib[id] {
					t.Errorf("alert %s disappeared after a refit", id)
				}
			}
			if mode == ModeLiteral && bytes.Equal(a.Rendered[AlertsFile], b.Rendered[AlertsFile]) {
				t.Error("literal mode must carry the new thresholds")
			}
			if mode == ModeSeries && !bytes.Equal(a.Rendered[AlertsFile], b.Rendered[AlertsFile]) {
				t.Error("series mode output must not depend on the fitted values")
			}
		})
	}
}

func TestBuildRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Input)
		want string
	}{
		{"unknown mode", func(in *Input) { in.Mode = "magic" }, "mode"},
		{"too many series", func(in *Input) { in.MaxSeries = 1 }, "more than the limit"},
		{"label value breaking the rule file", func(in *Input) { in.ExporterJob = "a\"b{" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(ModeLiteral)
			tc.edit(&in)
			_, err := Build(in)
			if tc.want == "" {
				// Quoting must keep even hostile values valid.
				if err != nil {
					t.Fatalf("hostile label value broke the build: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestValidateReportsWhatIsWrong(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"bad promql", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: sum(\n", "parse error"},
		{"bad template", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      d: '{{ $value | nosuchfunc }}'\n", "nosuchfunc"},
		{"unknown key", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    fro: 5m\n", "fro"},
		{"bad record name", "groups:\n- name: g\n  rules:\n  - record: 'a b'\n    expr: up\n", "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate([]byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestPrometheusRule(t *testing.T) {
	set, err := Build(fixture(ModeSeries))
	if err != nil {
		t.Fatal(err)
	}
	b, err := PrometheusRule(set.Groups(), "", "monitoring", map[string]string{"release": "kps"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "prometheusrule.yml", b)
	for _, w := range []string{"apiVersion: monitoring.coreos.com/v1", "kind: PrometheusRule", "namespace: monitoring", "release: kps", "name: " + GroupBaseline, "keep_firing_for: 15m"} {
		if !bytes.Contains(b, []byte(w)) {
			t.Errorf("PrometheusRule lacks %q", w)
		}
	}
}
