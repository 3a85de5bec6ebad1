package httpparse

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// The capture source's rule for event-stream writes (capture.bpf.c): the
// chunk-size lines of a chunked event stream are followed in the kernel; a
// write longer than skipMin is kept as its first skipHead and last skipTail
// bytes, and held back until a write that is emitted. skipWrites applies it to a response's writes, so that the
// parser can be checked against the same response captured whole.
const (
	skipHead   = 512
	skipTail   = 1024
	skipMin    = skipHead + skipTail + 512
	maxChunks  = 24
	holdWrites = 8
)

// chunkLine mirrors chunk_line: the size and length of a plain "HEX\r\n"
// line at w[pos:], ok false otherwise.
func chunkLine(w []byte, pos int) (size, n int, ok bool) {
	b := w[pos:min(len(w), pos+12)]
	if len(b) < 3 {
		return 0, 0, false
	}
	for i := 0; i < 9 && i+1 < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			size = size<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			size = size<<4 | int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			size = size<<4 | int(c-'A'+10)
		case c == '\r' && i > 0 && b[i+1] == '\n':
			return size, i + 2, true
		default:
			return 0, 0, false
		}
	}
	return 0, 0, false
}

// walkChunks mirrors walk_chunks.
func walkChunks(w []byte, pos, ts int) (next, ts2, tleft int, last, ok bool) {
	if pos > ts {
		tleft = pos - ts
	}
	for range maxChunks {
		if pos >= len(w) {
			return pos - len(w), ts, tleft, false, true
		}
		size, n, ok := chunkLine(w, pos)
		if !ok {
			return 0, 0, 0, false, false
		}
		if size == 0 {
			return 0, ts, tleft, true, true
		}
		end, nxt := pos+n, pos+n+size+2
		if pos <= ts {
			switch {
			case ts < end:
				ts, tleft = end, size+2
			case ts < nxt:
				tleft = nxt - ts
			}
		}
		pos = nxt
	}
	return 0, 0, 0, false, false
}

// skipWrites turns a response's writes into the events the capture source
// emits for them: long writes of a followed stream are held (their tail
// kept) until a short write, the body's last or the holdWrites-th goes out
// with what is held.
func skipWrites(writes [][]byte) []step {
	var (
		out                        []step
		following                  bool
		left, held, lead, leadLeft int
		tail                       []byte
	)
	emit := func(at int, w []byte, whole bool, ts, tleft int) {
		sk := &traffic.Skip{Lead: lead, LeadLeft: leadLeft, LeadLen: len(tail)}
		data := append([]byte{}, tail...)
		if whole {
			sk.Head = len(w)
			data = append(data, w...)
		} else {
			sk.Head, sk.TailLeft = skipHead, tleft
			data = append(append(data, w[:skipHead]...), w[ts:]...)
		}
		out = append(out, step{conn: 1, kind: traffic.Data, dir: traffic.Egress, data: string(data), size: len(w), at: at, skip: sk})
		held, lead, leadLeft, tail = 0, 0, 0, nil
	}
	for i, w := range writes {
		at := 10 + i
		if !following {
			out = append(out, out1(at, w))
			if body := bytes.Index(w, []byte("\r\n\r\n")); bytes.HasPrefix(w, []byte("HTTP/1.1 200 ")) && body > 0 {
				if next, _, _, last, ok := walkChunks(w, body+4, 1<<30); ok && !last {
					following, left = true, next
				}
			}
			continue
		}
		long := len(w) > skipMin
		ts := 1 << 30
		if long {
			ts = len(w) - skipTail
		}
		next, ts2, tleft, last, ok := walkChunks(w, left, ts)
		switch {
		case !ok:
			if len(tail)+lead > 0 {
				emit(at, nil, true, 0, 0)
			}
			out = append(out, out1(at, w))
			following = false
		case last:
			emit(at, w, !long, ts2, tleft)
			following = false
		case long && held+1 < holdWrites:
			left = next
			lead += len(tail) + ts2
			tail, leadLeft = w[ts2:], tleft
			held++
		default:
			left = next
			emit(at, w, !long, ts2, tleft)
		}
	}
	return out
}

func out1(at int, w []byte) step { return out(at, string(w)) }

// sseChunked builds an event stream of n events in chunks of random sizes,
// with a usage event when usage is set.
func sseChunked(r *rand.Rand, n int, usage bool) string {
	var body strings.Builder
	for range n {
		fmt.Fprintf(&body, `data: {"id":"c","object":"chat.completion.chunk","model":"glm-4","choices":[{"index":0,"delta":{"content":"w%d"},"finish_reason":null}]}`+"\n\n", r.IntN(1000))
		if r.IntN(10) == 0 {
			body.WriteString(": keep-alive\n\n")
		}
	}
	if usage {
		fmt.Fprintf(&body, `data: {"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":%d,"total_tokens":%d}}`+"\n\n", n, n+9)
	}
	body.WriteString("data: [DONE]\n\n")
	var out strings.Builder
	out.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
	b := body.String()
	for len(b) > 0 {
		k := min(len(b), 1+r.IntN(3000))
		fmt.Fprintf(&out, "%x\r\n%s\r\n", k, b[:k])
		b = b[k:]
	}
	out.WriteString("0\r\n\r\n")
	return out.String()
}

// TestSkippedStreamWrites checks the parser on event streams whose large
// writes had their middle left out against the same streams captured whole:
// the same body size, usage, time to first token and end, and an output
// estimate within 5 % for streams without usage.
func TestSkippedStreamWrites(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	skippedAny := false
	for c := range 300 {
		n := 20 + r.IntN(400)
		usage := c%2 == 0
		resp := sseChunked(r, n, usage)
		// Writes as servers make them: the head with the first event, then
		// pieces of random size (a buffered writer, a proxy).
		var writes [][]byte
		first := strings.Index(resp, "\n\n") + 2
		writes = append(writes, []byte(resp[:first]))
		for rest := resp[first:]; len(rest) > 0; {
			k := min(len(rest), 1+r.IntN(8000))
			writes = append(writes, []byte(rest[:k]))
			rest = rest[k:]
		}
		req := post("/v1/chat/completions", `{"model":"glm-4","stream":true}`)
		whole := []step{in(0, req)}
		for i, w := range writes {
			whole = append(whole, out1(10+i, w))
		}
		skipped := append([]step{in(0, req)}, skipWrites(writes)...)
		for _, s := range skipped {
			if s.skip != nil && s.skip.Lead > 0 {
				skippedAny = true // writes were held and left out
			}
		}
		want, _ := run(t, Options{}, whole)
		got, p := run(t, Options{}, skipped)
		if len(want.reqs) != 1 || len(got.reqs) != 1 {
			t.Fatalf("case %d: %d and %d requests, want 1", c, len(want.reqs), len(got.reqs))
		}
		w, g := want.reqs[0], got.reqs[0]
		if g.ResponseBodySize != w.ResponseBodySize || !g.End.Equal(w.End) || !g.FirstToken.Equal(w.FirstToken) || g.Status != 200 || g.Model != "glm-4" {
			t.Errorf("case %d: body %d end %v first token %v status %d model %q, captured whole: body %d end %v first token %v",
				c, g.ResponseBodySize, g.End, g.FirstToken, g.Status, g.Model, w.ResponseBodySize, w.End, w.FirstToken)
		}
		switch {
		case usage && (g.OutputTokens != int64(n) || g.InputTokens != 9 || g.OutputTokensEstimated):
			t.Errorf("case %d: tokens %d/%d estimated %v, want 9/%d from usage", c, g.InputTokens, g.OutputTokens, g.OutputTokensEstimated, n)
		case !usage && (w.OutputTokens != int64(n) || !g.OutputTokensEstimated || g.OutputTokens < int64(n)*95/100 || g.OutputTokens > int64(n)*105/100+1):
			t.Errorf("case %d: estimated output %d (whole: %d), want %d ± 5 %%", c, g.OutputTokens, w.OutputTokens, n)
		}
		for _, rs := range Reasons() {
			if e := p.Stats().Errors(rs); e != 0 {
				t.Errorf("case %d: %d %s errors", c, e, rs)
			}
		}
	}
	if !skippedAny {
		t.Fatal("no write was held and left out")
	}
}
