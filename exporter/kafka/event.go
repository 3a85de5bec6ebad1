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
	// head + seq + tail begin every event: the fields that are the same
	// for every event of this encoder are encoded once, in New.
	head, tail []byte
	seq        uint64
	// route is the http_route of the last event encoded (the record key
	// when keyed by route, so it is looked up once per event).
	route string
	// day and date cache the date part ("YYYY-MM-DDT") of the last
	// timestamp written: nearly every event falls on the same day.
	day  int64
	date [11]byte
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
	e := &Encoder{
		routes: metrics.NewRouter(o.Endpoints), source: o.Source, host: o.Host,
		full: o.FullClient, v4: o.PrefixV4, v6: o.PrefixV6,
		day: -1 << 62,
	}
	e.head = append(e.head, `{"schema_version":`...)
	e.head = strconv.AppendInt(e.head, SchemaVersion, 10)
	e.head = append(e.head, `,"event_id":`...)
	e.head = appendString(e.head, o.RunID+"-")
	e.head = e.head[:len(e.head)-1] // the sequence number goes inside the quotes
	e.tail = append(e.tail, `","source":`...)
	e.tail = appendString(e.tail, o.Source.Name)
	if o.Host != "" {
		e.tail = append(e.tail, keyHost...)
		e.tail = appendString(e.tail, o.Host)
	}
	e.tail = append(e.tail, keyStart...)
	return e
}

// Keys of the event's fields, with the comma before and the colon after.
const (
	keyHost       = `,"host_name":`
	keyStart      = `,"start_time":`
	keyEnd        = `,"end_time":`
	keyDuration   = `,"duration_seconds":`
	keyTTFB       = `,"ttfb_seconds":`
	keyTTFT       = `,"ttft_seconds":`
	keyStream     = `,"stream_duration_seconds":`
	keyMethod     = `,"` + sli.LabelMethod + `":`
	keyRoute      = `,"` + sli.LabelRoute + `":`
	keyStatus     = `,"` + sli.LabelStatus + `":`
	keyErrorType  = `,"` + sli.LabelErrorType + `":`
	keyPort       = `,"` + sli.LabelPort + `":`
	keyProtocol   = `,"network_protocol":`
	keyGRPC       = `,"grpc":true`
	keyGRPCStatus = `,"` + sli.LabelGRPCStatus + `":`
	keyOperation  = `,"` + sli.LabelOperation + `":`
	keyModel      = `,"` + sli.LabelModel + `":`
	keyStreaming  = `,"streaming":`
	keyReqBytes   = `,"request_body_bytes":`
	keyRespBytes  = `,"response_body_bytes":`
	keyInTokens   = `,"input_tokens":`
	keyOutTokens  = `,"output_tokens":`
	keyEstimated  = `,"output_tokens_estimated":`
	keyCached     = `,"cached_input_tokens":`
	keyReasoning  = `,"reasoning_output_tokens":`
	keyClient     = `,"` + sli.LabelClient + `":"`
	keyService    = `,"` + sli.LabelServiceName + `":`
	keyNetNS      = `,"` + sli.LabelNetNS + `":`
	keyNamespace  = `,"` + sli.LabelK8sNamespace + `":`
	keyPod        = `,"` + sli.LabelK8sPod + `":`
	keyContainer  = `,"` + sli.LabelK8sContainer + `":`
)

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
	dst = append(dst, e.head...)
	dst = strconv.AppendUint(dst, e.seq, 10)
	dst = append(dst, e.tail...)
	dst = e.appendTime(dst, r.Start)
	dst = append(dst, keyEnd...)
	dst = e.appendTime(dst, r.End)
	dst = append(dst, keyDuration...)
	dst = appendSeconds(dst, r.End.Sub(r.Start))
	if !r.FirstByte.IsZero() {
		dst = append(dst, keyTTFB...)
		dst = appendSeconds(dst, r.FirstByte.Sub(r.Start))
	}
	if !r.FirstToken.IsZero() {
		dst = append(dst, keyTTFT...)
		dst = appendSeconds(dst, r.FirstToken.Sub(r.Start))
		if r.Streaming {
			dst = append(dst, keyStream...)
			dst = appendSeconds(dst, r.End.Sub(r.FirstToken))
		}
	}
	// Method, operation, protocol and gRPC code names come from fixed sets
	// of plain words and need no escaping.
	dst = append(dst, keyMethod...)
	dst = appendPlain(dst, metrics.Method(r.Method))
	e.route = e.routes.Route(r.Path)
	dst = append(dst, keyRoute...)
	dst = appendString(dst, e.route)
	if r.Status > 0 {
		dst = append(dst, keyStatus...)
		dst = strconv.AppendInt(dst, int64(r.Status), 10)
	}
	// The metrics' error_type: the request's own error, or the status of a
	// server error (HTTP 5xx, gRPC INTERNAL, UNAVAILABLE, ...).
	dst = appendOptional(dst, keyErrorType, metrics.ErrorType(r))
	if r.ServerPort != 0 {
		dst = append(dst, keyPort...)
		dst = strconv.AppendUint(dst, uint64(r.ServerPort), 10)
	}
	if r.Protocol != "" {
		dst = append(dst, keyProtocol...)
		dst = appendPlain(dst, r.Protocol)
	}
	if r.GRPC {
		dst = append(dst, keyGRPC...)
		if r.GRPCStatus >= 0 {
			dst = append(dst, keyGRPCStatus...)
			dst = appendPlain(dst, metrics.GRPCCode(r.GRPCStatus))
		}
	}
	if op := metrics.Operation(r); op != "" {
		dst = append(dst, keyOperation...)
		dst = appendPlain(dst, op)
	}
	if r.Model != "" {
		dst = append(dst, keyModel...)
		dst = appendString(dst, r.Model)
	}
	if r.Streaming || e.source.KnowsStreaming {
		dst = append(dst, keyStreaming...)
		dst = strconv.AppendBool(dst, r.Streaming)
	}
	if r.RequestBodySize >= 0 {
		dst = append(dst, keyReqBytes...)
		dst = strconv.AppendInt(dst, r.RequestBodySize, 10)
	}
	if r.ResponseBodySize >= 0 {
		dst = append(dst, keyRespBytes...)
		dst = strconv.AppendInt(dst, r.ResponseBodySize, 10)
	}
	if r.InputTokens >= 0 {
		dst = append(dst, keyInTokens...)
		dst = strconv.AppendInt(dst, r.InputTokens, 10)
	}
	if r.OutputTokens >= 0 {
		dst = append(dst, keyOutTokens...)
		dst = strconv.AppendInt(dst, r.OutputTokens, 10)
		dst = append(dst, keyEstimated...)
		dst = strconv.AppendBool(dst, r.OutputTokensEstimated)
	}
	// Zero is also what a response without usage details gives: absent then.
	if r.CachedTokens > 0 {
		dst = append(dst, keyCached...)
		dst = strconv.AppendInt(dst, r.CachedTokens, 10)
	}
	if r.ReasoningTokens > 0 {
		dst = append(dst, keyReasoning...)
		dst = strconv.AppendInt(dst, r.ReasoningTokens, 10)
	}
	if r.Client.IsValid() {
		dst = append(dst, keyClient...)
		dst = e.AppendClient(dst, r.Client)
		dst = append(dst, '"')
	}
	if w := r.Workload; w != nil {
		if w != e.lastWorkload {
			b := e.workloadJSON[:0]
			b = appendOptional(b, keyService, w.ServiceName)
			b = appendOptional(b, keyNetNS, w.NetNS)
			b = appendOptional(b, keyNamespace, w.K8sNamespace)
			b = appendOptional(b, keyPod, w.K8sPod)
			b = appendOptional(b, keyContainer, w.K8sContainer)
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

// appendOptional writes a string field (key: one of the key constants)
// unless its value is empty (not applicable).
func appendOptional(dst []byte, key, v string) []byte {
	if v == "" {
		return dst
	}
	return appendString(append(dst, key...), v)
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
	if days != e.day {
		y, m, d := civil(days)
		if y < 0 || y > 9999 {
			// Out of RFC 3339's range: a broken clock, not a request time.
			y, m, d, rem = 1970, 1, 1, 0
			days = 0
		}
		put4(e.date[0:], y)
		e.date[4] = '-'
		put2(e.date[5:], m)
		e.date[7] = '-'
		put2(e.date[8:], d)
		e.date[10] = 'T'
		e.day = days
	}
	var b [26]byte
	b[0] = '"'
	copy(b[1:12], e.date[:])
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
