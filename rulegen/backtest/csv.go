package backtest

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
)

var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999",
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
}

func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("timestamp %q is neither \"YYYY-MM-DD HH:MM:SS[.ffffff]\" (UTC) nor RFC 3339", s)
}

// ReadCSV reads a `timestamp,value` file, gzipped or not (told by its first
// bytes, not its name). Empty and NaN values are kept as NaN points (gaps are
// fine); anything else that does not parse is an error naming the file and line.
func ReadCSV(path string) ([]baseline.Point, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	pts, err := readMaybeGzip(f, path)
	if cerr := f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close %s: %w", path, cerr)
	}
	return pts, err
}

func readMaybeGzip(f io.Reader, name string) ([]baseline.Point, error) {
	br := bufio.NewReader(f)
	if magic, err := br.Peek(2); err != nil || magic[0] != 0x1f || magic[1] != 0x8b {
		return parseCSV(br, name)
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	pts, err := parseCSV(zr, name)
	if cerr := zr.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("%s: %w", name, cerr)
	}
	return pts, err
}

func parseCSV(r io.Reader, name string) ([]baseline.Point, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: empty file (want header \"timestamp,value\")", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s:1: %w", name, err)
	}
	if len(head) < 2 || strings.TrimSpace(strings.TrimPrefix(head[0], "\ufeff")) != "timestamp" || strings.TrimSpace(head[1]) != "value" {
		return nil, fmt.Errorf("%s:1: header is %q, want \"timestamp,value\"", name, strings.Join(head, ","))
	}
	pts := make([]baseline.Point, 0, 1<<14)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// A *csv.ParseError carries its own line; FieldPos is only
			// valid for a record that was read.
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("%s:%d: %w", name, pe.Line, pe.Err)
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) != 2 {
			return nil, fmt.Errorf("%s:%d: want 2 fields (timestamp,value), got %d", name, line, len(rec))
		}
		t, err := parseTime(rec[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		v := math.NaN()
		if s := strings.TrimSpace(rec[1]); s != "" && !strings.EqualFold(s, "nan") {
			v, err = strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: value %q is not a number", name, line, rec[1])
			}
		}
		// Equal timestamps happen (daylight-saving repeats in exported data) and are kept.
		if n := len(pts); n > 0 && t.Before(pts[n-1].T) {
			return nil, fmt.Errorf("%s:%d: timestamp %s is before the previous row (%s); rows must be in time order",
				name, line, t.Format(time.RFC3339), pts[n-1].T.Format(time.RFC3339))
		}
		pts = append(pts, baseline.Point{T: t, V: v})
	}
	if len(pts) == 0 {
		return nil, fmt.Errorf("%s: no data rows after the header", name)
	}
	return pts, nil
}
