package kafka

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/open-autoglm/autoglm-monitor/exporter/kafka/schema"
	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// eventSchema compiles the committed schema once per test binary.
type eventSchema struct {
	s     *jsonschema.Schema
	props map[string]bool
}

func loadSchema(t testing.TB) *eventSchema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema.RequestEventV1))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	const url = "request-event.v1.json"
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(url)
	if err != nil {
		t.Fatalf("schema does not compile: %v", err)
	}
	var raw struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(schema.RequestEventV1, &raw); err != nil {
		t.Fatal(err)
	}
	props := map[string]bool{}
	for k := range raw.Properties {
		props[k] = true
	}
	return &eventSchema{s: s, props: props}
}

// check validates one event and also requires every field it carries to be
// declared: the published schema lets consumers ignore new fields, but this
// package must not write a field the schema does not document.
func (es *eventSchema) check(t testing.TB, event []byte) map[string]any {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(event))
	if err != nil {
		t.Fatalf("event is not JSON: %v\n%s", err, event)
	}
	if err := es.s.Validate(inst); err != nil {
		t.Fatalf("event does not validate: %v\n%s", err, event)
	}
	var m map[string]any
	if err := json.Unmarshal(event, &m); err != nil {
		t.Fatal(err)
	}
	for k := range m {
		if !es.props[k] {
			t.Errorf("field %q is not declared in the schema: %s", k, event)
		}
	}
	return m
}

var t0 = time.Date(2026, 12, 5, 10, 20, 30, 123_456_789, time.UTC)

func testEncoder(src Source, full bool) *Encoder {
	return NewEncoder(EncoderOptions{
		Endpoints: []string{"/v1/chat/completions", "/v1/embeddings", "/v1/models/{model}"},
		Source:    src, Host: "node-1", FullClient: full, PrefixV4: 24, PrefixV6: 64, RunID: "0123456789abcdef",
	})
}

func TestEventFields(t *testing.T) {
	es := loadSchema(t)
	for _, tc := range []struct {
		name string
		src  Source
		full bool
		req  traffic.Request
		want map[string]any
	}{
		{
			name: "ebpf stream with usage",
			src:  SourceEBPF,
			req: traffic.Request{
				Start: t0, FirstByte: t0.Add(40 * time.Millisecond), FirstToken: t0.Add(55 * time.Millisecond),
				End: t0.Add(1500 * time.Millisecond), Method: "POST", Path: "/v1/chat/completions", Status: 200,
				RequestBodySize: 812, ResponseBodySize: 4096, Streaming: true, Model: "glm-4",
				InputTokens: 11, OutputTokens: 4, Client: netip.MustParseAddr("10.1.2.3"), ServerPort: 8000,
				Protocol: traffic.ProtocolHTTP1,
				Workload: &traffic.Workload{ServiceName: "vllm", K8sNamespace: "llm", K8sPod: "vllm-0", K8sContainer: "server"},
			},
			want: map[string]any{
				"schema_version": 1.0, "event_id": "0123456789abcdef-1", "source": "ebpf", "host_name": "node-1",
				"start_time": "2026-12-05T10:20:30.123Z", "end_time": "2026-12-05T10:20:31.623Z",
				"duration_seconds": 1.5, "ttfb_seconds": 0.04, "ttft_seconds": 0.055, "stream_duration_seconds": 1.445,
				"http_request_method": "POST", "http_route": "/v1/chat/completions", "http_response_status_code": 200.0,
				"server_port": 8000.0, "network_protocol": "http/1.1", "gen_ai_operation_name": "chat",
				"gen_ai_request_model": "glm-4", "streaming": true, "request_body_bytes": 812.0,
				"response_body_bytes": 4096.0, "input_tokens": 11.0, "output_tokens": 4.0, "output_tokens_estimated": false,
				"client_address": "10.1.2.0/24",
				"service_name":   "vllm", "k8s_namespace_name": "llm", "k8s_pod_name": "vllm-0", "k8s_container_name": "server",
			},
		},
		{
			name: "ebpf 503 without usage, full IPv6 client",
			src:  SourceEBPF,
			full: true,
			req: traffic.Request{
				Start: t0, FirstByte: t0.Add(time.Millisecond), End: t0.Add(1234567 * time.Nanosecond), Method: "GET",
				Path: "/fail", Status: 503, RequestBodySize: 0, ResponseBodySize: 21, InputTokens: -1, OutputTokens: -1,
				Client: netip.MustParseAddr("2001:db8::7"), ServerPort: 8000, Protocol: traffic.ProtocolHTTP1,
				Workload: &traffic.Workload{ServiceName: "python3", NetNS: "blue"},
			},
			want: map[string]any{
				"schema_version": 1.0, "event_id": "0123456789abcdef-1", "source": "ebpf", "host_name": "node-1",
				"start_time": "2026-12-05T10:20:30.123Z", "end_time": "2026-12-05T10:20:30.124Z",
				"duration_seconds": 0.001235, "ttfb_seconds": 0.001,
				"http_request_method": "GET", "http_route": "other", "http_response_status_code": 503.0,
				"error_type": "503", "server_port": 8000.0, "network_protocol": "http/1.1", "streaming": false,
				"request_body_bytes": 0.0, "response_body_bytes": 21.0, "client_address": "2001:db8::7",
				"service_name": "python3", "netns": "blue",
			},
		},
		{
			name: "connection closed before any status, masked IPv4-mapped client",
			src:  SourceEBPF,
			req: traffic.Request{
				Start: t0, End: t0.Add(2 * time.Second), Method: "BREW", Path: "/v1/models/glm-4",
				RequestBodySize: -1, ResponseBodySize: -1, InputTokens: -1, OutputTokens: -1,
				Client: netip.MustParseAddr("::ffff:192.168.7.9"), ServerPort: 8443, ErrorType: "connection_closed",
				Protocol: traffic.ProtocolHTTP1,
			},
			want: map[string]any{
				"schema_version": 1.0, "event_id": "0123456789abcdef-1", "source": "ebpf", "host_name": "node-1",
				"start_time": "2026-12-05T10:20:30.123Z", "end_time": "2026-12-05T10:20:32.123Z", "duration_seconds": 2.0,
				"http_request_method": "_OTHER", "http_route": "/v1/models/{model}", "error_type": "connection_closed",
				"server_port": 8443.0, "network_protocol": "http/1.1", "streaming": false, "client_address": "192.168.7.0/24",
			},
		},
		{
			// An nginx line knows no time to first byte, no stream flag,
			// no protocol, no request size and no tokens: all absent.
			name: "access log leaves out what it does not know",
			src:  SourceAccessLog,
			req: traffic.Request{
				Start: t0.Add(-250 * time.Millisecond), End: t0, Method: "POST", Path: "/v1/embeddings", Status: 200,
				RequestBodySize: -1, ResponseBodySize: 300, InputTokens: -1, OutputTokens: -1,
				Client: netip.MustParseAddr("172.16.5.4"), ServerPort: 443,
				Workload: &traffic.Workload{ServiceName: "nginx"},
			},
			want: map[string]any{
				"schema_version": 1.0, "event_id": "0123456789abcdef-1", "source": "accesslog", "host_name": "node-1",
				"start_time": "2026-12-05T10:20:29.873Z", "end_time": "2026-12-05T10:20:30.123Z", "duration_seconds": 0.25,
				"http_request_method": "POST", "http_route": "/v1/embeddings", "http_response_status_code": 200.0,
				"server_port": 443.0, "gen_ai_operation_name": "embeddings", "response_body_bytes": 300.0,
				"client_address": "172.16.5.0/24", "service_name": "nginx",
			},
		},
		{
			name: "access log stream with ttft and tokens",
			src:  SourceAccessLog,
			req: traffic.Request{
				Start: t0, FirstToken: t0.Add(300 * time.Millisecond), End: t0.Add(3 * time.Second), Method: "POST",
				Path: "/v1/chat/completions", Status: 200, RequestBodySize: 900, ResponseBodySize: -1, Streaming: true,
				Model: "qwen", InputTokens: 20, OutputTokens: 0,
			},
			want: map[string]any{
				"schema_version": 1.0, "event_id": "0123456789abcdef-1", "source": "accesslog", "host_name": "node-1",
				"start_time": "2026-12-05T10:20:30.123Z", "end_time": "2026-12-05T10:20:33.123Z", "duration_seconds": 3.0,
				"ttft_seconds": 0.3, "stream_duration_seconds": 2.7,
				"http_request_method": "POST", "http_route": "/v1/chat/completions", "http_response_status_code": 200.0,
				"gen_ai_operation_name": "chat", "gen_ai_request_model": "qwen", "streaming": true,
				"request_body_bytes": 900.0, "input_tokens": 20.0, "output_tokens": 0.0, "output_tokens_estimated": false,
			},
		},
		{
			// A streamed gRPC answer that failed on the server, after
			// reasoning, with cached input and an estimated output.
			name: "grpc over h2 with token details",
			src:  SourceEBPF,
			req: traffic.Request{
				Start: t0, FirstByte: t0.Add(10 * time.Millisecond), FirstToken: t0.Add(20 * time.Millisecond), End: t0.Add(time.Second),
				Method: "POST", Path: "/llm.Generator/GenerateStream", Status: 200, RequestBodySize: 50, ResponseBodySize: 700,
				Streaming: true, Model: "glm-4", InputTokens: 100, OutputTokens: 12, OutputTokensEstimated: true,
				CachedTokens: 64, ReasoningTokens: 5, GRPC: true, GRPCStatus: 14, Protocol: traffic.ProtocolHTTP2, ServerPort: 50051,
			},
			want: map[string]any{
				"schema_version": 1.0, "event_id": "0123456789abcdef-1", "source": "ebpf", "host_name": "node-1",
				"start_time": "2026-12-05T10:20:30.123Z", "end_time": "2026-12-05T10:20:31.123Z", "duration_seconds": 1.0,
				"ttfb_seconds": 0.01, "ttft_seconds": 0.02, "stream_duration_seconds": 0.98,
				"http_request_method": "POST", "http_route": "other", "http_response_status_code": 200.0,
				"error_type": "UNAVAILABLE", "server_port": 50051.0, "network_protocol": "h2", "grpc": true,
				"rpc_grpc_status_code": "UNAVAILABLE", "gen_ai_operation_name": "generate", "gen_ai_request_model": "glm-4",
				"streaming": true, "request_body_bytes": 50.0, "response_body_bytes": 700.0, "input_tokens": 100.0,
				"output_tokens": 12.0, "output_tokens_estimated": true, "cached_input_tokens": 64.0, "reasoning_output_tokens": 5.0,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := testEncoder(tc.src, tc.full)
			got := es.check(t, e.Append(nil, &tc.req))
			if !reflect.DeepEqual(got, tc.want) {
				for _, k := range slices.Sorted(maps.Keys(mergeKeys(got, tc.want))) {
					if !reflect.DeepEqual(got[k], tc.want[k]) {
						t.Errorf("%s = %v, want %v", k, got[k], tc.want[k])
					}
				}
			}
		})
	}
}

func mergeKeys(a, b map[string]any) map[string]any {
	m := maps.Clone(a)
	maps.Copy(m, b)
	return m
}

// Strings from the wire are written as valid JSON whatever they hold.
func TestEventEscapesStrings(t *testing.T) {
	es := loadSchema(t)
	e := testEncoder(SourceEBPF, false)
	model := "m\"o\\d\ne\tl\x00\x1f\xff\xfe€😀"
	r := traffic.Request{Start: t0, End: t0, Method: "POST", Path: "/v1/chat/completions", Model: model,
		RequestBodySize: -1, ResponseBodySize: -1, InputTokens: -1, OutputTokens: -1, ErrorType: "x\"y"}
	got := es.check(t, e.Append(nil, &r))
	if want := "m\"o\\d\ne\tl\x00\x1f\ufffd\ufffd€😀"; got["gen_ai_request_model"] != want {
		t.Errorf("model = %q, want %q", got["gen_ai_request_model"], want)
	}
	// error_type is the metrics' label value, bounded to label-safe characters.
	if got["error_type"] != "x_y" {
		t.Errorf("error_type = %q", got["error_type"])
	}
}

func FuzzEncoder(f *testing.F) {
	f.Add("POST", "/v1/chat/completions", "glm-4", "", int64(12), uint16(8000), int64(5))
	f.Add("\x00", "/\xff", "\"", "\\", int64(-1), uint16(0), int64(-7))
	f.Add("GET", "/v1/models/{model}", "😀\u2028", "connection_closed", int64(1<<40), uint16(65535), int64(1<<62))
	es := loadSchema(f)
	f.Fuzz(func(t *testing.T, method, path, model, errType string, tokens int64, port uint16, dur int64) {
		e := testEncoder(SourceEBPF, false)
		r := traffic.Request{Start: t0, End: t0.Add(time.Duration(dur)), Method: method, Path: path, Model: model,
			ErrorType: errType, InputTokens: tokens, OutputTokens: tokens, RequestBodySize: tokens,
			ResponseBodySize: tokens, ServerPort: port, Status: int(port) % 1000, FirstToken: t0.Add(time.Duration(dur / 2))}
		b := e.Append(nil, &r)
		if !json.Valid(b) {
			t.Fatalf("invalid JSON: %q", b)
		}
		if r.Status > 0 && r.Status < 100 {
			// The capture never hands out a status below 100; the schema says so.
			return
		}
		es.check(t, b)
	})
}

func TestEncoderAllocatesNothing(t *testing.T) {
	e := testEncoder(SourceEBPF, false)
	r := traffic.Request{
		Start: t0, FirstByte: t0.Add(time.Millisecond), FirstToken: t0.Add(2 * time.Millisecond), End: t0.Add(time.Second),
		Method: "POST", Path: "/v1/chat/completions", Status: 200, RequestBodySize: 100, ResponseBodySize: 2000,
		Streaming: true, Model: "glm-4", InputTokens: 10, OutputTokens: 20, Client: netip.MustParseAddr("10.0.0.1"), ServerPort: 8000,
		Workload: &traffic.Workload{ServiceName: "vllm", K8sNamespace: "llm", K8sPod: "vllm-0", K8sContainer: "server"},
	}
	buf := make([]byte, 0, 2048)
	if n := testing.AllocsPerRun(1000, func() {
		r.End = r.End.Add(time.Millisecond)
		buf = e.Append(buf[:0], &r)
	}); n != 0 {
		t.Errorf("Append allocates %.1f times per event, want 0", n)
	}
}

// The hand-written timestamp agrees with the time package over centuries,
// across leap days and before 1970.
func TestAppendTimeMatchesTimeFormat(t *testing.T) {
	e := testEncoder(SourceEBPF, false)
	for _, ts := range []time.Time{
		time.Unix(0, 0), time.Unix(-1, 999_000_000), time.Date(1969, 12, 31, 23, 59, 59, 1_000_000, time.UTC),
		time.Date(2000, 2, 29, 12, 0, 0, 0, time.UTC), time.Date(2100, 3, 1, 0, 0, 0, 5_000_000, time.UTC),
		time.Date(2026, 12, 5, 10, 20, 30, 123_456_789, time.FixedZone("CST", 8*3600)), time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
	} {
		got := string(e.appendTime(nil, ts))
		// Milliseconds are truncated towards the past, before 1970 too.
		want := `"` + ts.UTC().Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z") + `"`
		if got != want {
			t.Errorf("%v: got %s, want %s", ts, got, want)
		}
	}
	for day := int64(-800_000); day < 3_000_000; day += 997 {
		ts := time.UnixMilli(day*86_400_000 + 12_345)
		if ts.Year() > 9999 || ts.Year() < 0 {
			continue
		}
		if got, want := string(e.appendTime(nil, ts)), `"`+ts.UTC().Format("2006-01-02T15:04:05.000Z")+`"`; got != want {
			t.Fatalf("day %d: got %s, want %s", day, got, want)
		}
	}
}
