package backtest

import (
	"context"
	"encoding/json"
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

func TestParseCSV(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		n        int
		err      string
	}{
		{"space layout", "timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:01:00.5,2\n", 2, ""},
		{"rfc3339", "timestamp,value\n2026-01-01T00:00:00Z,1\n2026-01-01T00:30:00+01:00,2\n", 0, "in.csv:3: timestamp"},
		{"nan and empty kept", "timestamp,value\n2026-01-01 00:00:00,NaN\n2026-01-01 00:01:00,\n2026-01-01 00:02:00,3\n", 3, ""},
		{"bad value", "timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:01:00,x\n", 0, `in.csv:3: value "x" is not a number`},
		{"bad time", "timestamp,value\nyesterday,1\n", 0, "in.csv:2: timestamp \"yesterday\""},
		{"bad header", "time,v\n", 0, "in.csv:1: header"},
		{"no rows", "timestamp,value\n", 0, "no data rows"},
		{"backwards", "timestamp,value\n2026-01-01 00:01:00,1\n2026-01-01 00:00:00,1\n", 0, "in.csv:3: timestamp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pts, err := parseCSV(strings.NewReader(tc.in), "in.csv")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(pts) != tc.n {
				t.Fatalf("got %d points, want %d", len(pts), tc.n)
			}
		})
	}
}

// synth writes a 16-day 1-minute request-rate series with daily and weekly
// shape, noise, a gap, and a 60% drop for one hour on day 12 at 14:00.
func synth(t *testing.T, dir string) (string, time.Time) {
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
		fmt.Fprintf(&b, "%s,%.3f\n", ts.Format("2006-01-02 15:04:05"), v)
	}
	p := filepath.Join(dir, "requests_rate.csv")
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
	err := Run(context.Background(), CLI{Inputs: []string{in}, Kind: "auto", Output: out, Report: rep}, slog.New(slog.NewTextHandler(io.Discard, nil)))
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
