// Package metrics turns finished HTTP exchanges into the exporter's RED and
// GenAI metrics (OpenTelemetry semantic conventions as Prometheus names, see
// internal/sli). Label values are bounded: routes come from the configured
// endpoint templates, models and client networks are top-N with "other",
// and client addresses only appear on their own counter.
package metrics

import (
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// Options configures a Collector.
type Options struct {
	// Endpoints are route templates ("/v1/chat/completions", "/v1/models/{model}").
	Endpoints []string
	// TopModels and TopClients bound the model and client label values (plus "other").
	TopModels, TopClients int
	// ClientPrefixV4 and ClientPrefixV6 aggregate client addresses (e.g. 24 and 64).
	ClientPrefixV4, ClientPrefixV6 int
}

// Histogram buckets. Classic buckets reach ten minutes because LLM streams are
// long; native histograms (same options) give exact quantiles where supported.
var (
	durationBuckets = sli.DurationBuckets
	ttftBuckets     = sli.TTFTBuckets
	tpotBuckets     = []float64{0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5}
	sizeBuckets     = prometheus.ExponentialBuckets(64, 4, 11) // 64 B .. 64 MiB
)

func histogram(name, help string, buckets []float64, labels []string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:                            name,
		Help:                            help,
		Buckets:                         buckets,
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  160,
		NativeHistogramMinResetDuration: time.Hour,
		NativeHistogramZeroThreshold:    prometheus.DefNativeHistogramZeroThreshold,
	}, labels)
}

// Collector holds the traffic metrics. It is a prometheus.Collector.
type Collector struct {
	routes *Router
	// mu guards the top-N tables and the series caches (a source calls from
	// one goroutine, but nothing requires it).
	mu      sync.Mutex
	models  *topN
	clients *topN
	v4, v6  int

	duration, reqSize, respSize *prometheus.HistogramVec
	active                      *prometheus.GaugeVec
	genDuration, ttft, tpot     *prometheus.HistogramVec
	tokens                      *prometheus.CounterVec
	clientReqs                  *prometheus.CounterVec
	grpcResps                   *prometheus.CounterVec

	// Resolved series by label values, so that a request costs one map
	// lookup instead of a label hash and lookup per metric.
	series  map[seriesKey]*series
	actives map[activeKey]prometheus.Gauge
	// The previous request's series: consecutive requests mostly share them,
	// and comparing the keys costs less than hashing them.
	lastKey    seriesKey
	last       *series
	lastActKey activeKey
	lastAct    prometheus.Gauge
	lastPath   string
	lastRoute  string
	lastAddr   netip.Addr
	lastClient string
	clientSer  map[clientSeriesKey]prometheus.Counter
	clientKeys map[netip.Addr]string
}

// seriesKey is the label values a finished request's series share. The
// workload is compared by pointer: workloads are interned by the resolver.
type seriesKey struct {
	method, route, errType, model, op string
	status, port                      uint16
	w                                 *traffic.Workload
}

type activeKey struct {
	method, route string
	port          uint16
	w             *traffic.Workload
}

type clientSeriesKey struct {
	client string
	w      *traffic.Workload
}

// series are the resolved metrics of one seriesKey; the optional ones are
// created when first observed, so no empty series is exposed.
type series struct {
	duration, reqSize, respSize prometheus.Observer
	genDuration, ttft, tpot     prometheus.Observer
	tokens                      [numTokenTypes]prometheus.Counter
	grpc                        map[int]prometheus.Counter
}

const (
	tokInput = iota
	tokOutput
	tokOutputEstimated
	tokInputCached
	tokOutputReasoning
	numTokenTypes
)

var tokenTypes = [numTokenTypes]string{sli.TokenInput, sli.TokenOutput, sli.TokenOutputEstimated, sli.TokenInputCached, sli.TokenOutputReasoning}

// maxCached bounds each cache; past it the cache starts over (label values
// are bounded, so this only happens under unusual traffic).
const maxCached = 1 << 14

// Every series ends with the workload labels (sli.WorkloadLabels), in this order.
const numWorkloadLabels = 5

func withWorkload(labels ...string) []string { return append(labels, sli.WorkloadLabels()...) }

func workloadValues(w *traffic.Workload) [numWorkloadLabels]string {
	if w == nil {
		return [numWorkloadLabels]string{}
	}
	return [numWorkloadLabels]string{w.ServiceName, w.NetNS, w.K8sNamespace, w.K8sPod, w.K8sContainer}
}

// workloadMatch selects every series of a workload.
func workloadMatch(w *traffic.Workload) prometheus.Labels {
	v := workloadValues(w)
	m := make(prometheus.Labels, numWorkloadLabels)
	for i, l := range sli.WorkloadLabels() {
		m[l] = v[i]
	}
	return m
}

// values joins a series' own label values with its workload's. Series are
// resolved once per label set and cached, so this is off the per-request path.
func values(w *traffic.Workload, own ...string) []string {
	v := workloadValues(w)
	return append(own, v[:]...)
}

// New returns a Collector; register it with a prometheus.Registerer.
func New(o Options) *Collector {
	httpLabels := withWorkload(sli.LabelMethod, sli.LabelRoute, sli.LabelStatus, sli.LabelPort, sli.LabelErrorType)
	activeLabels := withWorkload(sli.LabelMethod, sli.LabelRoute, sli.LabelPort)
	genLabels := withWorkload(sli.LabelRoute, sli.LabelOperation, sli.LabelModel, sli.LabelPort, sli.LabelErrorType)
	streamLabels := withWorkload(sli.LabelRoute, sli.LabelOperation, sli.LabelModel, sli.LabelPort)
	tokenLabels := withWorkload(sli.LabelRoute, sli.LabelOperation, sli.LabelModel, sli.LabelPort, sli.LabelTokenType)
	grpcLabels := withWorkload(sli.LabelRoute, sli.LabelGRPCStatus, sli.LabelPort)
	c := &Collector{
		routes: NewRouter(o.Endpoints),
		v4:     o.ClientPrefixV4,
		v6:     o.ClientPrefixV6,
		duration: histogram(sli.HTTPDuration,
			"Duration of HTTP server requests, from the first request byte read to the last response byte written.",
			durationBuckets, httpLabels),
		reqSize: histogram(sli.HTTPRequestSize,
			"Size of HTTP request bodies as transferred (chunk framing included).", sizeBuckets, httpLabels),
		respSize: histogram(sli.HTTPResponseSize,
			"Size of HTTP response bodies as transferred (chunk framing included).", sizeBuckets, httpLabels),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: sli.HTTPActive,
			Help: "Number of HTTP server requests whose headers were read and whose response is not complete.",
		}, activeLabels),
		genDuration: histogram(sli.GenAIDuration,
			"Duration of generative AI requests (chat, completions, embeddings, generate).", durationBuckets, genLabels),
		ttft: histogram(sli.GenAITTFT,
			"Time from the first request byte to the first server-sent event of a successful streaming response.", ttftBuckets, streamLabels),
		tpot: histogram(sli.GenAITPOT,
			"Time per output token after the first one, for successful streaming responses that report usage.", tpotBuckets, streamLabels),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: sli.GenAITokens,
			Help: "Tokens by type: input and output as reported in usage, input_cached and output_reasoning (parts of them), output_estimated (content-bearing events of streams without usage).",
		}, tokenLabels),
		clientReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: sli.ClientRequests,
			Help: "HTTP requests by client network (top-N prefixes, the rest as other).",
		}, withWorkload(sli.LabelClient)),
		grpcResps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: sli.GRPCResponses,
			Help: "Finished gRPC calls by method (http_route) and grpc-status.",
		}, grpcLabels),
		series:     make(map[seriesKey]*series),
		actives:    make(map[activeKey]prometheus.Gauge),
		clientSer:  make(map[clientSeriesKey]prometheus.Counter),
		clientKeys: make(map[netip.Addr]string),
	}
	genVecs := []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{c.genDuration, c.ttft, c.tpot, c.tokens}
	c.models = newTopN(o.TopModels, func(model string) {
		// A model that lost its place is folded into "other" from now on; its series go.
		for _, v := range genVecs {
			v.DeletePartialMatch(prometheus.Labels{sli.LabelModel: model})
		}
		for k := range c.series {
			if k.model == model {
				delete(c.series, k)
			}
		}
		c.last = nil
	})
	c.clients = newTopN(o.TopClients, func(client string) {
		c.clientReqs.DeletePartialMatch(prometheus.Labels{sli.LabelClient: client})
		for k := range c.clientSer {
			if k.client == client {
				delete(c.clientSer, k)
			}
		}
	})
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.collectors() {
		m.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.collectors() {
		m.Collect(ch)
	}
}

func (c *Collector) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.duration, c.reqSize, c.respSize, c.active, c.genDuration, c.ttft, c.tpot, c.tokens, c.clientReqs, c.grpcResps}
}

// Start counts a request in flight; it must be followed by Finish or Drop with the same request.
func (c *Collector) Start(r *traffic.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Workload.Retired() {
		return
	}
	c.activeGauge(r).Inc()
}

// Drop ends an in-flight request that will not be observed.
func (c *Collector) Drop(r *traffic.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Workload.Retired() {
		return
	}
	c.activeGauge(r).Dec()
}

// Forget retires a workload that is gone and deletes its series. Requests
// that still carry it are not counted from now on, so the series stay gone.
func (c *Collector) Forget(w *traffic.Workload) {
	if w == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w.Retire()
	m := workloadMatch(w)
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{c.duration, c.reqSize, c.respSize, c.active, c.genDuration, c.ttft, c.tpot, c.tokens, c.clientReqs, c.grpcResps} {
		v.DeletePartialMatch(m)
	}
	for k := range c.series {
		if k.w == w {
			delete(c.series, k)
		}
	}
	for k := range c.actives {
		if k.w == w {
			delete(c.actives, k)
		}
	}
	for k := range c.clientSer {
		if k.w == w {
			delete(c.clientSer, k)
		}
	}
	c.last, c.lastAct = nil, nil
}

func (c *Collector) activeGauge(r *traffic.Request) prometheus.Gauge {
	k := activeKey{method: method(r.Method), route: c.route(r.Path), port: r.ServerPort, w: r.Workload}
	if c.lastAct != nil && k == c.lastActKey {
		return c.lastAct
	}
	g := c.actives[k]
	if g == nil {
		if len(c.actives) >= maxCached {
			clear(c.actives)
			c.lastAct = nil
		}
		g = c.active.WithLabelValues(values(k.w, k.method, k.route, port(k.port))...)
		c.actives[k] = g
	}
	c.lastActKey, c.lastAct = k, g
	return g
}

// Finish ends an in-flight request and observes it.
func (c *Collector) Finish(r *traffic.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Workload.Retired() {
		return
	}
	c.activeGauge(r).Dec()
	c.observe(r)
}

// Observe records a finished request (sources without a start, such as access logs, call only this).
func (c *Collector) Observe(r *traffic.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Workload.Retired() {
		return
	}
	c.observe(r)
}

func (c *Collector) observe(r *traffic.Request) {
	k := seriesKey{method: method(r.Method), route: c.route(r.Path), port: r.ServerPort, w: r.Workload}
	if st := statusLabel(r.Status); st != "" {
		k.status = uint16(r.Status)
	}
	k.errType = errorType(r)
	k.op = operation(r)
	if k.op != "" && r.Model != "" {
		k.model = c.models.label(boundLabel(r.Model, maxModelLabel))
	}
	s := c.seriesFor(k)
	d := seconds(r.End.Sub(r.Start))
	s.duration.Observe(d)
	if r.RequestBodySize >= 0 {
		if s.reqSize == nil {
			s.reqSize = c.reqSize.WithLabelValues(values(k.w, k.method, k.route, statusLabel(int(k.status)), port(k.port), k.errType)...)
		}
		s.reqSize.Observe(float64(r.RequestBodySize))
	}
	if r.ResponseBodySize >= 0 {
		if s.respSize == nil {
			s.respSize = c.respSize.WithLabelValues(values(k.w, k.method, k.route, statusLabel(int(k.status)), port(k.port), k.errType)...)
		}
		s.respSize.Observe(float64(r.ResponseBodySize))
	}
	c.clientCounter(r.Client, r.Workload).Inc()
	if r.GRPC && r.GRPCStatus >= 0 {
		s.grpcCounter(c, k, r.GRPCStatus).Inc()
	}
	if k.op == "" {
		return
	}
	if s.genDuration == nil {
		s.genDuration = c.genDuration.WithLabelValues(values(k.w, k.route, k.op, k.model, port(k.port), k.errType)...)
	}
	s.genDuration.Observe(d)
	if r.InputTokens >= 0 {
		s.tokenCounter(c, k, tokInput).Add(float64(r.InputTokens))
	}
	if r.OutputTokens >= 0 {
		t := tokOutput
		if r.OutputTokensEstimated {
			t = tokOutputEstimated
		}
		s.tokenCounter(c, k, t).Add(float64(r.OutputTokens))
	}
	if r.CachedTokens > 0 {
		s.tokenCounter(c, k, tokInputCached).Add(float64(r.CachedTokens))
	}
	if r.ReasoningTokens > 0 {
		s.tokenCounter(c, k, tokOutputReasoning).Add(float64(r.ReasoningTokens))
	}
	if k.errType != "" || r.Status >= 400 || r.GRPC && r.GRPCStatus > 0 || r.FirstToken.IsZero() {
		return
	}
	if s.ttft == nil {
		s.ttft = c.ttft.WithLabelValues(values(k.w, k.route, k.op, k.model, port(k.port))...)
	}
	s.ttft.Observe(seconds(r.FirstToken.Sub(r.Start)))
	// Time per output token needs the server's own count.
	if r.OutputTokens > 1 && !r.OutputTokensEstimated && !r.End.Before(r.FirstToken) {
		if s.tpot == nil {
			s.tpot = c.tpot.WithLabelValues(values(k.w, k.route, k.op, k.model, port(k.port))...)
		}
		s.tpot.Observe(seconds(r.End.Sub(r.FirstToken)) / float64(r.OutputTokens-1))
	}
}

// route is the route of a path; a request's path is routed three times
// (start, end, observation) and the parser's paths are interned, so the
// previous answer is compared first.
func (c *Collector) route(path string) string {
	if path != c.lastPath || c.lastRoute == "" {
		c.lastPath, c.lastRoute = path, c.routes.Route(path)
	}
	return c.lastRoute
}

func (c *Collector) seriesFor(k seriesKey) *series {
	if c.last != nil && k == c.lastKey {
		return c.last
	}
	if s := c.series[k]; s != nil {
		c.lastKey, c.last = k, s
		return s
	}
	if len(c.series) >= maxCached {
		c.forget()
	}
	st, p := "", port(k.port)
	if k.status != 0 {
		st = statusLabel(int(k.status))
	}
	s := &series{duration: c.duration.WithLabelValues(values(k.w, k.method, k.route, st, p, k.errType)...)}
	c.series[k] = s
	c.lastKey, c.last = k, s
	return s
}

// forget drops the resolved series (their metrics stay registered).
func (c *Collector) forget() {
	clear(c.series)
	c.last = nil
}

func (s *series) tokenCounter(c *Collector, k seriesKey, t int) prometheus.Counter {
	if s.tokens[t] == nil {
		s.tokens[t] = c.tokens.WithLabelValues(values(k.w, k.route, k.op, k.model, port(k.port), tokenTypes[t])...)
	}
	return s.tokens[t]
}

func (s *series) grpcCounter(c *Collector, k seriesKey, code int) prometheus.Counter {
	if s.grpc == nil {
		s.grpc = make(map[int]prometheus.Counter, 2)
	}
	ctr := s.grpc[code]
	if ctr == nil {
		ctr = c.grpcResps.WithLabelValues(values(k.w, k.route, grpcCode(code), port(k.port))...)
		s.grpc[code] = ctr
	}
	return ctr
}

// clientCounter counts a request on its client network's top-N series.
func (c *Collector) clientCounter(a netip.Addr, w *traffic.Workload) prometheus.Counter {
	key := c.lastClient
	if a != c.lastAddr || key == "" {
		var ok bool
		key, ok = c.clientKeys[a]
		if !ok {
			if len(c.clientKeys) >= maxCached {
				clear(c.clientKeys)
			}
			key = c.clientKey(a)
			c.clientKeys[a] = key
		}
		c.lastAddr, c.lastClient = a, key
	}
	ck := clientSeriesKey{client: c.clients.label(key), w: w}
	ctr := c.clientSer[ck]
	if ctr == nil {
		if len(c.clientSer) >= maxCached {
			clear(c.clientSer)
		}
		ctr = c.clientReqs.WithLabelValues(values(w, ck.client)...)
		c.clientSer[ck] = ctr
	}
	return ctr
}

func seconds(d time.Duration) float64 {
	if d < 0 {
		return 0
	}
	return d.Seconds()
}

// clientKey aggregates an address into its configured network.
func (c *Collector) clientKey(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	a = a.Unmap()
	bits := c.v6
	if a.Is4() {
		bits = c.v4
	}
	if bits >= a.BitLen() {
		return a.String()
	}
	pfx, err := a.Prefix(bits)
	if err != nil {
		return a.String()
	}
	return pfx.String()
}

func port(p uint16) string {
	if p == 0 {
		return ""
	}
	return strconv.Itoa(int(p))
}

// method maps anything but the standard methods to "_OTHER", as OpenTelemetry does.
func method(m string) string {
	switch m {
	case "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE":
		return m
	}
	return "_OTHER"
}

// operation names the GenAI operation of a request, "" when it is not one:
// from an OpenAI-style path, or from a gRPC method's name.
func operation(r *traffic.Request) string {
	path := r.Path
	if r.GRPC {
		return grpcOperation(path)
	}
	switch {
	case strings.HasSuffix(path, "/chat/completions"):
		return "chat"
	case strings.HasSuffix(path, "/completions"):
		return "text_completion"
	case strings.HasSuffix(path, "/embeddings"):
		return "embeddings"
	case strings.HasSuffix(path, "/generate"), strings.HasSuffix(path, "/generate_stream"):
		return "generate"
	}
	return ""
}

// grpcOperation names the GenAI operation of a gRPC method ("/pkg.Service/Method")
// from words in the method name: Embed → embeddings, Chat → chat,
// Generate → generate, Complet(e|ion) → text_completion.
func grpcOperation(path string) string {
	name := path[strings.LastIndexByte(path, '/')+1:]
	switch {
	case containsWord(name, "embed"):
		return "embeddings"
	case containsWord(name, "chat"):
		return "chat"
	case containsWord(name, "generate"):
		return "generate"
	case containsWord(name, "complet"):
		return "text_completion"
	}
	return ""
}

func containsWord(s, word string) bool {
	for i := 0; i+len(word) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(word)], word) {
			return true
		}
	}
	return false
}
