package accesslog

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

func mustTime(t *testing.T, layout, v string) time.Time {
	t.Helper()
	ts, err := time.Parse(layout, v)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func parseWith(p lineParser, line string) (traffic.Request, error) {
	r := traffic.Request{RequestBodySize: -1, ResponseBodySize: -1, InputTokens: -1, OutputTokens: -1}
	err := p.parse([]byte(line), &r)
	return r, err
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	var pe *parseError
	if !errors.As(err, &pe) || pe.reason != reason {
		t.Fatalf("error %v, want reason %s", err, reason)
	}
}

func TestNginxParser(t *testing.T) {
	end := mustTime(t, nginxTimeLayout, "25/Nov/2026:17:52:38 +0000")
	tests := []struct {
		name, line string
		want       traffic.Request
		reason     string
	}{
		{name: "full", line: `10.1.2.3 - - [25/Nov/2026:17:52:38 +0000] "POST /v1/chat/completions?api-version=1 HTTP/1.1" 200 5123 "-" "openai-python/1.51.0" 2.345 2.344 1811`,
			want: traffic.Request{Start: end.Add(-2345 * time.Millisecond), End: end, Method: "POST", Path: "/v1/chat/completions",
				Status: 200, RequestBodySize: 1811, ResponseBodySize: 5123, InputTokens: -1, OutputTokens: -1,
				Client: netip.MustParseAddr("10.1.2.3"), ServerPort: 8000, Protocol: traffic.ProtocolHTTP1}},
		{name: "plain combined plus request_time", line: `::ffff:127.0.0.1 - alice [25/Nov/2026:17:52:38 +0000] "GET /v1/models HTTP/1.1" 404 0 "https://x/?a=\"b\"" "curl/8.5" 0.000`,
			want: traffic.Request{Start: end, End: end, Method: "GET", Path: "/v1/models", Status: 404, RequestBodySize: -1, ResponseBodySize: 0,
				InputTokens: -1, OutputTokens: -1, Client: netip.MustParseAddr("127.0.0.1"), ServerPort: 8000, Protocol: traffic.ProtocolHTTP1}},
		{name: "several upstreams", line: `2001:db8::1 - - [25/Nov/2026:17:52:38 +0000] "POST /v1/embeddings HTTP/1.1" 502 157 "-" "ua" 0.010 0.004, 0.005 : 0.001 640`,
			want: traffic.Request{Start: end.Add(-10 * time.Millisecond), End: end, Method: "POST", Path: "/v1/embeddings", Status: 502,
				RequestBodySize: 640, ResponseBodySize: 157, InputTokens: -1, OutputTokens: -1, Client: netip.MustParseAddr("2001:db8::1"), ServerPort: 8000,
				Protocol: traffic.ProtocolHTTP1}},
		{name: "upstream only", line: `10.0.0.1 - - [25/Nov/2026:17:52:38 +0000] "POST /v1/generate HTTP/1.1" 200 10 "-" "ua" 1.000 -`,
			want: traffic.Request{Start: end.Add(-time.Second), End: end, Method: "POST", Path: "/v1/generate", Status: 200,
				RequestBodySize: -1, ResponseBodySize: 10, InputTokens: -1, OutputTokens: -1, Client: netip.MustParseAddr("10.0.0.1"), ServerPort: 8000,
				Protocol: traffic.ProtocolHTTP1}},
		{name: "garbage request still counts", line: `10.0.0.1 - - [25/Nov/2026:17:52:38 +0000] "\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03" 400 157 "-" "-" 0.001`,
			want: traffic.Request{Start: end.Add(-time.Millisecond), End: end, Status: 400, RequestBodySize: -1, ResponseBodySize: 157,
				InputTokens: -1, OutputTokens: -1, Client: netip.MustParseAddr("10.0.0.1"), ServerPort: 8000}},
		{name: "no request_time", line: `10.0.0.1 - - [25/Nov/2026:17:52:38 +0000] "GET / HTTP/1.1" 200 1 "-" "-"`, reason: reasonMissing},
		{name: "bad time", line: `10.0.0.1 - - [25/11/2026 17:52:38] "GET / HTTP/1.1" 200 1 "-" "-" 0.1`, reason: reasonBadTime},
		{name: "bad status", line: `10.0.0.1 - - [25/Nov/2026:17:52:38 +0000] "GET / HTTP/1.1" OK 1 "-" "-" 0.1`, reason: reasonBadStatus},
		{name: "bad duration", line: `10.0.0.1 - - [25/Nov/2026:17:52:38 +0000] "GET / HTTP/1.1" 200 1 "-" "-" fast`, reason: reasonBadDuration},
		{name: "negative duration", line: `10.0.0.1 - - [25/Nov/2026:17:52:38 +0000] "GET / HTTP/1.1" 200 1 "-" "-" -1`, reason: reasonBadDuration},
		{name: "unterminated quote", line: `10.0.0.1 - - [25/Nov/2026:17:52:38 +0000] "GET / HTTP/1.1 200 1`, reason: reasonSyntax},
		{name: "bad size", line: `10.0.0.1 - - [25/Nov/2026:17:52:38 +0000] "GET / HTTP/1.1" 200 x "-" "-" 0.1`, reason: reasonBadNumber},
		{name: "empty", line: ``, reason: reasonSyntax},
	}
	p := nginxParser{port: 8000}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseWith(p, tc.line)
			if tc.reason != "" {
				wantReason(t, err, tc.reason)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestEnvoyParser(t *testing.T) {
	start := mustTime(t, time.RFC3339Nano, "2026-11-25T17:52:38.310Z")
	tests := []struct {
		name, line string
		want       traffic.Request
		reason     string
	}{
		{name: "default format", line: `[2026-11-25T17:52:38.310Z] "POST /v1/chat/completions HTTP/1.1" 200 - 1523 20480 2471 2465 "203.0.113.9, 10.0.0.2" "openai-python/1.51.0" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "llm.example.com" "10.0.2.1:8000"`,
			want: traffic.Request{Start: start, End: start.Add(2471 * time.Millisecond), Method: "POST", Path: "/v1/chat/completions", Status: 200,
				RequestBodySize: 1523, ResponseBodySize: 20480, InputTokens: -1, OutputTokens: -1, Client: netip.MustParseAddr("203.0.113.9"), ServerPort: 10000,
				Protocol: traffic.ProtocolHTTP1}},
		{name: "client went away", line: `[2026-11-25T17:52:38.310Z] "POST /v1/completions HTTP/1.1" 0 DC 100 0 5000 - "-" "-" "id" "host" "10.0.2.1:8000"`,
			want: traffic.Request{Start: start, End: start.Add(5 * time.Second), Method: "POST", Path: "/v1/completions", Status: 0, ErrorType: "client_disconnect",
				RequestBodySize: 100, ResponseBodySize: 0, InputTokens: -1, OutputTokens: -1, ServerPort: 10000, Protocol: traffic.ProtocolHTTP1}},
		{name: "upstream failure with original path", line: `[2026-11-25T17:52:38.310Z] "GET /v1/models?x=1 HTTP/2" 503 UF,URX 0 91 12 - "-" "curl/8" "-" "h" "-"`,
			want: traffic.Request{Start: start, End: start.Add(12 * time.Millisecond), Method: "GET", Path: "/v1/models", Status: 503,
				RequestBodySize: 0, ResponseBodySize: 91, InputTokens: -1, OutputTokens: -1, ServerPort: 10000, Protocol: traffic.ProtocolHTTP2}},
		{name: "tcp proxy line", line: `[2026-11-25T17:52:38.310Z] "- - -" 0 - 10 20 30 - "-" "-" "-" "-" "10.0.2.1:8000"`,
			want: traffic.Request{Start: start, End: start.Add(30 * time.Millisecond), Status: 0, ErrorType: "no_response",
				RequestBodySize: 10, ResponseBodySize: 20, InputTokens: -1, OutputTokens: -1, ServerPort: 10000}},
		{name: "bad start time", line: `[yesterday] "GET / HTTP/1.1" 200 - 0 0 1 - "-" "-" "-" "-" "-"`, reason: reasonBadTime},
		{name: "truncated", line: `[2026-11-25T17:52:38.310Z] "GET / HTTP/1.1" 200 - 0`, reason: reasonMissing},
		{name: "bad duration", line: `[2026-11-25T17:52:38.310Z] "GET / HTTP/1.1" 200 - 0 0 1.5 - "-" "-" "-" "-" "-"`, reason: reasonBadDuration},
		{name: "nginx line", line: `10.0.0.1 - - [25/Nov/2026:17:52:38 +0000] "GET / HTTP/1.1" 200 1 "-" "-" 0.1`, reason: reasonSyntax},
	}
	p := envoyParser{port: 10000}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseWith(p, tc.line)
			if tc.reason != "" {
				wantReason(t, err, tc.reason)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestJSONParser(t *testing.T) {
	end := mustTime(t, time.RFC3339Nano, "2026-11-25T17:52:38+00:00")
	now := end.Add(time.Hour)
	def, err := newJSONParser(nil, 8000, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	custom, err := newJSONParser(map[string]string{
		"status": "resp.code", "duration": "duration_ms:ms", "request": "req", "client": "xff", "ttft": "ttft_ms:ms",
		"input_tokens": "usage.prompt_tokens", "output_tokens": "usage.completion_tokens", "start_time": "ts:unix_ms", "model": "model",
		"response_bytes": "sent", "request_bytes": "received", "server_port": "port",
	}, 9000, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		p      *jsonParser
		line   string
		want   traffic.Request
		reason string
	}{
		{name: "nginx escape=json defaults", p: def,
			line: `{"time_iso8601":"2026-11-25T17:52:38+00:00","remote_addr":"10.9.8.7","method":"POST","uri":"/v1/chat/completions","status":200,"body_bytes_sent":4096,"request_length":900,"request_time":1.5,"model":"glm-4","ttft":"0.250"}`,
			want: traffic.Request{Start: end.Add(-1500 * time.Millisecond), End: end, FirstToken: end.Add(-1250 * time.Millisecond), Method: "POST",
				Path: "/v1/chat/completions", Status: 200, RequestBodySize: 900, ResponseBodySize: 4096, Streaming: true, Model: "glm-4",
				InputTokens: -1, OutputTokens: -1, Client: netip.MustParseAddr("10.9.8.7"), ServerPort: 8000}},
		{name: "strings and dashes, no time", p: def,
			line: `{"status":"503","request_time":"0.010","uri":"/v1/embeddings","remote_addr":"-","ttft":"-","body_bytes_sent":"-"}`,
			want: traffic.Request{Start: now.Add(-10 * time.Millisecond), End: now, Path: "/v1/embeddings", Status: 503, RequestBodySize: -1,
				ResponseBodySize: -1, InputTokens: -1, OutputTokens: -1, ServerPort: 8000}},
		{name: "app log with nested usage", p: custom,
			line: `{"ts":1795629158500,"port":8443,"sent":"77","received":12,"resp":{"code":200},"duration_ms":2000,"ttft_ms":300,"req":"POST /v1/completions HTTP/1.1","xff":"198.51.100.7, 10.0.0.1","model":"m","usage":{"prompt_tokens":12,"completion_tokens":34}}`,
			want: traffic.Request{Start: time.UnixMilli(1795629158500), End: time.UnixMilli(1795629160500), FirstToken: time.UnixMilli(1795629158800),
				Method: "POST", Path: "/v1/completions", Status: 200, RequestBodySize: 12, ResponseBodySize: 77, Streaming: true, Model: "m",
				InputTokens: 12, OutputTokens: 34, Client: netip.MustParseAddr("198.51.100.7"), ServerPort: 8443, Protocol: traffic.ProtocolHTTP1}},
		{name: "bad server port", p: custom, line: `{"resp":{"code":200},"duration_ms":1,"port":70000}`, reason: reasonBadNumber},
		{name: "not json", p: def, line: `status=200`, reason: reasonBadJSON},
		{name: "json array", p: def, line: `[1,2]`, reason: reasonBadJSON},
		{name: "missing status", p: def, line: `{"request_time":1}`, reason: reasonMissing},
		{name: "missing duration", p: def, line: `{"status":200}`, reason: reasonMissing},
		{name: "fractional status", p: def, line: `{"status":200.5,"request_time":1}`, reason: reasonBadStatus},
		{name: "bad duration", p: def, line: `{"status":200,"request_time":"slow"}`, reason: reasonBadDuration},
		{name: "huge duration", p: def, line: `{"status":200,"request_time":1e300}`, reason: reasonBadDuration},
		{name: "bad time", p: def, line: `{"status":200,"request_time":1,"time_iso8601":"noon"}`, reason: reasonBadTime},
		{name: "bad bytes", p: def, line: `{"status":200,"request_time":1,"body_bytes_sent":"lots"}`, reason: reasonBadNumber},
		{name: "negative tokens", p: custom, line: `{"resp":{"code":200},"duration_ms":1,"usage":{"prompt_tokens":-3}}`, reason: reasonBadNumber},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseWith(tc.p, tc.line)
			if tc.reason != "" {
				wantReason(t, err, tc.reason)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Start.Equal(tc.want.Start) || !got.End.Equal(tc.want.End) || !got.FirstToken.Equal(tc.want.FirstToken) {
				t.Fatalf("times: got %v..%v first token %v, want %v..%v first token %v", got.Start, got.End, got.FirstToken, tc.want.Start, tc.want.End, tc.want.FirstToken)
			}
			got.Start, got.End, got.FirstToken = tc.want.Start, tc.want.End, tc.want.FirstToken
			if got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestJSONFieldMappingValidation(t *testing.T) {
	for _, tc := range []struct {
		fields map[string]string
		want   string
	}{
		{map[string]string{"status": "s", "duration": "d", "latency": "x"}, `unknown field "latency"`},
		{map[string]string{"status": "s"}, `"duration" must be mapped`},
		{map[string]string{"duration": "d"}, `"status" must be mapped`},
		{map[string]string{"status": "s", "duration": "d:minutes"}, `duration unit "minutes"`},
		{map[string]string{"status": "s:ms", "duration": "d"}, "status takes no unit"},
		{map[string]string{"status": "s", "duration": "d", "time": "t:julian"}, `time format "julian"`},
		{map[string]string{"status": "", "duration": "d"}, "empty key"},
		{map[string]string{"status": "s", "duration": "d", "bytes_sent": "a", "response_bytes": "b"}, "name the same field"},
	} {
		_, err := newJSONParser(tc.fields, 0, time.Now)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("fields %v: error %v, want %q", tc.fields, err, tc.want)
		}
	}
}

func TestParseErrorsNeverCarryLineContent(t *testing.T) {
	secret := "sk-live-SECRET-prompt-text"
	lines := []string{
		`10.0.0.1 - ` + secret + ` [bad] "GET / HTTP/1.1" 200 1 "-" "-" 0.1`,
		`[2026-11-25T17:52:38.310Z] "GET /` + secret + ` HTTP/1.1" 200 - 0 0 x`,
		`{"status":"` + secret + `","request_time":1}`,
	}
	parsers := []lineParser{nginxParser{}, envoyParser{}, mustJSON(t)}
	for i, line := range lines {
		_, err := parseWith(parsers[i], line)
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("line %d: error %v must exist and must not quote the line", i, err)
		}
	}
}

func mustJSON(t testing.TB) *jsonParser {
	p, err := newJSONParser(nil, 0, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// FuzzParsers feeds arbitrary bytes to every parser: no panics, and an
// accepted line always yields a sane request.
func FuzzParsers(f *testing.F) {
	for _, s := range []string{
		`10.1.2.3 - - [25/Nov/2026:17:52:38 +0000] "POST /v1/chat/completions HTTP/1.1" 200 5123 "-" "ua" 2.345 2.344 1811`,
		`[2026-11-25T17:52:38.310Z] "POST /v1/chat/completions HTTP/1.1" 200 - 1523 20480 2471 2465 "203.0.113.9" "ua" "id" "host" "10.0.2.1:8000"`,
		`{"time_iso8601":"2026-11-25T17:52:38+00:00","status":200,"request_time":1.5,"uri":"/v1/x","ttft":0.2}`,
		`"\"\\`, `[`, `{"status":1e309,"request_time":-0}`,
	} {
		f.Add([]byte(s))
	}
	parsers := []lineParser{nginxParser{port: 1}, envoyParser{port: 1}, mustJSON(f)}
	f.Fuzz(func(t *testing.T, line []byte) {
		for _, p := range parsers {
			r := traffic.Request{RequestBodySize: -1, ResponseBodySize: -1, InputTokens: -1, OutputTokens: -1}
			if err := p.parse(line, &r); err != nil {
				var pe *parseError
				if !errors.As(err, &pe) {
					t.Fatalf("%T: error %v has no reason", p, err)
				}
				continue
			}
			if r.End.Before(r.Start) || r.Status < 0 || r.Status > 999 || r.End.Sub(r.Start) > 24*time.Hour {
				t.Fatalf("%T accepted an impossible request %+v", p, r)
			}
			if r.RequestBodySize < -1 || r.ResponseBodySize < -1 || r.InputTokens < -1 || r.OutputTokens < -1 {
				t.Fatalf("%T: negative sizes %+v", p, r)
			}
		}
	})
}

// FuzzSplit checks that the tailer finds the same lines however the bytes
// arrive: in one read or cut anywhere (the cuts come from the fuzzer too).
func FuzzSplit(f *testing.F) {
	f.Add([]byte("a\nbb\nccc\n"), []byte{1, 2, 3})
	f.Add([]byte("\x00\x00\x00{\"n\":1}\r\n\x00x\n"), []byte{2})
	f.Add([]byte("0123456789abcdefXYZ\nshort\n0123456789abcdef\n"), []byte{5, 17})
	f.Add([]byte("\n\n\x00\n"), []byte{0})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		const maxLine = 16
		type line struct {
			text    string
			tooLong bool
		}
		run := func(chunks [][]byte) []line {
			var out []line
			tl := newTailer("", true, tailHooks{
				line:    func(b []byte, _ int64) { out = append(out, line{text: string(b)}) },
				tooLong: func(int64) { out = append(out, line{tooLong: true}) },
			})
			tl.maxLine = maxLine
			for _, c := range chunks {
				tl.split(c)
			}
			return out
		}
		whole := run([][]byte{data})
		var chunks [][]byte
		rest := data
		for _, c := range cuts {
			n := min(int(c)%8+1, len(rest))
			chunks, rest = append(chunks, rest[:n]), rest[n:]
		}
		chunks = append(chunks, rest)
		if cut := run(chunks); fmt.Sprint(cut) != fmt.Sprint(whole) {
			t.Fatalf("lines depend on how the bytes arrive:\nwhole: %+v\ncut:   %+v", whole, cut)
		}
		// The reference: complete lines, leading NULs (a copytruncate
		// hole) and a trailing CR dropped, too long ones marked.
		var want []line
		parts := bytes.Split(data, []byte{'\n'})
		for _, p := range parts[:len(parts)-1] {
			p = bytes.TrimLeft(p, "\x00")
			if len(p) > maxLine {
				want = append(want, line{tooLong: true})
				continue
			}
			want = append(want, line{text: string(bytes.TrimSuffix(p, []byte{'\r'}))})
		}
		if fmt.Sprint(whole) != fmt.Sprint(want) {
			t.Fatalf("lines:\ngot:  %+v\nwant: %+v", whole, want)
		}
	})
}
