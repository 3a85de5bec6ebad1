package backtest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
)

// FuzzReadCSV feeds arbitrary bytes (plain or gzipped) to the backtest's
// CSV reader: it never panics, every error names the file, and what it
// accepts is a non-empty series strictly in time order (repeats merged)
// without infinities, the same points the streaming reader gives. Seeds found by earlier runs are under
// testdata/fuzz/FuzzReadCSV.
//
//	go test ./rulegen/backtest -run '^$' -fuzz FuzzReadCSV -fuzztime 30s
func FuzzReadCSV(f *testing.F) {
	cc, _ := clockChange()
	for _, s := range []string{
		"timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:01:00,2.5\n",
		"timestamp,value\n2026-01-01T00:00:00Z,\n2026-01-01T00:01:00Z,NaN\n2026-01-01T00:02:00Z,3\n",
		"\ufefftimestamp,value\r\n2026-01-01 00:00:00.123456,1e3\r\n",
		"timestamp,value\n\"2026-01-01 00:00:00\",\"1\"\n",
		"timestamp,value\n2026-01-01 00:00:00,\"1",
		"timestamp,value\n\"2026-01-01 00:00:00,1",
		"timestamp,value\n2026-01-01 00:00:00,1\n\"",
		"timestamp,value\n2026-01-01 00:01:00,1\n2026-01-01 00:00:00,2\n",
		"timestamp,value\n2026-01-01T00:30:00+01:00,+Inf\n2026-01-01 00:00:00,NaN\n",
		"\ufefftimestamp,value\n2026-01-01 00:00:00,1e400\n",
		"value,timestamp\n",
		"timestamp,value\n2026-01-01 00:00:00,1.7e308\n2026-01-01 00:00:00,1.6e308\n2026-01-01 00:00:00,NaN\n",
		cc,
	} {
		f.Add([]byte(s))
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("timestamp,value\n2026-01-01 00:00:00,1\n"))
	_ = zw.Close()
	f.Add(gz.Bytes())
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "in.csv")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		pts, _, err := ReadFile(path)
		if err != nil {
			if pts != nil {
				t.Fatalf("points returned with error %v", err)
			}
			if !strings.HasPrefix(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(pts) == 0 {
			t.Fatal("accepted an input without data rows")
		}
		for i, p := range pts {
			if p.T.IsZero() {
				t.Fatalf("row %d has no time", i)
			}
			if i > 0 && !p.T.After(pts[i-1].T) {
				t.Fatalf("not strictly in time order at %d: %s after %s", i, p.T, pts[i-1].T)
			}
			if math.IsInf(p.V, 0) {
				t.Fatalf("row %d: an infinity was kept", i)
			}
		}
		var streamed []baseline.Point
		_, err = StreamFile(path, func(p baseline.Point) error { streamed = append(streamed, p); return nil })
		if errors.Is(err, errTooLate) {
			return // read whole and sorted in memory instead: the points above
		}
		if err != nil {
			t.Fatalf("read whole, but streaming failed: %v", err)
		}
		if len(streamed) != len(pts) {
			t.Fatalf("streamed %d points, read %d", len(streamed), len(pts))
		}
		for i := range pts {
			if !pts[i].T.Equal(streamed[i].T) || math.Float64bits(pts[i].V) != math.Float64bits(streamed[i].V) && !(math.IsNaN(pts[i].V) && math.IsNaN(streamed[i].V)) {
				t.Fatalf("point %d: read %+v, streamed %+v", i, pts[i], streamed[i])
			}
		}
	})
}
