package httpparse

import (
	"bytes"
	"time"
)

// contentKind is how a response body is scanned.
type contentKind uint8

const (
	contentOther contentKind = iota // not scanned
	contentSSE                      // text/event-stream: events, first token, usage, end of stream
	contentJSON                     // JSON: usage from the end of the body
	contentGRPC                     // application/grpc: length-prefixed messages
)

// llmScan reads an LLM API response body as it is written, over HTTP/1.1
// chunks or HTTP/2 DATA frames alike: time to first token, the end of an
// event stream, the model, token usage, and the number of content-bearing
// events (the output token estimate for streams that report no usage). Its
// buffers are bounded and kept across the exchanges that reuse it.
type llmScan struct {
	kind       contentKind
	done       bool // "data: [DONE]" seen
	lineSkip   bool // the current SSE line overflowed or started in unseen bytes
	firstToken time.Time
	line       []byte // current SSE line split over writes
	tail       []byte // end of a JSON body
	model      string
	usage      tokenUsage
	events     int64 // content-bearing SSE events
	// Bytes of complete SSE lines scanned, and bytes of the body not
	// scanned (not captured, or lines cut by bytes not captured): the
	// events in the latter are estimated at the rate of the former.
	lineBytes, unseen int64
	key               uint8 // index in contentKeys of the key that last carried content
	keyAt             int32 // and where it was in its event
	grpc              grpcMessages
}

func (s *llmScan) reset(kind contentKind) {
	*s = llmScan{kind: kind, line: s.line[:0], tail: s.tail[:0], usage: noUsage()}
}

// release drops buffers that grew large, so a pooled exchange stays small.
func (s *llmScan) release() {
	if cap(s.line) > 1<<10 {
		s.line = nil
	}
}

// content scans response body bytes written at t.
func (s *llmScan) content(p *Parser, b []byte, t time.Time) {
	switch s.kind {
	case contentSSE:
		s.sse(p, b, t)
	case contentJSON:
		s.keepTail(b)
	case contentGRPC:
		s.grpc.feed(b, t)
	}
}

// keepTail keeps the last tailBytes of a JSON body, where "usage" is.
func (s *llmScan) keepTail(b []byte) {
	if len(b) >= tailBytes {
		s.tail = append(s.tail[:0], b[len(b)-tailBytes:]...)
		return
	}
	if len(s.tail)+len(b) > tailBytes {
		drop := len(s.tail) + len(b) - tailBytes
		s.tail = append(s.tail[:0], s.tail[drop:]...)
	}
	if s.tail == nil {
		s.tail = make([]byte, 0, tailBytes)
	}
	s.tail = append(s.tail, b...)
}

// estimatedEvents is the number of content-bearing events, with those in
// unseen bytes estimated at the rate of the scanned lines.
func (s *llmScan) estimatedEvents() int64 {
	if s.unseen == 0 || s.lineBytes == 0 {
		return s.events
	}
	return s.events + (s.events*s.unseen+s.lineBytes/2)/s.lineBytes
}

// gap marks n body bytes that were written but not captured.
func (s *llmScan) gap(n int64) {
	s.unseen += n + int64(len(s.line))
	s.tail = s.tail[:0]
	s.line = s.line[:0]
	s.lineSkip = true
	s.grpc.lost = true
}

func (s *llmScan) sse(p *Parser, b []byte, t time.Time) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if !s.lineSkip {
				if len(s.line)+len(b) > sseLineBytes {
					s.lineSkip = true
					s.line = s.line[:0]
				} else {
					s.line = append(s.line, b...)
				}
			}
			return
		}
		if s.lineSkip {
			s.lineSkip = false
			s.unseen += int64(i + 1)
			s.line = s.line[:0]
			b = b[i+1:]
			continue
		}
		var line []byte
		if len(s.line) > 0 {
			if len(s.line)+i > sseLineBytes {
				s.line = s.line[:0]
				b = b[i+1:]
				continue
			}
			s.line = append(s.line, b[:i]...)
			line = s.line
		} else {
			line = b[:i]
		}
		b = b[i+1:]
		s.lineBytes += int64(len(line) + 1)
		s.sseLine(p, line, t)
		s.line = s.line[:0]
	}
}

var (
	sseData  = []byte("data:")
	sseDone  = []byte("[DONE]")
	usageKey = []byte(`"usage"`)
)

// contentKey is a key whose non-empty string value is generated text. The
// search is for tail, whose first byte is rarer in JSON than a quote (which
// would make a vectorised search stop at every string); lead must precede it.
type contentKey struct {
	tail []byte
	lead []string
}

// contentKeys: "content" (chat deltas) and "reasoning_content", "text"
// (completions, Anthropic and TGI tokens).
var contentKeys = [...]contentKey{
	{[]byte(`ontent":`), []string{`"c`, `_c`}},
	{[]byte(`xt":`), []string{`"te`}},
}

func (s *llmScan) sseLine(p *Parser, line []byte, t time.Time) {
	if len(line) < len(sseData) || string(line[:len(sseData)]) != string(sseData) {
		return
	}
	payload := line[len(sseData):]
	if s.firstToken.IsZero() {
		s.firstToken = t
	}
	if n := len(payload); n > 0 && payload[n-1] == '\r' {
		payload = payload[:n-1]
	}
	if len(payload) > 0 && payload[0] == ' ' {
		payload = payload[1:]
	}
	if len(payload) == len(sseDone) && string(payload) == string(sseDone) {
		s.done = true
		return
	}
	if s.model == "" {
		if raw, esc, ok := topLevelString(payload, "model"); ok {
			s.model = p.model(raw, esc)
		}
	}
	// A token event carries no usage; only the others are searched for it.
	if s.contentBearing(payload) {
		s.events++
		return
	}
	if bytes.Contains(payload, usageKey) {
		if u, ok := usage(payload); ok {
			s.usage = u
		}
	}
}

// contentBearing reports whether an event carries generated text: a
// non-empty "content", "reasoning_content" or "text" string. The events of
// one stream share their shape, so the key that matched last is tried first,
// at the offset where it was: most events then cost no search at all.
func (s *llmScan) contentBearing(payload []byte) bool {
	k := &contentKeys[s.key]
	if at := int(s.keyAt); at > 0 && at+len(k.tail) <= len(payload) && string(payload[at:at+len(k.tail)]) == string(k.tail) {
		if v, _ := k.value(payload, at); v {
			return true
		}
	}
	for i := range contentKeys {
		j := (int(s.key) + i) % len(contentKeys)
		if at, ok := contentKeys[j].find(payload); ok {
			s.key, s.keyAt = uint8(j), int32(at)
			return true
		}
	}
	return false
}

// find returns the offset of k's tail in a member of b with a non-empty string value.
func (k *contentKey) find(b []byte) (int, bool) {
	for off := 0; ; {
		i := bytes.Index(b[off:], k.tail)
		if i < 0 {
			return 0, false
		}
		i += off
		off = i + len(k.tail)
		if v, ok := k.value(b, i); ok && v {
			return i, true
		}
	}
}

// value reports, for k's tail found at b[at:], whether it is the key (ok)
// and whether its value is a non-empty string.
func (k *contentKey) value(b []byte, at int) (nonEmpty, ok bool) {
	for _, l := range k.lead {
		if at >= len(l) && string(b[at-len(l):at]) == l {
			j := skipWS(b, at+len(k.tail))
			return j+1 < len(b) && b[j] == '"' && b[j+1] != '"', true
		}
	}
	return false, false
}

// finish reads usage from the end of a JSON body, if it is there.
func (s *llmScan) finish() {
	if s.kind != contentJSON || len(s.tail) == 0 {
		return
	}
	if u, ok := usage(s.tail); ok {
		s.usage = u
	}
}
