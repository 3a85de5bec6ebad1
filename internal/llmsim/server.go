// Package llmsim is an OpenAI-compatible LLM API simulator and a load
// generator for it. The server paces tokens like a real model, reports usage,
// and injects errors and latency on a schedule; the load generator replays
// the Azure LLM inference trace or runs open or closed loops, and summarises
// what it sent and what came back.
package llmsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Routes the simulator serves.
const (
	RouteChat        = "/v1/chat/completions"
	RouteCompletions = "/v1/completions"
	RouteEmbeddings  = "/v1/embeddings"
	RouteModels      = "/v1/models"
	RouteGenerate    = "/v1/generate"
	routeOther       = "other"
)

// maxBodyBytes bounds request bodies; the largest trace prompts are ~100 KiB.
const maxBodyBytes = 8 << 20

// Options configure a Server.
type Options struct {
	Pacing Pacing
	// NoPacing answers immediately (benchmarks); faults still apply.
	NoPacing bool
	// AlwaysUsage sends the usage chunk on every stream, not only when the
	// client asked with stream_options.include_usage.
	AlwaysUsage bool
	Schedule    *Schedule
	// Models listed by /v1/models.
	Models []string
	// Now is the clock the fault schedule is read with; nil means time.Now.
	Now func() time.Time
	// Seed makes sampling reproducible; 0 picks a random seed.
	Seed uint64
	// AccessLog, when set, is a file the server appends one JSON line to per
	// finished API request (see README.md); Close flushes and closes it.
	AccessLog string
	// Engine sizes the simulated scheduler behind the generating routes.
	Engine EngineOptions
	Logger *slog.Logger
}

// DefaultModels are listed by /v1/models when none are configured.
var DefaultModels = []string{"glm-4-9b-chat", "autoglm-phone-9b", "qwen2.5-7b-instruct"}

type counterKey struct {
	route string
	code  int
}

// Server is the simulated inference server.
type Server struct {
	o       Options
	now     func() time.Time
	started time.Time
	rnd     *lockedRand
	seq     atomic.Uint64

	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	tokens       *prometheus.CounterVec
	faults       *prometheus.CounterVec
	inFlight     prometheus.Gauge
	aborted      prometheus.Counter
	faultAborts  prometheus.Counter
	counterCache sync.Map // counterKey -> prometheus.Counter

	alog *accessLog
	eng  *engine
}

// NewServer builds a server whose schedule clock starts now.
func NewServer(o Options) (*Server, error) {
	if o.Schedule != nil {
		if err := o.Schedule.Validate(); err != nil {
			return nil, fmt.Errorf("fault schedule: %w", err)
		}
	}
	if o.Pacing == (Pacing{}) {
		o.Pacing = DefaultPacing()
	}
	if len(o.Models) == 0 {
		o.Models = DefaultModels
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	s := &Server{
		o: o, now: now, started: now(), rnd: newLockedRand(o.Seed),
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autoglm_llmsim_requests_total",
			Help: "Requests answered by the simulator, by route and status code.",
		}, []string{"route", "status"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autoglm_llmsim_tokens_total",
			Help: "Tokens reported in usage, by type (input or output).",
		}, []string{"type"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autoglm_llmsim_injected_errors_total",
			Help: "Error responses injected by the fault schedule, by phase and status code.",
		}, []string{"phase", "status"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "autoglm_llmsim_in_flight_requests",
			Help: "Requests being answered right now.",
		}),
		aborted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "autoglm_llmsim_streams_aborted_total",
			Help: "Streams cut short because the client went away.",
		}),
		faultAborts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "autoglm_llmsim_injected_aborts_total",
			Help: "Streams the fault schedule cut off mid-answer.",
		}),
	}
	s.eng = newEngine(o.Engine, s.capacityScale)
	s.reg.MustRegister(s.requests, s.tokens, s.faults, s.inFlight, s.aborted, s.faultAborts)
	s.reg.MustRegister(s.eng.collectors()...)
	s.eng.mu.Lock()
	s.eng.publishLocked(s.servedModel())
	s.eng.mu.Unlock()
	if o.AccessLog != "" {
		a, err := openAccessLog(o.AccessLog, accessLogFlushEvery, o.Logger)
		if err != nil {
			return nil, err
		}
		s.alog = a
	}
	return s, nil
}

// Close flushes and closes the access log, if any. Call it after the HTTP
// server has finished answering.
func (s *Server) Close() error {
	if s.alog == nil {
		return nil
	}
	return s.alog.close()
}

// ReopenAccessLog reopens the access log at its path, after logrotate
// renamed the old file (SIGHUP in autoglm-llmsim serve).
func (s *Server) ReopenAccessLog() error {
	if s.alog == nil {
		return nil
	}
	return s.alog.reopen()
}

// Registry holds the simulator's own metrics (served on /metrics).
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Requests returns how many requests were answered on route with status.
func (s *Server) Requests(route string, status int) float64 {
	return counterValue(s.counter(route, status))
}

// Register adds the API routes to mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc(RouteChat, s.logged(s.handleGenerate(RouteChat)))
	mux.HandleFunc(RouteCompletions, s.logged(s.handleGenerate(RouteCompletions)))
	mux.HandleFunc(RouteGenerate, s.logged(s.handleGenerate(RouteGenerate)))
	mux.HandleFunc(RouteEmbeddings, s.logged(s.handleEmbeddings))
	mux.HandleFunc(RouteModels, s.logged(s.handleModels))
	mux.HandleFunc("/v1/", s.logged(func(w http.ResponseWriter, _ *http.Request) {
		s.writeError(w, routeOther, http.StatusNotFound, "unknown endpoint")
	}))
}

// Handler is a mux with only the API routes (tests, benchmarks).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Register(mux)
	return mux
}

func (s *Server) counter(route string, code int) prometheus.Counter {
	k := counterKey{route, code}
	if c, ok := s.counterCache.Load(k); ok {
		return c.(prometheus.Counter)
	}
	c := s.requests.WithLabelValues(route, strconv.Itoa(code))
	s.counterCache.Store(k, c)
	return c
}

// apiRequest is the union of the request bodies we accept.
type apiRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	Input               json.RawMessage `json:"input"`
	Inputs              string          `json:"inputs"`
	MaxTokens           int             `json:"max_tokens"`
	MaxCompletionTokens int             `json:"max_completion_tokens"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Parameters *struct {
		MaxNewTokens int `json:"max_new_tokens"`
	} `json:"parameters"`
}

// textBytes is the size of the text a JSON value carries: a string's
// length, or the summed lengths of strings in an array (of strings or
// content parts); anything else counts its raw size.
func textBytes(raw json.RawMessage) int {
	if len(raw) == 0 || raw[0] == 'n' {
		return 0
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return len(s)
		}
	case '[':
		var parts []json.RawMessage
		if json.Unmarshal(raw, &parts) == nil {
			n := 0
			for _, p := range parts {
				if len(p) > 0 && p[0] == '{' {
					var part struct {
						Text string `json:"text"`
					}
					if json.Unmarshal(p, &part) == nil {
						n += len(part.Text)
						continue
					}
				}
				n += textBytes(p)
			}
			return n
		}
	}
	return len(raw)
}

func (r *apiRequest) promptTokens() int {
	n := len(r.Inputs) + textBytes(r.Prompt) + textBytes(r.Input)
	for _, m := range r.Messages {
		n += textBytes(m.Content)
	}
	return estimateTokens(n)
}

func (r *apiRequest) maxTokens() int {
	switch {
	case r.MaxCompletionTokens > 0:
		return r.MaxCompletionTokens
	case r.MaxTokens > 0:
		return r.MaxTokens
	case r.Parameters != nil:
		return r.Parameters.MaxNewTokens
	}
	return 0
}

// decision is what the fault schedule does to one request.
type decision struct {
	status   int
	phase    string
	delay    time.Duration
	ttftMul  float64
	tokenMul float64
	abort    bool
}

func (s *Server) decide() decision {
	d := decision{ttftMul: 1, tokenMul: 1}
	var buf [4]Phase
	for _, p := range s.o.Schedule.Active(s.now().Sub(s.started), buf[:0]) {
		d.delay += p.AddedLatency
		if p.TTFTMultiplier > 0 {
			d.ttftMul *= p.TTFTMultiplier
		}
		if p.TokenMultiplier > 0 {
			d.tokenMul *= p.TokenMultiplier
		}
		if p.AbortRatio > 0 && s.rnd.Float64() < p.AbortRatio {
			d.abort = true
		}
		if d.status == 0 && p.ErrorRatio > 0 && s.rnd.Float64() < p.ErrorRatio {
			d.status = p.StatusCodes[s.rnd.IntN(len(p.StatusCodes))]
			d.phase = p.Name
		}
	}
	return d
}

// capacityScale is the share of the engine's capacity the fault schedule leaves.
func (s *Server) capacityScale() float64 {
	f := 1.0
	var buf [4]Phase
	for _, p := range s.o.Schedule.Active(s.now().Sub(s.started), buf[:0]) {
		if p.CapacityRatio > 0 {
			f = math.Min(f, p.CapacityRatio)
		}
	}
	return f
}

// servedModel is the engine's model_name label.
func (s *Server) servedModel() string { return s.o.Models[0] }

func sleepCtx(ctx context.Context, t *time.Timer, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t.Reset(d)
	select {
	case <-ctx.Done():
		t.Stop()
		return false
	case <-t.C:
		return true
	}
}

func (s *Server) handleGenerate(route string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			s.writeError(w, route, http.StatusMethodNotAllowed, "use POST")
			return
		}
		s.inFlight.Inc()
		defer s.inFlight.Dec()
		var req apiRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, maxBodyBytes)).Decode(&req); err != nil {
			s.writeError(w, route, http.StatusBadRequest, "request body is not valid JSON")
			return
		}
		noteModel(w, req.Model)
		if req.Model == "" && route != RouteGenerate {
			s.writeError(w, route, http.StatusBadRequest, "model is required")
			return
		}
		if route == RouteGenerate {
			req.Stream = false
		}
		d := s.decide()
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		if !sleepCtx(r.Context(), timer, d.delay) {
			return
		}
		if d.status != 0 {
			s.faults.WithLabelValues(d.phase, strconv.Itoa(d.status)).Inc()
			if d.status == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "1")
			}
			s.writeError(w, route, d.status, "injected fault")
			return
		}
		arrived := s.now()
		g := generation{
			s: s, route: route, req: &req, timer: timer, arrived: arrived,
			prompt:     req.promptTokens(),
			completion: s.o.Pacing.completionTokens(s.rnd, req.maxTokens()),
			id:         s.seq.Add(1),
			created:    s.now().Unix(),
		}
		g.model, _ = json.Marshal(req.Model)
		if !s.o.NoPacing {
			g.ttft = time.Duration(float64(s.o.Pacing.ttft(s.rnd)) * d.ttftMul)
			g.perToken = time.Duration(float64(s.o.Pacing.perToken(s.rnd)) * d.tokenMul)
		}
		// The engine: wait for a slot and cache room; the wait is part of
		// the time to first token, as in a real server.
		if g.seq = s.eng.start(r.Context(), s.servedModel(), g.prompt); g.seq == nil {
			return
		}
		defer g.seq.done()
		if req.Stream {
			g.abort = d.abort
			g.stream(w, r.Context(), s.o.AlwaysUsage || (req.StreamOptions != nil && req.StreamOptions.IncludeUsage))
			return
		}
		g.whole(w, r.Context())
	}
}

func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.writeError(w, RouteEmbeddings, http.StatusMethodNotAllowed, "use POST")
		return
	}
	s.inFlight.Inc()
	defer s.inFlight.Dec()
	var req apiRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBodyBytes)).Decode(&req); err != nil {
		s.writeError(w, RouteEmbeddings, http.StatusBadRequest, "request body is not valid JSON")
		return
	}
	noteModel(w, req.Model)
	if req.Model == "" {
		s.writeError(w, RouteEmbeddings, http.StatusBadRequest, "model is required")
		return
	}
	d := s.decide()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	delay := d.delay
	if !s.o.NoPacing {
		// An embedding is one forward pass: a fraction of a generation's first token.
		delay += time.Duration(float64(s.o.Pacing.ttft(s.rnd)) * d.ttftMul / 5)
	}
	if !sleepCtx(r.Context(), timer, delay) {
		return
	}
	if d.status != 0 {
		s.faults.WithLabelValues(d.phase, strconv.Itoa(d.status)).Inc()
		s.writeError(w, RouteEmbeddings, d.status, "injected fault")
		return
	}
	prompt := req.promptTokens()
	model, _ := json.Marshal(req.Model)
	b := make([]byte, 0, 512)
	b = append(b, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[`...)
	for i := range 8 {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, s.rnd.Float64()*2-1, 'f', 6, 64)
	}
	b = append(b, `]}],"model":`...)
	b = append(b, model...)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(prompt), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(prompt), 10)
	b = append(b, "}}\n"...)
	s.tokens.WithLabelValues("input").Add(float64(prompt))
	noteTokens(w, prompt, -1)
	s.writeJSON(w, RouteEmbeddings, http.StatusOK, b)
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		s.writeError(w, RouteModels, http.StatusMethodNotAllowed, "use GET")
		return
	}
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	list := struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{Object: "list"}
	for _, m := range s.o.Models {
		list.Data = append(list.Data, model{ID: m, Object: "model", Created: s.started.Unix(), OwnedBy: "autoglm-llmsim"})
	}
	b, err := json.Marshal(list)
	if err != nil {
		s.writeError(w, RouteModels, http.StatusInternalServerError, "encode model list")
		return
	}
	s.writeJSON(w, RouteModels, http.StatusOK, append(b, '\n'))
}

func (s *Server) writeJSON(w http.ResponseWriter, route string, code int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
	s.counter(route, code).Inc()
}

func (s *Server) writeError(w http.ResponseWriter, route string, code int, msg string) {
	typ := "server_error"
	switch {
	case code == http.StatusTooManyRequests:
		typ = "rate_limit_exceeded"
	case code < 500:
		typ = "invalid_request_error"
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": code}})
	s.writeJSON(w, route, code, append(b, '\n'))
}

// generation is one request's answer being produced.
type generation struct {
	s          *Server
	route      string
	req        *apiRequest
	timer      *time.Timer
	model      []byte
	prompt     int
	completion int
	ttft       time.Duration
	perToken   time.Duration
	id         uint64
	created    int64
	abort      bool
	arrived    time.Time
	seq        *seq
}

// firstToken records the engine's time to first token.
func (g *generation) firstToken() {
	g.s.eng.ttft.WithLabelValues(g.s.servedModel()).Observe(g.s.now().Sub(g.arrived).Seconds())
}

var words = []string{" the", " model", " answers", " with", " a", " token", " at", " time", " and", " then", " stops", "."}

func (g *generation) appendHead(b []byte, object string) []byte {
	b = append(b, `{"id":"`...)
	if g.route == RouteChat {
		b = append(b, "chatcmpl-"...)
	} else {
		b = append(b, "cmpl-"...)
	}
	b = strconv.AppendUint(b, g.id, 10)
	b = append(b, `","object":"`...)
	b = append(b, object...)
	b = append(b, `","created":`...)
	b = strconv.AppendInt(b, g.created, 10)
	b = append(b, `,"model":`...)
	b = append(b, g.model...)
	return b
}

func (g *generation) appendUsage(b []byte) []byte {
	b = append(b, `"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(g.prompt), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(g.completion), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(g.prompt+g.completion), 10)
	return append(b, '}')
}

func (g *generation) countTokens(w http.ResponseWriter) {
	noteTokens(w, g.prompt, g.completion)
	g.s.tokens.WithLabelValues("input").Add(float64(g.prompt))
	g.s.tokens.WithLabelValues("output").Add(float64(g.completion))
}

func finishReason(g *generation) string {
	if g.req.maxTokens() > 0 && g.completion >= g.req.maxTokens() {
		return "length"
	}
	return "stop"
}

// whole answers a non-streaming request after the full generation time.
func (g *generation) whole(w http.ResponseWriter, ctx context.Context) {
	if !sleepCtx(ctx, g.timer, g.ttft) {
		return
	}
	g.firstToken()
	// Tokens enter the KV cache as they are generated; sleep in blocks of
	// them to keep timers cheap.
	const block = 16
	pending := 0
	for i := 1; i < g.completion; i++ {
		if !g.seq.grow(ctx) {
			return
		}
		if pending++; pending == block || i == g.completion-1 {
			if !sleepCtx(ctx, g.timer, time.Duration(pending)*g.perToken) {
				return
			}
			pending = 0
		}
	}
	text := make([]byte, 0, g.completion*6)
	for i := range g.completion {
		text = append(text, words[i%len(words)]...)
	}
	quoted, _ := json.Marshal(string(text))
	b := make([]byte, 0, len(quoted)+512)
	switch g.route {
	case RouteGenerate:
		b = append(b, `{"generated_text":`...)
		b = append(b, quoted...)
		b = append(b, `,"details":{"finish_reason":"`...)
		b = append(b, finishReason(g)...)
		b = append(b, `","generated_tokens":`...)
		b = strconv.AppendInt(b, int64(g.completion), 10)
		b = append(b, `,"prefill_tokens":`...)
		b = strconv.AppendInt(b, int64(g.prompt), 10)
		b = append(b, "}}\n"...)
	case RouteChat:
		b = g.appendHead(b, "chat.completion")
		b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
		b = append(b, quoted...)
		b = append(b, `},"finish_reason":"`...)
		b = append(b, finishReason(g)...)
		b = append(b, `"}],`...)
		b = g.appendUsage(b)
		b = append(b, "}\n"...)
	default:
		b = g.appendHead(b, "text_completion")
		b = append(b, `,"choices":[{"index":0,"text":`...)
		b = append(b, quoted...)
		b = append(b, `,"logprobs":null,"finish_reason":"`...)
		b = append(b, finishReason(g)...)
		b = append(b, `"}],`...)
		b = g.appendUsage(b)
		b = append(b, "}\n"...)
	}
	g.countTokens(w)
	g.s.writeJSON(w, g.route, http.StatusOK, b)
}

// stream answers with Server-Sent Events, one token per event, flushed as
// it is produced, ending with the usage chunk (when asked) and [DONE].
func (g *generation) stream(w http.ResponseWriter, ctx context.Context, usage bool) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	if !sleepCtx(ctx, g.timer, g.ttft) {
		return
	}
	w.WriteHeader(http.StatusOK)
	g.firstToken()
	// Count at the status line: the request is answered even if the client leaves mid-stream.
	g.s.counter(g.route, http.StatusOK).Inc()
	chat := g.route == RouteChat
	object := "text_completion"
	if chat {
		object = "chat.completion.chunk"
	}
	buf := make([]byte, 0, 512)
	for i := range g.completion {
		if i > 0 && (!g.seq.grow(ctx) || !sleepCtx(ctx, g.timer, g.perToken)) {
			g.s.aborted.Inc()
			return
		}
		if g.abort && i > 0 && i == g.completion/2 {
			g.s.faultAborts.Inc()
			// Closes the connection without ending the chunked body.
			panic(http.ErrAbortHandler)
		}
		buf = append(buf[:0], "data: "...)
		buf = g.appendHead(buf, object)
		word := words[i%len(words)]
		if chat {
			buf = append(buf, `,"choices":[{"index":0,"delta":{`...)
			if i == 0 {
				buf = append(buf, `"role":"assistant",`...)
			}
			buf = append(buf, `"content":"`...)
			buf = append(buf, word...)
			buf = append(buf, `"},"finish_reason":`...)
		} else {
			buf = append(buf, `,"choices":[{"index":0,"text":"`...)
			buf = append(buf, word...)
			buf = append(buf, `","logprobs":null,"finish_reason":`...)
		}
		if i == g.completion-1 {
			buf = append(buf, '"')
			buf = append(buf, finishReason(g)...)
			buf = append(buf, '"')
		} else {
			buf = append(buf, "null"...)
		}
		buf = append(buf, "}]}\n\n"...)
		if i == g.completion-1 {
			if usage {
				buf = append(buf, "data: "...)
				buf = g.appendHead(buf, object)
				buf = append(buf, `,"choices":[],`...)
				buf = g.appendUsage(buf)
				buf = append(buf, "}\n\n"...)
			}
			buf = append(buf, "data: [DONE]\n\n"...)
		}
		if _, err := w.Write(buf); err != nil {
			g.s.aborted.Inc()
			return
		}
		// Under pacing every event goes out on its own; without it the
		// events may share packets, as a fast server's would.
		if g.perToken > 0 || i == 0 || i == g.completion-1 {
			if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				g.s.aborted.Inc()
				return
			}
		}
	}
	g.countTokens(w)
}
