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
	// lastWorkload and workloadJSON cache the encoded fields of the last
	// workload: workloads are interned, so consecutive requests share one.
	lastWorkload *traffic.Workload
	workloadJSON []byte
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
		idPrefix: o.RunID + "-",
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
	// Method, operation, protocol and gRPC code names come from fixed sets
	// of plain words and need no escaping.
	dst = appendKey(dst, sli.LabelMethod)
	dst = appendPlain(dst, metrics.Method(r.Method))
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
	if r.Protocol != "" {
		dst = appendKey(dst, "network_protocol")
		dst = appendPlain(dst, r.Protocol)
	}
	if r.GRPC {
		dst = appendKey(dst, "grpc")
		dst = append(dst, "true"...)
		if r.GRPCStatus >= 0 {
			dst = appendKey(dst, sli.LabelGRPCStatus)
			dst = appendPlain(dst, metrics.GRPCCode(r.GRPCStatus))
		}
	}
	if op := metrics.Operation(r); op != "" {
		dst = appendKey(dst, sli.LabelOperation)
		dst = appendPlain(dst, op)
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
		if w != e.lastWorkload {
			b := e.workloadJSON[:0]
			b = appendOptional(b, sli.LabelServiceName, w.ServiceName)
			b = appendOptional(b, sli.LabelNetNS, w.NetNS)
			b = appendOptional(b, sli.LabelK8sNamespace, w.K8sNamespace)
			b = appendOptional(b, sli.LabelK8sPod, w.K8sPod)
			b = appendOptional(b, sli.LabelK8sContainer, w.K8sContainer)
			e.lastWorkload, e.workloadJSON = w, b
		}
		dst = append(dst, e.workloadJSON...)
	}
	return append(dst, '}')
}

func appendPlain(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
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
	ms := t.UnixMilli()
	days, rem := ms/86_400_000, ms%86_400_000
	if rem < 0 {
		days, rem = days-1, rem+86_400_000
	}
	y, m, d := civil(days)
	if y < 0 || y > 9999 {
		// Out of RFC 3339's range: a broken clock, not a request time.
		y, m, d, rem = 1970, 1, 1, 0
	}
	var b [26]byte
	b[0] = '"'
	put4(b[1:], y)
	b[5] = '-'
	put2(b[6:], m)
	b[8] = '-'
	put2(b[9:], d)
	b[11] = 'T'
	put2(b[12:], int(rem/3_600_000))
	b[14] = ':'
	put2(b[15:], int(rem/60_000%60))
	b[17] = ':'
	put2(b[18:], int(rem/1000%60))
	b[20] = '.'
	frac := int(rem % 1000)
	b[21], b[22], b[23] = byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10)
	b[24], b[25] = 'Z', '"'
	return append(dst, b[:]...)
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (the days-to-civil algorithm of Howard Hinnant's date library).
func civil(days int64) (year, month, day int) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	y := yoe + era*400
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}

func put2(b []byte, v int) { b[0], b[1] = byte('0'+v/10), byte('0'+v%10) }

func put4(b []byte, v int) {
	b[0], b[1], b[2], b[3] = byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10)
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
