package llmsim

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TraceRecord is one request of the Azure LLM inference trace.
type TraceRecord struct {
	// Time is the recorded arrival; Offset is relative to the first request.
	Time            time.Time
	Offset          time.Duration
	ContextTokens   int
	GeneratedTokens int
	// Service is the file's service name ("conv" or "code").
	Service string
}

// traceTimeLayout matches "2023-11-16 18:17:03.9799600" (7 fractional digits, UTC).
const traceTimeLayout = "2006-01-02 15:04:05.999999999"

// ReadTrace parses one trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens).
// Offsets are relative to the file's first row; errors name file and line.
func ReadTrace(r io.Reader, name, service string) ([]TraceRecord, error) {
	br := bufio.NewReader(r)
	// Some exports of the trace start with a UTF-8 byte order mark.
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte{0xEF, 0xBB, 0xBF}) {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = 3
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: read header: %w", name, err)
	}
	if header[0] != "TIMESTAMP" || header[1] != "ContextTokens" || header[2] != "GeneratedTokens" {
		return nil, fmt.Errorf("%s:1: header is %q, want TIMESTAMP,ContextTokens,GeneratedTokens", name, strings.Join(header, ","))
	}
	var (
		out   []TraceRecord
		first time.Time
	)
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		ts, err := time.Parse(traceTimeLayout, rec[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: bad TIMESTAMP %q: %w", name, line, rec[0], err)
		}
		ctxTok, err := strconv.Atoi(rec[1])
		if err != nil || ctxTok < 0 {
			return nil, fmt.Errorf("%s:%d: bad ContextTokens %q", name, line, rec[1])
		}
		genTok, err := strconv.Atoi(rec[2])
		if err != nil || genTok < 0 {
			return nil, fmt.Errorf("%s:%d: bad GeneratedTokens %q", name, line, rec[2])
		}
		if first.IsZero() {
			first = ts
		}
		out = append(out, TraceRecord{Time: ts, Offset: ts.Sub(first), ContextTokens: ctxTok, GeneratedTokens: genTok, Service: service})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no records", name)
	}
	return out, nil
}

// LoadTrace reads every AzureLLMInferenceTrace_*.csv in dir (or the single
// file dir names) and merges them into one arrival sequence sorted by time.
// Each file's clock is kept, so the services interleave as they did.
func LoadTrace(path string) ([]TraceRecord, error) {
	files := []string{path}
	if st, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	} else if st.IsDir() {
		files, err = filepath.Glob(filepath.Join(path, "*.csv"))
		if err != nil {
			return nil, fmt.Errorf("trace: %w", err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("trace: no .csv files in %s", path)
		}
	}
	var all []TraceRecord
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("trace: %w", err)
		}
		service := strings.TrimSuffix(filepath.Base(f), ".csv")
		if i := strings.LastIndexByte(service, '_'); i >= 0 {
			service = service[i+1:]
		}
		recs, err := ReadTrace(fh, f, service)
		if cerr := fh.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", f, cerr)
		}
		if err != nil {
			return nil, err
		}
		all = append(all, recs...)
	}
	earliest := all[0].Time
	for _, r := range all {
		if r.Time.Before(earliest) {
			earliest = r.Time
		}
	}
	for i := range all {
		all[i].Offset = all[i].Time.Sub(earliest)
	}
	slices.SortStableFunc(all, func(a, b TraceRecord) int { return int(a.Offset - b.Offset) })
	return all, nil
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
