package httpparse

import (
	"net/netip"
	"time"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// conn is one observed connection: who is on it, and the framing state of
// the protocol it speaks. Every connection starts as HTTP/1.x; the HTTP/2
// preface, an h2c upgrade or frames seen mid-way switch it to HTTP/2.
type conn struct {
	p          *Parser
	id         traffic.ConnID
	prev, next *conn
	client     netip.Addr
	port       uint16
	server     *traffic.Server
	errs       int
	mid        bool // counted as first seen mid-stream
	dead       bool // not HTTP, or upgraded to a protocol that is not followed

	h1
	h2 *h2conn
}

func (c *conn) fail(r Reason) {
	c.errs++
	c.p.countError(r)
}

// protocol names the connection's protocol as request events carry it.
func (c *conn) protocol() string {
	if c.h2 != nil {
		return traffic.ProtocolHTTP2
	}
	return traffic.ProtocolHTTP1
}

// kill stops following the connection; its buffers go.
func (c *conn) kill() {
	c.dead = true
	c.h1.release()
	c.h2 = nil
}

// data dispatches bytes moved in one direction to the connection's protocol.
func (c *conn) data(dir traffic.Direction, data []byte, invisible int64, t time.Time) {
	if c.dead {
		return
	}
	egress := dir == traffic.Egress
	if c.h2 != nil {
		c.h2.feed(egress, data, invisible, t)
		return
	}
	if egress {
		c.egress(data, invisible, t)
	} else {
		c.ingress(data, invisible, t)
	}
}

// skipped consumes an event made of parts of writes (traffic.Skip): the
// bytes not captured are passed over with the framing state the source
// followed. Anywhere but in a chunked HTTP/1.x body the parts cannot be
// placed: all of it counts as bytes not captured.
func (c *conn) skipped(data []byte, sk *traffic.Skip, size int64, t time.Time) {
	if sk.Lead < 0 || sk.LeadLen < 0 || sk.Head < 0 || sk.LeadLen+sk.Head > len(data) {
		return
	}
	lead, head, tail := data[:sk.LeadLen], data[sk.LeadLen:sk.LeadLen+sk.Head], data[sk.LeadLen+sk.Head:]
	gap := size - int64(sk.Head) - int64(len(tail))
	if gap < 0 || c.dead {
		return
	}
	if c.h2 != nil {
		c.h2.feed(true, nil, int64(sk.Lead+len(data))+gap, t)
		return
	}
	if sk.Lead > 0 {
		if !c.inChunkedBody() {
			c.egress(nil, int64(sk.Lead+len(data))+gap, t)
			return
		}
		c.skipChunked(int64(sk.Lead), sk.LeadLeft)
	}
	c.egress(lead, 0, t)
	c.egress(head, 0, t)
	if gap == 0 {
		c.egress(tail, 0, t)
		return
	}
	if !c.inChunkedBody() {
		c.egress(nil, gap+int64(len(tail)), t)
		return
	}
	c.skipChunked(gap, sk.TailLeft)
	c.egress(tail, 0, t)
}

// switchH2 continues the connection as HTTP/2 (prior knowledge when ex is
// nil, else an h2c upgrade whose request ex becomes stream 1).
func (c *conn) switchH2(h *h2conn) {
	c.h1.release()
	c.h2 = h
}

// close ends the connection at t: close-delimited bodies end, unanswered requests fail.
func (c *conn) close(t time.Time) {
	if c.h2 != nil {
		c.h2.close(t)
		return
	}
	c.h1close(t)
}

// drop abandons the connection (eviction): started requests are dropped, not counted.
func (c *conn) drop() {
	if c.h2 != nil {
		c.h2.drop()
		return
	}
	c.h1drop()
}
