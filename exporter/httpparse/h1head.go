package httpparse

import (
	"bytes"
)

// Bounds on what a parsed field may hold, so hostile input cannot grow labels or memory.
const (
	maxMethod   = 20
	maxPath     = 256
	maxModel    = 128
	maxInterned = 1024
)

// checkStart reports whether b can be the beginning of an HTTP/1.x request
// (or response) start line: 0 when it is, or may be once more bytes arrive.
func checkStart(b []byte, request bool) Reason {
	line := b
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		line = b[:i+1]
	}
	if looksBinary(line) || request && bytes.HasPrefix(line, []byte("PRI * HTTP/2")) {
		return NotHTTP
	}
	if request {
		if !requestLinePrefix(line) {
			return BadRequestLine
		}
		return 0
	}
	if !statusLinePrefix(line) {
		return BadStatusLine
	}
	return 0
}

// looksBinary spots TLS records and other binary protocols: HTTP start lines are printable.
func looksBinary(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\r' && c != '\n' || c == 0x7f {
			return true
		}
	}
	return false
}

// requestLinePrefix reports whether line is consistent with "METHOD SP target SP HTTP/1.x CRLF" so far.
func requestLinePrefix(line []byte) bool {
	i := 0
	for i < len(line) && line[i] != ' ' {
		c := line[i]
		if !(c >= 'A' && c <= 'Z' || c == '-' || c == '_') || i >= maxMethod {
			return false
		}
		i++
	}
	if i == len(line) {
		return true
	}
	if i == 0 {
		return false
	}
	i++ // SP
	j := i
	for i < len(line) && line[i] != ' ' {
		if line[i] <= ' ' || line[i] == 0x7f {
			return false
		}
		i++
	}
	if i == len(line) {
		return true
	}
	if i == j {
		return false
	}
	return versionPrefix(line[i+1:], true)
}

// versionPrefix checks "HTTP/1.x" followed by the end of the line (request) or SP (status).
func versionPrefix(b []byte, request bool) bool {
	const v = "HTTP/1."
	n := min(len(b), len(v))
	if string(b[:n]) != v[:n] {
		return false
	}
	if len(b) <= len(v) {
		return true
	}
	if b[len(v)] < '0' || b[len(v)] > '9' {
		return false
	}
	rest := b[len(v)+1:]
	if len(rest) == 0 {
		return true
	}
	if request {
		return rest[0] == '\n' || rest[0] == '\r' && (len(rest) == 1 || rest[1] == '\n')
	}
	return rest[0] == ' '
}

// statusLinePrefix reports whether line is consistent with "HTTP/1.x SP 3DIGIT ..." so far.
func statusLinePrefix(line []byte) bool {
	if len(line) <= 9 {
		return versionPrefix(line, false)
	}
	if !versionPrefix(line[:9], false) {
		return false
	}
	for k := 9; k < min(len(line), 12); k++ {
		if line[k] < '0' || line[k] > '9' {
			return false
		}
	}
	return len(line) <= 12 || line[12] == ' ' || line[12] == '\r' || line[12] == '\n'
}

var methods = [...]string{"GET ", "POST ", "PUT ", "DELETE ", "HEAD ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "}

// findStart returns the offset of the first line in data that starts a
// request (or response), or -1. Only line starts are considered.
func findStart(data []byte, request bool) int {
	for p := 0; p < len(data); {
		if ok := startsMessage(data[p:], request); ok {
			return p
		}
		i := bytes.IndexByte(data[p:], '\n')
		if i < 0 {
			return -1
		}
		p += i + 1
	}
	return -1
}

func startsMessage(b []byte, request bool) bool {
	line := b
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		line = b[:i+1]
	}
	if !request {
		return len(line) >= 9 && statusLinePrefix(line)
	}
	for _, m := range methods {
		if bytes.HasPrefix(line, []byte(m)) {
			return requestLinePrefix(line)
		}
	}
	return false
}

// headerEnd returns the offset just past the empty line ending a header block, or 0.
func headerEnd(b []byte, from int) int {
	for from < len(b) {
		i := bytes.IndexByte(b[from:], '\n')
		if i < 0 {
			return 0
		}
		i += from
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
		from = i + 1
	}
	return 0
}

// head is what the parser keeps from a start line and headers.
type head struct {
	method, path string
	status       int
	length       int64
	hasLength    bool
	chunked      bool
	kind         contentKind
	upgradeH2C   bool // "Upgrade: h2c"
}

// parseHead parses a complete header block (start line included).
func (p *Parser) parseHead(block []byte, request bool) (head, Reason) {
	var h head
	bad := BadStatusLine
	if request {
		bad = BadRequestLine
	}
	i := bytes.IndexByte(block, '\n')
	if i < 0 {
		return h, bad
	}
	first := bytes.TrimSuffix(block[:i], []byte("\r"))
	rest := block[i+1:]
	if request {
		m, target, ok := bytes.Cut(first, []byte(" "))
		if !ok {
			return h, bad
		}
		target, _, _ = bytes.Cut(target, []byte(" "))
		h.method = p.intern(m, maxMethod)
		h.path = p.intern(requestPath(target), maxPath)
	} else {
		if len(first) < 12 {
			return h, bad
		}
		st := parseCount(first[9:12])
		if st < 100 {
			return h, bad
		}
		h.status = int(st)
	}
	for len(rest) > 0 {
		j := bytes.IndexByte(rest, '\n')
		if j < 0 {
			break
		}
		line := bytes.TrimSuffix(rest[:j], []byte("\r"))
		rest = rest[j+1:]
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // obsolete line folding: a continuation of a header we do not read
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 {
			return h, BadHeader
		}
		// Only four headers matter; their lengths tell them apart before any comparison.
		switch len(name) {
		case len("content-length"):
			if !asciiEqualFold(name, "content-length") {
				continue
			}
			n, ok := parseLength(bytes.TrimSpace(value))
			if !ok || h.hasLength && n != h.length {
				return h, BadHeader
			}
			h.length, h.hasLength = n, true
		case len("transfer-encoding"):
			if !asciiEqualFold(name, "transfer-encoding") {
				continue
			}
			last := value[bytes.LastIndexByte(value, ',')+1:]
			h.chunked = asciiEqualFold(bytes.TrimSpace(last), "chunked")
		case len("content-type"):
			if !request && asciiEqualFold(name, "content-type") {
				h.kind = contentKindOf(bytes.TrimSpace(value))
			}
		case len("upgrade"):
			if !request && asciiEqualFold(name, "upgrade") {
				h.upgradeH2C = asciiEqualFold(bytes.TrimSpace(value), "h2c")
			}
		}
	}
	if h.chunked {
		h.hasLength, h.length = false, 0
	}
	return h, 0
}

func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// requestPath strips the scheme and authority of an absolute-form target, the query and the fragment.
func requestPath(target []byte) []byte {
	if i := bytes.Index(target, []byte("://")); i > 0 && target[0] != '/' {
		target = target[i+3:]
		j := bytes.IndexByte(target, '/')
		if j < 0 {
			return []byte("/")
		}
		target = target[j:]
	}
	if i := bytes.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	return target
}

// contentKindOf tells how a response body of this content type is scanned.
func contentKindOf(ct []byte) contentKind {
	const sse = "text/event-stream"
	switch {
	case len(ct) >= len(sse) && asciiEqualFold(ct[:len(sse)], sse):
		return contentSSE
	case isGRPC(ct):
		return contentGRPC
	case containsFold(ct, "json"):
		return contentJSON
	}
	return contentOther
}

// asciiEqualFold compares ASCII case-insensitively without allocating.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

// containsFold reports whether b holds s (lower case) in any case.
func containsFold(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if lower(b[i]) == s[0] && asciiEqualFold(b[i:i+len(s)], s) {
			return true
		}
	}
	return false
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// internString is intern for a string (HTTP/2 header fields).
func (p *Parser) internString(s string, limit int) string {
	if len(s) > limit {
		s = s[:limit]
	}
	if v, ok := p.strings[s]; ok {
		return v
	}
	if len(p.strings) < maxInterned {
		p.strings[s] = s
	}
	return s
}

// intern returns b as a string, reusing earlier strings so steady traffic does not allocate.
func (p *Parser) intern(b []byte, limit int) string {
	if len(b) > limit {
		b = b[:limit]
	}
	if s, ok := p.strings[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(p.strings) < maxInterned {
		p.strings[s] = s
	}
	return s
}
