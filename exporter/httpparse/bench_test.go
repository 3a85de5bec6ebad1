package httpparse

import (
	"fmt"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// BenchmarkParser reports the parser's cost per exchange for a plain JSON
// chat completion and for a 20-event SSE stream, over a fixed number of
// exchanges per iteration so that `-benchtime 1x` (make bench) still measures.
//
//	go test -run '^$' -bench BenchmarkParser -benchtime 1x ./exporter/httpparse/
func BenchmarkParser(b *testing.B) {
	const exchanges = 200000
	sse := []string{"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"}
	for i := 0; i < 20; i++ {
		sse = append(sse, chunk(fmt.Sprintf("data: {\"id\":\"c\",\"model\":\"glm-4\",\"choices\":[{\"delta\":{\"content\":\"tok%d\"}}]}\n\n", i)))
	}
	sse = append(sse, chunk("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":20}}\n\ndata: [DONE]\n\n")+"0\r\n\r\n")
	for _, tc := range []struct {
		name string
		req  string
		resp []string
	}{
		{"json", post("/v1/chat/completions", chatBody), []string{jsonResp(chatResp)}},
		{"sse", post("/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"stream":true,"model":"glm-4"}`), sse},
	} {
		b.Run(tc.name, func(b *testing.B) {
			n := 0
			p := New(Options{OnRequest: func(*traffic.Request) { n++ }})
			now := time.Unix(0, 0)
			in := &traffic.Event{Kind: traffic.Data, Conn: 1, Dir: traffic.Ingress, Data: []byte(tc.req), Size: uint32(len(tc.req))}
			outs := make([]*traffic.Event, len(tc.resp))
			for i, r := range tc.resp {
				outs[i] = &traffic.Event{Kind: traffic.Data, Conn: 1, Dir: traffic.Egress, Data: []byte(r), Size: uint32(len(r))}
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				for j := 0; j < exchanges; j++ {
					now = now.Add(time.Millisecond)
					in.Time = now
					p.Handle(in)
					for _, o := range outs {
						o.Time = now
						p.Handle(o)
					}
				}
			}
			elapsed := time.Since(start)
			if n != b.N*exchanges {
				b.Fatalf("parsed %d exchanges, want %d", n, b.N*exchanges)
			}
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/exchange")
			b.ReportMetric(float64(n)/elapsed.Seconds(), "exchanges/s")
		})
	}
}
