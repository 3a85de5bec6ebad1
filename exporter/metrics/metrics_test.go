package metrics

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func req(method, path string, status int, dur time.Duration, mut ...func(*traffic.Request)) *traffic.Request {
	r := &traffic.Request{
		Start: t0, End: t0.Add(dur), Method: method, Path: path, Status: status,
		RequestBodySize: 100, ResponseBodySize: 1000, InputTokens: -1, OutputTokens: -1,
		Client: netip.MustParseAddr("10.0.0.7"), ServerPort: 8000,
	}
	for _, m := range mut {
		m(r)
	}
	return r
}

func stream(ttft time.Duration, in, out int64, model string) func(*traffic.Request) {
	return func(r *traffic.Request) {
		r.FirstToken = r.Start.Add(ttft)
		r.Streaming = true
		r.InputTokens, r.OutputTokens = in, out
		r.Model = model
	}
}

// noWorkload are the label values of a request whose server is unknown.
var noWorkload = []string{"", "", "", "", ""}

// lbl adds a workload's labels (nil: all empty) to a label list and sorts it
// as the exposition format writes it.
func lbl(labels string, w *traffic.Workload) string {
	pairs := strings.SplitAfter(labels, `",`)
	for i := range pairs {
		pairs[i] = strings.TrimSuffix(pairs[i], ",")
	}
	v := workloadValues(w)
	for i, l := range sli.WorkloadLabels() {
		pairs = append(pairs, l+"="+strconv.Quote(v[i]))
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ",")
}

// histText renders the expected exposition of one histogram series from raw observations.
func histText(name, labels string, buckets []float64, obs ...float64) string {
	labels = lbl(labels, nil)
	var b strings.Builder
	sum := 0.0
	for _, o := range obs {
		sum += o
	}
	for _, le := range buckets {
		n := 0
		for _, o := range obs {
			if o <= le {
				n++
			}
		}
		fmt.Fprintf(&b, "%s_bucket{%s,le=\"%s\"} %d\n", name, labels, strconv.FormatFloat(le, 'g', -1, 64), n)
	}
	fmt.Fprintf(&b, "%s_bucket{%s,le=\"+Inf\"} %d\n", name, labels, len(obs))
	fmt.Fprintf(&b, "%s_sum{%s} %s\n", name, labels, strconv.FormatFloat(sum, 'g', -1, 64))
	fmt.Fprintf(&b, "%s_count{%s} %d\n", name, labels, len(obs))
	return b.String()
}

func newTest() *Collector {
	return New(Options{
		Endpoints: []string{"/v1/chat/completions", "/v1/models/{model}", "/v1/embeddings"},
		TopModels: 1, TopClients: 2, ClientPrefixV4: 24, ClientPrefixV6: 64,
	})
}

func TestHTTPMetrics(t *testing.T) {
	c := newTest()
	c.Observe(req("GET", "/v1/models/glm-4", 200, 20*time.Millisecond))
	c.Observe(req("GET", "/v1/models/glm-4/", 200, 40*time.Millisecond))
	c.Observe(req("GET", "/secret/path/42", 404, 3*time.Millisecond))
	c.Observe(req("POST", "/v1/chat/completions", 503, 2*time.Second))
	c.Observe(req("BREW", "/v1/chat/completions", 0, 90*time.Second, func(r *traffic.Request) { r.ErrorType = "connection_closed" }))

	d := sli.HTTPDuration
	want := "# HELP " + d + " Duration of HTTP server requests, from the first request byte read to the last response byte written.\n# TYPE " + d + " histogram\n" +
		histText(d, `error_type="",http_request_method="GET",http_response_status_code="404",http_route="other",server_port="8000"`, durationBuckets, 0.003) +
		histText(d, `error_type="",http_request_method="GET",http_response_status_code="200",http_route="/v1/models/{model}",server_port="8000"`, durationBuckets, 0.02, 0.04) +
		histText(d, `error_type="503",http_request_method="POST",http_response_status_code="503",http_route="/v1/chat/completions",server_port="8000"`, durationBuckets, 2) +
		histText(d, `error_type="connection_closed",http_request_method="_OTHER",http_response_status_code="",http_route="/v1/chat/completions",server_port="8000"`, durationBuckets, 90)
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), d); err != nil {
		t.Error(err)
	}
	if got := testutil.CollectAndCount(c, sli.GenAIDuration); got != 2 {
		t.Errorf("gen_ai duration series = %d, want 2 (only chat requests)", got)
	}
}

func TestGenAIMetrics(t *testing.T) {
	c := newTest()
	c.Observe(req("POST", "/v1/chat/completions", 200, 3*time.Second, stream(200*time.Millisecond, 10, 101, "glm-4")))
	c.Observe(req("POST", "/v1/chat/completions", 200, 1*time.Second, stream(500*time.Millisecond, 5, 11, "glm-4")))
	// A second model exceeds top_models=1 and becomes "other".
	c.Observe(req("POST", "/v1/chat/completions", 200, 1*time.Second, stream(100*time.Millisecond, 1, 1, "qwen")))
	// Failed streams count tokens but not time to first token.
	c.Observe(req("POST", "/v1/chat/completions", 500, 1*time.Second, stream(100*time.Millisecond, 3, 0, "glm-4")))
	// Non-streaming: no TTFT.
	c.Observe(req("POST", "/v1/embeddings", 200, 10*time.Millisecond, func(r *traffic.Request) { r.Model = "glm-4"; r.InputTokens = 4 }))

	l := `gen_ai_operation_name="chat",gen_ai_request_model="%s",http_route="/v1/chat/completions",server_port="8000"`
	ttft := "# HELP " + sli.GenAITTFT + " Time from the first request byte to the first server-sent event of a successful streaming response.\n# TYPE " + sli.GenAITTFT + " histogram\n" +
		histText(sli.GenAITTFT, fmt.Sprintf(l, "glm-4"), ttftBuckets, 0.2, 0.5) +
		histText(sli.GenAITTFT, fmt.Sprintf(l, "other"), ttftBuckets, 0.1)
	tpot := "# HELP " + sli.GenAITPOT + " Time per output token after the first one, for successful streaming responses that report usage.\n# TYPE " + sli.GenAITPOT + " histogram\n" +
		histText(sli.GenAITPOT, fmt.Sprintf(l, "glm-4"), tpotBuckets, 2.8/100, 0.5/10)
	for name, want := range map[string]string{sli.GenAITTFT: ttft, sli.GenAITPOT: tpot} {
		if err := testutil.CollectAndCompare(c, strings.NewReader(want), name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, tc := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"/v1/chat/completions", "chat", "glm-4", "8000", "input"}, 18},
		{[]string{"/v1/chat/completions", "chat", "glm-4", "8000", "output"}, 112},
		{[]string{"/v1/chat/completions", "chat", "other", "8000", "output"}, 1},
		{[]string{"/v1/embeddings", "embeddings", "glm-4", "8000", "input"}, 4},
	} {
		if got := testutil.ToFloat64(c.tokens.WithLabelValues(append(tc.labels, noWorkload...)...)); got != tc.want {
			t.Errorf("tokens%v = %g, want %g", tc.labels, got, tc.want)
		}
	}
	if got := testutil.CollectAndCount(c, sli.GenAITokens); got != 5 {
		t.Errorf("token series = %d, want 5 (no output series for embeddings without usage)", got)
	}
}

func TestActiveRequests(t *testing.T) {
	c := newTest()
	a := req("POST", "/v1/chat/completions", 200, time.Second)
	b := req("POST", "/v1/chat/completions", 200, time.Second)
	g := req("GET", "/x", 200, time.Second)
	c.Start(a)
	c.Start(b)
	c.Start(g)
	c.Finish(a)
	c.Drop(g)
	want := "# HELP " + sli.HTTPActive + " Number of HTTP server requests whose headers were read and whose response is not complete.\n# TYPE " + sli.HTTPActive + " gauge\n" +
		`http_server_active_requests{` + lbl(`http_request_method="GET",http_route="other",server_port="8000"`, nil) + `} 0` + "\n" +
		`http_server_active_requests{` + lbl(`http_request_method="POST",http_route="/v1/chat/completions",server_port="8000"`, nil) + `} 1` + "\n"
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), sli.HTTPActive); err != nil {
		t.Error(err)
	}
	if got := testutil.CollectAndCount(c, sli.HTTPDuration); got != 1 {
		t.Errorf("dropped request was observed: %d duration series", got)
	}
}

func TestClientAddresses(t *testing.T) {
	c := newTest()
	for _, a := range []string{"10.0.0.1", "10.0.0.200", "::ffff:10.0.0.9", "2001:db8:1:2::5", "2001:db8:1:2:ffff::1", "192.168.1.1", "172.16.0.1"} {
		c.Observe(req("GET", "/", 200, time.Millisecond, func(r *traffic.Request) { r.Client = netip.MustParseAddr(a) }))
	}
	c.Observe(req("GET", "/", 200, time.Millisecond, func(r *traffic.Request) { r.Client = netip.Addr{} }))
	want := "# HELP " + sli.ClientRequests + " HTTP requests by client network (top-N prefixes, the rest as other).\n# TYPE " + sli.ClientRequests + " counter\n" +
		`autoglm_exporter_client_requests_total{` + lbl(`client_address="10.0.0.0/24"`, nil) + `} 3` + "\n" +
		`autoglm_exporter_client_requests_total{` + lbl(`client_address="2001:db8:1:2::/64"`, nil) + `} 2` + "\n" +
		`autoglm_exporter_client_requests_total{` + lbl(`client_address="other"`, nil) + `} 3` + "\n"
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), sli.ClientRequests); err != nil {
		t.Error(err)
	}
}

func TestTopNPromotesHeavyHitters(t *testing.T) {
	var evicted []string
	tn := newTopN(2, func(k string) { evicted = append(evicted, k) })
	tn.label("a")
	tn.label("b")
	for i := 0; i < 10; i++ {
		tn.label("a")
	}
	var last string
	for i := 0; i < 64; i++ {
		last = tn.label("c")
	}
	if last != "c" || len(evicted) != 1 || evicted[0] != "b" {
		t.Fatalf("after a burst of c: label %q, evicted %v; want c admitted and b evicted", last, evicted)
	}
	if got := tn.label("b"); got != sli.OtherValue {
		t.Errorf("evicted key labelled %q, want other", got)
	}
	if len(tn.candidates) > 8 || len(tn.admitted) > 2 {
		t.Errorf("state not bounded: %d candidates, %d admitted", len(tn.candidates), len(tn.admitted))
	}
	for i := 0; i < 10000; i++ {
		tn.label(strconv.Itoa(i))
	}
	if len(tn.candidates) > 8 {
		t.Errorf("candidates grew to %d", len(tn.candidates))
	}
}

func TestRouter(t *testing.T) {
	r := NewRouter([]string{"/v1/chat/completions", "/v1/models/{model}", "/v1/{x}/files/{id}/content", "/"})
	for path, want := range map[string]string{
		"/v1/chat/completions":        "/v1/chat/completions",
		"/v1/chat/completions/":       "/v1/chat/completions",
		"/v1/chat/completions/x":      "other",
		"/v1/models/a":                "/v1/models/{model}",
		"/v1/models":                  "other",
		"/v1/models/":                 "other",
		"/v1/models/a/b":              "other",
		"/v1/org/files/7/content":     "/v1/{x}/files/{id}/content",
		"/v1/org/files//content":      "other",
		"/":                           "/",
		"":                            "other",
		"/v1/CHAT/completions":        "other",
		"/v1/chat/completions?stream": "other",
	} {
		if got := r.Route(path); got != want {
			t.Errorf("Route(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestLintAndPromtool(t *testing.T) {
	c := newTest()
	c.Start(req("GET", "/v1/models/x", 0, 0))
	c.Observe(req("POST", "/v1/chat/completions", 200, time.Second, stream(time.Millisecond, 1, 5, "m")))
	c.Observe(req("GET", "/v1/models/x", 500, time.Second))
	// The gRPC counter and every token type are checked too.
	c.Observe(req("POST", "/llm.Generator/GenerateStream", 200, time.Second, func(r *traffic.Request) {
		r.GRPC, r.GRPCStatus = true, 14
	}))
	c.Observe(req("POST", "/v1/chat/completions", 200, time.Second, stream(time.Millisecond, 3, 5, "m"), func(r *traffic.Request) {
		r.CachedTokens, r.ReasoningTokens, r.OutputTokensEstimated = 1, 2, true
	}))
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	buf := strings.NewReader(exposition(t, c))
	promtool := testenv.Promtool(t)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestNativeHistograms(t *testing.T) {
	c := newTest()
	c.Observe(req("POST", "/v1/chat/completions", 200, 1500*time.Millisecond, stream(300*time.Millisecond, 1, 9, "m")))
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			if h == nil {
				continue
			}
			seen++
			if h.Schema == nil || len(h.GetPositiveSpan()) == 0 || len(h.GetBucket()) == 0 {
				t.Errorf("%s: want classic and native buckets, got schema %v, %d spans, %d classic buckets",
					mf.GetName(), h.Schema, len(h.GetPositiveSpan()), len(h.GetBucket()))
			}
		}
	}
	if seen != 6 {
		t.Errorf("saw %d histogram series, want 6", seen)
	}
	// Classic buckets reach ten minutes for long streams.
	if last := durationBuckets[len(durationBuckets)-1]; last < 600 {
		t.Errorf("largest duration bucket %g s, want >= 600", last)
	}
}

func TestWorkloadsSeparateAndForget(t *testing.T) {
	c := newTest()
	a := &traffic.Workload{ServiceName: "python3", NetNS: "blue"}
	b := &traffic.Workload{ServiceName: "vllm", K8sNamespace: "llm", K8sPod: "vllm-0", K8sContainer: "server"}
	on := func(w *traffic.Workload) func(*traffic.Request) { return func(r *traffic.Request) { r.Workload = w } }
	for range 3 {
		c.Observe(req("POST", "/v1/chat/completions", 200, time.Second, on(a)))
	}
	for range 5 {
		c.Observe(req("POST", "/v1/chat/completions", 200, time.Second, on(b)))
	}
	c.Observe(req("POST", "/v1/chat/completions", 200, time.Second))
	inflight := req("POST", "/v1/chat/completions", 200, time.Second, on(b))
	c.Start(inflight)

	count := func(w *traffic.Workload) string {
		return sli.HTTPDuration + "_count{" + lbl(`error_type="",http_request_method="POST",http_response_status_code="200",http_route="/v1/chat/completions",server_port="8000"`, w) + "}"
	}
	got := exposition(t, c)
	for series, want := range map[string]string{count(a): " 3\n", count(b): " 5\n", count(nil): " 1\n"} {
		if !strings.Contains(got, series+want) {
			t.Errorf("want %s%s", series, want)
		}
	}

	c.Forget(b)
	// Late events of the retired workload: no series comes back, the gauge does not go negative.
	c.Drop(inflight)
	c.Observe(req("POST", "/v1/chat/completions", 500, time.Second, on(b)))
	got = exposition(t, c)
	if strings.Contains(got, `k8s_pod_name="vllm-0"`) {
		t.Errorf("series of a forgotten workload remain:\n%s", grepLines(got, "vllm-0"))
	}
	if !strings.Contains(got, count(a)+" 3\n") || !strings.Contains(got, count(nil)+" 1\n") {
		t.Errorf("other workloads lost their series:\n%s", grepLines(got, "_count{"))
	}
}

// exposition renders the collector's text exposition.
func exposition(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

// Twenty 60 KB model names once grew /metrics from 11 KB to 23–28 MB.
func TestLabelValuesFromTrafficAreBounded(t *testing.T) {
	run := func(model func(i int) string) (*Collector, string) {
		c := New(Options{Endpoints: []string{"/v1/chat/completions"}, TopModels: 20, TopClients: 50, ClientPrefixV4: 24, ClientPrefixV6: 64})
		for i := 0; i < 20; i++ {
			c.Observe(req("POST", "/v1/chat/completions", 200, time.Second, stream(time.Millisecond, 5, 7, model(i)),
				func(r *traffic.Request) { r.ErrorType = strings.Repeat("e", 60<<10) }))
		}
		return c, exposition(t, c)
	}
	_, short := run(func(i int) string { return "model-" + strconv.Itoa(i) })
	c, long := run(func(i int) string { return strconv.Itoa(i) + strings.Repeat("m", 60<<10) + "\x00\"{}\n" })
	if len(long) > 2*len(short) {
		t.Errorf("exposition with 60 KB model names is %d bytes, with short names %d", len(long), len(short))
	}
	models := map[string]bool{}
	for _, line := range strings.Split(long, "\n") {
		for _, l := range []string{sli.LabelModel, sli.LabelErrorType} {
			i := strings.Index(line, l+`="`)
			if i < 0 {
				continue
			}
			v := line[i+len(l)+2:]
			v = v[:strings.IndexByte(v, '"')]
			if len(v) > maxModelLabel || !plainLabel(v) {
				t.Fatalf("label %s value of %d bytes: %.80q", l, len(v), v)
			}
			if l == sli.LabelModel {
				models[v] = true
			}
		}
	}
	if len(models) != 20 {
		t.Errorf("%d distinct model values, want the 20 long names kept apart", len(models))
	}
	for k := range c.models.admitted {
		if len(k) > maxModelLabel {
			t.Errorf("top-N table holds a %d-byte key", len(k))
		}
	}
	for in, want := range map[string]string{
		"meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Llama-3.1-8B-Instruct",
		"qwen2.5:7b":                       "qwen2.5:7b",
		"a b\x00c\"é":                      "a_b_c___",
	} {
		if got := boundLabel(in, maxModelLabel); got != want {
			t.Errorf("boundLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTokenTypes(t *testing.T) {
	c := newTest()
	c.Observe(req("POST", "/v1/chat/completions", 200, 3*time.Second, stream(time.Second, 100, 21, "glm-4"), func(r *traffic.Request) {
		r.CachedTokens, r.ReasoningTokens = 64, 8
	}))
	// No usage: 11 content-bearing events are an estimate, kept apart from the server's count, and give no time per token.
	c.Observe(req("POST", "/v1/chat/completions", 200, 3*time.Second, stream(time.Second, -1, 11, "glm-4"), func(r *traffic.Request) {
		r.OutputTokensEstimated = true
	}))
	for typ, want := range map[string]float64{
		sli.TokenInput: 100, sli.TokenOutput: 21, sli.TokenInputCached: 64, sli.TokenOutputReasoning: 8, sli.TokenOutputEstimated: 11,
	} {
		if got := testutil.ToFloat64(c.tokens.WithLabelValues("/v1/chat/completions", "chat", "glm-4", "8000", typ, "", "", "", "", "")); got != want {
			t.Errorf("tokens{%s} = %g, want %g", typ, got, want)
		}
	}
	if got := testutil.CollectAndCount(c, sli.GenAITokens); got != 5 {
		t.Errorf("token series = %d, want 5", got)
	}
	tpot := "# HELP " + sli.GenAITPOT + " Time per output token after the first one, for successful streaming responses that report usage.\n# TYPE " + sli.GenAITPOT + " histogram\n" +
		histText(sli.GenAITPOT, `gen_ai_operation_name="chat",gen_ai_request_model="glm-4",http_route="/v1/chat/completions",server_port="8000"`, tpotBuckets, 2.0/20)
	if err := testutil.CollectAndCompare(c, strings.NewReader(tpot), sli.GenAITPOT); err != nil {
		t.Error(err)
	}
}

func TestGRPCCalls(t *testing.T) {
	c := New(Options{Endpoints: []string{"/llm.Generator/{method}", "/v1/chat/completions"}, TopModels: 5, TopClients: 5, ClientPrefixV4: 24, ClientPrefixV6: 64})
	call := func(method string, code int, streamed bool) *traffic.Request {
		return req("POST", method, 200, time.Second, func(r *traffic.Request) {
			r.GRPC, r.GRPCStatus = true, code
			if streamed {
				r.FirstToken, r.Streaming = r.Start.Add(100*time.Millisecond), true
			}
		})
	}
	c.Observe(call("/llm.Generator/GenerateStream", 0, true))
	c.Observe(call("/llm.Generator/GenerateStream", 14, true)) // UNAVAILABLE: the server failed
	c.Observe(call("/llm.Generator/Embed", 5, false))          // NOT_FOUND: the call's own fault, like a 404
	c.Observe(call("/other.Svc/Do", 0, false))
	want := "# HELP " + sli.GRPCResponses + " Finished gRPC calls by method (http_route) and grpc-status.\n# TYPE " + sli.GRPCResponses + " counter\n" +
		sli.GRPCResponses + `{` + lbl(`http_route="/llm.Generator/{method}",rpc_grpc_status_code="NOT_FOUND",server_port="8000"`, nil) + `} 1` + "\n" +
		sli.GRPCResponses + `{` + lbl(`http_route="/llm.Generator/{method}",rpc_grpc_status_code="OK",server_port="8000"`, nil) + `} 1` + "\n" +
		sli.GRPCResponses + `{` + lbl(`http_route="/llm.Generator/{method}",rpc_grpc_status_code="UNAVAILABLE",server_port="8000"`, nil) + `} 1` + "\n" +
		sli.GRPCResponses + `{` + lbl(`http_route="other",rpc_grpc_status_code="OK",server_port="8000"`, nil) + `} 1` + "\n"
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), sli.GRPCResponses); err != nil {
		t.Error(err)
	}
	for _, tc := range []struct {
		labels map[string]string
		want   int
	}{
		{map[string]string{sli.LabelErrorType: "UNAVAILABLE"}, 1},
		{map[string]string{sli.LabelErrorType: ""}, 3},
		{map[string]string{sli.LabelOperation: "generate"}, 2},
		{map[string]string{sli.LabelOperation: "embeddings"}, 1},
	} {
		name := sli.HTTPDuration
		if _, ok := tc.labels[sli.LabelOperation]; ok {
			name = sli.GenAIDuration
		}
		got := 0
		reg := prometheus.NewRegistry()
		reg.MustRegister(c)
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		series:
			for _, m := range mf.GetMetric() {
				for k, v := range tc.labels {
					for _, l := range m.GetLabel() {
						if l.GetName() == k && l.GetValue() != v {
							continue series
						}
					}
				}
				got += int(m.GetHistogram().GetSampleCount())
			}
		}
		if got != tc.want {
			t.Errorf("%s%v = %d, want %d", name, tc.labels, got, tc.want)
		}
	}
	// Time to first token only for the successful stream.
	if got := testutil.CollectAndCount(c, sli.GenAITTFT); got != 1 {
		t.Errorf("ttft series = %d, want 1", got)
	}
}

// A request whose series exist costs no allocation.
func TestNoAllocationPerRequest(t *testing.T) {
	c := newTest()
	r := req("POST", "/v1/chat/completions", 200, time.Second, stream(100*time.Millisecond, 10, 20, "glm-4"), func(r *traffic.Request) {
		r.CachedTokens = 4
	})
	c.Start(r)
	c.Finish(r)
	if a := testing.AllocsPerRun(100, func() { c.Start(r); c.Finish(r) }); a != 0 {
		t.Errorf("%.1f allocations per request, want 0", a)
	}
}

// Sizes that are unknown (access logs without them) make no empty series.
func TestUnknownSizesMakeNoSeries(t *testing.T) {
	c := newTest()
	c.Observe(req("GET", "/v1/models/x", 200, time.Second, func(r *traffic.Request) { r.RequestBodySize, r.ResponseBodySize = -1, -1 }))
	for _, name := range []string{sli.HTTPRequestSize, sli.HTTPResponseSize} {
		if got := testutil.CollectAndCount(c, name); got != 0 {
			t.Errorf("%s: %d series, want none", name, got)
		}
	}
	if got := testutil.CollectAndCount(c, sli.HTTPDuration); got != 1 {
		t.Errorf("duration series = %d, want 1", got)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
