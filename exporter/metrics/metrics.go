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
	durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600}
	ttftBuckets     = []float64{0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 2.5, 5, 10, 30, 60, 120}
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
	// retire is held for reading while a request is recorded and for writing
	// while a retired workload's series are deleted, so a late request cannot
	// bring them back.
	retire  sync.RWMutex
	mu      sync.Mutex // guards models and clients
	models  *topN
	clients *topN
	v4, v6  int

	duration, reqSize, respSize *prometheus.HistogramVec
	active                      *prometheus.GaugeVec
	genDuration, ttft, tpot     *prometheus.HistogramVec
	tokens                      *prometheus.CounterVec
	clientReqs                  *prometheus.CounterVec
}

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

// values joins a series' own label values with its workload's, without allocating.
func values(buf *[12]string, w *[numWorkloadLabels]string, own ...string) []string {
	n := copy(buf[:], own)
	n += copy(buf[n:], w[:])
	return buf[:n]
}

// New returns a Collector; register it with a prometheus.Registerer.
func New(o Options) *Collector {
	httpLabels := withWorkload(sli.LabelMethod, sli.LabelRoute, sli.LabelStatus, sli.LabelPort, sli.LabelErrorType)
	activeLabels := withWorkload(sli.LabelMethod, sli.LabelRoute, sli.LabelPort)
	genLabels := withWorkload(sli.LabelRoute, sli.LabelOperation, sli.LabelModel, sli.LabelPort, sli.LabelErrorType)
	streamLabels := withWorkload(sli.LabelRoute, sli.LabelOperation, sli.LabelModel, sli.LabelPort)
	tokenLabels := withWorkload(sli.LabelRoute, sli.LabelOperation, sli.LabelModel, sli.LabelPort, sli.LabelTokenType)
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
			Help: "Tokens reported in response usage, by type (input, output).",
		}, tokenLabels),
		clientReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: sli.ClientRequests,
			Help: "HTTP requests by client network (top-N prefixes, the rest as other).",
		}, withWorkload(sli.LabelClient)),
	}
	genVecs := []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{c.genDuration, c.ttft, c.tpot, c.tokens}
	c.models = newTopN(o.TopModels, func(model string) {
		// A model that lost its place is folded into "other" from now on; its series go.
		for _, v := range genVecs {
			v.DeletePartialMatch(prometheus.Labels{sli.LabelModel: model})
		}
	})
	c.clients = newTopN(o.TopClients, func(client string) {
		c.clientReqs.DeletePartialMatch(prometheus.Labels{sli.LabelClient: client})
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
	return []prometheus.Collector{c.duration, c.reqSize, c.respSize, c.active, c.genDuration, c.ttft, c.tpot, c.tokens, c.clientReqs}
}

// Start counts a request in flight; it must be followed by Finish or Drop with the same request.
func (c *Collector) Start(r *traffic.Request) { c.inflight(r, 1) }

// Drop ends an in-flight request that will not be observed.
func (c *Collector) Drop(r *traffic.Request) { c.inflight(r, -1) }

func (c *Collector) inflight(r *traffic.Request, delta float64) {
	c.retire.RLock()
	defer c.retire.RUnlock()
	if r.Workload.Retired() {
		return
	}
	var buf [12]string
	w := workloadValues(r.Workload)
	c.active.WithLabelValues(values(&buf, &w, method(r.Method), c.routes.Route(r.Path), port(r.ServerPort))...).Add(delta)
}

// Finish ends an in-flight request and observes it.
func (c *Collector) Finish(r *traffic.Request) {
	c.Drop(r)
	c.Observe(r)
}

// Forget retires a workload that is gone and deletes its series. Requests
// that still carry it are not counted from now on.
func (c *Collector) Forget(w *traffic.Workload) {
	if w == nil {
		return
	}
	c.retire.Lock()
	defer c.retire.Unlock()
	w.Retire()
	m := workloadMatch(w)
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{c.duration, c.reqSize, c.respSize, c.active, c.genDuration, c.ttft, c.tpot, c.tokens, c.clientReqs} {
		v.DeletePartialMatch(m)
	}
}

// Observe records a finished request (sources without a start, such as access logs, call only this).
func (c *Collector) Observe(r *traffic.Request) {
	c.retire.RLock()
	defer c.retire.RUnlock()
	if r.Workload.Retired() {
		return
	}
	var buf [12]string
	w := workloadValues(r.Workload)
	route := c.routes.Route(r.Path)
	m, p := method(r.Method), port(r.ServerPort)
	status := ""
	if r.Status > 0 {
		status = strconv.Itoa(r.Status)
	}
	errType := r.ErrorType
	if errType == "" && r.Status >= 500 {
		errType = status
	}
	d := seconds(r.End.Sub(r.Start))
	c.duration.WithLabelValues(values(&buf, &w, m, route, status, p, errType)...).Observe(d)
	if r.RequestBodySize >= 0 {
		c.reqSize.WithLabelValues(values(&buf, &w, m, route, status, p, errType)...).Observe(float64(r.RequestBodySize))
	}
	if r.ResponseBodySize >= 0 {
		c.respSize.WithLabelValues(values(&buf, &w, m, route, status, p, errType)...).Observe(float64(r.ResponseBodySize))
	}

	c.mu.Lock()
	client := c.clients.label(c.clientKey(r.Client))
	op := operation(r.Path)
	model := ""
	if op != "" && r.Model != "" {
		model = c.models.label(r.Model)
	}
	c.mu.Unlock()
	c.clientReqs.WithLabelValues(values(&buf, &w, client)...).Inc()
	if op == "" {
		return
	}
	c.genDuration.WithLabelValues(values(&buf, &w, route, op, model, p, errType)...).Observe(d)
	if r.InputTokens >= 0 {
		c.tokens.WithLabelValues(values(&buf, &w, route, op, model, p, "input")...).Add(float64(r.InputTokens))
	}
	if r.OutputTokens >= 0 {
		c.tokens.WithLabelValues(values(&buf, &w, route, op, model, p, "output")...).Add(float64(r.OutputTokens))
	}
	if errType != "" || r.Status >= 400 || r.FirstToken.IsZero() {
		return
	}
	c.ttft.WithLabelValues(values(&buf, &w, route, op, model, p)...).Observe(seconds(r.FirstToken.Sub(r.Start)))
	if r.OutputTokens > 1 && !r.End.Before(r.FirstToken) {
		c.tpot.WithLabelValues(values(&buf, &w, route, op, model, p)...).Observe(seconds(r.End.Sub(r.FirstToken)) / float64(r.OutputTokens-1))
	}
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

// operation names the GenAI operation of an OpenAI-style path, "" when it is not one.
func operation(path string) string {
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
