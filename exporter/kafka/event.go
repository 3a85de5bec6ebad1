package kafka

import (
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/open-autoglm/autoglm-monitor/exporter/metrics"
	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// SchemaVersion is the schema_version of every event this package writes;
// schema/request-event.v1.json describes it. Fields may be added within a
// version; renaming, removing or retyping one makes a new version.
const SchemaVersion = 1

// Source says which capture produced the requests and so which fields it can know.
type Source struct {
	// Name is the event's source field: "ebpf" or "accesslog".
	Name string
	// KnowsStreaming is set when Request.Streaming false means "not a stream"
	// rather than "not known" (an access log line rarely says).
	KnowsStreaming bool
}

// The two capture sources.
var (
	SourceEBPF      = Source{Name: "ebpf", KnowsStreaming: true}
	SourceAccessLog = Source{Name: "accesslog"}
)

// Encoder turns finished requests into JSON events. It keeps no reference
// to the request and allocates nothing once its buffers have grown; it is
// not safe for concurrent use (the producer goroutine owns it).
type Encoder struct {
	routes *metrics.Router
	source Source
	host   string
	// full keeps client addresses whole; otherwise they become networks of v4/v6 bits.
	full   bool
	v4, v6 int
	// idPrefix + seq make event_id unique per exporter run.
	idPrefix string
	seq      uint64
	// sec and secText cache the "2006-01-02T15:04:05" of the last second formatted.
	sec     int64
	secText [19]byte
}

// EncoderOptions configure an Encoder.
type EncoderOptions struct {
	Endpoints []string
	Source    Source
	// Host is the event's host_name (the node the exporter runs on).
	Host string
	// FullClient keeps whole client addresses; else PrefixV4/PrefixV6 mask them.
	FullClient         bool
	PrefixV4, PrefixV6 int
	// RunID distinguishes this exporter run in event_id.
	RunID string
}

// NewEncoder returns an Encoder.
func NewEncoder(o EncoderOptions) *Encoder {
	return &Encoder{
		routes: metrics.NewRouter(o.Endpoints), source: o.Source, host: o.Host,
		full: o.FullClient, v4: o.PrefixV4, v6: o.PrefixV6,
		idPrefix: o.RunID + "-", sec: -1,
	}
}

// Route is the http_route of a request, as the metrics label it.
func (e *Encoder) Route(r *traffic.Request) string { return e.routes.Route(r.Path) }

// AppendClient appends the client address as the event carries it (an
// address, or a network in CIDR form when masked); nothing when unknown.
func (e *Encoder) AppendClient(dst []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return dst
	}
	a = a.Unmap()
	if e.full {
		return a.AppendTo(dst)
	}
	bits := e.v6
	if a.Is4() {
		bits = e.v4
	}
	if bits >= a.BitLen() {
		return a.AppendTo(dst)
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return a.AppendTo(dst)
	}
	dst = p.Addr().AppendTo(dst)
	dst = append(dst, '/')
	return strconv.AppendInt(dst, int64(bits), 10)
}

// Append appends the JSON event of r (one object, no newline). Fields the
// source does not know are left out rather than written as zero; nothing
// of the request or response bodies is ever written.
func (e *Encoder) Append(dst []byte, r *traffic.Request) []byte {
	e.seq++
	dst = append(dst, `{"schema_version":`...)
	dst = strconv.AppendInt(dst, SchemaVersion, 10)
	dst = append(dst, `,"event_id":"`...)
	dst = append(dst, e.idPrefix...)
	dst = strconv.AppendUint(dst, e.seq, 10)
	dst = append(dst, `","source":"`...)
	dst = append(dst, e.source.Name...)
	dst = append(dst, '"')
	if e.host != "" {
		dst = appendKey(dst, "host_name")
		dst = appendString(dst, e.host)
	}
	dst = appendKey(dst, "start_time")
	dst = e.appendTime(dst, r.Start)
	dst = appendKey(dst, "end_time")
	dst = e.appendTime(dst, r.End)
	dst = appendKey(dst, "duration_seconds")
	dst = appendSeconds(dst, r.End.Sub(r.Start))
	if !r.FirstByte.IsZero() {
		dst = appendKey(dst, "ttfb_seconds")
		dst = appendSeconds(dst, r.FirstByte.Sub(r.Start))
	}
	if !r.FirstToken.IsZero() {
		dst = appendKey(dst, "ttft_seconds")
		dst = appendSeconds(dst, r.FirstToken.Sub(r.Start))
		if r.Streaming {
			dst = appendKey(dst, "stream_duration_seconds")
			dst = appendSeconds(dst, r.End.Sub(r.FirstToken))
		}
	}
	dst = appendKey(dst, sli.LabelMethod)
	dst = appendString(dst, metrics.Method(r.Method))
	dst = appendKey(dst, sli.LabelRoute)
	dst = appendString(dst, e.routes.Route(r.Path))
	if r.Status > 0 {
		dst = appendKey(dst, sli.LabelStatus)
		dst = strconv.AppendInt(dst, int64(r.Status), 10)
	}
	// The metrics' error_type: the request's own error, or the status of a
	// server error (HTTP 5xx, gRPC INTERNAL, UNAVAILABLE, ...).
	dst = appendOptional(dst, sli.LabelErrorType, metrics.ErrorType(r))
	if r.ServerPort != 0 {
		dst = appendKey(dst, sli.LabelPort)
		dst = strconv.AppendUint(dst, uint64(r.ServerPort), 10)
	}
	dst = appendOptional(dst, "network_protocol", r.Protocol)
	if r.GRPC {
		dst = appendKey(dst, "grpc")
		dst = append(dst, "true"...)
		if r.GRPCStatus >= 0 {
			dst = appendKey(dst, sli.LabelGRPCStatus)
			dst = appendString(dst, metrics.GRPCCode(r.GRPCStatus))
		}
	}
	if op := metrics.Operation(r); op != "" {
		dst = appendKey(dst, sli.LabelOperation)
		dst = appendString(dst, op)
	}
	if r.Model != "" {
		dst = appendKey(dst, sli.LabelModel)
		dst = appendString(dst, r.Model)
	}
	if r.Streaming || e.source.KnowsStreaming {
		dst = appendKey(dst, "streaming")
		dst = strconv.AppendBool(dst, r.Streaming)
	}
	if r.RequestBodySize >= 0 {
		dst = appendKey(dst, "request_body_bytes")
		dst = strconv.AppendInt(dst, r.RequestBodySize, 10)
	}
	if r.ResponseBodySize >= 0 {
		dst = appendKey(dst, "response_body_bytes")
		dst = strconv.AppendInt(dst, r.ResponseBodySize, 10)
	}
	if r.InputTokens >= 0 {
		dst = appendKey(dst, "input_tokens")
		dst = strconv.AppendInt(dst, r.InputTokens, 10)
	}
	if r.OutputTokens >= 0 {
		dst = appendKey(dst, "output_tokens")
		dst = strconv.AppendInt(dst, r.OutputTokens, 10)
		dst = appendKey(dst, "output_tokens_estimated")
		dst = strconv.AppendBool(dst, r.OutputTokensEstimated)
	}
	// Zero is also what a response without usage details gives: absent then.
	if r.CachedTokens > 0 {
		dst = appendKey(dst, "cached_input_tokens")
		dst = strconv.AppendInt(dst, r.CachedTokens, 10)
	}
	if r.ReasoningTokens > 0 {
		dst = appendKey(dst, "reasoning_output_tokens")
		dst = strconv.AppendInt(dst, r.ReasoningTokens, 10)
	}
	if r.Client.IsValid() {
		dst = appendKey(dst, sli.LabelClient)
		dst = append(dst, '"')
		dst = e.AppendClient(dst, r.Client)
		dst = append(dst, '"')
	}
	if w := r.Workload; w != nil {
		dst = appendOptional(dst, sli.LabelServiceName, w.ServiceName)
		dst = appendOptional(dst, sli.LabelNetNS, w.NetNS)
		dst = appendOptional(dst, sli.LabelK8sNamespace, w.K8sNamespace)
		dst = appendOptional(dst, sli.LabelK8sPod, w.K8sPod)
		dst = appendOptional(dst, sli.LabelK8sContainer, w.K8sContainer)
	}
	return append(dst, '}')
}

// appendOptional writes a string field unless it is empty (not applicable).
func appendOptional(dst []byte, k, v string) []byte {
	if v == "" {
		return dst
	}
	return appendString(appendKey(dst, k), v)
}

func appendKey(dst []byte, k string) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, k...)
	return append(dst, '"', ':')
}

// appendTime writes t in UTC as RFC 3339 with milliseconds ("…T12:13:14.123Z"),
// the form Flink's JSON format reads as TIMESTAMP_LTZ(3) with
// json.timestamp-format.standard = 'ISO-8601'.
func (e *Encoder) appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	sec := t.Unix()
	if sec != e.sec {
		e.sec = sec
		t.AppendFormat(e.secText[:0], "2006-01-02T15:04:05")
	}
	dst = append(dst, '"')
	dst = append(dst, e.secText[:]...)
	ms := t.Nanosecond() / int(time.Millisecond)
	dst = append(dst, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z', '"')
	return dst
}

// appendSeconds writes d in seconds with microsecond resolution; negative
// durations (clock steps between two timestamps) are written as 0.
func appendSeconds(dst []byte, d time.Duration) []byte {
	if d < 0 {
		d = 0
	}
	us := (d + 500) / time.Microsecond
	dst = strconv.AppendInt(dst, int64(us/1e6), 10)
	frac := int64(us % 1e6)
	if frac == 0 {
		return dst
	}
	var b [7]byte
	b[0] = '.'
	for i := 6; i >= 1; i-- {
		b[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := 7
	for b[n-1] == '0' {
		n--
	}
	return append(dst, b[:n]...)
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
