package httpparse

import (
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// FuzzParser feeds arbitrary event scripts: each event is a control byte
// (connection, direction or close, truncation), a length and that many bytes.
func FuzzParser(f *testing.F) {
	seed := func(parts ...string) []byte {
		var b []byte
		for i, p := range parts {
			ctl := byte(0)
			if i%2 == 1 {
				ctl = 8 // egress
			}
			for len(p) > 0 {
				n := min(len(p), 255)
				b = append(b, ctl, byte(n))
				b = append(b, p[:n]...)
				p = p[n:]
			}
		}
		return b
	}
	f.Add(seed("GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	f.Add(seed(post("/v1/chat/completions", chatBody), jsonResp(chatResp)))
	f.Add(seed("POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"+chunk("data: {\"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n")+"0\r\n\r\n"))
	f.Add(seed("POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", "HTTP/1.1 100 Continue\r\n\r\n", "{}", "HTTP/1.0 200 OK\r\n\r\nbody"))
	f.Add(seed("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	f.Add(seed(h2Preface+"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64"+
		"\x00\x00\x0d\x01\x05\x00\x00\x00\x01\x83\x86\x44\x86\x62\x72\xd1\x41\xea\x8f\x41\x82\x94\xe7",
		"\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x01\x01\x04\x00\x00\x00\x01\x88\x00\x00\x02\x00\x01\x00\x00\x00\x01ok"))
	f.Add([]byte{0x83, 10, 200, 'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', 0x0c, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		o := Options{MaxConnections: 3, MaxHeaderBytes: 128, BodyScanBytes: 64, MaxPipelined: 4}
		started, ended := 0, 0
		o.OnStart = func(*traffic.Request) { started++ }
		o.OnRequest = func(*traffic.Request) { ended++ }
		o.OnDrop = func(*traffic.Request) { ended++ }
		p := New(o)
		now := time.Unix(0, 0)
		for len(in) >= 2 {
			ctl, n := in[0], int(in[1])
			in = in[2:]
			n = min(n, len(in))
			data := in[:n]
			in = in[n:]
			now = now.Add(time.Millisecond)
			ev := &traffic.Event{Kind: traffic.Data, Conn: traffic.ConnID(ctl&3 + 1), Time: now, Dir: traffic.Ingress, Data: data, Size: uint32(n)}
			switch ctl >> 2 & 3 {
			case 2:
				ev.Dir = traffic.Egress
			case 3:
				ev.Kind = traffic.Close
			}
			if ctl&0x80 != 0 && len(in) > 0 {
				ev.Size += uint32(in[0]) * 16
				ev.Truncated = true
				in = in[1:]
			}
			p.Handle(ev)
			if len(p.conns) > o.MaxConnections {
				t.Fatalf("%d connections tracked, limit %d", len(p.conns), o.MaxConnections)
			}
			for _, c := range p.conns {
				if len(c.req.hdr) > o.MaxHeaderBytes || len(c.resp.hdr) > o.MaxHeaderBytes {
					t.Fatalf("header buffer %d/%d over limit", len(c.req.hdr), len(c.resp.hdr))
				}
				if len(c.queue) > o.MaxPipelined || len(c.req.line) > maxChunkLine || len(c.resp.line) > maxChunkLine {
					t.Fatalf("per-connection state over its bound: queue %d", len(c.queue))
				}
				exs := append([]*exchange(nil), c.queue...)
				if c.rx != nil {
					exs = append(exs, c.rx)
				}
				if c.h2 != nil {
					if len(c.h2.streams) > maxH2Streams {
						t.Fatalf("%d streams tracked", len(c.h2.streams))
					}
					for _, ex := range c.h2.streams {
						exs = append(exs, ex)
					}
				}
				for _, ex := range exs {
					if len(ex.resp.line) > sseLineBytes || len(ex.resp.tail) > tailBytes {
						t.Fatalf("scan buffers over their bound: line %d tail %d", len(ex.resp.line), len(ex.resp.tail))
					}
				}
			}
		}
		p.Close(now)
		if started != ended {
			t.Fatalf("%d requests started but %d finished or dropped", started, ended)
		}
		if len(p.conns) != 0 {
			t.Fatalf("%d connections left after Close", len(p.conns))
		}
	})
}
