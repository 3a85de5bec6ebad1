package backtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
)

// synth writes a 16-day 1-minute request-rate series with daily and weekly
// shape, noise, a gap, and a 60% drop for one hour on day 12 at 14:00.
func synth(t *testing.T, dir string) (string, time.Time) {
	t.Helper()
	return synthWith(t, dir, "requests_rate.csv", nil)
}

// synthWith is synth with the values of some rows replaced by edit
// (row index → value as written, e.g. "+Inf").
func synthWith(t *testing.T, dir, name string, edit map[int]string) (string, time.Time) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	incident := start.Add(12*24*time.Hour + 14*time.Hour)
	var b strings.Builder
	b.WriteString("timestamp,value\n")
	for i := 0; i < 16*1440; i++ {
		ts := start.Add(time.Duration(i) * time.Minute)
		h := float64(ts.Hour()) + float64(ts.Minute())/60
		v := 100 * (1.5 + math.Sin((h-6)/24*2*math.Pi))
		if wd := ts.Weekday(); wd == time.Saturday || wd == time.Sunday {
			v *= 0.6
		}
		v *= 1 + 0.03*r.NormFloat64()
		if !ts.Before(incident) && ts.Before(incident.Add(time.Hour)) {
			v *= 0.4
		}
		if i > 5*1440 && i < 5*1440+30 {
			fmt.Fprintf(&b, "%s,\n", ts.Format("2006-01-02 15:04:05"))
			continue
		}
		if e, ok := edit[i]; ok {
			fmt.Fprintf(&b, "%s,%s\n", ts.Format("2006-01-02 15:04:05"), e)
			continue
		}
		fmt.Fprintf(&b, "%s,%.3f\n", ts.Format("2006-01-02 15:04:05"), v)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, incident
}

func TestRunFindsInjectedIncidentOnly(t *testing.T) {
	dir := t.TempDir()
	in, incident := synth(t, dir)
	out := filepath.Join(dir, "alerts.json")
	rep := filepath.Join(dir, "report.html")
	err := Run(context.Background(), CLI{Inputs: []string{in}, Kind: "rate", Output: out, Report: rep}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var doc Output
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Series) != 1 || doc.Series[0].Input != in || doc.Series[0].Model == "" || doc.Series[0].Model == "none" {
		t.Fatalf("unexpected document %s", b)
	}
	found := false
	for _, a := range doc.Series[0].Alerts {
		s, err := time.Parse(time.RFC3339, a.Start)
		if err != nil {
			t.Fatal(err)
		}
		if d := s.Sub(incident); d >= 0 && d <= 15*time.Minute {
			found = true
			continue
		}
		t.Errorf("false alert at %s", a.Start)
	}
	if !found {
		t.Errorf("incident at %s not detected within 15m; alerts %+v", incident, doc.Series[0].Alerts)
	}
	html, err := os.ReadFile(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "<polygon", "requests_rate.csv", `fill="#e6550d"`} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestRunRejectsBadKind(t *testing.T) {
	err := Run(context.Background(), CLI{Inputs: []string{"x.csv"}, Kind: "cpu", Output: "o.json"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), `--kind "cpu"`) {
		t.Fatalf("got %v", err)
	}
}

func TestAlertStatePolicy(t *testing.T) {
	p := baseline.Policy{For: 2 * time.Minute, KeepFiringFor: 3 * time.Minute}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// outside at minutes 1..4 and 6, then inside: fires at 3, flap at 5 is bridged, resolves at 9.
	outside := map[int]bool{1: true, 2: true, 3: true, 4: true, 6: true}
	var st alertState
	var eps []Episode
	for m := 0; m < 15; m++ {
		if e, ok := st.observe(t0.Add(time.Duration(m)*time.Minute), outside[m], false, p); ok {
			eps = append(eps, e)
		}
	}
	if len(eps) != 1 || !eps[0].Start.Equal(t0.Add(3*time.Minute)) || !eps[0].End.Equal(t0.Add(9*time.Minute)) {
		t.Fatalf("episodes %+v", eps)
	}
}

// A value beyond the spike band fires at once; the main band's For does not apply.
func TestAlertStateSpike(t *testing.T) {
	p := baseline.Policy{For: 5 * time.Minute, KeepFiringFor: 10 * time.Minute}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var st alertState
	var eps []Episode
	for m := 0; m < 30; m += 5 {
		spike := m == 5
		if e, ok := st.observe(t0.Add(time.Duration(m)*time.Minute), spike, spike, p); ok {
			eps = append(eps, e)
		}
	}
	if len(eps) != 1 || !eps[0].Start.Equal(t0.Add(5*time.Minute)) || !eps[0].End.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("episodes %+v", eps)
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func readOutput(t *testing.T, path string) Output {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc Output
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// An unreadable input is reported with its file and line, and the other
// inputs are still scored; the run fails only when nothing could be
// scored, or with --strict.
func TestRunScoresEveryReadableInput(t *testing.T) {
	dir := t.TempDir()
	good, _ := synth(t, dir)
	bad := writeInput(t, "bad.csv", "timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:01:00,one\n")
	quote := writeInput(t, "quote.csv", "timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:01:00,\"2")
	missing := filepath.Join(dir, "missing.csv")
	cc, _ := clockChange()
	dst := writeInput(t, "dst.csv", cc)
	out := filepath.Join(dir, "alerts.json")
	rep := filepath.Join(dir, "r.html")
	if err := Run(t.Context(), CLI{Inputs: []string{bad, good, quote, missing, dst}, Kind: "rate", Output: out, Report: rep}, discard()); err != nil {
		t.Fatalf("two good inputs of five: %v", err)
	}
	doc := readOutput(t, out)
	if len(doc.Series) != 5 {
		t.Fatalf("%d series in the output", len(doc.Series))
	}
	// A clock change repeating an hour is scored, with the repairs said.
	if s := doc.Series[4]; s.Error != "" || s.Points != 48 || len(s.Warnings) != 2 || !strings.Contains(s.Warnings[1], "12 rows repeated a timestamp") {
		t.Errorf("repeated hour: %+v", s)
	}
	doc.Series = doc.Series[:4]
	for i, want := range []string{bad + ":3: value \"one\"", "", quote + ":3:", "open input"} {
		s := doc.Series[i]
		if want == "" {
			if s.Error != "" || s.Model == "" || s.Points != 16*1440 {
				t.Errorf("good input: %+v", s)
			}
			continue
		}
		if !strings.Contains(s.Error, want) {
			t.Errorf("%s: error %q, want %q", s.Input, s.Error, want)
		}
	}
	html, err := os.ReadFile(rep)
	if err != nil || !strings.Contains(string(html), "not scored: "+bad+":3:") || !strings.Contains(string(html), "12 rows repeated a timestamp") {
		t.Errorf("report does not name the unreadable input or the repairs: %v", err)
	}
	err = Run(t.Context(), CLI{Inputs: []string{bad, good}, Kind: "rate", Output: out, Strict: true}, discard())
	if err == nil || !strings.Contains(err.Error(), "--strict: 1 of 2 inputs") {
		t.Errorf("--strict: %v", err)
	}
	err = Run(t.Context(), CLI{Inputs: []string{bad, quote}, Kind: "rate", Output: out}, discard())
	if !errors.Is(err, ErrNothingScored) {
		t.Errorf("nothing readable: %v", err)
	}
}

// The report is HTML; asking for another format fails before any work
// instead of writing HTML under a .png name.
func TestRunRejectsReportFormats(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"r.png", "r.svg", "report"} {
		err := Run(t.Context(), CLI{Inputs: []string{"x.csv"}, Output: filepath.Join(dir, "o.json"), Report: filepath.Join(dir, name)}, discard())
		if err == nil || !strings.Contains(err.Error(), "self-contained HTML") {
			t.Errorf("--report %s: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "o.json")); err == nil {
			t.Fatalf("--report %s: output written anyway", name)
		}
	}
}

// --kind auto decides from the values, not the file name, and says so per
// input in the output and the report.
func TestRunNamesAutoKindPerInput(t *testing.T) {
	dir := t.TempDir()
	var ratio, temp strings.Builder
	ratio.WriteString("timestamp,value\n")
	temp.WriteString("timestamp,value\n")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 3*288; i++ {
		ts := t0.Add(time.Duration(i) * 5 * time.Minute).Format("2006-01-02 15:04:05")
		fmt.Fprintf(&ratio, "%s,%g\n", ts, 0.01+0.001*float64(i%7))
		fmt.Fprintf(&temp, "%s,%g\n", ts, 80.5+float64(i%11))
	}
	// The names say the opposite of the values.
	a := writeInput(t, "machine_temperature_system_failure.csv", temp.String())
	b := writeInput(t, "cpu_temperature.csv", ratio.String())
	out := filepath.Join(dir, "alerts.json")
	rep := filepath.Join(dir, "r.html")
	if err := Run(t.Context(), CLI{Inputs: []string{a, b}, Kind: "auto", Output: out, Report: rep}, discard()); err != nil {
		t.Fatal(err)
	}
	doc := readOutput(t, out)
	if s := doc.Series[0]; s.Kind != "level" || !strings.HasPrefix(s.KindFrom, "values: values from 80") {
		t.Errorf("temperatures: kind %q from %q", s.Kind, s.KindFrom)
	}
	if s := doc.Series[1]; s.Kind != "ratio" || !strings.Contains(s.KindFrom, "within [0, 1]") {
		t.Errorf("fractions: kind %q from %q", s.Kind, s.KindFrom)
	}
	html, err := os.ReadFile(rep)
	if err != nil || !strings.Contains(string(html), "kind ratio (values: all 864 values within [0, 1])") {
		t.Errorf("report does not name the kind: %v", err)
	}
	if err := Run(t.Context(), CLI{Inputs: []string{b}, Kind: "latency", Output: out}, discard()); err != nil {
		t.Fatal(err)
	}
	if s := readOutput(t, out).Series[0]; s.Kind != "latency" || s.KindFrom != "--kind" {
		t.Errorf("--kind latency: %q from %q", s.Kind, s.KindFrom)
	}
}

// A single +Inf or -Inf is dropped as the live path drops it, so it cannot
// disable detection of a later incident; a single huge finite value pages
// once and leaves no lasting trace.
func TestNonFiniteAndHugeValues(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, value string
		// allowed: alert onsets permitted besides the incident (the huge
		// value itself is an anomaly worth one page).
		allowed bool
	}{
		{"plus-inf", "+Inf", false},
		{"minus-inf", "-Inf", false},
		{"huge", "1e200", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Day 8 at 10:00, 3.5 days before the incident (day 12 at 14:00).
			at := 8*1440 + 600
			in, incident := synthWith(t, dir, tc.name+".csv", map[int]string{at: tc.value})
			hit := incident.Add(-time.Duration(12*1440+14*60-at) * time.Minute)
			out := filepath.Join(dir, tc.name+".json")
			if err := Run(t.Context(), CLI{Inputs: []string{in}, Kind: "rate", Output: out}, discard()); err != nil {
				t.Fatal(err)
			}
			s := readOutput(t, out).Series[0]
			found := false
			for _, a := range s.Alerts {
				st, _ := time.Parse(time.RFC3339, a.Start)
				end, _ := time.Parse(time.RFC3339, a.End)
				switch {
				case st.Sub(incident) >= 0 && st.Sub(incident) <= 15*time.Minute:
					found = true
				case tc.allowed && !st.Before(hit) && st.Sub(hit) <= 5*time.Minute && end.Sub(st) <= 2*time.Hour:
				default:
					t.Errorf("false alert %s – %s", a.Start, a.End)
				}
			}
			if !found {
				t.Errorf("incident at %s not detected; alerts %+v", incident, s.Alerts)
			}
			if tc.value != "1e200" && (len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "1 values were +Inf or -Inf")) {
				t.Errorf("warnings %q", s.Warnings)
			}
		})
	}
}
