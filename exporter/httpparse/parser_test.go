package httpparse

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// step is one socket event in a test script; at is milliseconds after t0.
type step struct {
	conn traffic.ConnID
	kind traffic.Kind
	dir  traffic.Direction
	data string
	// size, when larger than len(data), makes the event truncated.
	size int
	// skip makes it an event whose middle the source left out.
	skip *traffic.Skip
	at   int
}

func in(at int, s string) step {
	return step{conn: 1, kind: traffic.Data, dir: traffic.Ingress, data: s, at: at}
}
func out(at int, s string) step {
	return step{conn: 1, kind: traffic.Data, dir: traffic.Egress, data: s, at: at}
}
func closed(at int) step { return step{conn: 1, kind: traffic.Close, at: at} }

func on(c traffic.ConnID, s step) step { s.conn = c; return s }

func trunc(s step, size int) step { s.size = size; return s }

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

type recorder struct {
	started, dropped int
	reqs             []traffic.Request
}

func run(t *testing.T, o Options, steps []step) (*recorder, *Parser) {
	t.Helper()
	rec := &recorder{}
	o.OnStart = func(*traffic.Request) { rec.started++ }
	o.OnRequest = func(r *traffic.Request) { rec.reqs = append(rec.reqs, *r) }
	o.OnDrop = func(*traffic.Request) { rec.dropped++ }
	p := New(o)
	opened := map[traffic.ConnID]bool{}
	for _, s := range steps {
		if !opened[s.conn] && s.kind != traffic.Close {
			opened[s.conn] = true
			p.Handle(&traffic.Event{
				Kind: traffic.Open, Conn: s.conn, Time: ms(s.at),
				Local:  netip.MustParseAddrPort("127.0.0.1:8000"),
				Remote: netip.MustParseAddrPort("[::ffff:10.1.2.3]:40000"),
			})
		}
		ev := &traffic.Event{Kind: s.kind, Conn: s.conn, Time: ms(s.at), Dir: s.dir, Data: []byte(s.data)}
		if s.kind == 0 {
			ev.Kind = traffic.Data
		}
		ev.Size = uint32(len(s.data))
		switch {
		case s.skip != nil:
			ev.Size, ev.Skip = uint32(s.size), s.skip
		case s.size > len(s.data):
			ev.Size, ev.Truncated = uint32(s.size), true
		}
		p.Handle(ev)
	}
	return rec, p
}

// want describes the fields of an expected request; zero fields are not checked
// except Status, Method and Path, which always are.
type want struct {
	method, path, model, errorType string
	status                         int
	start, end, firstByte          int
	firstToken                     int // -1: must be zero
	reqBody, respBody              int64
	in, out                        int64
	streaming                      bool
}

func check(t *testing.T, got traffic.Request, w want) {
	t.Helper()
	if got.Method != w.method || got.Path != w.path || got.Status != w.status {
		t.Errorf("request = %s %s %d, want %s %s %d", got.Method, got.Path, got.Status, w.method, w.path, w.status)
	}
	if got.Model != w.model {
		t.Errorf("model = %q, want %q", got.Model, w.model)
	}
	if got.ErrorType != w.errorType {
		t.Errorf("error type = %q, want %q", got.ErrorType, w.errorType)
	}
	if !got.Start.Equal(ms(w.start)) || !got.End.Equal(ms(w.end)) {
		t.Errorf("start/end = %s/%s, want %d/%d ms", got.Start.Sub(t0), got.End.Sub(t0), w.start, w.end)
	}
	if w.firstByte != 0 && !got.FirstByte.Equal(ms(w.firstByte)) {
		t.Errorf("first byte = %s, want %d ms", got.FirstByte.Sub(t0), w.firstByte)
	}
	switch {
	case w.firstToken == -1 && !got.FirstToken.IsZero():
		t.Errorf("first token = %s, want none", got.FirstToken.Sub(t0))
	case w.firstToken > 0 && !got.FirstToken.Equal(ms(w.firstToken)):
		t.Errorf("first token = %s, want %d ms", got.FirstToken.Sub(t0), w.firstToken)
	}
	if w.reqBody != 0 && got.RequestBodySize != w.reqBody {
		t.Errorf("request body = %d, want %d", got.RequestBodySize, w.reqBody)
	}
	if w.respBody != 0 && got.ResponseBodySize != w.respBody {
		t.Errorf("response body = %d, want %d", got.ResponseBodySize, w.respBody)
	}
	if w.in != 0 && (got.InputTokens != w.in || got.OutputTokens != w.out) {
		t.Errorf("tokens = %d/%d, want %d/%d", got.InputTokens, got.OutputTokens, w.in, w.out)
	}
	if got.Streaming != w.streaming {
		t.Errorf("streaming = %v, want %v", got.Streaming, w.streaming)
	}
	if got.ServerPort != 8000 || got.Client != netip.MustParseAddr("10.1.2.3") {
		t.Errorf("port/client = %d/%s", got.ServerPort, got.Client)
	}
}

const (
	chatBody = `{"messages":[{"role":"user","content":"say \"model\": no {["}],"stream":false,"model":"glm-4","n":1}`
	chatResp = `{"id":"x","model":"glm-4","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}}`
	ok5      = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
)

func post(path, body string, extra ...string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + strings.Join(extra, "") +
		"Content-Length: " + itoa(len(body)) + "\r\n\r\n" + body
}

func jsonResp(body string) string {
	return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n" + body
}

func itoa(n int) string { return strconv.Itoa(n) }

func chunk(s string) string { return strconv.FormatInt(int64(len(s)), 16) + "\r\n" + s + "\r\n" }

func TestParser(t *testing.T) {
	sseHead := "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
	ev1 := `data: {"model":"glm-4","choices":[{"delta":{"role":"assistant"}}]}` + "\n\n"
	ev2 := `data: {"choices":[{"delta":{"content":"secret completion"}}]}` + "\n\n"
	evUsage := `data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}` + "\n\n"
	done := "data: [DONE]\n\n"
	for _, tc := range []struct {
		name   string
		o      Options
		steps  []step
		want   []want
		errors map[Reason]uint64
	}{
		{
			name:  "keep-alive GETs",
			steps: []step{in(0, "GET /v1/models?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"), out(3, ok5), in(10, "GET /health HTTP/1.1\r\n\r\n"), out(12, ok5)},
			want: []want{
				{method: "GET", path: "/v1/models", status: 200, start: 0, end: 3, firstByte: 3, firstToken: -1, respBody: 5},
				{method: "GET", path: "/health", status: 200, start: 10, end: 12, respBody: 5},
			},
		},
		{
			name:  "json body model after messages and usage",
			steps: []step{in(0, post("/v1/chat/completions", chatBody)), out(40, jsonResp(chatResp))},
			want: []want{{method: "POST", path: "/v1/chat/completions", model: "glm-4", status: 200, end: 40,
				reqBody: int64(len(chatBody)), respBody: int64(len(chatResp)), in: 12, out: 34}},
		},
		{
			name: "pipelined requests in one read, responses in one write",
			steps: []step{
				in(0, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nHEAD /c HTTP/1.1\r\n\r\n"),
				out(5, ok5+"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
				out(6, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"),
			},
			want: []want{
				{method: "GET", path: "/a", status: 200, end: 5, respBody: 5},
				{method: "GET", path: "/b", status: 404, end: 5},
				{method: "HEAD", path: "/c", status: 200, end: 6},
			},
		},
		{
			name:  "request split byte by byte",
			steps: splitEach(post("/v1/completions", `{"model":"m1","prompt":"p"}`), 1),
			want:  []want{{method: "POST", path: "/v1/completions", model: "m1", status: 204, start: 0, end: 1000, reqBody: 27}},
		},
		{
			name: "chunked request and response with trailers",
			steps: []step{
				in(0, "POST /v1/embeddings HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"+chunk(`{"input":"a",`)),
				in(1, chunk(`"model":"emb-1"}`)+"0\r\n"),
				in(2, "X-T: 1\r\n\r\n"),
				out(9, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"+chunk(`{"data":[],"usage":{"prompt_tokens":3}}`)),
				out(11, "0\r\n\r\n"),
			},
			want: []want{{method: "POST", path: "/v1/embeddings", model: "emb-1", status: 200, end: 11, firstByte: 9, in: 3, out: -1,
				reqBody: int64(len(chunk(`{"input":"a",`)) + len(chunk(`"model":"emb-1"}`)) + len("0\r\nX-T: 1\r\n\r\n"))}},
		},
		{
			name: "expect 100-continue",
			steps: []step{
				in(0, "POST /v1/generate HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 15\r\n\r\n"),
				out(1, "HTTP/1.1 100 Continue\r\n\r\n"),
				in(5, `{"model":"g-1"}`),
				out(20, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"),
			},
			want: []want{{method: "POST", path: "/v1/generate", model: "g-1", status: 503, end: 20, firstByte: 20, reqBody: 15}},
		},
		{
			name: "chunked SSE stream",
			steps: []step{
				in(0, post("/v1/chat/completions", `{"stream":true,"model":"glm-4"}`)),
				out(10, sseHead),
				out(250, chunk(ev1)),
				out(300, chunk(ev2)),
				out(350, chunk(evUsage)),
				out(351, chunk(done)),
				out(352, "0\r\n\r\n"),
			},
			want: []want{{method: "POST", path: "/v1/chat/completions", model: "glm-4", status: 200, end: 352, firstByte: 10,
				firstToken: 250, in: 7, out: 2, streaming: true}},
		},
		{
			name: "close-delimited SSE ends at DONE",
			steps: []step{
				in(0, "GET /v1/stream HTTP/1.0\r\n\r\n"),
				out(10, "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"),
				out(100, ev1[:20]), out(101, ev1[20:]+ev2),
				out(200, evUsage+done),
				closed(900),
			},
			want: []want{{method: "GET", path: "/v1/stream", status: 200, end: 200, firstToken: 101, in: 7, out: 2, model: "glm-4", streaming: true,
				respBody: int64(len(ev1 + ev2 + evUsage + done))}},
		},
		{
			name: "close ends a body without length",
			steps: []step{
				in(0, "GET /x HTTP/1.1\r\n\r\n"),
				out(10, "HTTP/1.1 200 OK\r\n\r\nabc"), out(20, "defg"),
				closed(30),
			},
			want: []want{{method: "GET", path: "/x", status: 200, end: 20, respBody: 7}},
		},
		{
			name: "connection first seen mid-stream resynchronises",
			steps: []step{
				in(0, `ges":[{"role":"user"}]}`),
				out(2, `{"choices":[]}`),
				in(10, "tail of body\r\nGET /v1/models HTTP/1.1\r\n\r\n"),
				out(11, ok5),
			},
			want:   []want{{method: "GET", path: "/v1/models", status: 200, start: 10, end: 11}},
			errors: map[Reason]uint64{MidStream: 1},
		},
		{
			name:   "TLS client hello",
			steps:  []step{in(0, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03GET / HTTP/1.1\r\n\r\n"), out(1, "\x16\x03\x03\x00\x7a")},
			errors: map[Reason]uint64{NotHTTP: 1},
		},
		{
			name:   "HTTP/2 preface followed by HTTP/1.1 is not HTTP/2",
			steps:  []step{in(0, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04"), in(1, "GET / HTTP/1.1\r\n\r\n"), out(2, ok5)},
			errors: map[Reason]uint64{H2Protocol: 1},
		},
		{
			name: "header too large then recovery",
			o:    Options{MaxHeaderBytes: 256},
			steps: []step{
				in(0, "GET /ok HTTP/1.1\r\n\r\n"), out(1, ok5),
				in(2, "GET /big HTTP/1.1\r\nX-Big: "+strings.Repeat("a", 200)),
				in(3, strings.Repeat("b", 200)+"\r\n\r\n"),
				in(4, "GET /after HTTP/1.1\r\n\r\n"), out(5, ok5),
			},
			want: []want{
				{method: "GET", path: "/ok", status: 200, end: 1},
				{method: "GET", path: "/after", status: 200, start: 4, end: 5},
			},
			errors: map[Reason]uint64{HeaderTooLarge: 1},
		},
		{
			name: "bad chunk in response",
			steps: []step{
				in(0, "GET /a HTTP/1.1\r\n\r\n"),
				out(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
				closed(7),
			},
			want:   []want{{method: "GET", path: "/a", status: 200, end: 1}},
			errors: map[Reason]uint64{BadChunk: 1},
		},
		{
			name: "truncated capture of large bodies keeps counting by size",
			steps: []step{
				trunc(in(0, post("/v1/chat/completions", `{"model":"big","messages":[`+strings.Repeat(`{"c":"x"},`, 200)+`{}]}`)[:200]), len(post("/v1/chat/completions", `{"model":"big","messages":[`+strings.Repeat(`{"c":"x"},`, 200)+`{}]}`))),
				trunc(out(5, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{"), 100000+len("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")),
				in(9, "GET /next HTTP/1.1\r\n\r\n"), out(10, ok5),
			},
			want: []want{
				{method: "POST", path: "/v1/chat/completions", model: "big", status: 200, end: 5, respBody: 100000, reqBody: int64(len(`{"model":"big","messages":[` + strings.Repeat(`{"c":"x"},`, 200) + `{}]}`))},
				{method: "GET", path: "/next", status: 200, start: 9, end: 10},
			},
		},
		{
			name: "lost chunk framing ends at the next request",
			steps: []step{
				in(0, "GET /big HTTP/1.1\r\n\r\n"),
				trunc(out(5, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2000\r\n"), 9000),
				trunc(out(6, "2000\r\n"), 9000),
				out(7, "0\r\n\r\n"),
				in(50, "GET /next HTTP/1.1\r\n\r\n"), out(51, ok5),
			},
			want: []want{
				{method: "GET", path: "/big", status: 200, end: 7},
				{method: "GET", path: "/next", status: 200, start: 50, end: 51},
			},
		},
		{
			name: "client closes before the response",
			steps: []step{
				in(0, "GET /slow HTTP/1.1\r\n\r\n"),
				in(1, "GET /slow2 HTTP/1.1\r\n\r\n"),
				out(2, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
				closed(9),
			},
			want: []want{
				{method: "GET", path: "/slow", status: 200, end: 9, errorType: ErrorConnectionClosed},
				{method: "GET", path: "/slow2", start: 1, end: 9, errorType: ErrorConnectionClosed},
			},
		},
		{
			name: "fd reuse gives a new connection",
			steps: []step{
				in(0, "GET /a HTTP/1.1\r\n\r\n"), closed(1),
				on(2, in(2, "GET /b HTTP/1.1\r\n\r\n")), on(2, out(3, ok5)),
			},
			want: []want{
				{method: "GET", path: "/a", end: 1, errorType: ErrorConnectionClosed},
				{method: "GET", path: "/b", status: 200, start: 2, end: 3},
			},
		},
		{
			name: "eviction drops started requests",
			o:    Options{MaxConnections: 2},
			steps: []step{
				on(1, in(0, "GET /1 HTTP/1.1\r\n\r\n")),
				on(2, in(1, "GET /2 HTTP/1.1\r\n\r\n")),
				on(3, in(2, "GET /3 HTTP/1.1\r\n\r\n")),
				on(3, out(3, ok5)),
			},
			want: []want{{method: "GET", path: "/3", status: 200, start: 2, end: 3}},
		},
		{
			name:   "response without a request",
			steps:  []step{in(0, "GET /a HTTP/1.1\r\n\r\n"), out(1, ok5), out(2, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")},
			want:   []want{{method: "GET", path: "/a", status: 200, end: 1}},
			errors: map[Reason]uint64{UnmatchedResponse: 1},
		},
		{
			name:   "bad content length",
			steps:  []step{in(0, "GET /ok HTTP/1.1\r\n\r\n"), out(1, ok5), in(2, "POST /a HTTP/1.1\r\nContent-Length: 1x\r\n\r\n")},
			want:   []want{{method: "GET", path: "/ok", status: 200, end: 1}},
			errors: map[Reason]uint64{BadHeader: 1},
		},
		{
			name: "absolute form target and 204",
			steps: []step{
				in(0, "DELETE http://h:8000/v1/files/1?x HTTP/1.1\r\n\r\n"),
				out(1, "HTTP/1.1 204 No Content\r\n\r\n"),
			},
			want: []want{{method: "DELETE", path: "/v1/files/1", status: 204, end: 1}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, p := run(t, tc.o, tc.steps)
			if len(rec.reqs) != len(tc.want) {
				t.Fatalf("got %d requests, want %d: %+v", len(rec.reqs), len(tc.want), rec.reqs)
			}
			for i, w := range tc.want {
				check(t, rec.reqs[i], w)
			}
			for _, r := range Reasons() {
				if got := p.Stats().Errors(r); got != tc.errors[r] {
					t.Errorf("errors[%s] = %d, want %d", r, got, tc.errors[r])
				}
			}
			p.Close(ms(10000))
			if rec.started != len(rec.reqs)+rec.dropped {
				t.Errorf("started %d != finished %d + dropped %d", rec.started, len(rec.reqs), rec.dropped)
			}
		})
	}
}

// splitEach sends a request one byte per read, then a 204 answer a second after the first byte.
func splitEach(req string, n int) []step {
	var steps []step
	for i := 0; i < len(req); i += n {
		steps = append(steps, in(i, req[i:min(i+n, len(req))]))
	}
	return append(steps, out(1000, "HTTP/1.1 204 No Content\r\n\r\n"))
}

func TestEvictionCounts(t *testing.T) {
	rec, p := run(t, Options{MaxConnections: 10}, func() []step {
		var s []step
		for i := 1; i <= 100; i++ {
			s = append(s, on(traffic.ConnID(i), in(i, "GET /x HTTP/1.1\r\n\r\n")))
		}
		return s
	}())
	if got := p.Stats().Evicted(); got != 90 {
		t.Errorf("evicted = %d, want 90", got)
	}
	if got := p.Stats().Connections(); got != 10 {
		t.Errorf("connections = %d, want 10", got)
	}
	if rec.dropped != 90 || rec.started != 100 {
		t.Errorf("dropped %d started %d", rec.dropped, rec.started)
	}
}

func TestNoBodyTextRetained(t *testing.T) {
	const secret = "TOP-SECRET-PROMPT"
	body := `{"messages":[{"role":"user","content":"` + secret + `"}],"model":"m"}`
	rec, _ := run(t, Options{}, []step{
		in(0, post("/v1/chat/completions", body)),
		out(1, jsonResp(`{"choices":[{"message":{"content":"`+secret+`"}}]}`)),
	})
	for _, r := range rec.reqs {
		for _, f := range []string{r.Method, r.Path, r.Model, r.ErrorType} {
			if strings.Contains(f, secret) {
				t.Fatalf("request field holds body text: %+v", r)
			}
		}
	}
	if len(rec.reqs) != 1 || rec.reqs[0].Model != "m" {
		t.Fatalf("requests = %+v", rec.reqs)
	}
}

func TestTopLevelString(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{`{"model":"a"}`, "a", true},
		{` { "messages" : [{"model":"inner"}], "model" : "outer" }`, "outer", true},
		{`{"x":{"model":"nested"}}`, "", false},
		{`{"messages":[{"content":"a \"model\":\"fake\""}],"model":"real"`, "real", true},
		{`{"model":"esc\u0041ped"}`, "escAped", true},
		{`{"model":null}`, "", false},
		{`{"messages":[{"content":"cut off`, "", false},
		{`[1,2]`, "", false},
		{`{"model":"` + strings.Repeat("x", 300) + `"}`, strings.Repeat("x", maxModel), true},
	} {
		p := New(Options{})
		got, ok := "", false
		if raw, esc, found := topLevelString([]byte(tc.in), "model"); found {
			got, ok = p.model(raw, esc), true
		}
		if got != tc.want || ok != tc.ok {
			t.Errorf("topLevelString(%.40q) = %q %v, want %q %v", tc.in, got, ok, tc.want, tc.ok)
		}
		// The request body scanner finds the same, whole or a byte at a time.
		for _, step := range []int{len(tc.in), 1, 7} {
			var m modelScan
			m.reset()
			for i := 0; i < len(tc.in); i += step {
				m.feed([]byte(tc.in[i:min(i+step, len(tc.in))]), 1<<20)
			}
			got, ok := "", false
			if raw, esc, found := m.found(); found {
				got, ok = p.model(raw, esc), true
			}
			if got != tc.want || ok != tc.ok {
				t.Errorf("modelScan(%.40q) in steps of %d = %q %v, want %q %v", tc.in, step, got, ok, tc.want, tc.ok)
			}
		}
	}
}
