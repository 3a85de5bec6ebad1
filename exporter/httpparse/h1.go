package httpparse

import (
	"bytes"
	"time"
)

// HTTP/1.x framing: start lines and headers, Content-Length, chunked and
// close-delimited bodies, keep-alive and pipelining, interim responses and
// upgrades, resynchronisation after bytes it cannot frame.

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

// h1 is the HTTP/1.x state of a connection.
type h1 struct {
	req, resp  side
	queue      []*exchange // requests without a final response yet, oldest first
	cur        *exchange   // request whose body is being read
	rx         *exchange   // response in progress; nil when its request was not seen
	inResp     bool        // a final response's headers were read and its body is in progress
	lastEgress time.Time
}

func (h *h1) release() {
	h.req.hdr, h.resp.hdr, h.req.line, h.resp.line = nil, nil, nil, nil
}

// ingress consumes bytes the server read.
func (c *conn) ingress(data []byte, invisible int64, t time.Time) {
	s := &c.req
	for len(data) > 0 && !c.dead && c.h2 == nil {
		switch s.ph {
		case phIdle:
			// Servers ignore empty lines before a request line (RFC 9112 §2.2).
			for len(data) > 0 && (data[0] == '\r' || data[0] == '\n') {
				data = data[1:]
			}
			if len(data) == 0 {
				break
			}
			if !c.req.seen && !c.resp.seen && isPreface(data) {
				// HTTP/2 with prior knowledge (h2c, or h2 after TLS).
				c.switchH2(newH2(c, true))
				c.h2.feed(false, data, invisible, t)
				return
			}
			s.ph, s.start = phHeaders, t
			if c.resp.ph == phLost {
				c.finishResponse(c.lastEgress)
			}
		case phHeaders:
			if k := len(s.hdr); k > 0 && k < len(h2Preface) && !c.req.seen && !c.resp.seen && isPreface(append(s.hdr, data...)) {
				// The preface arrived in pieces smaller than its first line.
				all := append(s.hdr, data...)
				s.hdr = s.hdr[:0]
				c.switchH2(newH2(c, true))
				c.h2.feed(false, all, invisible, t)
				return
			}
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
			c.reqContent(data[:n], t)
			s.remaining -= int64(n)
			s.body += int64(n)
			data = data[n:]
			if s.remaining == 0 {
				c.reqBodyEnd()
			}
		case phChunkSize, phChunkData, phChunkCRLF, phTrailer:
			n, end, bad := c.chunk(s, data, false, t)
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
	if c.h2 != nil && len(data) > 0 {
		c.h2.feed(false, data, invisible, t)
		return
	}
	if invisible > 0 && !c.dead && c.h2 == nil {
		c.reqInvisible(invisible)
	}
}

// isPreface reports whether data starts the HTTP/2 client connection preface.
func isPreface(data []byte) bool {
	n := min(len(data), len(h2Preface))
	return n >= 3 && string(data[:n]) == h2Preface[:n]
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

var statusPrefix = []byte("HTTP/1.")

// egress consumes bytes the server wrote.
func (c *conn) egress(data []byte, invisible int64, t time.Time) {
	c.lastEgress = t
	s := &c.resp
	if s.ph == phLost && bytes.HasPrefix(data, statusPrefix) {
		c.finishResponse(c.lastEgress)
	}
	for len(data) > 0 && !c.dead && c.h2 == nil {
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
			c.respContent(data[:n], t)
			s.remaining -= int64(n)
			s.body += int64(n)
			data = data[n:]
			if s.remaining == 0 {
				c.finishResponse(t)
			}
		case phChunkSize, phChunkData, phChunkCRLF, phTrailer:
			n, end, bad := c.chunk(s, data, true, t)
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
			c.respContent(data, t)
			data = nil
			if c.rx != nil && c.rx.resp.done {
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
			s.body += int64(len(data))
			if s.chunked && invisible == 0 && (bytes.HasSuffix(data, []byte("\r\n0\r\n\r\n")) || bytes.Equal(data, []byte("0\r\n\r\n"))) {
				c.finishResponse(t)
			}
			data = nil
		default:
			data = nil
		}
	}
	if c.h2 != nil {
		// An h2c upgrade: what follows the 101 is HTTP/2.
		c.h2.feed(true, data, invisible, t)
		return
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
		c.respGap(n)
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
		c.respGap(n)
		if n > k {
			s.body += n - k
			s.ph = phLost
		}
	case phChunkSize, phChunkCRLF, phTrailer:
		s.body += n
		c.respGap(n)
		s.ph = phLost
	case phUntilClose, phLost:
		s.body += n
		c.respGap(n)
	case phHeaders:
		// The status is in the unseen bytes; the exchange cannot be measured.
		c.fail(Truncated)
		s.hdr = s.hdr[:0]
		s.ph = phResync
		c.dropOldest()
	}
}

// inChunkedBody reports whether a response's chunked body is in progress
// (between its chunk-size lines, not in its trailer).
func (c *conn) inChunkedBody() bool {
	s := &c.resp
	return !c.dead && c.h2 == nil && c.inResp && s.chunked && (s.ph == phChunkSize || s.ph == phChunkData || s.ph == phChunkCRLF)
}

// skipChunked passes over n bytes of a chunked response body that were not
// captured, after which the next chunk-size line starts left bytes on
// (chunk data, then the CRLF that ends it), as the capture source found.
func (c *conn) skipChunked(n int64, left int) {
	s := &c.resp
	s.body += n
	s.line = s.line[:0]
	if c.rx != nil {
		c.rx.resp.gap(n)
	}
	switch {
	case left <= 0:
		s.ph = phChunkSize
	case left <= 2:
		s.ph, s.crlf = phChunkCRLF, int8(left)
	default:
		s.ph, s.remaining = phChunkData, int64(left-2)
	}
}

// badStart handles a start line that is not HTTP/1.x.
func (c *conn) badStart(s *side, bad Reason, rest []byte, request bool) {
	s.hdr = s.hdr[:0]
	s.ph = phResync
	if c.req.seen || c.resp.seen {
		c.fail(bad)
		if !request {
			c.dropOldest()
		}
		return
	}
	if bad == NotHTTP {
		if !request && serverPreface(rest) {
			// A new HTTP/2 connection whose server spoke first.
			c.switchH2(newH2(c, true))
			c.h2.feed(true, rest, 0, s.start)
			return
		}
		if looksLikeH2(rest) {
			// HTTP/2 joined after its preface: the header tables are unknown.
			c.switchH2(newBlindH2(c))
			c.h2.feed(!request, rest, 0, s.start)
			return
		}
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

// dropOldest gives up the oldest request waiting for a response that cannot be read.
func (c *conn) dropOldest() {
	if len(c.queue) > 0 {
		ex := c.queue[0]
		c.popQueue()
		if c.cur == ex {
			c.cur = nil
		}
		c.p.drop(ex)
	}
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
	c.cur = nil
	if len(c.queue) >= c.p.o.MaxPipelined {
		c.fail(PipelineOverflow)
	} else {
		ex := c.p.begin(c, h.method, h.path, s.start)
		c.queue = append(c.queue, ex)
		c.cur = ex
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

func (c *conn) reqContent(b []byte, t time.Time) {
	if ex := c.cur; ex != nil && len(b) > 0 {
		c.p.body(ex, false, b, t)
	}
}

// reqGap marks captured body bytes as no longer contiguous.
func (c *conn) reqGap() {
	if c.cur != nil {
		c.cur.model.stop()
	}
}

func (c *conn) reqBodyEnd() {
	s := &c.req
	if ex := c.cur; ex != nil {
		ex.r.RequestBodySize = s.body
		c.p.requestDone(ex)
	}
	c.cur = nil
	s.ph = phIdle
	s.line = s.line[:0]
}

func (c *conn) respContent(b []byte, t time.Time) {
	if c.rx != nil {
		c.rx.resp.content(c.p, b, t)
	}
}

func (c *conn) respGap(n int64) {
	if c.rx != nil {
		c.rx.resp.gap(n)
	}
}

func (c *conn) responseHead(block []byte, t time.Time) {
	s := &c.resp
	h, bad := c.p.parseHead(block, false)
	if bad != 0 {
		c.fail(bad)
		s.ph = phResync
		c.dropOldest()
		return
	}
	s.seen = true
	if h.status >= 100 && h.status < 200 && h.status != 101 {
		// Interim responses (100 Continue, 103 Early Hints) precede the final one.
		s.ph = phIdle
		return
	}
	var ex *exchange
	if len(c.queue) > 0 && !s.start.Before(c.queue[0].r.Start) {
		ex = c.queue[0]
		c.popQueue()
	} else if c.errs == 0 {
		c.fail(UnmatchedResponse)
	}
	if ex != nil {
		c.p.responseHead(ex, h.status, h.kind, s.start)
	}
	c.rx = ex
	c.inResp = true
	s.body = 0
	s.chunked = false
	switch {
	case h.status == 101 && h.upgradeH2C:
		// "Upgrade: h2c": the answer to the upgrade request comes as HTTP/2 stream 1.
		c.rx, c.inResp = nil, false
		if ex != nil && c.cur == ex {
			ex.r.RequestBodySize = c.req.body
			c.cur = nil
		}
		if ex != nil {
			ex.respSeen = false
		}
		c.switchH2(upgrade(c, ex))
	case h.status == 101:
		c.finishResponse(t)
		c.kill()
	case (ex != nil && ex.head) || h.status == 204 || h.status == 304:
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

// popQueue removes the oldest request, keeping the slice's array for the next ones.
func (c *conn) popQueue() {
	n := copy(c.queue, c.queue[1:])
	c.queue[n] = nil
	c.queue = c.queue[:n]
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
	ex := c.rx
	c.rx = nil
	if ex == nil {
		return
	}
	if c.cur == ex {
		// The response came before the whole request body; later body bytes are not attributed.
		ex.r.RequestBodySize = c.req.body
		c.cur = nil
	}
	ex.r.ResponseBodySize = s.body
	c.p.complete(ex, end)
}

// h1close ends the connection at t: close-delimited bodies end, unanswered requests fail.
func (c *conn) h1close(t time.Time) {
	if c.inResp {
		switch c.resp.ph {
		case phUntilClose, phLost:
			end := c.lastEgress
			if end.IsZero() {
				end = t
			}
			c.finishResponse(end)
		default:
			if c.rx != nil {
				c.rx.r.ErrorType = ErrorConnectionClosed
			}
			c.finishResponse(t)
		}
	}
	for _, ex := range c.queue {
		ex.r.End = t
		ex.r.ErrorType = ErrorConnectionClosed
		if c.cur == ex {
			ex.r.RequestBodySize = c.req.body
		}
		c.p.complete(ex, t)
	}
	c.queue = nil
	c.cur = nil
}

// h1drop abandons the connection (eviction): started requests are dropped, not counted.
func (c *conn) h1drop() {
	if c.inResp && c.rx != nil {
		c.p.drop(c.rx)
	}
	for _, ex := range c.queue {
		c.p.drop(ex)
	}
	c.queue = nil
	c.cur = nil
	c.rx = nil
	c.inResp = false
}

// chunk consumes chunked transfer coding, passing chunk data on as content.
// It returns the bytes consumed, whether the last chunk and trailers ended, and whether the framing is bad.
func (c *conn) chunk(s *side, data []byte, egress bool, t time.Time) (int, bool, bool) {
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
			if k := len(line); k > 0 && line[k-1] == '\r' {
				line = line[:k-1]
			}
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
			if egress {
				c.respContent(data[n:n+k], t)
			} else {
				c.reqContent(data[n:n+k], t)
			}
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
