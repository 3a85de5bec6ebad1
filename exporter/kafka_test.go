package exporter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/open-autoglm/autoglm-monitor/exporter/kafka/kafkatest"
	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/internal/llmsim"
	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

const eventTopic = "autoglm.requests"

// kafkaYAML is an exporter.outputs.kafka block for the broker at addr, with
// short timeouts so outages show within a test.
func kafkaYAML(addr string, extra ...string) string {
	y := "  outputs:\n    kafka:\n      brokers: [" + addr + "]\n      topic: " + eventTopic +
		"\n      linger: 5ms\n      delivery_timeout: 3s\n"
	for _, e := range extra {
		y += "      " + e + "\n"
	}
	return y
}

// events decodes the records of the topic.
func events(t testing.TB, recs []*kgo.Record) []map[string]any {
	t.Helper()
	out := make([]map[string]any, 0, len(recs))
	for _, r := range recs {
		var m map[string]any
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("record is not JSON: %v: %s", err, r.Value)
		}
		out = append(out, m)
	}
	return out
}

// seriesCounts sums the sample counts of a histogram (or a counter's
// values) by the given labels.
func seriesCounts(t testing.TB, reg prometheus.Gatherer, name string, labels ...string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			vals := make([]string, len(labels))
			for i, l := range labels {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == l {
						vals[i] = lp.GetValue()
					}
				}
			}
			if c := m.GetCounter(); c != nil {
				out[strings.Join(vals, "|")] += c.GetValue()
			} else {
				out[strings.Join(vals, "|")] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// eventCounts counts events by the same labels.
func eventCounts(evs []map[string]any, labels ...string) map[string]float64 {
	out := map[string]float64{}
	for _, ev := range evs {
		vals := make([]string, len(labels))
		for i, l := range labels {
			switch v := ev[l].(type) {
			case string:
				vals[i] = v
			case float64:
				vals[i] = strconv.FormatFloat(v, 'f', -1, 64)
			case bool:
				vals[i] = strconv.FormatBool(v)
			}
		}
		out[strings.Join(vals, "|")]++
	}
	return out
}

func sumField(evs []map[string]any, field string) float64 {
	total := 0.0
	for _, ev := range evs {
		if v, ok := ev[field].(float64); ok {
			total += v
		}
	}
	return total
}

func countField(evs []map[string]any, field string) int {
	n := 0
	for _, ev := range evs {
		if _, ok := ev[field]; ok {
			n++
		}
	}
	return n
}

// topicEvents reads n events from the broker once the exporter has
// observed n requests, and checks what holds for every event: unique ids,
// the configured key (the route), no request or response content, and the
// fields the eBPF capture always knows.
func topicEvents(t *testing.T, h *harness, b *kafkatest.Broker, n int) []map[string]any {
	t.Helper()
	h.waitObserved(uint64(n))
	recs := b.Consume(n, time.Second, 30*time.Second)
	if len(recs) != n || h.exp.Observed() != uint64(n) {
		t.Fatalf("%d events on the topic, %d requests observed, want %d of each", len(recs), h.exp.Observed(), n)
	}
	evs := events(t, recs)
	ids := map[string]bool{}
	for i, ev := range evs {
		if id := ev["event_id"].(string); ids[id] {
			t.Errorf("event %s twice", id)
		} else {
			ids[id] = true
		}
		if string(recs[i].Key) != ev[sli.LabelRoute] {
			t.Errorf("key %q, want the route %q", recs[i].Key, ev[sli.LabelRoute])
		}
		// Neither the prompt nor the completion may leave the exporter.
		for _, content := range []string{"private prompt", "hello", `"t0"`, "messages", "0.123456", "prompt"} {
			if bytes.Contains(recs[i].Value, []byte(content)) {
				t.Errorf("event carries request or response content %q: %s", content, recs[i].Value)
			}
		}
		if ev["source"] != "ebpf" || ev["network_protocol"] == nil || ev["server_port"] == nil || ev["ttfb_seconds"] == nil {
			t.Errorf("event lacks what the eBPF capture knows: %v", ev)
		}
		if h.ebpf && ev[sli.LabelServiceName] == nil {
			t.Errorf("event lacks the server's service_name: %v", ev)
		}
	}
	if got := h.sum("autoglm_exporter_kafka_events_produced_total", nil); got != float64(n) {
		t.Errorf("produced_total = %g, want %d", got, n)
	}
	return evs
}

// checkAgainstMetrics compares the events with the metrics the exporter
// made of the same requests, label by label.
func checkAgainstMetrics(t *testing.T, h *harness, evs []map[string]any) {
	t.Helper()
	for _, by := range [][]string{
		{sli.LabelMethod, sli.LabelRoute, sli.LabelStatus, sli.LabelErrorType},
		{sli.LabelServiceName, sli.LabelRoute},
	} {
		metrics, evc := seriesCounts(t, h.reg, sli.HTTPDuration, by...), eventCounts(evs, by...)
		if !maps.Equal(metrics, evc) {
			t.Errorf("by %v: metrics %v, events %v", by, metrics, evc)
		}
	}
	// Events of other paths have neither operation nor model; the metric has no series for them.
	m, e := seriesCounts(t, h.reg, sli.GenAIDuration, sli.LabelOperation, sli.LabelModel), eventCounts(evs, sli.LabelOperation, sli.LabelModel)
	delete(e, "|")
	if !maps.Equal(m, e) {
		t.Errorf("by operation and model: metrics %v, events %v", m, e)
	}
	var estimated []map[string]any
	var counted []map[string]any
	for _, ev := range evs {
		if ev["output_tokens_estimated"] == true {
			estimated = append(estimated, ev)
		} else {
			counted = append(counted, ev)
		}
	}
	for _, tc := range []struct {
		tokenType, field string
		evs              []map[string]any
	}{
		{sli.TokenInput, "input_tokens", evs},
		{sli.TokenOutput, "output_tokens", counted},
		{sli.TokenOutputEstimated, "output_tokens", estimated},
		{sli.TokenInputCached, "cached_input_tokens", evs},
		{sli.TokenOutputReasoning, "reasoning_output_tokens", evs},
	} {
		if m, e := h.sum(sli.GenAITokens, map[string]string{sli.LabelTokenType: tc.tokenType}), sumField(tc.evs, tc.field); m != e {
			t.Errorf("%s tokens: metrics %g, events %g", tc.tokenType, m, e)
		}
	}
	if m, e := h.sum(sli.GenAITTFT, nil), countField(evs, "ttft_seconds"); m != float64(e) {
		t.Errorf("time to first token: %g in the metrics, %d events", m, e)
	}
}

// checkEventsMatchMetrics drives the fixed mix through a real server and
// checks that every request the exporter counted is on the topic exactly
// once, agreeing with the metrics label by label.
func checkEventsMatchMetrics(t *testing.T, useEBPF bool) {
	b := kafkatest.Start(t, eventTopic, 3)
	h := startConfig(t, startGoServer(t), useEBPF, testEndpoints, kafkaYAML(b.Addr(), "key: route"))
	got := workload(t, h.base)
	if got[200] != 50 || got[503] != 5 || got[404] != 5 {
		t.Fatalf("server answered %v", got)
	}
	evs := topicEvents(t, h, b, 60)
	checkAgainstMetrics(t, h, evs)
	if n := eventCounts(evs, "network_protocol")["http/1.1"]; n != 60 {
		t.Errorf("%g HTTP/1.1 events, want 60", n)
	}
	if n := countField(evs, "ttft_seconds"); n != 10 {
		t.Errorf("%d events with a time to first token, want 10", n)
	}
	if n := eventCounts(evs, "streaming")["true"]; n != 10 {
		t.Errorf("%g streaming events, want 10", n)
	}
}

func TestKafkaEventsMatchMetricsProxy(t *testing.T) { checkEventsMatchMetrics(t, false) }

func TestKafkaEventsMatchMetricsEBPF(t *testing.T) {
	testenv.Root(t)
	checkEventsMatchMetrics(t, true)
}

// HTTP/2 (h2c, and HTTP/1.1 upgraded to it) and gRPC calls give events
// with their protocol, gRPC status and error type, as in the metrics.
func TestKafkaHTTP2AndGRPC(t *testing.T) {
	t.Run("h2c", func(t *testing.T) {
		b := kafkatest.Start(t, eventTopic, 3)
		h := startConfig(t, startH2CServer(t), false, testEndpoints, kafkaYAML(b.Addr()))
		checkHTTP2(t, h)
		evs := topicEvents(t, h, b, 59)
		checkAgainstMetrics(t, h, evs)
		// The four upgrade requests were sent as HTTP/1.1.
		if got := eventCounts(evs, "network_protocol"); got["h2"] != 55 || got["http/1.1"] != 4 {
			t.Errorf("protocols %v, want 55 h2 and 4 http/1.1", got)
		}
	})
	t.Run("grpc", func(t *testing.T) {
		b := kafkatest.Start(t, eventTopic, 3)
		h := startConfig(t, startGRPCServer(t), false, grpcEndpoints, kafkaYAML(b.Addr()))
		checkGRPC(t, h)
		evs := topicEvents(t, h, b, 22)
		checkAgainstMetrics(t, h, evs)
		if m, e := seriesCounts(t, h.reg, sli.GRPCResponses, sli.LabelRoute, sli.LabelGRPCStatus),
			eventCounts(evs, sli.LabelRoute, sli.LabelGRPCStatus); !maps.Equal(m, e) {
			t.Errorf("by gRPC status: metrics %v, events %v", m, e)
		}
		if got := eventCounts(evs, "grpc", "network_protocol"); got["true|h2"] != 22 {
			t.Errorf("grpc and protocol %v, want 22 gRPC calls over h2", got)
		}
	})
}

// TestKafkaBrokerDownDuringLoad keeps a paced load on a real server watched
// through eBPF while the broker is down for 30 s: capture and metrics stay
// exact, events that could not wait are dropped and counted, and production
// resumes by itself when the broker is back.
func TestKafkaBrokerDownDuringLoad(t *testing.T) {
	testenv.Root(t)
	const (
		rate     = 300.0
		before   = 5 * time.Second
		outage   = 30 * time.Second
		after    = 8 * time.Second
		conns    = 8
		capacity = 1024
	)
	b := kafkatest.Start(t, eventTopic, 3)
	port := startGoServer(t)
	h := startConfig(t, port, true, testEndpoints, kafkaYAML(b.Addr(), "buffer_events: "+strconv.Itoa(capacity)))

	type result struct {
		res driveResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := drive(testenv.Addr(int(port)), conns, rate, before+outage+after)
		done <- result{res, err}
	}()
	time.Sleep(before)
	b.Stop()
	down := time.Now()
	time.Sleep(outage)
	b.Restart()
	up := time.Now()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Logf("load: %d sent, %d skipped, %d responses in %s; broker down %s", r.res.sent, r.res.skipped, r.res.responses, r.res.elapsed, up.Sub(down).Round(time.Millisecond))

	// Capture is exact whatever Kafka did.
	h.waitObserved(uint64(r.res.responses))
	if got := h.exp.Observed(); got != uint64(r.res.responses) {
		t.Fatalf("observed %d requests, the server answered %d", got, r.res.responses)
	}
	if got := h.sum(sli.HTTPDuration, nil); got != float64(r.res.responses) {
		t.Errorf("http_server_request_duration_seconds counts %g, want %d", got, r.res.responses)
	}
	// Every event is produced or counted as dropped, once the buffers are empty.
	deadline := time.Now().Add(60 * time.Second)
	var produced, dropped float64
	for {
		produced = h.sum("autoglm_exporter_kafka_events_produced_total", nil)
		dropped = h.sum("autoglm_exporter_kafka_events_dropped_total", nil)
		if produced+dropped == float64(r.res.responses) && h.sum("autoglm_exporter_kafka_buffer_events", nil) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("produced %g + dropped %g != %d observed", produced, dropped, r.res.responses)
		}
		time.Sleep(100 * time.Millisecond)
	}
	full := h.sum("autoglm_exporter_kafka_events_dropped_total", map[string]string{"reason": "buffer_full"})
	failed := h.sum("autoglm_exporter_kafka_events_dropped_total", map[string]string{"reason": "produce_failed"})
	t.Logf("produced %g, dropped %g (buffer_full %g, produce_failed %g)", produced, dropped, full, failed)
	// 30 s at 300 req/s is far beyond the two buffers of 1024 events.
	if full == 0 || dropped < rate*outage.Seconds()-3*capacity {
		t.Errorf("dropped %g events (buffer_full %g) during a %s outage at %g req/s", dropped, full, outage, rate)
	}
	recs := b.Consume(int(produced), 2*time.Second, 60*time.Second)
	if float64(len(recs)) != produced {
		t.Errorf("%d events on the topic, %g counted as produced", len(recs), produced)
	}
	evs := events(t, recs)
	ids := map[string]bool{}
	var beforeDown, afterUp int
	for _, ev := range evs {
		id := ev["event_id"].(string)
		if ids[id] {
			t.Errorf("event %s twice on the topic", id)
		}
		ids[id] = true
		end, err := time.Parse(time.RFC3339Nano, ev["end_time"].(string))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case end.Before(down.Add(-time.Second)):
			beforeDown++
		case end.After(up.Add(2 * time.Second)):
			afterUp++
		}
	}
	// Everything before the outage arrived; after it, production resumed.
	if want := int(rate * (before - 2*time.Second).Seconds() * 0.9); beforeDown < want {
		t.Errorf("%d events from before the outage, want at least %d", beforeDown, want)
	}
	if want := int(rate * (after - 4*time.Second).Seconds() * 0.5); afterUp < want {
		t.Errorf("%d events from after the broker came back, want at least %d: production did not resume", afterUp, want)
	}
}

// TestKafkaAccessLogEvents follows the simulator's own access log (the
// README's mapping) with the Kafka output on: every line the exporter
// counted is one event, with the fields the log knows and none it does not.
func TestKafkaAccessLogEvents(t *testing.T) {
	const count = 200
	b := kafkatest.Start(t, eventTopic, 2)
	logPath := filepath.Join(t.TempDir(), "llmsim-access.log")
	sim, err := llmsim.NewServer(llmsim.Options{
		Pacing: llmsim.Pacing{TTFTMedian: 3 * time.Millisecond, TTFTSigma: 0.1, TokenMin: time.Millisecond,
			TokenMax: 2 * time.Millisecond, CompletionMedian: 4, CompletionSigma: 0.1, MaxCompletionTokens: 64},
		Seed: 7, AccessLog: logPath,
		Schedule: &llmsim.Schedule{Phases: []llmsim.Phase{{Name: "errs", Duration: time.Hour, ErrorRatio: 0.2, StatusCodes: []int{500, 503, 429}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sim.Handler())
	t.Cleanup(func() {
		hs.Close()
		if err := sim.Close(); err != nil {
			t.Error(err)
		}
	})
	cfgText := fmt.Sprintf(`metrics:
  endpoints: [/v1/chat/completions, /v1/completions, /v1/embeddings]
exporter:
  source: accesslog
  ports: [8000]
  accesslog:
    path: %s
    format: json
    from_start: true
    service_name: llmsim
    fields: {time: time_iso8601, client: remote_addr, server_port: server_port, method: method, path: uri, status: status,
      duration: request_time, ttft: ttft, request_bytes: request_length, response_bytes: body_bytes_sent, model: model,
      input_tokens: input_tokens, output_tokens: output_tokens}
%s`, logPath, kafkaYAML(b.Addr(), "client_address: full"))
	cfgPath := filepath.Join(t.TempDir(), "autoglm.yml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, reg: prometheus.NewPedanticRegistry()}
	h.exp = runExporter(t, Options{Config: cfg, Registerer: h.reg})

	sum, err := llmsim.Run(t.Context(), llmsim.LoadOptions{Target: hs.URL, Mode: llmsim.ModeClosed, Concurrency: 4, Count: count,
		KeepAlive: true, StreamRatio: 0.5, MaxTokens: 4, PromptTokens: 16, Models: []string{"m-sim"}, Seed: 13, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Responses != count || sum.Streams == 0 {
		t.Fatalf("load generator: %d responses, %d streams", sum.Responses, sum.Streams)
	}
	h.waitObserved(count)
	recs := b.Consume(count, time.Second, 30*time.Second)
	if len(recs) != count {
		t.Fatalf("%d events for %d requests", len(recs), count)
	}
	evs := events(t, recs)
	by := []string{sli.LabelMethod, sli.LabelRoute, sli.LabelStatus, sli.LabelErrorType}
	if m, e := seriesCounts(t, h.reg, sli.HTTPDuration, by...), eventCounts(evs, by...); !maps.Equal(m, e) {
		t.Errorf("metrics %v, events %v", m, e)
	}
	if m, e := h.sum(sli.GenAITTFT, nil), countField(evs, "ttft_seconds"); m != float64(e) {
		t.Errorf("time to first token: %g in the metrics, %d events", m, e)
	}
	if n := eventCounts(evs, "streaming")["true"]; n != float64(sum.Streams) {
		t.Errorf("%g streaming events, the load generator made %d streams", n, sum.Streams)
	}
	for _, ev := range evs {
		if ev["source"] != "accesslog" || ev[sli.LabelServiceName] != "llmsim" || ev[sli.LabelClient] != "127.0.0.1" ||
			ev[sli.LabelPort] == nil || ev["request_body_bytes"] == nil || ev["response_body_bytes"] == nil {
			t.Errorf("event lacks what the log says: %v", ev)
		}
		// A JSON log line has no time to first byte, no protocol, and says
		// "streaming" only for streams: those fields must be absent, not zero.
		for _, absent := range []string{"ttfb_seconds", "network_protocol"} {
			if _, ok := ev[absent]; ok {
				t.Errorf("access-log event has %s, which the log does not know: %v", absent, ev)
			}
		}
		if ev["streaming"] == false {
			t.Errorf("access-log event claims a non-stream: %v", ev)
		}
		if st, _ := ev[sli.LabelStatus].(float64); st >= 400 && (ev["input_tokens"] != nil || ev["output_tokens"] != nil) {
			t.Errorf("error event with tokens: %v", ev)
		}
	}
	keys := map[string]bool{}
	for _, ev := range evs {
		for k := range ev {
			keys[k] = true
		}
	}
	t.Logf("access-log event fields: %v", slices.Sorted(maps.Keys(keys)))
}
