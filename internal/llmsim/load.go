package llmsim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Load generator modes.
const (
	ModeTrace  = "trace"
	ModeOpen   = "open"
	ModeClosed = "closed"
)

// RouteWeight is one entry of the route mix.
type RouteWeight struct {
	Route  string
	Weight float64
}

// DefaultRouteMix is mostly chat, as on a typical LLM gateway.
func DefaultRouteMix() []RouteWeight {
	return []RouteWeight{
		{RouteChat, 0.75}, {RouteCompletions, 0.12}, {RouteEmbeddings, 0.05},
		{RouteGenerate, 0.05}, {RouteModels, 0.03},
	}
}

// ParseRouteMix reads "/v1/chat/completions=8,/v1/embeddings=1".
func ParseRouteMix(s string) ([]RouteWeight, error) {
	var mix []RouteWeight
	for _, kv := range strings.Split(s, ",") {
		r, w, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("route mix %q: %q is not route=weight", s, kv)
		}
		f, err := strconv.ParseFloat(w, 64)
		if err != nil || f < 0 {
			return nil, fmt.Errorf("route mix %q: weight of %s must be a number >= 0", s, r)
		}
		if !slices.Contains([]string{RouteChat, RouteCompletions, RouteEmbeddings, RouteModels, RouteGenerate}, r) {
			return nil, fmt.Errorf("route mix %q: unknown route %q", s, r)
		}
		mix = append(mix, RouteWeight{r, f})
	}
	return mix, nil
}

// LoadOptions configure one bounded load run. A run ends when Duration
// passes, Count requests were sent or the trace is exhausted, whichever is
// first, and then waits for requests in flight (each bounded by Timeout).
type LoadOptions struct {
	// Target is the base URL, e.g. http://127.0.0.1:8000.
	Target string
	Mode   string
	// Trace is replayed in ModeTrace, its offsets divided by Speed.
	Trace []TraceRecord
	Speed float64
	// Rate is the constant arrival rate of ModeOpen, requests per second.
	Rate float64
	// Concurrency is the number of workers in ModeClosed.
	Concurrency int
	// MaxInFlight caps concurrent requests in the open modes; arrivals over
	// the cap are skipped and counted, never queued.
	MaxInFlight int
	Duration    time.Duration
	Count       int
	Models      []string
	Routes      []RouteWeight
	// StreamRatio of chat and completion requests ask for a stream.
	StreamRatio float64
	// KeepAlive reuses connections; false opens one per request.
	KeepAlive bool
	Timeout   time.Duration
	// MaxTokens is max_tokens outside trace mode; 0 lets the server choose.
	MaxTokens int
	// PromptTokens is the prompt size outside trace mode.
	PromptTokens int
	// MaxPromptTokens caps trace prompts (0: no cap).
	MaxPromptTokens int
	Seed            uint64
}

func (o *LoadOptions) validate() error {
	if _, err := http.NewRequest(http.MethodGet, o.Target, nil); err != nil || !strings.HasPrefix(o.Target, "http") {
		return fmt.Errorf("target %q is not an http(s) URL", o.Target)
	}
	switch o.Mode {
	case ModeTrace:
		if len(o.Trace) == 0 {
			return errors.New("trace mode needs trace records")
		}
		if o.Speed <= 0 {
			return fmt.Errorf("trace speed must be > 0, got %g", o.Speed)
		}
	case ModeOpen:
		if o.Rate <= 0 {
			return fmt.Errorf("open loop rate must be > 0, got %g", o.Rate)
		}
	case ModeClosed:
		if o.Concurrency <= 0 {
			return fmt.Errorf("closed loop concurrency must be > 0, got %d", o.Concurrency)
		}
	default:
		return fmt.Errorf("unknown mode %q (want trace, open or closed)", o.Mode)
	}
	if o.Mode != ModeTrace && o.Duration <= 0 && o.Count <= 0 {
		return errors.New("set a duration or a count so the run ends")
	}
	if o.StreamRatio < 0 || o.StreamRatio > 1 {
		return fmt.Errorf("stream ratio must be within [0, 1], got %g", o.StreamRatio)
	}
	total := 0.0
	for _, r := range o.Routes {
		total += r.Weight
	}
	if len(o.Routes) > 0 && total <= 0 {
		return errors.New("route mix has no positive weight")
	}
	return nil
}

// job is one request to send.
type job struct {
	route        string
	model        string
	stream       bool
	promptTokens int
	maxTokens    int
}

// planner draws jobs from the mix; it is used by one goroutine at a time.
type planner struct {
	o   *LoadOptions
	rnd *rand.Rand
	cum []float64
}

func newPlanner(o *LoadOptions, stream uint64) *planner {
	p := &planner{o: o, rnd: rand.New(rand.NewPCG(o.Seed, stream))}
	total := 0.0
	for _, r := range o.Routes {
		total += r.Weight
		p.cum = append(p.cum, total)
	}
	return p
}

func (p *planner) next(rec *TraceRecord) job {
	x := p.rnd.Float64() * p.cum[len(p.cum)-1]
	i, _ := slices.BinarySearch(p.cum, x)
	i = min(i, len(p.cum)-1)
	for p.o.Routes[i].Weight == 0 {
		i = (i + 1) % len(p.cum)
	}
	j := job{route: p.o.Routes[i].Route, model: p.o.Models[p.rnd.IntN(len(p.o.Models))],
		promptTokens: p.o.PromptTokens, maxTokens: p.o.MaxTokens}
	if rec != nil {
		j.promptTokens = max(rec.ContextTokens, 1)
		if p.o.MaxPromptTokens > 0 {
			j.promptTokens = min(j.promptTokens, p.o.MaxPromptTokens)
		}
		j.maxTokens = max(rec.GeneratedTokens, 1)
	}
	if j.route == RouteChat || j.route == RouteCompletions {
		j.stream = p.rnd.Float64() < p.o.StreamRatio
	}
	return j
}

// filler is prompt text: four bytes per simulated token, nothing to escape.
var filler = strings.Repeat("abc ", 1<<15)

func promptText(tokens int) string {
	n := tokens * 4
	if n <= len(filler) {
		return filler[:n]
	}
	return strings.Repeat("abc ", tokens)
}

func (j job) body() []byte {
	if j.route == RouteModels {
		return nil
	}
	b := make([]byte, 0, j.promptTokens*4+256)
	b = append(b, `{"model":`...)
	b = strconv.AppendQuote(b, j.model)
	text := promptText(j.promptTokens)
	switch j.route {
	case RouteChat:
		b = append(b, `,"messages":[{"role":"user","content":"`...)
		b = append(b, text...)
		b = append(b, `"}]`...)
	case RouteCompletions:
		b = append(b, `,"prompt":"`...)
		b = append(b, text...)
		b = append(b, '"')
	case RouteEmbeddings:
		b = append(b, `,"input":"`...)
		b = append(b, text...)
		b = append(b, '"')
	case RouteGenerate:
		b = append(b, `,"inputs":"`...)
		b = append(b, text...)
		b = append(b, '"')
		if j.maxTokens > 0 {
			b = append(b, `,"parameters":{"max_new_tokens":`...)
			b = strconv.AppendInt(b, int64(j.maxTokens), 10)
			b = append(b, '}')
		}
	}
	if j.maxTokens > 0 && (j.route == RouteChat || j.route == RouteCompletions) {
		b = append(b, `,"max_tokens":`...)
		b = strconv.AppendInt(b, int64(j.maxTokens), 10)
	}
	if j.stream {
		b = append(b, `,"stream":true,"stream_options":{"include_usage":true}`...)
	}
	return append(b, '}')
}

// result of one request.
type result struct {
	route   string
	status  int
	errKind string
	latency time.Duration
	ttft    time.Duration
	stream  bool
}

// Percentiles summarise a latency distribution in seconds.
type Percentiles struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	slices.Sort(d)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(d)))) - 1
		return d[max(i, 0)].Seconds()
	}
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	return Percentiles{Count: len(d), Mean: (sum / time.Duration(len(d))).Seconds(),
		P50: at(0.50), P90: at(0.90), P95: at(0.95), P99: at(0.99), Max: d[len(d)-1].Seconds()}
}

// Summary is what a load run sent and got back. Sent = sum of responses +
// sum of errors; Skipped arrivals were never sent.
type Summary struct {
	Mode            string                      `json:"mode"`
	Target          string                      `json:"target"`
	Sent            int64                       `json:"sent"`
	Skipped         int64                       `json:"skipped"`
	Responses       int64                       `json:"responses"`
	ByStatus        map[string]int64            `json:"responses_by_status"`
	ByRoute         map[string]map[string]int64 `json:"responses_by_route"`
	Errors          map[string]int64            `json:"errors_by_kind"`
	Streams         int64                       `json:"streams"`
	Latency         Percentiles                 `json:"latency_seconds"`
	TTFT            Percentiles                 `json:"ttft_seconds"`
	DurationSeconds float64                     `json:"duration_seconds"`
	AchievedRate    float64                     `json:"achieved_rate"`
}

// recorder collects results from concurrent requests.
type recorder struct {
	mu        sync.Mutex
	sum       Summary
	latencies []time.Duration
	ttfts     []time.Duration
}

func (r *recorder) add(res result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sum.Sent++
	if res.status == 0 {
		r.sum.Errors[res.errKind]++
		return
	}
	if res.errKind != "" {
		// A response arrived but its body broke off; count both facts.
		r.sum.Errors[res.errKind]++
	}
	code := strconv.Itoa(res.status)
	r.sum.Responses++
	r.sum.ByStatus[code]++
	m := r.sum.ByRoute[res.route]
	if m == nil {
		m = map[string]int64{}
		r.sum.ByRoute[res.route] = m
	}
	m[code]++
	if res.errKind == "" {
		r.latencies = append(r.latencies, res.latency)
		if res.stream && res.status == http.StatusOK {
			r.sum.Streams++
			r.ttfts = append(r.ttfts, res.ttft)
		}
	}
}

// Run sends load as configured and returns the summary. It returns early
// (with what it has) when ctx is cancelled.
func Run(ctx context.Context, o LoadOptions) (*Summary, error) {
	if len(o.Models) == 0 {
		o.Models = DefaultModels
	}
	if len(o.Routes) == 0 {
		o.Routes = DefaultRouteMix()
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 10000
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64()
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("load options: %w", err)
	}
	o.Target = strings.TrimRight(o.Target, "/")
	conns := o.MaxInFlight
	if o.Mode == ModeClosed {
		conns = o.Concurrency
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableKeepAlives:   !o.KeepAlive,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: o.Timeout}
	rec := &recorder{
		sum: Summary{Mode: o.Mode, Target: o.Target, ByStatus: map[string]int64{},
			ByRoute: map[string]map[string]int64{}, Errors: map[string]int64{}},
	}
	if o.Count > 0 {
		rec.latencies = make([]time.Duration, 0, o.Count)
	}

	start := time.Now()
	runCtx := ctx
	if o.Duration > 0 {
		var cancel context.CancelFunc
		// Requests still running at the end get their own timeout, not the run's.
		runCtx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	switch o.Mode {
	case ModeClosed:
		runClosed(runCtx, ctx, &o, client, rec)
	default:
		// The timetable itself stops at Duration; a deadline here would
		// race the last arrivals.
		runOpen(ctx, &o, client, rec, start)
	}
	elapsed := time.Since(start)
	s := rec.sum
	s.Latency = percentiles(rec.latencies)
	s.TTFT = percentiles(rec.ttfts)
	s.DurationSeconds = elapsed.Seconds()
	if elapsed > 0 {
		s.AchievedRate = float64(s.Responses) / elapsed.Seconds()
	}
	return &s, nil
}

// runOpen dispatches arrivals on a fixed timetable (constant rate or the
// trace), never waiting for responses, so a slow server cannot slow the load.
func runOpen(ctx context.Context, o *LoadOptions, client *http.Client, rec *recorder, start time.Time) {
	p := newPlanner(o, 1)
	var (
		wg       sync.WaitGroup
		inFlight atomic.Int64
		skipped  int64
	)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	n := len(o.Trace)
	if o.Mode == ModeOpen {
		n = math.MaxInt
	}
	for i := 0; i < n; i++ {
		if o.Count > 0 && i >= o.Count {
			break
		}
		var (
			at time.Duration
			tr *TraceRecord
		)
		if o.Mode == ModeTrace {
			tr = &o.Trace[i]
			at = time.Duration(float64(tr.Offset) / o.Speed)
		} else {
			at = time.Duration(float64(i) / o.Rate * float64(time.Second))
		}
		if o.Duration > 0 && at >= o.Duration {
			break
		}
		// Waking up for every arrival at high rates costs more than it
		// measures: arrivals due within a millisecond go out together.
		if wait := time.Until(start.Add(at)); wait > time.Millisecond {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			break
		}
		j := p.next(tr)
		if inFlight.Load() >= int64(o.MaxInFlight) {
			skipped++
			continue
		}
		inFlight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer inFlight.Add(-1)
			rec.add(send(ctx, client, o.Target, j))
		}()
	}
	wg.Wait()
	rec.mu.Lock()
	rec.sum.Skipped = skipped
	rec.mu.Unlock()
}

// runClosed keeps Concurrency requests outstanding on keep-alive workers.
func runClosed(runCtx, reqCtx context.Context, o *LoadOptions, client *http.Client, rec *recorder) {
	var (
		wg      sync.WaitGroup
		tickets atomic.Int64
	)
	for w := range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := newPlanner(o, uint64(w)+2)
			for runCtx.Err() == nil {
				if o.Count > 0 && tickets.Add(1) > int64(o.Count) {
					return
				}
				rec.add(send(reqCtx, client, o.Target, p.next(nil)))
			}
		}()
	}
	wg.Wait()
}

// send performs one request and reads the whole response.
func send(ctx context.Context, client *http.Client, target string, j job) result {
	res := result{route: j.route, stream: j.stream}
	method, body := http.MethodPost, j.body()
	if j.route == RouteModels {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, target+j.route, bytes.NewReader(body))
	if err != nil {
		res.errKind = "bad_request"
		return res
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if j.stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		res.errKind = errorKind(err)
		return res
	}
	defer resp.Body.Close()
	res.status = resp.StatusCode
	if j.stream && resp.StatusCode == http.StatusOK {
		done, err := readStream(resp.Body, func() { res.ttft = time.Since(t0) })
		switch {
		case err != nil:
			res.errKind = errorKind(err)
		case !done:
			res.errKind = "stream_incomplete"
		}
	} else if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		res.errKind = errorKind(err)
	}
	res.latency = time.Since(t0)
	return res
}

// readStream reads SSE events until EOF, calling first at the first data
// event, and reports whether [DONE] arrived.
func readStream(r io.Reader, first func()) (bool, error) {
	br := bufio.NewReaderSize(r, 4096)
	seen, done := false, false
	for {
		line, err := br.ReadSlice('\n')
		if bytes.HasPrefix(line, []byte("data:")) {
			if !seen {
				seen = true
				first()
			}
			if bytes.Equal(bytes.TrimSpace(line[5:]), []byte("[DONE]")) {
				done = true
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			return done, nil
		case errors.Is(err, bufio.ErrBufferFull):
			// A long event: skip the rest of the line.
			continue
		case err != nil:
			return done, err
		}
	}
}

func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection_reset"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected_eof"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no_local_port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too_many_open_files"
	}
	return "other"
}
