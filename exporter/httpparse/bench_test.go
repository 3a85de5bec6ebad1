package httpparse

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// benchExchange is one exchange as the capture delivers it: the request in
// one read, the response in the writes a server makes.
type benchExchange struct {
	name string
	req  string
	resp []string
}

// writes cuts a response into the syscalls a Go net/http server makes: a
// 4 KiB buffered writer in front of the connection.
func writes(s string) []string {
	var out []string
	for len(s) > 4096 {
		out = append(out, s[:4096])
		s = s[4096:]
	}
	return append(out, s)
}

// llmsimStream is a 200-token chat completion stream as autoglm-llmsim
// writes it (one event per token, usage chunk, [DONE]), chunked in 2 KiB
// chunks as net/http's response writer does.
func llmsimStream(tokens int, usage bool) string {
	var body strings.Builder
	words := []string{"The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", "."}
	for i := 0; i < tokens; i++ {
		role := ""
		if i == 0 {
			role = `"role":"assistant",`
		}
		finish := "null"
		if i == tokens-1 {
			finish = `"length"`
		}
		fmt.Fprintf(&body, `data: {"id":"chatcmpl-%d","object":"chat.completion.chunk","created":1767225600,"model":"glm-4-9b-chat","choices":[{"index":0,"delta":{%s"content":"%s"},"finish_reason":%s}]}`+"\n\n", 42, role, words[i%len(words)], finish)
	}
	if usage {
		fmt.Fprintf(&body, `data: {"id":"chatcmpl-42","object":"chat.completion.chunk","created":1767225600,"model":"glm-4-9b-chat","choices":[],"usage":{"prompt_tokens":64,"completion_tokens":%d,"total_tokens":%d}}`+"\n\n", tokens, tokens+64)
	}
	body.WriteString("data: [DONE]\n\n")
	var out strings.Builder
	out.WriteString("HTTP/1.1 200 OK\r\nCache-Control: no-cache\r\nContent-Type: text/event-stream\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n")
	b := body.String()
	for len(b) > 0 {
		n := min(len(b), 2048)
		out.WriteString(chunk(b[:n]))
		b = b[n:]
	}
	out.WriteString("0\r\n\r\n")
	return out.String()
}

func benchExchanges() []benchExchange {
	sse := []string{"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"}
	for i := 0; i < 20; i++ {
		sse = append(sse, chunk(fmt.Sprintf("data: {\"id\":\"c\",\"model\":\"glm-4\",\"choices\":[{\"delta\":{\"content\":\"tok%d\"}}]}\n\n", i)))
	}
	sse = append(sse, chunk("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":20}}\n\ndata: [DONE]\n\n")+"0\r\n\r\n")
	prompt := strings.Repeat("abcd", 64)
	keepAlive := fmt.Sprintf(`{"model":"glm-4-9b-chat","max_tokens":16,"stream":false,"messages":[{"role":"user","content":%q}]}`, prompt)
	keepAliveResp := `{"id":"chatcmpl-1","object":"chat.completion","created":1767225600,"model":"glm-4-9b-chat","choices":[{"index":0,"message":{"role":"assistant","content":"The quick brown fox jumps over the lazy dog. The quick brown fox jumps"},"finish_reason":"length"}],"usage":{"prompt_tokens":64,"completion_tokens":16,"total_tokens":80}}`
	stream := fmt.Sprintf(`{"model":"glm-4-9b-chat","max_tokens":200,"stream":true,"messages":[{"role":"user","content":%q}]}`, prompt)
	return []benchExchange{
		{"json", post("/v1/chat/completions", chatBody), []string{jsonResp(chatResp)}},
		{"sse20", post("/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"stream":true,"model":"glm-4"}`), sse},
		// What the exporter benchmark's keep-alive driver sends and the simulator answers.
		{"keepalive-chat", post("/v1/chat/completions", keepAlive), []string{jsonResp(keepAliveResp)}},
		// A 200-token stream of autoglm-llmsim serve --pacing.disabled --usage.always.
		{"stream200-usage", post("/v1/chat/completions", stream), writes(llmsimStream(200, true))},
		{"stream200-nousage", post("/v1/chat/completions", stream), writes(llmsimStream(200, false))},
	}
}

// BenchmarkParser reports the parser's cost per exchange, over a fixed number
// of exchanges per iteration so that `-benchtime 1x` (make bench) still
// measures. The same exchanges are replayed on 64 connections in turn.
//
//	go test -run '^$' -bench BenchmarkParser -benchtime 1x ./exporter/httpparse/
func BenchmarkParser(b *testing.B) {
	const exchanges, conns = 100000, 64
	for _, tc := range benchExchanges() {
		b.Run(tc.name, func(b *testing.B) {
			n := 0
			p := New(Options{OnRequest: func(*traffic.Request) { n++ }})
			now := time.Unix(0, 0)
			in := &traffic.Event{Kind: traffic.Data, Dir: traffic.Ingress, Data: []byte(tc.req), Size: uint32(len(tc.req))}
			outs := make([]*traffic.Event, len(tc.resp))
			for i, r := range tc.resp {
				outs[i] = &traffic.Event{Kind: traffic.Data, Dir: traffic.Egress, Data: []byte(r), Size: uint32(len(r))}
			}
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			for i := 0; i < b.N; i++ {
				for j := 0; j < exchanges; j++ {
					now = now.Add(time.Millisecond)
					in.Time, in.Conn = now, traffic.ConnID(j%conns)
					p.Handle(in)
					for _, o := range outs {
						o.Time, o.Conn = now, in.Conn
						p.Handle(o)
					}
				}
			}
			elapsed, cpu := time.Since(start), cpuTime()-cpu0
			if n != b.N*exchanges {
				b.Fatalf("parsed %d exchanges, want %d", n, b.N*exchanges)
			}
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/exchange")
			// CPU time moves less than wall time when other work shares the machine.
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/exchange")
			b.ReportMetric(float64(len(outs)+1), "events/exchange")
		})
	}
}

// cpuTime is this process's user plus system CPU time.
func cpuTime() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
