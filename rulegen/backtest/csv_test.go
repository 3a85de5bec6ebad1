package backtest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
)

func writeInput(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// clockChange is an hour of 5-minute rows written twice, as a local clock
// going back from 02:55 to 02:00 writes it.
func clockChange() (string, int) {
	var b strings.Builder
	b.WriteString("timestamp,value\n")
	t0 := time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC)
	row := func(m int, v float64) {
		fmt.Fprintf(&b, "%s,%g\n", t0.Add(time.Duration(m)*time.Minute).Format("2006-01-02 15:04:05"), v)
	}
	for m := 0; m < 180; m += 5 {
		row(m, 10)
	}
	for m := 120; m < 240; m += 5 {
		row(m, 20)
	}
	return b.String(), 12
}

func TestReadFile(t *testing.T) {
	cc, repeats := clockChange()
	for _, tc := range []struct {
		name, in string
		n        int
		err      string
		stats    ReadStats
	}{
		{name: "space layout", in: "timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:01:00.5,2\n", n: 2, stats: ReadStats{Rows: 2}},
		{name: "rfc3339 offsets are sorted", in: "timestamp,value\n2026-01-01T00:00:00Z,1\n2026-01-01T00:30:00+01:00,2\n", n: 2, stats: ReadStats{Rows: 2, OutOfOrder: 1}},
		{name: "nan and empty kept", in: "timestamp,value\n2026-01-01 00:00:00,NaN\n2026-01-01 00:01:00,\n2026-01-01 00:02:00,3\n", n: 3, stats: ReadStats{Rows: 3, Gaps: 2}},
		{name: "infinities dropped as the live path drops them", in: "timestamp,value\n2026-01-01 00:00:00,+Inf\n2026-01-01 00:01:00,-inf\n2026-01-01 00:02:00,1e400\n2026-01-01 00:03:00,3\n", n: 1, stats: ReadStats{Rows: 4, NonFinite: 3}},
		{name: "repeats near the float64 limit merge to a finite mean", in: "timestamp,value\n2026-01-01 00:00:00,1.5e308\n2026-01-01 00:00:00,1.7e308\n", n: 1, stats: ReadStats{Rows: 2, Duplicates: 1}},
		{name: "clock change repeats an hour", in: cc, n: 48, stats: ReadStats{Rows: 60, OutOfOrder: 1, Duplicates: repeats}},
		{name: "bad value", in: "timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:01:00,x\n", err: `in.csv:3: value "x" is not a number`},
		{name: "bad time", in: "timestamp,value\nyesterday,1\n", err: "in.csv:2: timestamp \"yesterday\""},
		{name: "bad header", in: "time,v\n", err: "in.csv:1: header"},
		{name: "no rows", in: "timestamp,value\n", err: "no data rows"},
		{name: "only infinities", in: "timestamp,value\n2026-01-01 00:00:00,+Inf\n", err: "no data rows"},
		{name: "unterminated quote at the end", in: "timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:01:00,\"2", err: "in.csv:3:"},
		{name: "unterminated quote opening a row", in: "timestamp,value\n\"2026-01-01 00:00:00,1", err: "in.csv:2:"},
		{name: "lone quote at the end", in: "timestamp,value\n2026-01-01 00:00:00,1\n\"", err: "in.csv:3:"},
		{name: "unterminated quote in the header", in: "\"timestamp,value\n", err: "in.csv:1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeInput(t, "in.csv", tc.in)
			pts, stats, err := ReadFile(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want containing %q", err, tc.err)
				}
				if !strings.HasPrefix(err.Error(), path) {
					t.Fatalf("error %q does not start with the file name", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(pts) != tc.n || stats != tc.stats {
				t.Fatalf("got %d points, %+v; want %d, %+v", len(pts), stats, tc.n, tc.stats)
			}
			for i := 1; i < len(pts); i++ {
				if !pts[i].T.After(pts[i-1].T) {
					t.Fatalf("points not strictly increasing at %d: %s, %s", i, pts[i-1].T, pts[i].T)
				}
			}
			for _, p := range pts {
				if math.IsInf(p.V, 0) {
					t.Fatalf("%s: an infinity reached the walk", p.T)
				}
			}
		})
	}
}

func TestClockChangeMergedToMeans(t *testing.T) {
	cc, _ := clockChange()
	pts, stats, err := ReadFile(writeInput(t, "dst.csv", cc))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pts {
		want := 10.0
		switch h := p.T.Hour(); {
		case h == 2:
			want = 15 // 10 and 20 written at the same local time
		case h == 3:
			want = 20
		}
		if p.V != want {
			t.Fatalf("%s = %g, want %g", p.T.Format(time.TimeOnly), p.V, want)
		}
	}
	ws := stats.Warnings()
	if len(ws) != 2 || !strings.Contains(ws[0], "1 rows were earlier") || !strings.Contains(ws[1], "12 rows repeated a timestamp") {
		t.Fatalf("warnings %q", ws)
	}
}

// StreamFile puts rows back in order within the reorder horizon without
// holding the file, and gives up (errTooLate) beyond it.
func TestStreamFileReorders(t *testing.T) {
	cc, _ := clockChange()
	want, wantStats, err := ReadFile(writeInput(t, "a.csv", cc))
	if err != nil {
		t.Fatal(err)
	}
	var got []baseline.Point
	stats, err := StreamFile(writeInput(t, "b.csv", cc), func(p baseline.Point) error { got = append(got, p); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if stats != wantStats || len(got) != len(want) {
		t.Fatalf("streamed %d points %+v, read %d %+v", len(got), stats, len(want), wantStats)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("point %d: streamed %+v, read %+v", i, got[i], want[i])
		}
	}
	late := "timestamp,value\n2026-01-01 00:00:00,1\n2026-01-03 00:00:00,1\n2025-12-31 12:00:00,1\n"
	if _, err := StreamFile(writeInput(t, "late.csv", late), func(baseline.Point) error { return nil }); !errors.Is(err, errTooLate) {
		t.Fatalf("a row two days back: %v, want errTooLate", err)
	}
	res, stats, err := walkFile(t.Context(), writeInput(t, "late2.csv", late), Config{})
	if err != nil || !stats.SortedInMemory || stats.OutOfOrder != 1 || res.Points != 3 {
		t.Fatalf("walkFile on a file two days out of order: %v %+v %+v", err, stats, res)
	}
}

// Streaming holds only the reorder horizon of rows, however long the file
// and however its rows are shuffled within the horizon.
func TestReorderHoldsOnlyTheHorizon(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var last time.Time
	n := 0
	ro := &reorder{emit: func(p baseline.Point) error {
		if !p.T.After(last) {
			t.Fatalf("released %s after %s", p.T, last)
		}
		last = p.T
		n++
		return nil
	}}
	const minutes = 6 * 24 * 60
	limit := int(reorderHorizon/time.Minute) + 1
	held := 0
	for i := range minutes {
		// Every hour goes back 59 minutes, like an hour written twice.
		ts := t0.Add(time.Duration(i) * time.Minute)
		if i%60 == 59 {
			ts = ts.Add(-59 * time.Minute)
		}
		if err := ro.push(baseline.Point{T: ts, V: 1}); err != nil {
			t.Fatal(err)
		}
		held = max(held, len(ro.h))
	}
	if err := ro.flush(); err != nil {
		t.Fatal(err)
	}
	if held > limit+60 {
		t.Errorf("held %d rows, want at most the %d of the horizon", held, limit+60)
	}
	if want := minutes - minutes/60; n != want || ro.merged != minutes/60 {
		t.Errorf("released %d points, merged %d; want %d, %d", n, ro.merged, want, minutes/60)
	}
}

func TestReadGzipByContent(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte("timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:01:00,2\n")); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	pts, err := ReadCSV(writeInput(t, "no-suffix.csv", buf.String()))
	if err != nil || len(pts) != 2 || pts[1].V != 2 {
		t.Fatalf("%v %+v", err, pts)
	}
}

// One huge value leaving the trailing window must not take the small
// values' digits with it (a plain running sum would keep an error of the
// size of the values added while the huge one was in the window forever).
func TestMeanWindowSurvivesHugeValues(t *testing.T) {
	m := meanWindow{d: 5 * time.Minute}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var last float64
	for i := 0; i < 100; i++ {
		v := 10.0 + float64(i%3)
		if i == 20 {
			v = 1e200
		}
		last = m.push(baseline.Point{T: t0.Add(time.Duration(i) * time.Minute), V: v})
	}
	// The last five values are 99%3, 98%3 … → 10,12,11,10,12 around 11.
	if math.Abs(last-11) > 1 {
		t.Fatalf("mean after the huge value left: %g", last)
	}
}
