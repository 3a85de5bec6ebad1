package httpparse

import (
	"time"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// exchange is one request and its response, whether on an HTTP/1.1
// connection or an HTTP/2 stream: what both framings report (head, body
// bytes, end) goes through the functions here, which keep the measurements
// and hand the finished traffic.Request on. Exchanges are pooled, with their
// scan buffers, so steady traffic does not allocate.
type exchange struct {
	r        traffic.Request
	head     bool // a HEAD request: its response has no body
	grpc     bool
	reqDone  bool // the request body ended
	respSeen bool // the final response's head was read
	model    modelScan
	resp     llmScan
	next     *exchange // free list
}

// maxFreeExchanges bounds the pool of exchanges kept for reuse.
const maxFreeExchanges = 4096

// begin starts an exchange whose request head was read at t on c.
func (p *Parser) begin(c *conn, method, path string, t time.Time) *exchange {
	ex := p.free
	if ex != nil {
		p.free = ex.next
		p.nfree--
		ex.next = nil
	} else {
		ex = &exchange{}
	}
	ex.r = traffic.Request{
		Start:            t,
		Method:           method,
		Path:             path,
		RequestBodySize:  0,
		ResponseBodySize: -1,
		InputTokens:      -1,
		OutputTokens:     -1,
		GRPCStatus:       -1,
		Protocol:         c.protocol(),
		Client:           c.client,
		ServerPort:       c.port,
		Workload:         c.server.Workload(),
	}
	ex.head = method == "HEAD"
	ex.grpc, ex.reqDone, ex.respSeen = false, false, false
	ex.model.reset()
	ex.resp.reset(contentOther)
	if p.o.OnStart != nil {
		p.o.OnStart(&ex.r)
	}
	return ex
}

func (p *Parser) recycle(ex *exchange) {
	if p.nfree >= maxFreeExchanges {
		return
	}
	ex.resp.release()
	ex.r = traffic.Request{}
	ex.next = p.free
	p.free = ex
	p.nfree++
}

// body handles captured body bytes of either direction.
func (p *Parser) body(ex *exchange, egress bool, b []byte, t time.Time) {
	if egress {
		ex.r.ResponseBodySize += int64(len(b))
		ex.resp.content(p, b, t)
		return
	}
	ex.r.RequestBodySize += int64(len(b))
	if !ex.grpc {
		ex.model.feed(b, p.o.BodyScanBytes)
	}
}

// bodyGap handles n body bytes that were moved but not captured.
func (p *Parser) bodyGap(ex *exchange, egress bool, n int64) {
	if egress {
		ex.r.ResponseBodySize += n
		ex.resp.gap(n)
		return
	}
	ex.r.RequestBodySize += n
	ex.model.stop()
}

// requestDone ends the request body: what was scanned names the model.
func (p *Parser) requestDone(ex *exchange) {
	if ex.reqDone {
		return
	}
	ex.reqDone = true
	p.takeModel(ex)
}

func (p *Parser) takeModel(ex *exchange) {
	if ex.r.Model != "" {
		return
	}
	if raw, esc, ok := ex.model.found(); ok {
		ex.r.Model = p.model(raw, esc)
	}
	ex.model.stop()
}

// responseHead records a final response head read at t.
func (p *Parser) responseHead(ex *exchange, status int, kind contentKind, t time.Time) {
	ex.respSeen = true
	ex.r.Status = status
	ex.r.FirstByte = t
	ex.resp.reset(kind)
}

// complete finishes an exchange whose last response byte was written at end
// (or that failed then, with ErrorType set) and hands it on.
func (p *Parser) complete(ex *exchange, end time.Time) {
	p.takeModel(ex)
	r := &ex.r
	s := &ex.resp
	s.finish()
	r.End = end
	if r.Model == "" {
		r.Model = s.model
	}
	u := s.usage
	r.InputTokens, r.OutputTokens = u.in, u.out
	r.CachedTokens, r.ReasoningTokens = max(u.cached, 0), max(u.reasoning, 0)
	switch s.kind {
	case contentSSE:
		r.Streaming = true
		r.FirstToken = s.firstToken
		if u.out < 0 && s.events > 0 {
			r.OutputTokens, r.OutputTokensEstimated = s.estimatedEvents(), true
		}
	case contentGRPC:
		// One message answers a unary call; more are a stream, timed from the first.
		if s.grpc.count > 1 {
			r.Streaming = true
			r.FirstToken = s.grpc.first
		}
	}
	p.stats.requests.Add(1)
	if p.o.OnRequest != nil {
		p.o.OnRequest(r)
	}
	p.recycle(ex)
}

// drop abandons a started exchange that cannot be measured to its end.
func (p *Parser) drop(ex *exchange) {
	p.stats.dropped.Add(1)
	if p.o.OnDrop != nil {
		p.o.OnDrop(&ex.r)
	}
	p.recycle(ex)
}

// model turns a model name read from a body into a string, interned so that
// steady traffic does not allocate.
func (p *Parser) model(raw []byte, escaped bool) string {
	if escaped {
		u, ok := unescape(raw)
		if !ok {
			return ""
		}
		raw = u
	}
	return p.intern(raw, maxModel)
}
