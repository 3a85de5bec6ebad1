package metrics

import (
	"hash/fnv"
	"strconv"
	"strings"
)

// Label values taken from traffic (model names from request bodies, error
// types from logs) are bounded in length and character set, so no client can
// grow the exposition or the top-N tables by sending long or odd values.
const (
	maxModelLabel = 96
	maxErrorLabel = 64
)

// boundLabel returns s when it is at most limit bytes of letters, digits
// and ._:/@+=-~ (the characters of model names such as
// "meta-llama/Llama-3.1-8B-Instruct" or "qwen2.5:7b"); otherwise each other
// byte becomes '_' and, when s is too long, it is cut and ends in "~" and a
// hash of the whole value, so distinct long values stay distinct.
func boundLabel(s string, limit int) string {
	if len(s) <= limit && plainLabel(s) {
		return s
	}
	const hashLen = 9 // "~" + 8 hex digits
	keep := min(len(s), limit)
	if len(s) > limit {
		keep = limit - hashLen
	}
	var b strings.Builder
	b.Grow(limit)
	for i := 0; i < keep; i++ {
		if c := s[i]; labelByte(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	if len(s) > limit {
		h := fnv.New32a()
		_, _ = h.Write([]byte(s))
		b.WriteByte('~')
		hex := strconv.FormatUint(uint64(h.Sum32()), 16)
		b.WriteString(strings.Repeat("0", 8-len(hex)))
		b.WriteString(hex)
	}
	return b.String()
}

func plainLabel(s string) bool {
	for i := 0; i < len(s); i++ {
		if !labelByte(s[i]) {
			return false
		}
	}
	return true
}

func labelByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '.', '_', ':', '/', '@', '+', '=', '-', '~':
		return true
	}
	return false
}

// statusLabels holds the label value of every three-digit status, so that
// observing a request does not format one.
var statusLabels = func() [1000]string {
	var t [1000]string
	for i := 100; i < 1000; i++ {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func statusLabel(code int) string {
	if code < 100 || code > 999 {
		return ""
	}
	return statusLabels[code]
}

// grpcCodes are the names of the gRPC status codes (google.golang.org/grpc/codes).
var grpcCodes = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// grpcCode names a grpc-status; codes outside the standard ones are "other".
func grpcCode(code int) string {
	if code < 0 || code >= len(grpcCodes) {
		return "other"
	}
	return grpcCodes[code]
}

// grpcServerError reports whether a gRPC status is the server's failure (as
// OpenTelemetry counts them for servers), the analogue of an HTTP 5xx;
// other non-OK codes describe the call, like an HTTP 4xx.
func grpcServerError(code int) bool {
	switch code {
	case 2, 4, 12, 13, 14, 15: // UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS
		return true
	}
	return false
}
