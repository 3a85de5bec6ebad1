package httpparse

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// h2peer writes real HTTP/2 frames (x/net/http2's Framer and HPACK encoder,
// whose dynamic table persists across header blocks, as a peer's does).
type h2peer struct {
	out  bytes.Buffer
	fr   *http2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
}

func newPeer() *h2peer {
	p := &h2peer{}
	p.fr = http2.NewFramer(&p.out, nil)
	p.enc = hpack.NewEncoder(&p.hbuf)
	return p
}

func (p *h2peer) take() string {
	s := p.out.String()
	p.out.Reset()
	return s
}

func (p *h2peer) block(kv []string) []byte {
	p.hbuf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := p.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]}); err != nil {
			panic(err)
		}
	}
	return append([]byte(nil), p.hbuf.Bytes()...)
}

func (p *h2peer) settings() string {
	if err := p.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100}); err != nil {
		panic(err)
	}
	return p.take()
}

func (p *h2peer) headers(sid uint32, end bool, kv ...string) string {
	if err := p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: p.block(kv), EndStream: end, EndHeaders: true}); err != nil {
		panic(err)
	}
	return p.take()
}

// headersSplit sends a block as HEADERS (padded, with priority) plus CONTINUATION frames.
func (p *h2peer) headersSplit(sid uint32, end bool, kv ...string) string {
	b := p.block(kv)
	half := len(b) / 2
	if err := p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: b[:half], EndStream: end, PadLength: 3,
		Priority: http2.PriorityParam{StreamDep: 0, Weight: 15}}); err != nil {
		panic(err)
	}
	if err := p.fr.WriteContinuation(sid, true, b[half:]); err != nil {
		panic(err)
	}
	return p.take()
}

func (p *h2peer) data(sid uint32, end bool, s string) string {
	if err := p.fr.WriteData(sid, end, []byte(s)); err != nil {
		panic(err)
	}
	return p.take()
}

func (p *h2peer) dataPadded(sid uint32, end bool, s string, pad int) string {
	if err := p.fr.WriteDataPadded(sid, end, []byte(s), make([]byte, pad)); err != nil {
		panic(err)
	}
	return p.take()
}

func (p *h2peer) rst(sid uint32) string {
	if err := p.fr.WriteRSTStream(sid, http2.ErrCodeCancel); err != nil {
		panic(err)
	}
	return p.take()
}

// grpcMsg frames a gRPC message.
func grpcMsg(payload string) string {
	var b [5]byte
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	return string(b[:]) + payload
}

func reqHeaders(method, path string, extra ...string) []string {
	return append([]string{":method", method, ":scheme", "http", ":authority", "x", ":path", path}, extra...)
}

func TestHTTP2(t *testing.T) {
	ev1 := `data: {"model":"glm-4","choices":[{"delta":{"role":"assistant","content":""}}]}` + "\n\n"
	ev2 := `data: {"choices":[{"delta":{"content":"hel"}}]}` + "\n\n"
	ev3 := `data: {"choices":[{"delta":{"content":"lo"}}]}` + "\n\n"
	evUsage := `data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":1}}}` + "\n\n"
	for _, tc := range []struct {
		name   string
		steps  func(c, s *h2peer) []step
		want   []want
		check  func(t *testing.T, reqs []traffic.Request)
		errors map[Reason]uint64
		// whole: frame headers are never split (a join mid-way is recognised on whole frame headers)
		whole bool
	}{
		{
			name: "prior knowledge, concurrent streams interleaved",
			steps: func(c, s *h2peer) []step {
				return []step{
					in(0, h2Preface+c.settings()+c.headers(1, false, reqHeaders("POST", "/v1/chat/completions?x=1", "content-type", "application/json")...)),
					out(1, s.settings()),
					in(2, c.data(1, true, `{"messages":[{"role":"user","content":"hi"}],"stream":true,"model":"glm-4"}`)),
					in(3, c.headers(3, false, reqHeaders("POST", "/v1/chat/completions", "content-type", "application/json")...)+c.data(3, true, chatBody)),
					out(4, s.headers(1, false, ":status", "200", "content-type", "text/event-stream")),
					out(5, s.data(1, false, ev1)),
					out(6, s.headers(3, false, ":status", "200", "content-type", "application/json")+s.data(3, true, chatResp)),
					out(7, s.data(1, false, ev2+ev3)),
					out(8, s.data(1, true, evUsage+"data: [DONE]\n\n")),
					in(9, c.headers(5, true, reqHeaders("GET", "/v1/models")...)),
					out(10, s.headers(5, false, ":status", "404", "content-type", "application/json")+s.dataPadded(5, true, `{}`, 10)),
				}
			},
			want: []want{
				{method: "POST", path: "/v1/chat/completions", model: "glm-4", status: 200, start: 3, end: 6, firstByte: 6, firstToken: -1, in: 12, out: 34, respBody: int64(len(chatResp)), reqBody: int64(len(chatBody))},
				{method: "POST", path: "/v1/chat/completions", model: "glm-4", status: 200, start: 0, end: 8, firstByte: 4, firstToken: 5, in: 7, out: 2, streaming: true,
					respBody: int64(len(ev1 + ev2 + ev3 + evUsage + "data: [DONE]\n\n"))},
				{method: "GET", path: "/v1/models", status: 404, start: 9, end: 10, respBody: 2},
			},
			check: func(t *testing.T, reqs []traffic.Request) {
				if r := reqs[1]; r.CachedTokens != 4 || r.ReasoningTokens != 1 || r.OutputTokensEstimated {
					t.Errorf("stream usage details: cached %d reasoning %d estimated %v", r.CachedTokens, r.ReasoningTokens, r.OutputTokensEstimated)
				}
			},
		},
		{
			name: "server writes its SETTINGS before the client preface (gRPC servers do)",
			steps: func(c, s *h2peer) []step {
				return []step{
					out(0, s.settings()),
					in(1, h2Preface+c.settings()+c.headers(1, true, reqHeaders("GET", "/first")...)),
					out(2, s.headers(1, false, ":status", "200")+s.data(1, true, "ok")),
				}
			},
			want:  []want{{method: "GET", path: "/first", status: 200, start: 1, end: 2, respBody: 2}},
			whole: true,
		},
		{
			name: "HPACK dynamic table across requests, CONTINUATION, padding and priority",
			steps: func(c, s *h2peer) []step {
				var st []step
				st = append(st, in(0, h2Preface+c.settings()))
				for i := uint32(0); i < 4; i++ {
					sid := 1 + 2*i
					h := c.headers
					if i%2 == 1 {
						h = c.headersSplit
					}
					st = append(st, in(int(1+10*i), h(sid, true, reqHeaders("GET", "/v1/models/m"+string(rune('a'+i)), "x-tenant", "team-a", "user-agent", "test/1")...)))
					st = append(st, out(int(2+10*i), s.headers(sid, false, ":status", "200", "content-type", "application/json", "server", "x")+s.data(sid, true, `{"id":"m"}`)))
				}
				return st
			},
			want: []want{
				{method: "GET", path: "/v1/models/ma", status: 200, start: 1, end: 2, respBody: 10},
				{method: "GET", path: "/v1/models/mb", status: 200, start: 11, end: 12, respBody: 10},
				{method: "GET", path: "/v1/models/mc", status: 200, start: 21, end: 22, respBody: 10},
				{method: "GET", path: "/v1/models/md", status: 200, start: 31, end: 32, respBody: 10},
			},
		},
		{
			name: "gRPC unary, server streaming, trailers-only error",
			steps: func(c, s *h2peer) []step {
				g := func(m string) []string {
					return reqHeaders("POST", m, "content-type", "application/grpc", "te", "trailers")
				}
				return []step{
					in(0, h2Preface+c.settings()+c.headers(1, false, g("/llm.Generator/Complete")...)+c.data(1, true, grpcMsg("prompt"))),
					out(1, s.headers(1, false, ":status", "200", "content-type", "application/grpc")+s.data(1, false, grpcMsg("answer"))+s.headers(1, true, "grpc-status", "0")),
					in(2, c.headers(3, false, g("/llm.Generator/GenerateStream")...)+c.data(3, true, grpcMsg("prompt"))),
					out(3, s.headers(3, false, ":status", "200", "content-type", "application/grpc")),
					out(5, s.data(3, false, grpcMsg("tok1")+grpcMsg("tok2")[:3])),
					out(6, s.data(3, false, grpcMsg("tok2")[3:]+grpcMsg("tok3"))),
					out(7, s.headers(3, true, "grpc-status", "14", "grpc-message", "overloaded")),
					in(8, c.headers(5, false, g("/llm.Generator/Complete")...)+c.data(5, true, grpcMsg("x"))),
					out(9, s.headers(5, true, ":status", "200", "content-type", "application/grpc", "grpc-status", "5")),
				}
			},
			want: []want{
				{method: "POST", path: "/llm.Generator/Complete", status: 200, start: 0, end: 1, firstToken: -1, respBody: 11},
				{method: "POST", path: "/llm.Generator/GenerateStream", status: 200, start: 2, end: 7, firstToken: 5, streaming: true},
				{method: "POST", path: "/llm.Generator/Complete", status: 200, start: 8, end: 9, firstToken: -1},
			},
			check: func(t *testing.T, reqs []traffic.Request) {
				for i, code := range []int{0, 14, 5} {
					if !reqs[i].GRPC || reqs[i].GRPCStatus != code {
						t.Errorf("request %d: grpc %v status %d, want %d", i, reqs[i].GRPC, reqs[i].GRPCStatus, code)
					}
				}
			},
		},
		{
			name: "h2c upgrade: the upgrade request is answered on stream 1",
			steps: func(c, s *h2peer) []step {
				return []step{
					in(0, "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"),
					out(1, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"+s.settings()+s.headers(1, false, ":status", "200", "content-type", "application/json")),
					in(2, h2Preface+c.settings()),
					out(3, s.data(1, true, `{"data":[]}`)),
					in(4, c.headers(3, true, reqHeaders("GET", "/v1/models/x")...)),
					out(5, s.headers(3, false, ":status", "503")+s.data(3, true, "busy")),
				}
			},
			want: []want{
				{method: "GET", path: "/v1/models", status: 200, start: 0, end: 3, firstByte: 1, respBody: 11},
				{method: "GET", path: "/v1/models/x", status: 503, start: 4, end: 5, respBody: 4},
			},
		},
		{
			name: "stream reset and connection close",
			steps: func(c, s *h2peer) []step {
				return []step{
					in(0, h2Preface+c.settings()+c.headers(1, true, reqHeaders("GET", "/a")...)+c.headers(3, true, reqHeaders("GET", "/b")...)),
					out(1, s.headers(1, false, ":status", "200", "content-type", "text/event-stream")+s.data(1, false, ev2)),
					in(2, c.rst(1)),
					closed(5),
				}
			},
			want: []want{
				{method: "GET", path: "/a", status: 200, start: 0, end: 2, firstToken: 1, streaming: true, errorType: ErrorStreamReset},
				{method: "GET", path: "/b", start: 0, end: 5, errorType: ErrorConnectionClosed},
			},
			check: func(t *testing.T, reqs []traffic.Request) {
				if r := reqs[0]; r.OutputTokens != 1 || !r.OutputTokensEstimated {
					t.Errorf("stream without usage: output %d estimated %v, want 1 estimated", r.OutputTokens, r.OutputTokensEstimated)
				}
			},
		},
		{
			name: "joined mid-way: streams counted, not guessed",
			steps: func(c, s *h2peer) []step {
				_ = c.headers(1, true, reqHeaders("GET", "/warm")...) // the table state the observer missed
				return []step{
					in(0, c.headers(3, true, reqHeaders("GET", "/warm")...)),
					out(1, s.headers(3, false, ":status", "200")+s.data(3, true, "x")),
					in(2, c.headers(5, true, reqHeaders("GET", "/warm")...)+c.headers(7, true, reqHeaders("GET", "/warm")...)),
				}
			},
			errors: map[Reason]uint64{H2MidStream: 3},
			whole:  true,
		},
		{
			name: "uncaptured DATA bytes are counted; lost frame boundaries drop the connection",
			steps: func(c, s *h2peer) []step {
				big := strings.Repeat("x", 5000)
				return []step{
					in(0, h2Preface+c.settings()+c.headers(1, true, reqHeaders("GET", "/big")...)+c.headers(3, true, reqHeaders("GET", "/lost")...)),
					trunc(out(1, (s.headers(1, false, ":status", "200") + s.data(1, true, big))[:100]), len(s.headers(1, false, ":status", "200"))+9+5000),
					trunc(out(2, (s.headers(3, false, ":status", "200") + s.data(3, false, big) + s.headers(3, true, "x-trailer", "1"))[:50]), 9000),
				}
			},
			want:   []want{{method: "GET", path: "/big", status: 200, start: 0, end: 1, respBody: 5000}},
			errors: map[Reason]uint64{Truncated: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			steps := tc.steps(newPeer(), newPeer())
			for _, split := range []bool{false, true} {
				if split && tc.whole {
					continue
				}
				st := steps
				if split {
					// The same bytes a few at a time: frames and header blocks cut anywhere.
					st = nil
					for _, s := range steps {
						if s.size > len(s.data) || s.kind == traffic.Close {
							st = append(st, s)
							continue
						}
						for i := 0; i < len(s.data); i += 3 {
							part := s
							part.data = s.data[i:min(i+3, len(s.data))]
							st = append(st, part)
						}
					}
				}
				rec, p := run(t, Options{}, st)
				if len(rec.reqs) != len(tc.want) {
					t.Fatalf("split %v: got %d requests, want %d: %+v", split, len(rec.reqs), len(tc.want), rec.reqs)
				}
				for i, w := range tc.want {
					check(t, rec.reqs[i], w)
				}
				if tc.check != nil {
					tc.check(t, rec.reqs)
				}
				for _, r := range Reasons() {
					if got := p.Stats().Errors(r); got != tc.errors[r] {
						t.Errorf("split %v: errors[%s] = %d, want %d", split, r, got, tc.errors[r])
					}
				}
				p.Close(ms(10000))
				if rec.started != len(rec.reqs)+rec.dropped {
					t.Errorf("started %d != finished %d + dropped %d", rec.started, len(rec.reqs), rec.dropped)
				}
			}
		})
	}
}
