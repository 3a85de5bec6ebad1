package httpparse

import (
	"bytes"
	"net/netip"
	"time"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// phase is where one direction of a connection is within its current message.
type phase uint8

const (
	phIdle       phase = iota // at a message boundary
	phHeaders                 // reading the start line and headers
	phBody                    // reading a Content-Length body
	phChunkSize               // reading a chunk-size line
	phChunkData               // reading chunk data
	phChunkCRLF               // reading the CRLF after chunk data
	phTrailer                 // reading trailer lines after the last chunk
	phUntilClose              // response body delimited by connection close
	phDrain                   // response complete but more bytes may follow until close; ignore them
	phResync                  // looking for the next message start
	phLost                    // response framing lost to truncation; ends on the next request, response or close
)

// side is the framing state of one direction.
type side struct {
	ph        phase
	hdr       []byte // start line and headers split over several events
	line      []byte // chunk-size or trailer line split over several events
	remaining int64  // bytes left in a Content-Length body or in the current chunk
	crlf      int8   // bytes of the CRLF after chunk data still expected
	start     time.Time
	body      int64 // body bytes on the wire (chunk framing included) of the current message
	chunked   bool
	seen      bool // a well-formed message was seen in this direction
}

// pending is a request waiting for (or receiving) its response.
type pending struct {
	r        *traffic.Request
	head     bool
	scan     []byte // request body prefix, scanned for "model" when the body ends
	scanDone bool
}

// response is what is measured while a response is written.
type response struct {
	rp         *pending // nil for a response whose request was not seen
	status     int
	sse, json  bool
	firstByte  time.Time
	firstToken time.Time
	line       []byte // current SSE line
	lineSkip   bool   // the current SSE line overflowed or started in unseen bytes
	tail       []byte // end of a JSON body
	done       bool   // "data: [DONE]" seen
	model      string
	in, out    int64
}

type conn struct {
	p          *Parser
	id         traffic.ConnID
	prev, next *conn
	client     netip.Addr
	port       uint16
	server     *traffic.Server
	req, resp  side
	queue      []*pending // requests without a final response yet, oldest first
	cur        *pending   // request whose body is being read
	rs         response
	inResp     bool // a final response's headers were read and its body is in progress
	lastEgress time.Time
	errs       int
	mid        bool // counted as first seen mid-stream
	dead       bool // not HTTP, or upgraded to another protocol
}

func (c *conn) fail(r Reason) {
	c.errs++
	c.p.countError(r)
}

// ingress consumes bytes the server read.
func (c *conn) ingress(data []byte, invisible int64, t time.Time) {
	if c.dead {
		return
	}
	s := &c.req
	for len(data) > 0 && !c.dead {
		switch s.ph {
		case phIdle:
			// Servers ignore empty lines before a request line (RFC 9112 §2.2).
			for len(data) > 0 && (data[0] == '\r' || data[0] == '\n') {
				data = data[1:]
			}
			if len(data) == 0 {
				break
			}
			s.ph, s.start = phHeaders, t
			if c.resp.ph == phLost {
				c.finishResponse(c.lastEgress)
			}
		case phHeaders:
			n, block, bad := c.headerBlock(s, data, true)
			data = data[n:]
			if bad != 0 {
				c.badStart(s, bad, data, true)
				data = nil
				break
			}
			if block != nil {
				c.requestHead(block, t)
				s.hdr = s.hdr[:0]
			}
		case phBody:
			n := int(min(s.remaining, int64(len(data))))
			c.reqContent(data[:n])
			s.remaining -= int64(n)
			s.body += int64(n)
			data = data[n:]
			if s.remaining == 0 {
				c.reqBodyEnd()
			}
		case phChunkSize, phChunkData, phChunkCRLF, phTrailer:
			n, end, bad := s.chunk(data, c.reqContent)
			data = data[n:]
			if bad {
				c.fail(BadChunk)
				c.reqBodyEnd()
				s.ph = phResync
				break
			}
			if end {
				c.reqBodyEnd()
			}
		case phResync:
			i := findStart(data, true)
			if i < 0 {
				data = nil
				break
			}
			data = data[i:]
			s.ph, s.start = phHeaders, t
			s.hdr = s.hdr[:0]
			if c.resp.ph == phLost {
				c.finishResponse(c.lastEgress)
			}
		default:
			data = nil
		}
	}
	if invisible > 0 && !c.dead {
		c.reqInvisible(invisible)
	}
}

// reqInvisible accounts for request bytes that were read but not captured.
func (c *conn) reqInvisible(n int64) {
	s := &c.req
	switch s.ph {
	case phBody:
		k := min(n, s.remaining)
		s.remaining -= k
		s.body += k
		c.reqGap()
		if s.remaining == 0 {
			c.reqBodyEnd()
		}
		if n > k {
			s.ph = phResync
		}
	case phChunkData:
		k := min(n, s.remaining)
		s.remaining -= k
		s.body += k
		c.reqGap()
		if n > k {
			// The chunk framing is in the unseen bytes: the body end cannot be found.
			s.body += n - k
			c.reqBodyEnd()
			s.ph = phResync
		}
	case phChunkSize, phChunkCRLF, phTrailer:
		s.body += n
		c.reqBodyEnd()
		s.ph = phResync
	case phHeaders:
		c.fail(Truncated)
		s.hdr = s.hdr[:0]
		s.ph = phResync
	}
}

// egress consumes bytes the server wrote.
func (c *conn) egress(data []byte, invisible int64, t time.Time) {
	if c.dead {
		return
	}
	c.lastEgress = t
	s := &c.resp
	if s.ph == phLost && bytes.HasPrefix(data, []byte("HTTP/1.")) {
		c.finishResponse(c.lastEgress)
	}
	for len(data) > 0 && !c.dead {
		switch s.ph {
		case phIdle:
			s.ph, s.start = phHeaders, t
		case phHeaders:
			n, block, bad := c.headerBlock(s, data, false)
			data = data[n:]
			if bad != 0 {
				c.badStart(s, bad, data, false)
				data = nil
				break
			}
			if block != nil {
				c.responseHead(block, t)
				s.hdr = s.hdr[:0]
			}
		case phBody:
			n := int(min(s.remaining, int64(len(data))))
			c.rs.content(data[:n], t)
			s.remaining -= int64(n)
			s.body += int64(n)
			data = data[n:]
			if s.remaining == 0 {
				c.finishResponse(t)
			}
		case phChunkSize, phChunkData, phChunkCRLF, phTrailer:
			n, end, bad := s.chunk(data, func(b []byte) { c.rs.content(b, t) })
			data = data[n:]
			if bad {
				c.fail(BadChunk)
				s.ph = phLost
				data = nil
				break
			}
			if end {
				c.finishResponse(t)
			}
		case phUntilClose:
			s.body += int64(len(data))
			c.rs.content(data, t)
			data = nil
			if c.rs.done {
				// A close-delimited event stream is over at "data: [DONE]".
				c.finishResponse(t)
				s.ph = phDrain
			}
		case phResync:
			i := findStart(data, false)
			if i < 0 {
				data = nil
				break
			}
			data = data[i:]
			s.ph, s.start = phHeaders, t
			s.hdr = s.hdr[:0]
		case phLost:
			// A complete chunked terminator at the end of a fully captured write ends the body.
			if s.chunked && invisible == 0 && (bytes.HasSuffix(data, []byte("\r\n0\r\n\r\n")) || bytes.Equal(data, []byte("0\r\n\r\n"))) {
				s.body += int64(len(data))
				c.finishResponse(t)
			} else {
				s.body += int64(len(data))
			}
			data = nil
		default:
			data = nil
		}
	}
	if invisible > 0 && !c.dead {
		c.respInvisible(invisible, t)
	}
}

// respInvisible accounts for response bytes that were written but not captured.
func (c *conn) respInvisible(n int64, t time.Time) {
	s := &c.resp
	switch s.ph {
	case phBody:
		k := min(n, s.remaining)
		s.remaining -= k
		s.body += k
		c.rs.gap()
		if s.remaining == 0 {
			c.finishResponse(t)
			if n > k {
				s.ph = phResync
			}
		}
	case phChunkData:
		k := min(n, s.remaining)
		s.remaining -= k
		s.body += k
		c.rs.gap()
		if n > k {
			s.body += n - k
			s.ph = phLost
		}
	case phChunkSize, phChunkCRLF, phTrailer:
		s.body += n
		c.rs.gap()
		s.ph = phLost
	case phUntilClose, phLost:
		s.body += n
		c.rs.gap()
	case phHeaders:
		// The status is in the unseen bytes; the exchange cannot be measured.
		c.fail(Truncated)
		s.hdr = s.hdr[:0]
		s.ph = phResync
		if len(c.queue) > 0 {
			c.p.dropped(c.queue[0].r)
			c.popQueue()
		}
	}
}

// badStart handles a start line that is not HTTP/1.x.
func (c *conn) badStart(s *side, bad Reason, rest []byte, request bool) {
	s.hdr = s.hdr[:0]
	s.ph = phResync
	if c.req.seen || c.resp.seen {
		c.fail(bad)
		if !request && len(c.queue) > 0 {
			c.p.dropped(c.queue[0].r)
			c.popQueue()
		}
		return
	}
	if bad == NotHTTP {
		c.fail(NotHTTP)
		c.kill()
		return
	}
	if !c.mid {
		c.mid = true
		c.fail(MidStream)
	}
	// Keep looking for a message start in what is left of this event.
	if request {
		c.ingress(rest, 0, s.start)
	} else {
		c.egress(rest, 0, s.start)
	}
}

func (c *conn) kill() {
	c.dead = true
	c.req.hdr, c.resp.hdr = nil, nil
	c.rs.line, c.rs.tail = nil, nil
}

// headerBlock accumulates the start line and headers. It returns the bytes
// of data consumed, the complete block once the empty line is reached (valid
// until s.hdr is reset), or a reason when the bytes are not an HTTP/1.x message.
func (c *conn) headerBlock(s *side, data []byte, request bool) (int, []byte, Reason) {
	limit := c.p.o.MaxHeaderBytes
	if len(s.hdr) == 0 {
		if bad := checkStart(data, request); bad != 0 {
			return 0, nil, bad
		}
		if end := headerEnd(data, 0); end > 0 {
			if end > limit {
				c.tooLarge(s)
				return len(data), nil, 0
			}
			return end, data[:end], 0
		}
		if len(data) >= limit {
			c.tooLarge(s)
			return len(data), nil, 0
		}
		s.hdr = append(s.hdr, data...)
		return len(data), nil, 0
	}
	old := len(s.hdr)
	take := min(len(data), limit-old)
	s.hdr = append(s.hdr, data[:take]...)
	if bad := checkStart(s.hdr, request); bad != 0 {
		return 0, nil, bad
	}
	if end := headerEnd(s.hdr, max(0, old-3)); end > 0 {
		return end - old, s.hdr[:end], 0
	}
	if len(s.hdr) >= limit {
		c.tooLarge(s)
		return len(data), nil, 0
	}
	return take, nil, 0
}

// tooLarge counts an oversized header block and resynchronises past the
// bytes already seen, so the same start line is not found again.
func (c *conn) tooLarge(s *side) {
	c.fail(HeaderTooLarge)
	s.hdr = s.hdr[:0]
	s.ph = phResync
}

func (c *conn) requestHead(block []byte, t time.Time) {
	s := &c.req
	h, bad := c.p.parseHead(block, true)
	if bad != 0 {
		c.fail(bad)
		s.ph = phResync
		return
	}
	s.seen = true
	s.body = 0
	r := &traffic.Request{
		Start:            s.start,
		Method:           h.method,
		Path:             h.path,
		RequestBodySize:  0,
		ResponseBodySize: -1,
		InputTokens:      -1,
		OutputTokens:     -1,
		Client:           c.client,
		ServerPort:       c.port,
		Workload:         c.server.Workload(),
	}
	c.cur = nil
	if len(c.queue) >= c.p.o.MaxPipelined {
		c.fail(PipelineOverflow)
	} else {
		pd := &pending{r: r, head: h.method == "HEAD"}
		c.queue = append(c.queue, pd)
		c.cur = pd
		c.p.started(r)
	}
	switch {
	case h.chunked:
		s.ph, s.chunked = phChunkSize, true
		s.line = s.line[:0]
	case h.length > 0:
		s.ph, s.chunked, s.remaining = phBody, false, h.length
	default:
		c.reqBodyEnd()
	}
}

func (c *conn) reqContent(b []byte) {
	pd := c.cur
	if pd == nil || pd.scanDone || len(b) == 0 {
		return
	}
	limit := c.p.o.BodyScanBytes
	if pd.scan == nil {
		pd.scan = make([]byte, 0, min(limit, max(len(b), 512)))
	}
	take := min(len(b), limit-len(pd.scan))
	pd.scan = append(pd.scan, b[:take]...)
	if len(pd.scan) >= limit {
		pd.finishScan()
	}
}

// reqGap marks captured body bytes as no longer contiguous: scan what was seen.
func (c *conn) reqGap() {
	if c.cur != nil {
		c.cur.finishScan()
	}
}

func (c *conn) reqBodyEnd() {
	s := &c.req
	if pd := c.cur; pd != nil {
		pd.finishScan()
		pd.r.RequestBodySize = s.body
	}
	c.cur = nil
	s.ph = phIdle
	s.line = s.line[:0]
}

func (pd *pending) finishScan() {
	if pd.scanDone {
		return
	}
	pd.scanDone = true
	if m, ok := topLevelString(pd.scan, "model"); ok {
		pd.r.Model = m
	}
	pd.scan = nil
}

func (c *conn) responseHead(block []byte, t time.Time) {
	s := &c.resp
	h, bad := c.p.parseHead(block, false)
	if bad != 0 {
		c.fail(bad)
		s.ph = phResync
		if len(c.queue) > 0 {
			c.p.dropped(c.queue[0].r)
			c.popQueue()
		}
		return
	}
	s.seen = true
	if h.status >= 100 && h.status < 200 && h.status != 101 {
		// Interim responses (100 Continue, 103 Early Hints) precede the final one.
		s.ph = phIdle
		return
	}
	var rp *pending
	if len(c.queue) > 0 && !s.start.Before(c.queue[0].r.Start) {
		rp = c.queue[0]
		c.popQueue()
	} else if c.errs == 0 {
		c.fail(UnmatchedResponse)
	}
	// Keep the scan buffers' memory for the connection's next responses.
	c.rs = response{rp: rp, status: h.status, sse: h.sse, json: h.json, firstByte: s.start, in: -1, out: -1,
		line: c.rs.line[:0], tail: c.rs.tail[:0]}
	c.inResp = true
	s.body = 0
	s.chunked = false
	switch {
	case h.status == 101:
		c.finishResponse(t)
		c.kill()
	case (rp != nil && rp.head) || h.status == 204 || h.status == 304:
		c.finishResponse(t)
	case h.chunked:
		s.ph, s.chunked = phChunkSize, true
		s.line = s.line[:0]
	case h.hasLength && h.length == 0:
		c.finishResponse(t)
	case h.hasLength:
		s.ph, s.remaining = phBody, h.length
	default:
		s.ph = phUntilClose
	}
}

func (c *conn) popQueue() {
	c.queue[0] = nil
	c.queue = c.queue[1:]
	if len(c.queue) == 0 {
		c.queue = c.queue[:0:0]
	}
}

// finishResponse completes the response in progress at end.
func (c *conn) finishResponse(end time.Time) {
	s := &c.resp
	s.ph = phIdle
	s.line = s.line[:0]
	if !c.inResp {
		return
	}
	c.inResp = false
	rs := &c.rs
	pd := rs.rp
	if pd == nil {
		c.rs = response{line: rs.line[:0], tail: rs.tail[:0]}
		return
	}
	pd.finishScan()
	if c.cur == pd {
		// The response came before the whole request body; later body bytes are not attributed.
		pd.r.RequestBodySize = c.req.body
		c.cur = nil
	}
	r := pd.r
	r.End = end
	r.FirstByte = rs.firstByte
	r.FirstToken = rs.firstToken
	r.Status = rs.status
	r.ResponseBodySize = s.body
	r.Streaming = rs.sse
	rs.jsonUsage()
	r.InputTokens, r.OutputTokens = rs.in, rs.out
	if r.Model == "" {
		r.Model = rs.model
	}
	c.rs = response{line: rs.line[:0], tail: rs.tail[:0]}
	c.p.finished(r)
}

// close ends the connection at t: close-delimited bodies end, unanswered requests fail.
func (c *conn) close(t time.Time) {
	if c.inResp {
		switch c.resp.ph {
		case phUntilClose, phLost:
			end := c.lastEgress
			if end.IsZero() {
				end = t
			}
			c.finishResponse(end)
		default:
			if c.rs.rp != nil {
				c.rs.rp.r.ErrorType = ErrorConnectionClosed
			}
			c.finishResponse(t)
		}
	}
	for _, pd := range c.queue {
		pd.finishScan()
		r := pd.r
		r.End = t
		r.ErrorType = ErrorConnectionClosed
		if c.cur == pd {
			r.RequestBodySize = c.req.body
		}
		c.p.finished(r)
	}
	c.queue = nil
	c.cur = nil
}

// drop abandons the connection (eviction): started requests are dropped, not counted.
func (c *conn) drop() {
	if c.inResp && c.rs.rp != nil {
		c.p.dropped(c.rs.rp.r)
	}
	for _, pd := range c.queue {
		c.p.dropped(pd.r)
	}
	c.queue = nil
	c.cur = nil
	c.inResp = false
}

// chunk consumes chunked transfer coding, passing chunk data to content.
// It returns the bytes consumed, whether the last chunk and trailers ended, and whether the framing is bad.
func (s *side) chunk(data []byte, content func([]byte)) (int, bool, bool) {
	n := 0
	for n < len(data) {
		switch s.ph {
		case phChunkSize, phTrailer:
			rest := data[n:]
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				if len(s.line)+len(rest) > maxChunkLine {
					return n, false, true
				}
				s.line = append(s.line, rest...)
				s.body += int64(len(rest))
				return len(data), false, false
			}
			var line []byte
			if len(s.line) > 0 {
				if len(s.line)+i > maxChunkLine {
					return n, false, true
				}
				s.line = append(s.line, rest[:i]...)
				line = s.line
			} else {
				line = rest[:i]
			}
			n += i + 1
			s.body += int64(i + 1)
			line = bytes.TrimSuffix(line, []byte("\r"))
			if s.ph == phTrailer {
				s.line = s.line[:0]
				if len(line) == 0 {
					return n, true, false
				}
				continue
			}
			size, ok := parseChunkSize(line)
			s.line = s.line[:0]
			if !ok {
				return n, false, true
			}
			if size == 0 {
				s.ph = phTrailer
				continue
			}
			s.ph, s.remaining = phChunkData, size
		case phChunkData:
			k := int(min(s.remaining, int64(len(data)-n)))
			content(data[n : n+k])
			n += k
			s.body += int64(k)
			s.remaining -= int64(k)
			if s.remaining == 0 {
				s.ph, s.crlf = phChunkCRLF, 2
			}
		case phChunkCRLF:
			b := data[n]
			n++
			s.body++
			switch {
			case b == '\r' && s.crlf == 2:
				s.crlf = 1
			case b == '\n':
				s.ph = phChunkSize
			default:
				return n, false, true
			}
		default:
			return n, false, false
		}
	}
	return n, false, false
}

func parseChunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var v int64
	for _, b := range line {
		switch {
		case b >= '0' && b <= '9':
			v = v<<4 | int64(b-'0')
		case b >= 'a' && b <= 'f':
			v = v<<4 | int64(b-'a'+10)
		case b >= 'A' && b <= 'F':
			v = v<<4 | int64(b-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// content scans response body bytes: SSE events for time to first token,
// the end of stream and usage, or the end of a JSON body for usage.
func (rs *response) content(b []byte, t time.Time) {
	switch {
	case rs.sse:
		rs.sseContent(b, t)
	case rs.json:
		if len(b) >= tailBytes {
			rs.tail = append(rs.tail[:0], b[len(b)-tailBytes:]...)
			return
		}
		if len(rs.tail)+len(b) > tailBytes {
			drop := len(rs.tail) + len(b) - tailBytes
			rs.tail = append(rs.tail[:0], rs.tail[drop:]...)
		}
		if rs.tail == nil {
			rs.tail = make([]byte, 0, tailBytes)
		}
		rs.tail = append(rs.tail, b...)
	}
}

func (rs *response) gap() {
	rs.tail = rs.tail[:0]
	rs.line = rs.line[:0]
	rs.lineSkip = true
}

func (rs *response) sseContent(b []byte, t time.Time) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if !rs.lineSkip {
				if len(rs.line)+len(b) > sseLineBytes {
					rs.lineSkip = true
					rs.line = rs.line[:0]
				} else {
					rs.line = append(rs.line, b...)
				}
			}
			return
		}
		var line []byte
		if rs.lineSkip {
			rs.lineSkip = false
			rs.line = rs.line[:0]
			b = b[i+1:]
			continue
		}
		if len(rs.line) > 0 {
			if len(rs.line)+i > sseLineBytes {
				rs.line = rs.line[:0]
				b = b[i+1:]
				continue
			}
			rs.line = append(rs.line, b[:i]...)
			line = rs.line
		} else {
			line = b[:i]
		}
		b = b[i+1:]
		rs.sseLine(bytes.TrimSuffix(line, []byte("\r")), t)
		rs.line = rs.line[:0]
	}
}

func (rs *response) sseLine(line []byte, t time.Time) {
	payload, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok {
		return
	}
	if rs.firstToken.IsZero() {
		rs.firstToken = t
	}
	payload = bytes.TrimSpace(payload)
	if bytes.Equal(payload, []byte("[DONE]")) {
		rs.done = true
		return
	}
	if rs.model == "" {
		if m, ok := topLevelString(payload, "model"); ok {
			rs.model = m
		}
	}
	if bytes.Contains(payload, []byte(`"usage"`)) {
		if in, out, ok := usage(payload); ok {
			rs.in, rs.out = in, out
		}
	}
}

// jsonUsage reads usage from the end of a JSON body, if it is there.
func (rs *response) jsonUsage() {
	if !rs.json || len(rs.tail) == 0 {
		return
	}
	if in, out, ok := usage(rs.tail); ok {
		rs.in, rs.out = in, out
	}
}
