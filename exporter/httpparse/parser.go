// Package httpparse reassembles HTTP/1.x exchanges from the socket events a
// capture source sees on a server (reads are the request side, writes the
// response side) and turns each finished exchange into a traffic.Request.
//
// It is built for observing, not serving: input is whatever prefix of each
// syscall the kernel copied out, connections may be first seen in the middle
// of a message, and nothing may make memory grow without bound. Only parsed
// fields survive (method, path, status, sizes, timings, model, token usage);
// body bytes are scanned in small bounded buffers and dropped.
package httpparse

import (
	"sync/atomic"
	"time"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// Reason is why bytes could not be parsed as HTTP/1.x.
type Reason uint8

// Parse error reasons. The zero value is unused so that a Reason is always meaningful.
const (
	_ Reason = iota
	// NotHTTP is TLS, the HTTP/2 preface or binary garbage on a tracked port.
	NotHTTP
	// MidStream is a connection first seen in the middle of a message; the
	// parser resynchronises on the next request line.
	MidStream
	// HeaderTooLarge is a start line plus headers longer than the configured bound.
	HeaderTooLarge
	// BadRequestLine is a malformed request line on a connection that spoke HTTP before.
	BadRequestLine
	// BadStatusLine is a malformed response status line.
	BadStatusLine
	// BadHeader is a malformed header block (for example an invalid Content-Length).
	BadHeader
	// BadChunk is malformed chunked transfer coding.
	BadChunk
	// Truncated is message framing lost because the capture kept only a prefix of a syscall.
	Truncated
	// PipelineOverflow is more outstanding pipelined requests than the parser tracks.
	PipelineOverflow
	// UnmatchedResponse is a response with no request seen for it.
	UnmatchedResponse
	numReasons
)

var reasonNames = [numReasons]string{
	NotHTTP:           "not_http",
	MidStream:         "mid_stream",
	HeaderTooLarge:    "header_too_large",
	BadRequestLine:    "bad_request_line",
	BadStatusLine:     "bad_status_line",
	BadHeader:         "bad_header",
	BadChunk:          "bad_chunk",
	Truncated:         "truncated",
	PipelineOverflow:  "pipeline_overflow",
	UnmatchedResponse: "unmatched_response",
}

func (r Reason) String() string {
	if r == 0 || r >= numReasons {
		return "unknown"
	}
	return reasonNames[r]
}

// Reasons lists every parse error reason, so counters can be pre-declared at zero.
func Reasons() []Reason {
	out := make([]Reason, 0, numReasons-1)
	for r := Reason(1); r < numReasons; r++ {
		out = append(out, r)
	}
	return out
}

// ErrorConnectionClosed is the ErrorType of a request whose connection closed
// before its response was complete.
const ErrorConnectionClosed = "connection_closed"

// Options configures a Parser. Zero values take the defaults below.
type Options struct {
	// MaxConnections bounds tracked connections; beyond it the least recently active is evicted.
	MaxConnections int
	// MaxHeaderBytes bounds the start line plus headers of one message.
	MaxHeaderBytes int
	// BodyScanBytes bounds the request body prefix scanned for "model".
	BodyScanBytes int
	// MaxPipelined bounds outstanding requests per connection.
	MaxPipelined int

	// Identify names the server of a connection; it is called once, with the
	// first event seen on the connection, and its result is carried by every
	// request of the connection (Request.Workload). Nil leaves requests anonymous.
	Identify func(*traffic.Event) *traffic.Server

	// OnStart is called when a request's headers have been read (for in-flight gauges).
	// Every OnStart is followed by exactly one OnRequest or OnDrop for the same pointer.
	OnStart func(*traffic.Request)
	// OnRequest receives each finished exchange. The Request is not reused by the parser.
	OnRequest func(*traffic.Request)
	// OnDrop receives a started request that will never finish (its connection was
	// evicted or its response could not be parsed); it must not be counted as served.
	OnDrop func(*traffic.Request)
}

// Defaults.
const (
	DefaultMaxConnections = 65536
	DefaultMaxHeaderBytes = 16 << 10
	DefaultBodyScanBytes  = 16 << 10
	DefaultMaxPipelined   = 16
	// sseLineBytes bounds one buffered SSE line; longer lines are skipped (usage chunks are small).
	sseLineBytes = 8 << 10
	// tailBytes is how much of a JSON response's end is kept to find "usage".
	tailBytes = 1 << 10
	// maxChunkLine bounds a chunk-size line including extensions, and each trailer line.
	maxChunkLine = 4 << 10
)

// Stats are the parser's own counters; safe to read from any goroutine.
type Stats struct {
	errors      [numReasons]atomic.Uint64
	evicted     atomic.Uint64
	connections atomic.Int64
	requests    atomic.Uint64
	dropped     atomic.Uint64
}

// Errors returns the parse errors counted for reason r.
func (s *Stats) Errors(r Reason) uint64 {
	if r >= numReasons {
		return 0
	}
	return s.errors[r].Load()
}

// Evicted is the number of connections dropped to stay within MaxConnections.
func (s *Stats) Evicted() uint64 { return s.evicted.Load() }

// Connections is the number of connections currently tracked.
func (s *Stats) Connections() int64 { return s.connections.Load() }

// Requests is the number of finished exchanges handed to OnRequest.
func (s *Stats) Requests() uint64 { return s.requests.Load() }

// Dropped is the number of started requests handed to OnDrop.
func (s *Stats) Dropped() uint64 { return s.dropped.Load() }

// Parser reassembles exchanges. Handle must be called from one goroutine;
// Stats may be read concurrently.
type Parser struct {
	o     Options
	stats Stats
	conns map[traffic.ConnID]*conn
	// lru is a ring of connections ordered by last activity (head.next is the oldest).
	lru conn
	// strings interns methods and paths.
	strings map[string]string
}

// New returns a Parser.
func New(o Options) *Parser {
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.BodyScanBytes <= 0 {
		o.BodyScanBytes = DefaultBodyScanBytes
	}
	if o.MaxPipelined <= 0 {
		o.MaxPipelined = DefaultMaxPipelined
	}
	p := &Parser{o: o, conns: make(map[traffic.ConnID]*conn, min(o.MaxConnections, 4096)), strings: make(map[string]string, 64)}
	p.lru.prev, p.lru.next = &p.lru, &p.lru
	return p
}

// Stats returns the live counters.
func (p *Parser) Stats() *Stats { return &p.stats }

// Handle consumes one event. ev.Data is not retained.
func (p *Parser) Handle(ev *traffic.Event) {
	switch ev.Kind {
	case traffic.Close:
		c := p.conns[ev.Conn]
		if c == nil {
			return
		}
		c.close(ev.Time)
		p.remove(c)
		return
	case traffic.Open, traffic.Data:
	default:
		return
	}
	c := p.conns[ev.Conn]
	if c == nil {
		c = p.add(ev.Conn)
		if p.o.Identify != nil {
			c.server = p.o.Identify(ev)
		}
	} else {
		p.touch(c)
	}
	if !c.client.IsValid() && ev.Remote.IsValid() {
		c.client = ev.Remote.Addr().Unmap()
	}
	if c.port == 0 && ev.Local.IsValid() {
		c.port = ev.Local.Port()
	}
	if ev.Kind != traffic.Data || ev.Size == 0 {
		return
	}
	data := ev.Data
	if int(ev.Size) < len(data) {
		data = data[:ev.Size]
	}
	invisible := int64(ev.Size) - int64(len(data))
	switch ev.Dir {
	case traffic.Ingress:
		c.ingress(data, invisible, ev.Time)
	case traffic.Egress:
		c.egress(data, invisible, ev.Time)
	}
}

// Close finishes every tracked connection as if it had closed at t (used on shutdown).
func (p *Parser) Close(t time.Time) {
	for c := p.lru.next; c != &p.lru; {
		next := c.next
		c.close(t)
		p.remove(c)
		c = next
	}
}

func (p *Parser) add(id traffic.ConnID) *conn {
	for len(p.conns) >= p.o.MaxConnections {
		oldest := p.lru.next
		oldest.drop()
		p.remove(oldest)
		p.stats.evicted.Add(1)
	}
	c := &conn{p: p, id: id}
	c.req.ph, c.resp.ph = phIdle, phIdle
	p.conns[id] = c
	c.prev, c.next = p.lru.prev, &p.lru
	p.lru.prev.next = c
	p.lru.prev = c
	p.stats.connections.Store(int64(len(p.conns)))
	return c
}

func (p *Parser) touch(c *conn) {
	if p.lru.prev == c {
		return
	}
	c.prev.next, c.next.prev = c.next, c.prev
	c.prev, c.next = p.lru.prev, &p.lru
	p.lru.prev.next = c
	p.lru.prev = c
}

func (p *Parser) remove(c *conn) {
	c.prev.next, c.next.prev = c.next, c.prev
	c.prev, c.next = nil, nil
	delete(p.conns, c.id)
	p.stats.connections.Store(int64(len(p.conns)))
}

func (p *Parser) countError(r Reason) { p.stats.errors[r].Add(1) }

func (p *Parser) started(r *traffic.Request) {
	if p.o.OnStart != nil {
		p.o.OnStart(r)
	}
}

func (p *Parser) finished(r *traffic.Request) {
	p.stats.requests.Add(1)
	if p.o.OnRequest != nil {
		p.o.OnRequest(r)
	}
}

func (p *Parser) dropped(r *traffic.Request) {
	p.stats.dropped.Add(1)
	if p.o.OnDrop != nil {
		p.o.OnDrop(r)
	}
}
