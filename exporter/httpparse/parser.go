// Package httpparse reassembles HTTP/1.x and HTTP/2 (h2c, h2 after TLS, gRPC)
// exchanges from the socket events a capture source sees on a server (reads
// are the request side, writes the response side) and turns each finished
// exchange into a traffic.Request.
//
// Files by concern: parser.go (the connection table and event dispatch),
// conn.go (one connection and its protocol), h1.go and h1head.go (HTTP/1.x
// framing and heads), h2.go (HTTP/2 frames, HPACK, streams), grpc.go (gRPC
// messages and status), exchange.go (one request and response, whichever
// framing carried it), llm.go (the LLM content scan both framings share:
// SSE events, first token, usage, token estimate) and json.go (bounded,
// allocation-free JSON readers).
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

// Reason is why bytes could not be parsed or measured.
type Reason uint8

// Parse error reasons. The zero value is unused so that a Reason is always meaningful.
const (
	_ Reason = iota
	// NotHTTP is TLS records or binary garbage on a tracked port (HTTP/2 is parsed).
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
	// H2MidStream is a request stream on an HTTP/2 connection first seen
	// after its start: its header block cannot be decoded without the HPACK
	// state that came before, so it is counted here and not guessed.
	H2MidStream
	// H2Protocol is malformed HTTP/2 framing or HPACK; the connection is ignored from then on.
	H2Protocol
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
	H2MidStream:       "h2_mid_stream",
	H2Protocol:        "h2_protocol",
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

// ErrorStreamReset is the ErrorType of an HTTP/2 stream reset (RST_STREAM)
// before its response was complete.
const ErrorStreamReset = "stream_reset"

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
	// OnRequest receives each finished exchange. The Request is valid only
	// during the call: the parser reuses it afterwards (copy what you keep).
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
	// strings interns methods, paths and models.
	strings map[string]string
	// last is the connection of the previous event: consecutive events are
	// usually on the same connection, which then costs no map lookup.
	last *conn
	// free is a list of exchanges kept for reuse.
	free  *exchange
	nfree int
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
		c := p.lookup(ev.Conn)
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
	c := p.lookup(ev.Conn)
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
	if ev.Kind == traffic.Data && ev.Skip != nil {
		if ev.Dir == traffic.Egress {
			c.skipped(ev.Data, ev.Skip, int64(ev.Size), ev.Time)
		}
		return
	}
	if ev.Kind != traffic.Data || ev.Size == 0 {
		return
	}
	data := ev.Data
	if int(ev.Size) < len(data) {
		data = data[:ev.Size]
	}
	invisible := int64(ev.Size) - int64(len(data))
	if ev.Dir == traffic.Ingress || ev.Dir == traffic.Egress {
		c.data(ev.Dir, data, invisible, ev.Time)
	}
}

func (p *Parser) lookup(id traffic.ConnID) *conn {
	if p.last != nil && p.last.id == id {
		return p.last
	}
	c := p.conns[id]
	if c != nil {
		p.last = c
	}
	return c
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
	p.last = c
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
	if p.last == c {
		p.last = nil
	}
	p.stats.connections.Store(int64(len(p.conns)))
}

func (p *Parser) countError(r Reason) { p.stats.errors[r].Add(1) }
