package httpparse

import (
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// Steady traffic must not allocate: per event, per exchange, per stream.
func TestNoAllocationPerEvent(t *testing.T) {
	c, s := newPeer(), newPeer()
	h2open := in(0, h2Preface+c.settings())
	for _, tc := range benchExchanges() {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			p := New(Options{OnStart: func(*traffic.Request) {}, OnRequest: func(*traffic.Request) { n++ }})
			now := time.Unix(0, 0)
			in := &traffic.Event{Kind: traffic.Data, Conn: 1, Dir: traffic.Ingress, Data: []byte(tc.req), Size: uint32(len(tc.req))}
			outs := make([]*traffic.Event, len(tc.resp))
			for i, r := range tc.resp {
				outs[i] = &traffic.Event{Kind: traffic.Data, Conn: 1, Dir: traffic.Egress, Data: []byte(r), Size: uint32(len(r))}
			}
			exchange := func() {
				now = now.Add(time.Millisecond)
				in.Time = now
				p.Handle(in)
				for _, o := range outs {
					o.Time = now
					p.Handle(o)
				}
			}
			exchange() // the first exchange sizes the buffers and interns the strings
			if a := testing.AllocsPerRun(200, exchange); a != 0 {
				t.Errorf("%.1f allocations per exchange, want 0", a)
			}
			if n != 202 {
				t.Errorf("%d exchanges parsed, want 202", n)
			}
		})
	}
	t.Run("h2-stream", func(t *testing.T) {
		p := New(Options{})
		p.Handle(&traffic.Event{Kind: traffic.Data, Conn: 1, Dir: traffic.Ingress, Data: []byte(h2open.data), Size: uint32(len(h2open.data))})
		sid := uint32(1)
		exchange := func() {
			// The same fields each time: the peers' encoders send them indexed.
			req := c.headers(sid, true, reqHeaders("POST", "/v1/chat/completions", "content-type", "application/json")...)
			resp := s.headers(sid, false, ":status", "200", "content-type", "text/event-stream") +
				s.data(sid, false, `data: {"model":"glm-4","choices":[{"delta":{"content":"hi"}}]}`+"\n\n") +
				s.data(sid, true, "data: [DONE]\n\n")
			sid += 2
			p.Handle(&traffic.Event{Kind: traffic.Data, Conn: 1, Dir: traffic.Ingress, Data: []byte(req), Size: uint32(len(req))})
			p.Handle(&traffic.Event{Kind: traffic.Data, Conn: 1, Dir: traffic.Egress, Data: []byte(resp), Size: uint32(len(resp))})
		}
		exchange()
		// Frames are built in the loop here; measure the parser alone.
		var frames [][2][]byte
		for i := 0; i < 50; i++ {
			req := c.headers(sid+uint32(2*i), true, reqHeaders("POST", "/v1/chat/completions", "content-type", "application/json")...)
			resp := s.headers(sid+uint32(2*i), false, ":status", "200", "content-type", "text/event-stream") +
				s.data(sid+uint32(2*i), false, `data: {"model":"glm-4","choices":[{"delta":{"content":"hi"}}]}`+"\n\n") +
				s.data(sid+uint32(2*i), true, "data: [DONE]\n\n")
			frames = append(frames, [2][]byte{[]byte(req), []byte(resp)})
		}
		i := 0
		ev := &traffic.Event{Kind: traffic.Data, Conn: 1}
		if a := testing.AllocsPerRun(49, func() {
			f := frames[i]
			i++
			ev.Dir, ev.Data, ev.Size = traffic.Ingress, f[0], uint32(len(f[0]))
			p.Handle(ev)
			ev.Dir, ev.Data, ev.Size = traffic.Egress, f[1], uint32(len(f[1]))
			p.Handle(ev)
		}); a > 0 {
			t.Errorf("%.1f allocations per HTTP/2 exchange, want 0", a)
		}
		if got := p.Stats().Requests(); got != 51 {
			t.Errorf("%d HTTP/2 exchanges, want 51", got)
		}
	})
}
