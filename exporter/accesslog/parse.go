package accesslog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// Reasons a line is rejected; they label parse_errors_total, so the set is fixed.
const (
	reasonTooLong     = "too_long"
	reasonSyntax      = "syntax"
	reasonBadTime     = "bad_time"
	reasonBadStatus   = "bad_status"
	reasonBadDuration = "bad_duration"
	reasonBadNumber   = "bad_number"
	reasonBadJSON     = "bad_json"
	reasonMissing     = "missing_field"
)

var allReasons = []string{reasonTooLong, reasonSyntax, reasonBadTime, reasonBadStatus, reasonBadDuration, reasonBadNumber, reasonBadJSON, reasonMissing}

// parseError carries only a reason and the field it concerns, never line content.
type parseError struct {
	reason string
	field  string
}

func (e *parseError) Error() string { return e.reason + " (" + e.field + ")" }

func fail(reason, field string) error { return &parseError{reason: reason, field: field} }

// lineParser turns one log line into a request. Lines never outlive the call.
type lineParser interface {
	parse(line []byte, r *traffic.Request) error
}

// scanner walks the space-separated fields of nginx and Envoy lines.
type scanner struct {
	b []byte
}

func (s *scanner) skipSpaces() {
	for len(s.b) > 0 && s.b[0] == ' ' {
		s.b = s.b[1:]
	}
}

func (s *scanner) done() bool { s.skipSpaces(); return len(s.b) == 0 }

// token returns the next run of non-space bytes.
func (s *scanner) token() ([]byte, bool) {
	s.skipSpaces()
	if len(s.b) == 0 {
		return nil, false
	}
	i := bytes.IndexByte(s.b, ' ')
	if i < 0 {
		i = len(s.b)
	}
	t := s.b[:i]
	s.b = s.b[i:]
	return t, true
}

// delimited returns what lies between open and close; inside quotes a
// backslash escapes the next byte (nginx escape=default/json, Envoy).
func (s *scanner) delimited(open, close byte) ([]byte, bool) {
	s.skipSpaces()
	if len(s.b) == 0 || s.b[0] != open {
		return nil, false
	}
	for i := 1; i < len(s.b); i++ {
		switch s.b[i] {
		case '\\':
			i++
		case close:
			v := s.b[1:i]
			s.b = s.b[i+1:]
			return v, true
		}
	}
	return nil, false
}

func (s *scanner) quoted() ([]byte, bool) { return s.delimited('"', '"') }

// requestLine splits "METHOD target PROTOCOL". Lines that are not a request
// (nginx logs "-" or escaped garbage for a 400) keep an empty method and path:
// the server did answer them, so they still count.
func requestLine(b []byte, r *traffic.Request) {
	method, rest, ok := bytes.Cut(b, []byte{' '})
	if !ok || len(method) == 0 || len(method) > 16 || !isToken(method) {
		return
	}
	target, proto, _ := bytes.Cut(rest, []byte{' '})
	r.Method = string(method)
	r.Path = cleanPath(target)
	switch string(proto) {
	case "HTTP/1.1", "HTTP/1.0":
		r.Protocol = traffic.ProtocolHTTP1
	case "HTTP/2.0", "HTTP/2":
		r.Protocol = traffic.ProtocolHTTP2
	}
}

func isToken(b []byte) bool {
	for _, c := range b {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// cleanPath drops the query and, for absolute-form targets, scheme and host.
func cleanPath(target []byte) string {
	if i := bytes.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	if bytes.HasPrefix(target, []byte("http://")) || bytes.HasPrefix(target, []byte("https://")) {
		rest := target[bytes.Index(target, []byte("//"))+2:]
		if i := bytes.IndexByte(rest, '/'); i >= 0 {
			target = rest[i:]
		} else {
			target = []byte("/")
		}
	}
	return string(target)
}

func parseStatus(b []byte) (int, error) {
	n, err := strconv.Atoi(string(b))
	if err != nil || n < 0 || n > 999 {
		return 0, fail(reasonBadStatus, "status")
	}
	return n, nil
}

// parseSize reads a byte count; "-" means unknown (-1).
func parseSize(b []byte, field string) (int64, error) {
	if len(b) == 1 && b[0] == '-' {
		return -1, nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n < 0 {
		return 0, fail(reasonBadNumber, field)
	}
	return n, nil
}

// seconds converts a non-negative number of unit to a duration, rejecting
// NaN, infinities and values beyond a day (a corrupt field, not a request).
func seconds(v float64, unit time.Duration, field string) (time.Duration, error) {
	d := v * float64(unit)
	if math.IsNaN(v) || v < 0 || d > float64(24*time.Hour) {
		return 0, fail(reasonBadDuration, field)
	}
	return time.Duration(math.Round(d)), nil
}

func parseClient(b []byte) netip.Addr {
	// X-Forwarded-For lists the original client first.
	if i := bytes.IndexByte(b, ','); i >= 0 {
		b = b[:i]
	}
	b = bytes.TrimSpace(b)
	a, err := netip.ParseAddr(string(b))
	if err != nil {
		if ap, perr := netip.ParseAddrPort(string(b)); perr == nil {
			return ap.Addr().Unmap()
		}
		return netip.Addr{}
	}
	return a.Unmap()
}

const nginxTimeLayout = "02/Jan/2006:15:04:05 -0700"

// nginxParser reads the "autoglm" log_format: combined plus $request_time,
// optionally followed by $upstream_response_time and $request_length.
type nginxParser struct{ port uint16 }

func (p nginxParser) parse(line []byte, r *traffic.Request) error {
	s := scanner{b: line}
	addr, ok := s.token()
	if !ok {
		return fail(reasonSyntax, "remote_addr")
	}
	if _, ok := s.token(); !ok { // "-" (ident)
		return fail(reasonSyntax, "ident")
	}
	if _, ok := s.token(); !ok { // $remote_user
		return fail(reasonSyntax, "remote_user")
	}
	ts, ok := s.delimited('[', ']')
	if !ok {
		return fail(reasonSyntax, "time_local")
	}
	end, err := time.Parse(nginxTimeLayout, string(ts))
	if err != nil {
		return fail(reasonBadTime, "time_local")
	}
	req, ok := s.quoted()
	if !ok {
		return fail(reasonSyntax, "request")
	}
	st, ok := s.token()
	if !ok {
		return fail(reasonMissing, "status")
	}
	if r.Status, err = parseStatus(st); err != nil {
		return err
	}
	sent, ok := s.token()
	if !ok {
		return fail(reasonMissing, "body_bytes_sent")
	}
	if r.ResponseBodySize, err = parseSize(sent, "body_bytes_sent"); err != nil {
		return err
	}
	if _, ok := s.quoted(); !ok {
		return fail(reasonSyntax, "http_referer")
	}
	if _, ok := s.quoted(); !ok {
		return fail(reasonSyntax, "http_user_agent")
	}
	rt, ok := s.token()
	if !ok {
		return fail(reasonMissing, "request_time")
	}
	v, err := strconv.ParseFloat(string(rt), 64)
	if err != nil {
		return fail(reasonBadDuration, "request_time")
	}
	dur, err := seconds(v, time.Second, "request_time")
	if err != nil {
		return err
	}
	// Optional trailers: $upstream_response_time (may list several
	// upstreams as "0.1, 0.2" or "0.1 : 0.2", or be "-") then $request_length.
	r.RequestBodySize = -1
	var rest [][]byte
	for !s.done() {
		t, _ := s.token()
		rest = append(rest, t)
	}
	if n := len(rest); n > 0 {
		last := rest[n-1]
		if n > 1 || !bytes.ContainsAny(last, ".-,:") {
			if r.RequestBodySize, err = parseSize(last, "request_length"); err != nil {
				return err
			}
		}
	}
	requestLine(req, r)
	r.Client = parseClient(addr)
	r.End = end
	r.Start = end.Add(-dur)
	r.ServerPort = p.port
	return nil
}

// envoyParser reads Envoy's default access log format. %START_TIME% is when
// the request started, so End = Start + %DURATION%.
type envoyParser struct{ port uint16 }

func (p envoyParser) parse(line []byte, r *traffic.Request) error {
	s := scanner{b: line}
	ts, ok := s.delimited('[', ']')
	if !ok {
		return fail(reasonSyntax, "start_time")
	}
	start, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return fail(reasonBadTime, "start_time")
	}
	req, ok := s.quoted()
	if !ok {
		return fail(reasonSyntax, "request")
	}
	fields := [5][]byte{}
	names := [5]string{"response_code", "response_flags", "bytes_received", "bytes_sent", "duration"}
	for i := range fields {
		if fields[i], ok = s.token(); !ok {
			return fail(reasonMissing, names[i])
		}
	}
	if r.Status, err = parseStatus(fields[0]); err != nil {
		return err
	}
	if r.RequestBodySize, err = parseSize(fields[2], "bytes_received"); err != nil {
		return err
	}
	if r.ResponseBodySize, err = parseSize(fields[3], "bytes_sent"); err != nil {
		return err
	}
	ms, err := strconv.ParseInt(string(fields[4]), 10, 64)
	if err != nil {
		return fail(reasonBadDuration, "duration")
	}
	dur, err := seconds(float64(ms), time.Millisecond, "duration")
	if err != nil {
		return err
	}
	if r.Status == 0 {
		r.ErrorType = envoyErrorType(fields[1])
	}
	_, _ = s.token() // upstream service time
	if xff, ok := s.quoted(); ok {
		r.Client = parseClient(xff)
	}
	requestLine(req, r)
	r.Start = start
	r.End = start.Add(dur)
	r.ServerPort = p.port
	return nil
}

// envoyErrorType names why Envoy sent no response (code 0) from its flags,
// from a fixed set so the label stays bounded.
func envoyErrorType(flags []byte) string {
	first, _, _ := bytes.Cut(flags, []byte{','})
	switch string(first) {
	case "DC":
		return "client_disconnect"
	case "UT", "SI", "DT":
		return "timeout"
	case "UF", "UH", "URX":
		return "upstream_connect_failure"
	case "UC", "UR", "LR":
		return "connection_reset"
	}
	return "no_response"
}

// JSON field names (our side of Options.Fields).
const (
	fieldStatus        = "status"
	fieldDuration      = "duration"
	fieldPath          = "path"
	fieldRequest       = "request"
	fieldMethod        = "method"
	fieldModel         = "model"
	fieldClient        = "client"
	fieldTTFT          = "ttft"
	fieldBytesSent     = "bytes_sent"
	fieldRequestLength = "request_length"
	fieldInputTokens   = "input_tokens"
	fieldOutputTokens  = "output_tokens"
	fieldTime          = "time"
	fieldStartTime     = "start_time"
	fieldStreaming     = "streaming"
	fieldServerPort    = "server_port"
)

// fieldAliases are accepted for the exporter configuration's names.
var fieldAliases = map[string]string{"request_bytes": fieldRequestLength, "response_bytes": fieldBytesSent}

var jsonFields = []string{fieldStatus, fieldDuration, fieldPath, fieldRequest, fieldMethod, fieldModel, fieldClient,
	fieldTTFT, fieldBytesSent, fieldRequestLength, fieldInputTokens, fieldOutputTokens, fieldTime, fieldStartTime, fieldStreaming,
	fieldServerPort, "request_bytes", "response_bytes"}

// DefaultJSONFields match the nginx escape=json log_format in README.md.
func DefaultJSONFields() map[string]string {
	return map[string]string{
		fieldStatus: "status", fieldDuration: "request_time", fieldPath: "uri", fieldMethod: "method",
		fieldModel: "model", fieldClient: "remote_addr", fieldTTFT: "ttft", fieldBytesSent: "body_bytes_sent",
		fieldRequestLength: "request_length", fieldTime: "time_iso8601",
	}
}

// jsonKey is one mapped field: its key in the log object and its unit.
type jsonKey struct {
	key  string
	unit string
}

var durationUnits = map[string]time.Duration{"": time.Second, "s": time.Second, "ms": time.Millisecond, "us": time.Microsecond, "ns": time.Nanosecond}

var timeUnits = []string{"", "rfc3339", "unix", "unix_ms", "nginx"}

type jsonParser struct {
	keys map[string]jsonKey
	port uint16
	now  func() time.Time
}

// newJSONParser validates the mapping: our names must be known, units must
// fit the field, and status and duration must be mapped.
func newJSONParser(fields map[string]string, port uint16, now func() time.Time) (*jsonParser, error) {
	if len(fields) == 0 {
		fields = DefaultJSONFields()
	}
	p := &jsonParser{keys: map[string]jsonKey{}, port: port, now: now}
	for ours, theirs := range fields {
		if !slices.Contains(jsonFields, ours) {
			return nil, fmt.Errorf("json field mapping: unknown field %q (known: %s)", ours, strings.Join(jsonFields, ", "))
		}
		if canonical, ok := fieldAliases[ours]; ok {
			if _, both := fields[canonical]; both {
				return nil, fmt.Errorf("json field mapping: %q and %q name the same field, set one", ours, canonical)
			}
			ours = canonical
		}
		key, unit, _ := strings.Cut(theirs, ":")
		if key == "" {
			return nil, fmt.Errorf("json field mapping: %q maps to an empty key", ours)
		}
		switch ours {
		case fieldDuration, fieldTTFT:
			if _, ok := durationUnits[unit]; !ok {
				return nil, fmt.Errorf("json field mapping: %s unit %q: want s, ms, us or ns", ours, unit)
			}
		case fieldTime, fieldStartTime:
			if !slices.Contains(timeUnits, unit) {
				return nil, fmt.Errorf("json field mapping: %s format %q: want rfc3339, unix, unix_ms or nginx", ours, unit)
			}
		default:
			if unit != "" {
				return nil, fmt.Errorf("json field mapping: %s takes no unit, got %q", ours, unit)
			}
		}
		p.keys[ours] = jsonKey{key, unit}
	}
	for _, need := range []string{fieldStatus, fieldDuration} {
		if _, ok := p.keys[need]; !ok {
			return nil, fmt.Errorf("json field mapping: %q must be mapped", need)
		}
	}
	return p, nil
}

// lookup finds key in obj, then as a dotted path into nested objects.
func lookup(obj map[string]any, key string) (any, bool) {
	if v, ok := obj[key]; ok {
		return v, true
	}
	cur := obj
	parts := strings.Split(key, ".")
	for i, part := range parts {
		v, ok := cur[part]
		if !ok {
			return nil, false
		}
		if i == len(parts)-1 {
			return v, true
		}
		if cur, ok = v.(map[string]any); !ok {
			return nil, false
		}
	}
	return nil, false
}

// value returns the mapped field, treating null, "" and "-" as absent.
func (p *jsonParser) value(obj map[string]any, field string) (any, jsonKey, bool) {
	k, ok := p.keys[field]
	if !ok {
		return nil, k, false
	}
	v, ok := lookup(obj, k.key)
	if !ok || v == nil {
		return nil, k, false
	}
	if s, isStr := v.(string); isStr && (s == "" || s == "-") {
		return nil, k, false
	}
	return v, k, true
}

func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case string:
		// nginx logs several upstream values as "0.1, 0.2"; the first is ours.
		x, _, _ = strings.Cut(x, ",")
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	case bool:
		return 0, false
	}
	return 0, false
}

func (p *jsonParser) number(obj map[string]any, field string) (float64, bool, error) {
	v, _, ok := p.value(obj, field)
	if !ok {
		return 0, false, nil
	}
	f, ok := asFloat(v)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false, fail(reasonBadNumber, field)
	}
	return f, true, nil
}

func (p *jsonParser) str(obj map[string]any, field string) string {
	v, _, ok := p.value(obj, field)
	if !ok {
		return ""
	}
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return ""
}

func (p *jsonParser) duration(obj map[string]any, field string) (time.Duration, bool, error) {
	v, k, ok := p.value(obj, field)
	if !ok {
		return 0, false, nil
	}
	f, ok := asFloat(v)
	if !ok {
		return 0, false, fail(reasonBadDuration, field)
	}
	d, err := seconds(f, durationUnits[k.unit], field)
	return d, err == nil, err
}

func (p *jsonParser) timestamp(obj map[string]any, field string) (time.Time, bool, error) {
	v, k, ok := p.value(obj, field)
	if !ok {
		return time.Time{}, false, nil
	}
	if s, isStr := v.(string); isStr && k.unit != "unix" && k.unit != "unix_ms" {
		for _, layout := range []string{time.RFC3339Nano, nginxTimeLayout} {
			if (k.unit == "nginx") != (layout == nginxTimeLayout) && k.unit != "" {
				continue
			}
			if t, err := time.Parse(layout, s); err == nil {
				return t, true, nil
			}
		}
		return time.Time{}, false, fail(reasonBadTime, field)
	}
	f, ok := asFloat(v)
	if !ok || f < 0 || f > 1e13 || (k.unit != "unix_ms" && f > 1e11) {
		return time.Time{}, false, fail(reasonBadTime, field)
	}
	if k.unit == "unix_ms" {
		f /= 1000
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9))), true, nil
}

func (p *jsonParser) parse(line []byte, r *traffic.Request) error {
	r.ServerPort = p.port
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return fail(reasonBadJSON, "line")
	}
	st, ok, err := p.number(obj, fieldStatus)
	if err != nil || (ok && (st < 0 || st > 999 || st != math.Trunc(st))) {
		return fail(reasonBadStatus, fieldStatus)
	}
	if !ok {
		return fail(reasonMissing, fieldStatus)
	}
	r.Status = int(st)
	dur, ok, err := p.duration(obj, fieldDuration)
	if err != nil {
		return err
	}
	if !ok {
		return fail(reasonMissing, fieldDuration)
	}
	end, hasEnd, err := p.timestamp(obj, fieldTime)
	if err != nil {
		return err
	}
	start, hasStart, err := p.timestamp(obj, fieldStartTime)
	if err != nil {
		return err
	}
	switch {
	case hasEnd:
		r.End, r.Start = end, end.Add(-dur)
	case hasStart:
		r.Start, r.End = start, start.Add(dur)
	default:
		r.End = p.now()
		r.Start = r.End.Add(-dur)
	}
	if ttft, ok, err := p.duration(obj, fieldTTFT); err != nil {
		return err
	} else if ok {
		r.FirstToken = r.Start.Add(ttft)
		r.Streaming = true
	}
	if v, _, ok := p.value(obj, fieldStreaming); ok {
		switch x := v.(type) {
		case bool:
			r.Streaming = x
		case string:
			r.Streaming = strings.Contains(x, "event-stream") || x == "true"
		}
	}
	r.RequestBodySize, r.ResponseBodySize, r.InputTokens, r.OutputTokens = -1, -1, -1, -1
	for _, f := range []struct {
		field string
		dst   *int64
	}{{fieldBytesSent, &r.ResponseBodySize}, {fieldRequestLength, &r.RequestBodySize},
		{fieldInputTokens, &r.InputTokens}, {fieldOutputTokens, &r.OutputTokens}} {
		n, ok, err := p.number(obj, f.field)
		if err != nil {
			return err
		}
		if ok {
			if n < 0 || n > 1<<53 {
				return fail(reasonBadNumber, f.field)
			}
			*f.dst = int64(n)
		}
	}
	if req := p.str(obj, fieldRequest); req != "" {
		requestLine([]byte(req), r)
	}
	if m := p.str(obj, fieldMethod); m != "" {
		r.Method = m
	}
	if path := p.str(obj, fieldPath); path != "" {
		r.Path = cleanPath([]byte(path))
	}
	r.Model = p.str(obj, fieldModel)
	if port, ok, err := p.number(obj, fieldServerPort); err != nil {
		return err
	} else if ok {
		if port < 1 || port > 65535 || port != math.Trunc(port) {
			return fail(reasonBadNumber, fieldServerPort)
		}
		r.ServerPort = uint16(port)
	}
	if c := p.str(obj, fieldClient); c != "" {
		r.Client = parseClient([]byte(c))
	}
	return nil
}
