package backtest

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"container/heap"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
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

// ReadStats counts what reading a file had to repair. Nothing is changed
// silently: Warnings says each of these in words.
type ReadStats struct {
	// Rows is the number of data rows (header and blank lines excluded).
	Rows int
	// Gaps are rows without a value (empty or NaN), kept as gaps.
	Gaps int
	// NonFinite are ±Inf values, dropped as the live path drops them
	// (Prometheus' answers are read the same way).
	NonFinite int
	// OutOfOrder are rows earlier than the row before them; the series is sorted.
	OutOfOrder int
	// Duplicates are rows whose timestamp another row already had (a clock
	// change repeating an hour); each timestamp keeps the mean of its values.
	Duplicates int
	// SortedInMemory is set when rows went back further than the reorder
	// horizon, so the whole file had to be held and sorted in memory.
	SortedInMemory bool
}

// Warnings describes the repairs, one sentence each.
func (s ReadStats) Warnings() []string {
	var w []string
	if s.OutOfOrder > 0 {
		w = append(w, fmt.Sprintf("%d rows were earlier than the row before them; the series was sorted by time", s.OutOfOrder))
	}
	if s.Duplicates > 0 {
		w = append(w, fmt.Sprintf("%d rows repeated a timestamp of another row (a clock change repeating an hour?); each timestamp keeps the mean of its values", s.Duplicates))
	}
	if s.NonFinite > 0 {
		w = append(w, fmt.Sprintf("%d values were +Inf or -Inf and were dropped, as the live path drops them", s.NonFinite))
	}
	if s.SortedInMemory {
		w = append(w, fmt.Sprintf("rows went back more than %s, so all %d rows were held in memory to sort them", reorderHorizon, s.Rows))
	}
	return w
}

// rowReader yields the rows of a `timestamp,value` file in file order.
type rowReader struct {
	name  string
	cr    *csv.Reader
	stats *ReadStats
	prev  time.Time
}

func newRowReader(r io.Reader, name string, stats *ReadStats) (*rowReader, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: empty file (want header \"timestamp,value\")", name)
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d: %w", name, pe.Line, err)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(head) < 2 || strings.TrimSpace(strings.TrimPrefix(head[0], "\ufeff")) != "timestamp" || strings.TrimSpace(head[1]) != "value" {
		return nil, fmt.Errorf("%s:1: header is %q, want \"timestamp,value\"", name, strings.Join(head, ","))
	}
	return &rowReader{name: name, cr: cr, stats: stats}, nil
}

// next returns the next point, io.EOF at the end. ±Inf values are dropped
// (counted in the stats); empty and NaN values are points with V = NaN.
func (r *rowReader) next() (baseline.Point, error) {
	for {
		rec, err := r.cr.Read()
		if errors.Is(err, io.EOF) {
			return baseline.Point{}, io.EOF
		}
		if err != nil {
			// A failed read has no record: FieldPos would panic.
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return baseline.Point{}, fmt.Errorf("%s:%d: %w", r.name, pe.Line, err)
			}
			return baseline.Point{}, fmt.Errorf("%s: %w", r.name, err)
		}
		line, _ := r.cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) != 2 {
			return baseline.Point{}, fmt.Errorf("%s:%d: want 2 fields (timestamp,value), got %d", r.name, line, len(rec))
		}
		t, err := parseTime(rec[0])
		if err != nil {
			return baseline.Point{}, fmt.Errorf("%s:%d: %w", r.name, line, err)
		}
		v := math.NaN()
		if s := strings.TrimSpace(rec[1]); s != "" && !strings.EqualFold(s, "nan") {
			v, err = strconv.ParseFloat(s, 64)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return baseline.Point{}, fmt.Errorf("%s:%d: value %q is not a number", r.name, line, rec[1])
			}
		}
		r.stats.Rows++
		if t.Before(r.prev) {
			r.stats.OutOfOrder++
		}
		r.prev = t
		switch {
		case math.IsInf(v, 0):
			// A value out of float64's range parses as ±Inf too.
			r.stats.NonFinite++
			continue
		case math.IsNaN(v):
			r.stats.Gaps++
		}
		return baseline.Point{T: t, V: v}, nil
	}
}

// openRows opens path (gzipped or not, told by its first bytes, not its
// name) and calls fn with its row reader.
func openRows(path string, stats *ReadStats, fn func(*rowReader) error) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open input: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close %s: %w", path, cerr)
		}
	}()
	br := bufio.NewReaderSize(f, 1<<16)
	var r io.Reader = br
	if magic, perr := br.Peek(2); perr == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, zerr := gzip.NewReader(br)
		if zerr != nil {
			return fmt.Errorf("%s: %w", path, zerr)
		}
		defer func() {
			if cerr := zr.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("%s: %w", path, cerr)
			}
		}()
		r = zr
	}
	rr, err := newRowReader(r, path, stats)
	if err != nil {
		return err
	}
	return fn(rr)
}

// eachRow calls fn with every point of path in file order.
func eachRow(path string, stats *ReadStats, fn func(baseline.Point) error) error {
	return openRows(path, stats, func(r *rowReader) error {
		for {
			p, err := r.next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := fn(p); err != nil {
				return err
			}
		}
	})
}

// ReadCSV reads a `timestamp,value` file, gzipped or not, into memory,
// sorted by time with repeated timestamps merged. Empty and NaN values are
// kept as NaN points (gaps are fine); ±Inf values are dropped; anything
// else that does not parse is an error naming the file and line.
func ReadCSV(path string) ([]baseline.Point, error) {
	pts, _, err := ReadFile(path)
	return pts, err
}

// ReadFile is ReadCSV with the repairs it made.
func ReadFile(path string) ([]baseline.Point, ReadStats, error) {
	var stats ReadStats
	pts := make([]baseline.Point, 0, 1<<12)
	err := eachRow(path, &stats, func(p baseline.Point) error { pts = append(pts, p); return nil })
	if err != nil {
		return nil, stats, err
	}
	if stats.OutOfOrder > 0 {
		slices.SortStableFunc(pts, func(a, b baseline.Point) int { return a.T.Compare(b.T) })
	}
	pts, stats.Duplicates = mergeRepeats(pts)
	if len(pts) == 0 {
		return nil, stats, fmt.Errorf("%s: no data rows after the header", path)
	}
	return pts, stats, nil
}

// mergeRepeats replaces runs of equal timestamps in sorted pts by one point
// with the mean of their finite values (NaN when they have none) and
// returns the number of rows merged away.
func mergeRepeats(pts []baseline.Point) ([]baseline.Point, int) {
	out := pts[:0]
	merged := 0
	for i := 0; i < len(pts); {
		j := i + 1
		for j < len(pts) && pts[j].T.Equal(pts[i].T) {
			j++
		}
		out = append(out, meanPoint(pts[i:j]))
		merged += j - i - 1
		i = j
	}
	return out, merged
}

// meanPoint merges a run of points sharing a timestamp into the mean of
// their values (NaN when none is a number). The values are summed divided
// by their count, so two values near the float64 limit do not add up to an
// infinity the reader would otherwise have dropped, and in sorted order, so
// the file read whole and the file streamed (which meet a run's rows in
// different orders) give the same bits. It reorders run.
func meanPoint(run []baseline.Point) baseline.Point {
	if len(run) == 1 {
		return run[0]
	}
	slices.SortFunc(run, func(a, b baseline.Point) int { return cmp.Compare(a.V, b.V) })
	first := 0
	for first < len(run) && math.IsNaN(run[first].V) {
		first++
	}
	p := baseline.Point{T: run[0].T, V: math.NaN()}
	if n := float64(len(run) - first); n > 0 {
		p.V = 0
		for _, q := range run[first:] {
			p.V += q.V / n
		}
	}
	return p
}

// reorderHorizon is how far back in time a row may go and still be put in
// place while streaming: a clock change repeats one hour, an export merged
// from daily files may repeat a day. Rows further back make the whole file
// be sorted in memory instead.
const reorderHorizon = 25 * time.Hour

// errTooLate says a row went back further than reorderHorizon.
var errTooLate = errors.New("row further out of order than the reorder horizon")

// reorder turns points in file order into points in time order while
// holding only reorderHorizon of them: a point is released once a point
// more than the horizon later has been seen, and repeated timestamps are
// merged when released.
type reorder struct {
	h        pointHeap
	maxSeen  time.Time
	released time.Time
	started  bool
	run      []baseline.Point
	merged   int
	emit     func(baseline.Point) error
}

func (r *reorder) push(p baseline.Point) error {
	if r.started && !p.T.After(r.released) {
		return errTooLate
	}
	heap.Push(&r.h, p)
	if p.T.After(r.maxSeen) {
		r.maxSeen = p.T
	}
	for len(r.h) > 0 && r.maxSeen.Sub(r.h[0].T) > reorderHorizon {
		if err := r.release(); err != nil {
			return err
		}
	}
	return nil
}

// release emits the earliest timestamp, merged with its repeats.
func (r *reorder) release() error {
	r.run = append(r.run[:0], heap.Pop(&r.h).(baseline.Point))
	for len(r.h) > 0 && r.h[0].T.Equal(r.run[0].T) {
		r.run = append(r.run, heap.Pop(&r.h).(baseline.Point))
	}
	r.merged += len(r.run) - 1
	r.released, r.started = r.run[0].T, true
	return r.emit(meanPoint(r.run))
}

func (r *reorder) flush() error {
	for len(r.h) > 0 {
		if err := r.release(); err != nil {
			return err
		}
	}
	return nil
}

// pointHeap orders points by time (repeats are merged, so ties need no order).
type pointHeap []baseline.Point

func (h pointHeap) Len() int           { return len(h) }
func (h pointHeap) Less(i, j int) bool { return h[i].T.Before(h[j].T) }
func (h pointHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pointHeap) Push(x any)        { *h = append(*h, x.(baseline.Point)) }
func (h *pointHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	*h = old[:len(old)-1]
	return p
}

// StreamFile calls fn with the points of path in time order, holding only
// reorderHorizon of rows in memory, and returns the repairs made. A file
// whose rows go back further than that is read whole and sorted in memory
// (ReadStats.SortedInMemory).
func StreamFile(path string, fn func(baseline.Point) error) (ReadStats, error) {
	var stats ReadStats
	ro := &reorder{emit: fn}
	err := eachRow(path, &stats, ro.push)
	if err == nil {
		err = ro.flush()
	}
	stats.Duplicates = ro.merged
	if !errors.Is(err, errTooLate) {
		if err == nil && !ro.started {
			return stats, fmt.Errorf("%s: no data rows after the header", path)
		}
		return stats, err
	}
	return stats, errTooLate
}
