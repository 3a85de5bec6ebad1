package httpparse

import (
	"encoding/binary"
	"time"

	"golang.org/x/net/http2/hpack"
)

// HTTP/2 (RFC 9113) as an observer sees it: both directions of one
// connection, each a sequence of frames that may be split over any number
// of reads and writes. Header blocks are decoded as their fragments arrive
// with one HPACK decoder per direction (its dynamic table follows the
// peer's encoder), so nothing but the decoder's own state is buffered.
// Every client stream is an exchange measured like an HTTP/1.1 request.

const (
	h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

	frData         = 0x0
	frHeaders      = 0x1
	frPriority     = 0x2
	frRSTStream    = 0x3
	frSettings     = 0x4
	frPushPromise  = 0x5
	frPing         = 0x6
	frGoAway       = 0x7
	frWindowUpdate = 0x8
	frContinuation = 0x9

	flEndStream  = 0x1
	flAck        = 0x1
	flEndHeaders = 0x4
	flPadded     = 0x8
	flPriority   = 0x20

	settingMaxFrameSize = 0x5
	// defaultMaxFrame is the largest frame a peer may send before the
	// other side's SETTINGS allow more (RFC 9113 §4.2).
	defaultMaxFrame = 1 << 14
	// maxHPACKTable bounds each HPACK dynamic table: a peer's encoder may
	// grow its table only as far as the other side allowed, usually 4 KiB.
	maxHPACKTable = 64 << 10
	// maxH2Streams bounds the streams tracked on one connection.
	maxH2Streams = 1024
)

// h2conn is the HTTP/2 state of a connection.
type h2conn struct {
	c       *conn
	in, out h2dir
	streams map[uint32]*exchange
	maxID   uint32 // highest client stream id seen
	// blind is set for a connection joined after it started: frames are
	// followed, header blocks cannot be decoded (the HPACK tables are
	// unknown), and each new request stream is counted as missed.
	blind bool
}

// h2dir is one direction's framing and header decoding.
type h2dir struct {
	h        *h2conn
	egress   bool
	preface  uint8 // bytes of the client preface still expected
	nhdr     uint8
	hdr      [9]byte
	inFrame  bool
	typ      uint8
	flags    uint8
	sid      uint32
	left     uint32 // payload bytes of the current frame still to come
	padLeft  uint32 // trailing padding of the current frame
	skip     uint8  // priority or promised-id bytes still to skip
	needPad  bool   // the pad length byte is still to come
	maxFrame uint32 // largest frame the other side allows
	// header block in progress (HEADERS or PUSH_PROMISE, then CONTINUATION)
	inBlock   bool
	blockSid  uint32
	blockEnd  bool // END_STREAM was on the HEADERS that opened the block
	blockPush bool // the block belongs to a PUSH_PROMISE: decoded for its table only
	dec       *hpack.Decoder
	f         h2fields
	// SETTINGS entry split over reads
	nset uint8
	set  [6]byte
}

// h2fields are the header fields the parser keeps from one block.
type h2fields struct {
	method, path string
	status       int
	kind         contentKind
	grpc         bool
	grpcStatus   int
}

func newH2(c *conn, preface bool) *h2conn {
	h := &h2conn{c: c}
	h.in = h2dir{egress: false}
	h.out = h2dir{egress: true}
	h.start(preface)
	return h
}

// start readies the header decoders of a connection followed from its start.
func (h *h2conn) start(preface bool) {
	h.blind = false
	h.streams = make(map[uint32]*exchange, 4)
	for _, d := range []*h2dir{&h.in, &h.out} {
		d.h, d.maxFrame = h, defaultMaxFrame
		d.dec = hpack.NewDecoder(4096, d.emit)
		d.dec.SetAllowedMaxDynamicTableSize(maxHPACKTable)
		d.dec.SetMaxStringLength(h.c.p.o.MaxHeaderBytes)
	}
	if preface {
		h.in.preface = uint8(len(h2Preface))
	}
}

func newBlindH2(c *conn) *h2conn {
	return &h2conn{c: c, blind: true, in: h2dir{maxFrame: 1 << 24}, out: h2dir{egress: true, maxFrame: 1 << 24}}
}

// serverPreface reports whether b starts with a SETTINGS frame (not an
// acknowledgement): the server's connection preface, which many servers
// write before they read the client's.
func serverPreface(b []byte) bool {
	return len(b) >= 9 && b[3] == frSettings && b[4]&flAck == 0 && binary.BigEndian.Uint32(b[5:9]) == 0 && looksLikeH2(b)
}

// looksLikeH2 reports whether b starts with plausible HTTP/2 frames, for a
// connection first seen after its preface (TLS records and text fail it).
func looksLikeH2(b []byte) bool {
	if len(b) < 9 {
		return false
	}
	for len(b) >= 9 {
		length := uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
		typ, sid := b[3], binary.BigEndian.Uint32(b[5:9])
		if length > 1<<20 || typ > frContinuation || sid&(1<<31) != 0 {
			return false
		}
		switch typ {
		case frSettings, frPing, frGoAway:
			if sid != 0 {
				return false
			}
		case frWindowUpdate:
		default:
			if sid == 0 {
				return false
			}
		}
		switch {
		case typ == frSettings && length%6 != 0, typ == frPing && length != 8,
			typ == frWindowUpdate && length != 4, typ == frRSTStream && length != 4, typ == frPriority && length != 5:
			return false
		}
		if uint64(len(b)) < 9+uint64(length) {
			return true
		}
		b = b[9+length:]
	}
	return true
}

func (h *h2conn) dir(egress bool) *h2dir {
	if egress {
		return &h.out
	}
	return &h.in
}

// feed consumes bytes of one direction; invisible more were moved but not captured.
func (h *h2conn) feed(egress bool, data []byte, invisible int64, t time.Time) {
	d := h.dir(egress)
	c := h.c
	if h.blind && !egress && !d.inFrame && d.nhdr == 0 && isPreface(data) {
		// The client's preface after all: the connection is new, follow it fully.
		h.start(true)
	}
	for len(data) > 0 && !c.dead {
		if d.preface > 0 {
			off := len(h2Preface) - int(d.preface)
			n := min(len(data), int(d.preface))
			if string(data[:n]) != h2Preface[off:off+n] {
				h.fail(NotHTTP, t)
				return
			}
			d.preface -= uint8(n)
			data = data[n:]
			continue
		}
		if !d.inFrame {
			n := copy(d.hdr[d.nhdr:], data)
			d.nhdr += uint8(n)
			data = data[n:]
			if d.nhdr < 9 {
				break
			}
			d.nhdr = 0
			h.beginFrame(d, t)
			if d.inFrame && d.left == 0 {
				h.endFrame(d, t)
			}
			continue
		}
		n := int(min(uint32(len(data)), d.left))
		h.payload(d, data[:n], t)
		data = data[n:]
		if d.left == 0 && d.inFrame {
			h.endFrame(d, t)
		}
	}
	if invisible > 0 && !c.dead {
		h.invisible(d, invisible, t)
	}
}

func (h *h2conn) beginFrame(d *h2dir, t time.Time) {
	b := d.hdr[:]
	length := uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
	d.typ, d.flags = b[3], b[4]
	d.sid = binary.BigEndian.Uint32(b[5:9]) &^ (1 << 31)
	if length > d.maxFrame || d.inBlock && d.typ != frContinuation {
		h.fail(H2Protocol, t)
		return
	}
	d.inFrame, d.left, d.padLeft, d.skip, d.needPad, d.nset = true, length, 0, 0, false, 0
	switch d.typ {
	case frData:
		d.needPad = d.flags&flPadded != 0
	case frHeaders:
		d.needPad = d.flags&flPadded != 0
		if d.flags&flPriority != 0 {
			d.skip = 5
		}
		if !d.egress && d.sid&1 == 1 && d.sid > h.maxID {
			h.maxID = d.sid
			if h.blind {
				h.c.fail(H2MidStream)
			}
		}
		if h.blind {
			return
		}
		d.inBlock, d.blockSid, d.blockEnd, d.blockPush = true, d.sid, d.flags&flEndStream != 0, false
		d.f = h2fields{grpcStatus: -1}
	case frPushPromise:
		d.needPad = d.flags&flPadded != 0
		d.skip = 4
		if h.blind {
			return
		}
		d.inBlock, d.blockSid, d.blockEnd, d.blockPush = true, d.sid, false, true
		d.f = h2fields{grpcStatus: -1}
	case frContinuation:
		if h.blind {
			return
		}
		if !d.inBlock || d.sid != d.blockSid {
			h.fail(H2Protocol, t)
		}
	}
}

// payload handles bytes of the current frame's payload.
func (h *h2conn) payload(d *h2dir, b []byte, t time.Time) {
	d.left -= uint32(len(b))
	if h.blind {
		return
	}
	if d.needPad && len(b) > 0 {
		d.padLeft = uint32(b[0])
		d.needPad = false
		b = b[1:]
		if d.padLeft > d.left+uint32(len(b)) {
			h.fail(H2Protocol, t)
			return
		}
	}
	if d.skip > 0 {
		k := min(int(d.skip), len(b))
		d.skip -= uint8(k)
		b = b[k:]
	}
	// Trailing padding: the last padLeft bytes of the frame.
	if pad := d.padLeft; pad > d.left {
		cut := min(pad-d.left, uint32(len(b)))
		b = b[:uint32(len(b))-cut]
	}
	if len(b) == 0 {
		return
	}
	switch d.typ {
	case frData:
		if ex := h.streams[d.sid]; ex != nil {
			h.c.p.body(ex, d.egress, b, t)
		}
	case frHeaders, frPushPromise, frContinuation:
		if _, err := d.dec.Write(b); err != nil {
			h.fail(H2Protocol, t)
		}
	case frSettings:
		if d.flags&flAck == 0 {
			h.settings(d, b)
		}
	}
}

// settings reads SETTINGS entries; only the frame size limit matters here.
func (h *h2conn) settings(d *h2dir, b []byte) {
	for len(b) > 0 {
		n := copy(d.set[d.nset:], b)
		d.nset += uint8(n)
		b = b[n:]
		if d.nset < 6 {
			return
		}
		d.nset = 0
		id, v := binary.BigEndian.Uint16(d.set[:2]), binary.BigEndian.Uint32(d.set[2:])
		if id == settingMaxFrameSize && v >= defaultMaxFrame && v < 1<<24 {
			// A side's SETTINGS bound the frames the other side sends.
			h.dir(!d.egress).maxFrame = v
		}
	}
}

func (h *h2conn) endFrame(d *h2dir, t time.Time) {
	d.inFrame = false
	if h.blind || h.c.dead {
		return
	}
	switch d.typ {
	case frData:
		if d.flags&flEndStream != 0 {
			h.endStream(d.sid, d.egress, t)
		}
	case frHeaders, frPushPromise, frContinuation:
		if d.flags&flEndHeaders != 0 {
			h.block(d, t)
		}
	case frRSTStream:
		if ex := h.streams[d.sid]; ex != nil {
			delete(h.streams, d.sid)
			ex.r.ErrorType = ErrorStreamReset
			h.c.p.complete(ex, t)
		}
	}
}

// block acts on a complete header block.
func (h *h2conn) block(d *h2dir, t time.Time) {
	d.inBlock = false
	if err := d.dec.Close(); err != nil {
		h.fail(H2Protocol, t)
		return
	}
	if d.blockPush {
		return
	}
	f := &d.f
	sid := d.blockSid
	ex := h.streams[sid]
	p := h.c.p
	if !d.egress {
		if ex == nil {
			if sid&1 == 0 || f.method == "" {
				return
			}
			if len(h.streams) >= maxH2Streams {
				h.c.fail(PipelineOverflow)
				return
			}
			ex = p.begin(h.c, f.method, f.path, t)
			ex.grpc = f.grpc
			ex.r.GRPC = f.grpc
			ex.r.RequestBodySize = 0
			h.streams[sid] = ex
		}
		if d.blockEnd {
			p.requestDone(ex)
		}
		return
	}
	if ex == nil {
		return
	}
	if !ex.respSeen {
		if f.status >= 100 && f.status < 200 {
			return // interim response
		}
		if f.status == 0 {
			h.fail(H2Protocol, t)
			return
		}
		kind := f.kind
		if f.grpc {
			kind = contentGRPC
		}
		p.responseHead(ex, f.status, kind, t)
		ex.r.ResponseBodySize = 0
	}
	if f.grpcStatus >= 0 {
		ex.r.GRPCStatus = f.grpcStatus
	}
	if d.blockEnd {
		h.endStream(sid, true, t)
	}
}

// endStream handles END_STREAM in one direction of a stream.
func (h *h2conn) endStream(sid uint32, egress bool, t time.Time) {
	ex := h.streams[sid]
	if ex == nil {
		return
	}
	p := h.c.p
	if !egress {
		p.requestDone(ex)
		return
	}
	delete(h.streams, sid)
	p.complete(ex, t)
}

// emit collects the fields the parser keeps from a header block.
func (d *h2dir) emit(hf hpack.HeaderField) {
	f := &d.f
	p := d.h.c.p
	switch hf.Name {
	case ":method":
		f.method = p.internString(hf.Value, maxMethod)
	case ":path":
		path := hf.Value
		for i := 0; i < len(path); i++ {
			if path[i] == '?' || path[i] == '#' {
				path = path[:i]
				break
			}
		}
		f.path = p.internString(path, maxPath)
	case ":status":
		if len(hf.Value) == 3 {
			if n := parseCount([]byte(hf.Value)); n >= 100 {
				f.status = int(n)
			}
		}
	case "content-type":
		f.kind = contentKindOf([]byte(hf.Value))
		f.grpc = isGRPC([]byte(hf.Value))
	case "grpc-status":
		f.grpcStatus = parseGRPCStatus([]byte(hf.Value))
	}
}

// invisible accounts for bytes moved but not captured. Inside a DATA
// payload they only cost the content scan; anywhere else the frame
// boundaries are gone, and with them the connection.
func (h *h2conn) invisible(d *h2dir, n int64, t time.Time) {
	if h.blind {
		h.c.kill()
		return
	}
	if d.inFrame && d.typ == frData && !d.needPad && n <= int64(d.left) {
		d.left -= uint32(n)
		body := n
		if d.padLeft > d.left {
			body -= int64(min(d.padLeft-d.left, uint32(n)))
		}
		if ex := h.streams[d.sid]; ex != nil {
			h.c.p.bodyGap(ex, d.egress, body)
		}
		if d.left == 0 {
			h.endFrame(d, t)
		}
		return
	}
	h.fail(Truncated, t)
}

// fail counts r and gives the connection up: streams in flight are dropped.
func (h *h2conn) fail(r Reason, t time.Time) {
	h.c.fail(r)
	h.drop()
	h.c.kill()
}

// close ends every stream still open when the connection closed at t.
func (h *h2conn) close(t time.Time) {
	for sid, ex := range h.streams {
		delete(h.streams, sid)
		ex.r.ErrorType = ErrorConnectionClosed
		h.c.p.complete(ex, t)
	}
}

// drop abandons every stream in flight (eviction, lost framing).
func (h *h2conn) drop() {
	for sid, ex := range h.streams {
		delete(h.streams, sid)
		h.c.p.drop(ex)
	}
}

// upgrade continues an HTTP/1.1 connection as HTTP/2 after "101 Switching
// Protocols" to h2c: the upgrade request becomes stream 1, answered there.
func upgrade(c *conn, ex *exchange) *h2conn {
	h := newH2(c, true)
	if ex != nil {
		ex.reqDone = true
		h.streams[1] = ex
		h.maxID = 1
	}
	return h
}
