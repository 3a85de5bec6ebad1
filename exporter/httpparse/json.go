package httpparse

import (
	"bytes"
	"encoding/json"
)

// The JSON readers here never fail and never allocate on the common path:
// they read what they need from possibly truncated input and give up
// quietly on anything else, because bodies are only ever partly captured.

// walkObject calls fn for each top-level member of the JSON object starting
// at b[i] (after whitespace) with the raw key and value bytes. It stops when
// fn returns false or the (possibly truncated) input ends, and never fails.
func walkObject(b []byte, i int, fn func(key, val []byte) bool) {
	i = skipWS(b, i)
	if i >= len(b) || b[i] != '{' {
		return
	}
	i++
	for {
		i = skipWS(b, i)
		if i >= len(b) || b[i] == '}' {
			return
		}
		if b[i] == ',' {
			i++
			continue
		}
		if b[i] != '"' {
			return
		}
		end := skipString(b, i)
		if end < 0 {
			return
		}
		key := b[i+1 : end-1]
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return
		}
		i = skipWS(b, i+1)
		vend := skipValue(b, i)
		if vend < 0 {
			return
		}
		if !fn(key, b[i:vend]) {
			return
		}
		i = vend
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipString returns the offset after the string starting at b[i] (a quote), or -1 if it is cut off.
func skipString(b []byte, i int) int {
	j := i + 1
	for j < len(b) {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			return -1
		}
		q += j
		if bytes.IndexByte(b[j:q], '\\') < 0 {
			return q + 1
		}
		// An escape lies before the quote: step over it and look again.
		for j < q {
			if b[j] == '\\' {
				j += 2
				if j > q {
					break
				}
				continue
			}
			j++
		}
		if j == q {
			return q + 1
		}
	}
	return -1
}

// skipValue returns the offset after the JSON value starting at b[i], or -1 if it is cut off.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j)
				if j < 0 {
					return -1
				}
				j--
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	for j := i; j < len(b); j++ {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return j
		}
	}
	return -1
}

// topLevelString returns the raw bytes of the string value of a top-level
// key of the JSON object that b starts with, found even when the key follows
// large members such as "messages", as long as it lies within b. The result
// aliases b; escaped is set when it holds backslash escapes.
func topLevelString(b []byte, key string) (raw []byte, escaped, found bool) {
	walkObject(b, 0, func(k, v []byte) bool {
		if string(k) != key {
			return true
		}
		if len(v) < 2 || v[0] != '"' {
			return false
		}
		raw, found = v[1:len(v)-1], true
		escaped = bytes.IndexByte(raw, '\\') >= 0
		return false
	})
	return raw, escaped, found
}

// unescape decodes a JSON string body with escapes (rare in model names).
func unescape(raw []byte) ([]byte, bool) {
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return nil, false
	}
	return []byte(s), true
}

// tokenUsage is what a response's "usage" object reports; -1 where absent.
type tokenUsage struct {
	in, out, cached, reasoning int64
}

func noUsage() tokenUsage { return tokenUsage{-1, -1, -1, -1} }

func (u tokenUsage) any() bool { return u.in >= 0 || u.out >= 0 }

// usage finds the last "usage" object in b and reads its token counts:
// prompt/completion (OpenAI chat and completions), input/output (Responses
// API, Anthropic), and the cached and reasoning details of either form.
func usage(b []byte) (tokenUsage, bool) {
	u := noUsage()
	// The last occurrence, found forwards: vectorised, unlike LastIndex.
	i := -1
	for off := 0; ; {
		j := bytes.Index(b[off:], usageKey)
		if j < 0 {
			break
		}
		i = off + j
		off = i + len(usageKey)
	}
	if i < 0 {
		return u, false
	}
	i = skipWS(b, i+len(`"usage"`))
	if i >= len(b) || b[i] != ':' {
		return u, false
	}
	walkObject(b, i+1, func(k, v []byte) bool {
		switch string(k) {
		case "prompt_tokens", "input_tokens":
			u.in = parseCount(v)
		case "completion_tokens", "output_tokens":
			u.out = parseCount(v)
		case "prompt_tokens_details", "input_tokens_details":
			if n := memberCount(v, "cached_tokens"); n >= 0 {
				u.cached = n
			}
		case "completion_tokens_details", "output_tokens_details":
			if n := memberCount(v, "reasoning_tokens"); n >= 0 {
				u.reasoning = n
			}
		}
		return true
	})
	return u, u.any()
}

// memberCount reads a non-negative integer member of the object in v, -1 if absent.
func memberCount(v []byte, key string) int64 {
	n := int64(-1)
	walkObject(v, 0, func(k, val []byte) bool {
		if string(k) == key {
			n = parseCount(val)
			return false
		}
		return true
	})
	return n
}

// parseCount reads a non-negative decimal integer, -1 if v is anything else.
func parseCount(v []byte) int64 {
	if len(v) == 0 || len(v) > 15 {
		return -1
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// modelScan finds the top-level "model" of a JSON request body as its bytes
// arrive, across any number of reads, without buffering the body: strings
// (prompts) are skipped with vectorised searches and only the model's value
// is kept, in a fixed array. It stops at the model or after limit bytes.
type modelScan struct {
	st      scanState
	depth   int32 // nesting inside a top-level member's value
	seen    int32 // body bytes scanned
	keyPos  int8  // bytes of the current top-level key matching "model", -1 once it differs
	isModel bool  // the current top-level member is "model"
	escaped bool  // the model value holds escapes
	n       uint8 // bytes of val used
	val     [maxModel]byte
}

type scanState uint8

const (
	msStart     scanState = iota // before the opening brace
	msMember                     // expecting a key, a comma or the closing brace
	msKey                        // inside a top-level key
	msKeyEsc                     // after a backslash inside a key
	msColon                      // after a key
	msValue                      // expecting a top-level value
	msModel                      // inside the model's string value
	msModelEsc                   // after a backslash inside the model's value
	msString                     // inside a string that is skipped
	msStringEsc                  // after a backslash inside a skipped string
	msNested                     // inside an object or array value, outside strings
	msScalar                     // inside a number, literal
	msDone                       // found, or gave up
)

const modelKey = "model"

func (m *modelScan) reset() {
	m.st, m.depth, m.seen, m.keyPos, m.isModel, m.escaped, m.n = msStart, 0, 0, 0, false, false, 0
}

// done reports whether scanning is over (model found or impossible).
func (m *modelScan) done() bool { return m.st == msDone }

// found returns the model's raw value, if one was found.
func (m *modelScan) found() ([]byte, bool, bool) {
	if m.isModel && m.st == msDone && m.keyPos == int8(len(modelKey)) {
		return m.val[:m.n], m.escaped, true
	}
	return nil, false, false
}

// stop ends the scan without a model (bytes were lost or the limit was reached).
func (m *modelScan) stop() {
	if m.st != msDone {
		m.st, m.isModel = msDone, false
	}
}

// feed scans the next body bytes; limit bounds the bytes scanned in all.
func (m *modelScan) feed(b []byte, limit int) {
	if m.st == msDone {
		return
	}
	if rest := limit - int(m.seen); len(b) > rest {
		b = b[:max(rest, 0)]
		defer m.stop()
	}
	m.seen += int32(len(b))
	i := 0
	for i < len(b) && m.st != msDone {
		c := b[i]
		switch m.st {
		case msStart:
			switch c {
			case ' ', '\t', '\r', '\n':
			case '{':
				m.st = msMember
			default:
				m.stop()
			}
			i++
		case msMember:
			switch c {
			case ' ', '\t', '\r', '\n', ',':
			case '"':
				m.st, m.keyPos = msKey, 0
			default: // '}' or not JSON: no model at the top level
				m.stop()
			}
			i++
		case msKey:
			j := quoteOrEscape(b[i:])
			end := len(b)
			if j >= 0 {
				end = i + j
			}
			m.matchKey(b[i:end])
			if j < 0 {
				return
			}
			if b[end] == '\\' {
				m.keyPos = -1
				m.st = msKeyEsc
			} else {
				m.st = msColon
			}
			i = end + 1
		case msKeyEsc:
			m.st = msKey
			i++
		case msColon:
			switch c {
			case ':':
				m.isModel = m.keyPos == int8(len(modelKey))
				m.st = msValue
			case ' ', '\t', '\r', '\n':
			default:
				m.stop()
			}
			i++
		case msValue:
			switch c {
			case ' ', '\t', '\r', '\n':
			case '"':
				if m.isModel {
					m.st, m.n = msModel, 0
				} else {
					m.st, m.depth = msString, 0
				}
			case '{', '[':
				m.st, m.depth = msNested, 1
			default:
				m.st = msScalar
			}
			if m.isModel && m.st != msModel && m.st != msValue {
				m.isModel = false // "model": null or a number is no model
			}
			i++
		case msModel:
			j := quoteOrEscape(b[i:])
			end := len(b)
			if j >= 0 {
				end = i + j
			}
			m.keep(b[i:end])
			if j < 0 {
				return
			}
			if b[end] == '\\' {
				m.escaped = true
				m.keep(b[end : end+1])
				m.st = msModelEsc
			} else {
				m.st = msDone
			}
			i = end + 1
		case msModelEsc:
			m.keep(b[i : i+1])
			m.st = msModel
			i++
		case msString:
			j := quoteOrEscape(b[i:])
			if j < 0 {
				return
			}
			if b[i+j] == '\\' {
				m.st = msStringEsc
			} else if m.depth > 0 {
				m.st = msNested
			} else {
				m.st = msMember
			}
			i += j + 1
		case msStringEsc:
			m.st = msString
			i++
		case msNested:
			switch c {
			case '"':
				m.st = msString
			case '{', '[':
				m.depth++
			case '}', ']':
				m.depth--
				if m.depth == 0 {
					m.st = msMember
				}
			}
			i++
		case msScalar:
			switch c {
			case ',':
				m.st = msMember
			case '}':
				m.stop()
			}
			i++
		}
	}
}

// quoteOrEscape returns the offset of the first '"' or '\\' in b, or -1,
// with two vectorised searches instead of a byte loop (prompts are long).
func quoteOrEscape(b []byte) int {
	q := bytes.IndexByte(b, '"')
	in := b
	if q >= 0 {
		in = b[:q]
	}
	if e := bytes.IndexByte(in, '\\'); e >= 0 {
		return e
	}
	return q
}

func (m *modelScan) matchKey(part []byte) {
	if m.keyPos < 0 {
		return
	}
	k := int(m.keyPos)
	if k+len(part) > len(modelKey) || string(part) != modelKey[k:k+len(part)] {
		m.keyPos = -1
		return
	}
	m.keyPos += int8(len(part))
}

func (m *modelScan) keep(part []byte) {
	n := copy(m.val[m.n:], part)
	m.n += uint8(n)
}
