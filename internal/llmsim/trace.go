package llmsim

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
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

// embeddedTrace is the Azure LLM inference trace 2023 (conversation and code
// services, one hour; © Microsoft, Azure Public Dataset, CC-BY 4.0, see
// trace/LICENSE), so the load generator replays real arrivals with no file
// beside the binary.
//
//go:embed trace/*.csv.gz
var embeddedTrace embed.FS

// EmbeddedTrace names the built-in trace in logs and summaries.
const EmbeddedTrace = "embedded Azure LLM inference trace 2023"

// LoadTrace reads every AzureLLMInferenceTrace_*.csv (or .csv.gz) in the
// directory path names, or the single file it names, and merges them into one
// arrival sequence sorted by time. Each file's clock is kept, so the services
// interleave as they did. An empty path loads the trace built into the binary.
func LoadTrace(location string) ([]TraceRecord, error) {
	if location == "" {
		return loadTraceFS(embeddedTrace, "trace", "trace")
	}
	st, err := os.Stat(location)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	if !st.IsDir() {
		dir := filepath.Dir(location)
		return loadTraceFS(os.DirFS(dir), dir, ".", filepath.Base(location))
	}
	return loadTraceFS(os.DirFS(location), location, ".")
}

// loadTraceFS reads files (or every *.csv and *.csv.gz in dir) from fsys;
// root is what errors call fsys's root.
func loadTraceFS(fsys fs.FS, root, dir string, files ...string) ([]TraceRecord, error) {
	if len(files) == 0 {
		for _, pat := range []string{"*.csv", "*.csv.gz"} {
			m, err := fs.Glob(fsys, path.Join(dir, pat))
			if err != nil {
				return nil, fmt.Errorf("trace: %w", err)
			}
			files = append(files, m...)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("trace: no .csv or .csv.gz files in %s", root)
		}
	} else {
		for i, f := range files {
			files[i] = path.Join(dir, f)
		}
	}
	var all []TraceRecord
	for _, f := range files {
		recs, err := readTraceFile(fsys, f, filepath.Join(root, f))
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

// readTraceFile reads one trace file, gunzipping names that end in .gz. The
// service is the part of the name after the last underscore ("conv", "code").
func readTraceFile(fsys fs.FS, name, display string) (recs []TraceRecord, err error) {
	fh, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	defer func() {
		if cerr := fh.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("trace: close %s: %w", display, cerr)
		}
	}()
	var r io.Reader = fh
	base := path.Base(name)
	if strings.HasSuffix(base, ".gz") {
		zr, err := gzip.NewReader(fh)
		if err != nil {
			return nil, fmt.Errorf("trace: %s: %w", display, err)
		}
		defer zr.Close()
		r = zr
		base = strings.TrimSuffix(base, ".gz")
	}
	service := strings.TrimSuffix(base, ".csv")
	if i := strings.LastIndexByte(service, '_'); i >= 0 {
		service = service[i+1:]
	}
	return ReadTrace(r, display, service)
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
