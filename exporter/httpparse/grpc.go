package httpparse

import (
	"bytes"
	"time"
)

// gRPC over HTTP/2: the request's :path is the method ("/pkg.Service/Method"),
// bodies are length-prefixed messages, and the outcome is the grpc-status
// trailer (or header, for a trailers-only answer).

// grpcMessages counts the length-prefixed messages of a gRPC body as DATA
// frames arrive, to tell a streamed answer (more than one message) from a
// unary one and to time its first message.
type grpcMessages struct {
	count     int64
	first     time.Time
	hdr       uint8  // prefix bytes of the current message read so far
	length    uint32 // length of the current message, from its prefix
	remaining uint32 // message bytes still to come
	lost      bool   // bytes were not captured: message boundaries are unknown
	prefix    [5]byte
}

func (g *grpcMessages) feed(b []byte, t time.Time) {
	if g.lost {
		return
	}
	for len(b) > 0 {
		if g.remaining > 0 {
			n := min(uint32(len(b)), g.remaining)
			g.remaining -= n
			b = b[n:]
			continue
		}
		n := copy(g.prefix[g.hdr:], b)
		g.hdr += uint8(n)
		b = b[n:]
		if g.hdr < 5 {
			return
		}
		g.hdr = 0
		g.length = uint32(g.prefix[1])<<24 | uint32(g.prefix[2])<<16 | uint32(g.prefix[3])<<8 | uint32(g.prefix[4])
		g.remaining = g.length
		if g.count == 0 {
			g.first = t
		}
		g.count++
	}
}

// isGRPC reports whether a content-type is gRPC ("application/grpc", "+proto", ...).
func isGRPC(ct []byte) bool {
	const g = "application/grpc"
	return len(ct) >= len(g) && asciiEqualFold(ct[:len(g)], g) && (len(ct) == len(g) || ct[len(g)] == '+' || ct[len(g)] == ';')
}

// parseGRPCStatus reads a grpc-status value, -1 if it is not a number.
func parseGRPCStatus(v []byte) int {
	v = bytes.TrimSpace(v)
	n := parseCount(v)
	if n < 0 || n > 1<<16 {
		return -1
	}
	return int(n)
}
