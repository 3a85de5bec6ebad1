package ebpf

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/exporter/httpparse"
	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// streamHandler answers an unpaced event stream of n chat completion
// chunks, as a fast server does: net/http coalesces the events into 4 KiB
// writes whose chunk boundaries fall anywhere. With ?usage=1 the last event
// carries usage. With ?pause=1 the head goes out with a comment, then the
// first 20 events in one write, then the rest after firstTokenPause: a long
// write with the first token that the source must not hold back.
func streamHandler(n int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		words := []string{"The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", "."}
		pause := r.URL.Query().Get("pause") == "1"
		if pause {
			_, _ = io.WriteString(w, ": answering\n\n")
			_ = rc.Flush()
		}
		var burst strings.Builder
		for i := range n {
			if pause && i < 20 {
				fmt.Fprintf(&burst, `data: {"id":"c-%d","object":"chat.completion.chunk","model":"glm-4","choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}]}`+"\n\n", i, words[i%len(words)])
				if i == 19 {
					_, _ = io.WriteString(w, burst.String())
					_ = rc.Flush()
					time.Sleep(firstTokenPause)
				}
				continue
			}
			ev := fmt.Sprintf(`data: {"id":"c-%d","object":"chat.completion.chunk","model":"glm-4","choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}]}`+"\n\n", i, words[i%len(words)])
			if i == n-1 && r.URL.Query().Get("usage") == "1" {
				ev += fmt.Sprintf(`data: {"id":"c","object":"chat.completion.chunk","model":"glm-4","choices":[],"usage":{"prompt_tokens":17,"completion_tokens":%d,"total_tokens":%d}}`+"\n\n", n, n+17)
			}
			if i == n-1 {
				ev += "data: [DONE]\n\n"
			}
			_, _ = io.WriteString(w, ev)
			if (i == 0 && !pause) || i == n-1 {
				_ = rc.Flush()
			}
		}
	})
}

// firstTokenPause is how long a ?pause=1 stream waits after its first write.
const firstTokenPause = 300 * time.Millisecond

// readStream sends one streaming request on conn and reads its chunked
// answer; it returns the body bytes on the wire (chunk framing included).
func readStream(t *testing.T, conn net.Conn, br *bufio.Reader, path string) int64 {
	t.Helper()
	body := `{"model":"glm-4","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body); err != nil {
		t.Fatal(err)
	}
	line := func() string {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		return l
	}
	if l := line(); !strings.HasPrefix(l, "HTTP/1.1 200 ") {
		t.Fatalf("status line %q", l)
	}
	for line() != "\r\n" {
	}
	var wire int64
	for {
		l := line()
		wire += int64(len(l))
		size, err := strconv.ParseInt(strings.TrimSpace(l), 16, 64)
		if err != nil {
			t.Fatalf("chunk-size line %q: %v", l, err)
		}
		if size == 0 {
			wire += int64(len(line())) // the empty trailer
			return wire
		}
		if _, err := io.CopyN(io.Discard, br, size+2); err != nil {
			t.Fatal(err)
		}
		wire += size + 2
	}
}

// TestEventStreamMiddleSkipped streams unpaced event streams through a Go
// server on one keep-alive connection. Once the source has seen the server
// answer text/event-stream, the middle of large writes is left out in the
// kernel; the parser still measures every stream exactly: body size on the
// wire, usage, time to first token, and for streams without usage an output
// estimate within 5 % of the events sent.
func TestEventStreamMiddleSkipped(t *testing.T) {
	const events = 1000 // about 37 writes of 4 KiB: more than one record holds them
	port, addr := serveHTTP(t, streamHandler(events))
	src, rec := startSource(t, Options{Ports: []uint16{port}})
	conn, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	var wire []int64
	usage := []bool{true}
	wire = append(wire, readStream(t, conn, br, "/v1/chat/completions?usage=1"))
	rec.waitFor(t, "the process to be seen answering an event stream", func([]traffic.Event) bool {
		return src.slotValue(uint32(os.Getpid()))&slotStreams != 0
	})
	for i := range 8 {
		u := i%2 == 0
		path := "/v1/chat/completions"
		if u {
			path += "?usage=1"
		}
		usage = append(usage, u)
		wire = append(wire, readStream(t, conn, br, path))
	}
	// A stream whose first tokens come in one long write, then a pause.
	usage = append(usage, true)
	wire = append(wire, readStream(t, conn, br, "/v1/chat/completions?usage=1&pause=1"))
	evs := rec.waitFor(t, "every stream's end", func(evs []traffic.Event) bool {
		var out int
		for _, e := range evs {
			if e.Kind == traffic.Data && e.Dir == traffic.Egress && strings.HasSuffix(string(e.Data), "\r\n0\r\n\r\n") || string(e.Data) == "0\r\n\r\n" {
				out++
			}
		}
		return out >= len(wire)
	})
	var reqs []traffic.Request
	p := httpparse.New(httpparse.Options{OnRequest: func(r *traffic.Request) { reqs = append(reqs, *r) }})
	skipped := 0
	for i := range evs {
		if evs[i].Skip != nil && evs[i].Skip.Lead > 0 {
			skipped++
		}
		p.Handle(&evs[i])
	}
	if skipped == 0 {
		t.Errorf("no write was held and left out; events:\n%s", dump(evs))
	}
	st, err := src.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.StreamBytesSkipped == 0 {
		t.Error("stream_bytes_skipped is 0")
	}
	if len(reqs) != len(wire) {
		t.Fatalf("%d requests measured, want %d", len(reqs), len(wire))
	}
	for i, r := range reqs {
		if r.Status != 200 || !r.Streaming || r.FirstToken.IsZero() || r.ErrorType != "" || r.Model != "glm-4" {
			t.Errorf("stream %d: status %d streaming %v first token %v error %q model %q", i, r.Status, r.Streaming, r.FirstToken, r.ErrorType, r.Model)
		}
		if ttft := r.FirstToken.Sub(r.Start); i == len(wire)-1 && ttft >= firstTokenPause {
			t.Errorf("stream %d: first token after %v, written before a pause of %v", i, ttft, firstTokenPause)
		}
		if r.ResponseBodySize != wire[i] {
			t.Errorf("stream %d: body %d bytes, %d on the wire", i, r.ResponseBodySize, wire[i])
		}
		switch {
		case usage[i] && (r.OutputTokens != events || r.InputTokens != 17 || r.OutputTokensEstimated):
			t.Errorf("stream %d: tokens in %d out %d estimated %v, want 17, %d from usage", i, r.InputTokens, r.OutputTokens, r.OutputTokensEstimated, events)
		case !usage[i] && (!r.OutputTokensEstimated || r.OutputTokens < events*95/100 || r.OutputTokens > events*105/100):
			t.Errorf("stream %d: output %d estimated %v, want %d ± 5 %% estimated", i, r.OutputTokens, r.OutputTokensEstimated, events)
		}
	}
	if n := p.Stats().Errors(httpparse.Truncated) + p.Stats().Errors(httpparse.BadChunk); n != 0 {
		t.Errorf("%d truncated or bad chunk errors", n)
	}
}
