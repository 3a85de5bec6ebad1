// Package traffic holds the two shapes of data that flow through the
// exporter: raw socket events captured in the kernel (Event) and finished
// HTTP exchanges (Request) that the metrics are computed from. Capture
// sources produce one or the other; nothing here ever carries prompt or
// completion text beyond the bounded prefixes the parser reads and drops.
package traffic

import (
	"context"
	"net/netip"
	"sync/atomic"
	"time"
)

// Direction says which way bytes moved, seen from the observed server.
type Direction uint8

const (
	// Ingress bytes were read by the server (the request side).
	Ingress Direction = iota + 1
	// Egress bytes were written by the server (the response side).
	Egress
)

func (d Direction) String() string {
	switch d {
	case Ingress:
		return "ingress"
	case Egress:
		return "egress"
	}
	return "unknown"
}

// Kind of a socket event.
type Kind uint8

const (
	// Data carries bytes read or written on a tracked connection.
	Data Kind = iota + 1
	// Open announces a tracked connection (accepted, or first seen when it
	// existed before the exporter started).
	Open
	// Close ends a connection; its id is never reused.
	Close
)

// ConnID identifies one connection for its whole life. The kernel side
// assigns a fresh id when it starts tracking a (pid, fd) pair, so fd reuse
// after close yields a new id.
type ConnID uint64

// Event is one kernel observation on a tracked server socket.
type Event struct {
	Kind Kind
	Conn ConnID
	// Time is when the syscall completed (wall clock, converted from the kernel's monotonic clock).
	Time time.Time
	PID  uint32
	FD   uint32
	Dir  Direction
	// Size is the number of bytes the syscall moved; Data holds at most a prefix of them.
	Size uint32
	// Data is the captured prefix. It is only valid during the callback; copy what you keep.
	Data []byte
	// Local and Remote are set on Open events when known.
	Local  netip.AddrPort
	Remote netip.AddrPort
	// Truncated is set when Data is shorter than Size.
	Truncated bool
	// Skip is set on an egress Data event of a chunked event stream whose
	// writes the source kept only in part (see Skip).
	Skip *Skip
}

// Skip lays out a Data event of a chunked event stream made of parts of
// writes. Data is LeadLen bytes that end earlier writes (held back by the
// source; Lead bytes before them were not captured), then the first Head
// bytes of this write, then its tail: the rest of Data, after the
// Size-Head-len(tail) bytes of the write not captured. Size is this write's
// size (0 when the event only flushes held bytes). The bytes not captured
// are chunk data and chunk-size lines; the *Left fields say how many bytes
// of the part that follows them come before its first chunk-size line
// (chunk data and the CRLF that ends it).
type Skip struct {
	Lead, LeadLeft, LeadLen int
	Head                    int
	TailLeft                int
}

// Request is one finished HTTP exchange, from whichever source saw it.
type Request struct {
	// Start is when the first request byte was read; End when the last response byte was written.
	Start, End time.Time
	// FirstByte is when the first response byte was written (zero if unknown).
	FirstByte time.Time
	// FirstToken is when the first SSE "data:" event (or the first message of a
	// streamed gRPC answer) was written (zero if not streaming or unknown).
	FirstToken time.Time
	Method     string
	// Path is the request target without the query string; routes are derived from it later.
	Path   string
	Status int
	// RequestBodySize and ResponseBodySize are body bytes, -1 if unknown.
	RequestBodySize, ResponseBodySize int64
	// Streaming is true for text/event-stream responses and gRPC responses of more than one message.
	Streaming bool
	// Model is the "model" field of the JSON request body (or response), "" if unseen.
	Model string
	// InputTokens and OutputTokens come from the response's "usage", -1 if absent.
	InputTokens, OutputTokens int64
	// OutputTokensEstimated is set when the response reported no usage and
	// OutputTokens is the number of content-bearing stream events instead.
	OutputTokensEstimated bool
	// CachedTokens (input served from a prompt cache) and ReasoningTokens
	// (output spent reasoning) come from the usage details; 0 if absent.
	// They are parts of InputTokens and OutputTokens, not additions.
	CachedTokens, ReasoningTokens int64
	// Client is the peer address of the connection (or from the log line).
	Client netip.Addr
	// ServerPort is the local port the request arrived on.
	ServerPort uint16
	// ErrorType is set when the exchange failed without a status (e.g. "connection_reset", "timeout").
	ErrorType string
	// GRPC is set for gRPC calls (HTTP/2 with an application/grpc content
	// type); Path is then the method, "/package.Service/Method".
	GRPC bool
	// GRPCStatus is the call's grpc-status (0 is OK), -1 when none was sent.
	GRPCStatus int
	// Protocol is the application protocol of the connection, "http/1.1"
	// (HTTP/1.x) or "h2", and "" when the source cannot tell.
	Protocol string
	// Workload is the server that handled the request; nil when it could not be told.
	Workload *Workload
}

// Workload names the server behind a request with label values (empty where
// not applicable): outside Kubernetes a service name and, for a server in a
// network namespace other than the host's, that namespace; in Kubernetes the
// pod's namespace, name and container. Values are interned and shared by
// pointer; a workload that is gone is retired and its series removed.
type Workload struct {
	ServiceName  string
	NetNS        string
	K8sNamespace string
	K8sPod       string
	K8sContainer string
	retired      atomic.Bool
}

// Retire marks the workload as gone: requests still carrying it are not
// counted any more, so its series, once deleted, stay deleted.
func (w *Workload) Retire() { w.retired.Store(true) }

// Retired reports whether Retire was called. A nil workload is never retired.
func (w *Workload) Retired() bool { return w != nil && w.retired.Load() }

// Server is the identity of one server process as its connections see it.
// It is resolved once, when the connection is first seen, and may become more
// precise while the connection lives (a pod the API server reports late).
type Server struct {
	w atomic.Pointer[Workload]
}

// NewServer returns a Server currently known as w.
func NewServer(w *Workload) *Server {
	s := &Server{}
	s.w.Store(w)
	return s
}

// Workload is the server's current workload (nil for a nil Server).
func (s *Server) Workload() *Workload {
	if s == nil {
		return nil
	}
	return s.w.Load()
}

// Set replaces the server's workload; requests starting later carry w.
func (s *Server) Set(w *Workload) { s.w.Store(w) }

// Values of Request.Protocol.
const (
	ProtocolHTTP1 = "http/1.1"
	ProtocolHTTP2 = "h2"
)

// EventSource produces kernel events until ctx is cancelled.
type EventSource interface {
	Run(ctx context.Context, handle func(*Event)) error
}

// RequestSource produces finished requests until ctx is cancelled.
type RequestSource interface {
	Run(ctx context.Context, handle func(*Request)) error
}
