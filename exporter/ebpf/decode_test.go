package ebpf

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// record builds a ring buffer record the way the kernel side lays it out.
func record(h captureEvent, body []byte) []byte {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, h); err != nil {
		panic(err)
	}
	b.Write(body)
	return b.Bytes()
}

func openBody(info captureOpenInfo) []byte {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, info); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func TestLayoutMatchesKernel(t *testing.T) {
	if got := unsafe.Sizeof(captureEvent{}); got != headerSize {
		t.Errorf("struct event is %d bytes, decoder assumes %d", got, headerSize)
	}
	if got := unsafe.Sizeof(captureOpenInfo{}); got != openInfoSize {
		t.Errorf("struct open_info is %d bytes, decoder assumes %d", got, openInfoSize)
	}
}

func TestDecode(t *testing.T) {
	const offset = int64(1_700_000_000_000_000_000)
	s := &Source{wallOffset: offset}
	v4 := captureOpenInfo{Family: afInet, Lport: 8000, Rport: 51234}
	copy(v4.Laddr[:], []byte{127, 0, 0, 1})
	copy(v4.Raddr[:], []byte{10, 1, 2, 3})
	v6 := captureOpenInfo{Family: afInet6, Lport: 443, Rport: 40000}
	v6.Laddr = netip.MustParseAddr("2001:db8::1").As16()
	v6.Raddr = netip.MustParseAddr("::ffff:192.0.2.7").As16()

	cases := []struct {
		name string
		raw  []byte
		want *traffic.Event // nil: rejected as malformed
	}{
		{
			name: "data",
			raw:  record(captureEvent{Ts: 5, ConnId: 42, Pid: 7, Fd: 9, Size: 18, Len: 18, Kind: uint8(traffic.Data), Dir: uint8(traffic.Ingress)}, []byte("GET / HTTP/1.1\r\n\r\n")),
			want: &traffic.Event{Kind: traffic.Data, Conn: 42, Time: time.Unix(0, offset+5), PID: 7, FD: 9, Dir: traffic.Ingress, Size: 18, Data: []byte("GET / HTTP/1.1\r\n\r\n")},
		},
		{
			name: "truncated data",
			raw:  record(captureEvent{Ts: 6, ConnId: 42, Size: 10000, Len: 4, Kind: uint8(traffic.Data), Dir: uint8(traffic.Egress)}, []byte("HTTP")),
			want: &traffic.Event{Kind: traffic.Data, Conn: 42, Time: time.Unix(0, offset+6), Dir: traffic.Egress, Size: 10000, Data: []byte("HTTP"), Truncated: true},
		},
		{
			name: "open ipv4",
			raw:  record(captureEvent{Ts: 1, ConnId: 43, Pid: 7, Fd: 10, Len: openInfoSize, Kind: uint8(traffic.Open)}, openBody(v4)),
			want: &traffic.Event{Kind: traffic.Open, Conn: 43, Time: time.Unix(0, offset+1), PID: 7, FD: 10,
				Local: netip.MustParseAddrPort("127.0.0.1:8000"), Remote: netip.MustParseAddrPort("10.1.2.3:51234")},
		},
		{
			name: "open ipv6 with mapped peer",
			raw:  record(captureEvent{Ts: 1, ConnId: 44, Len: openInfoSize, Kind: uint8(traffic.Open)}, openBody(v6)),
			want: &traffic.Event{Kind: traffic.Open, Conn: 44, Time: time.Unix(0, offset+1),
				Local: netip.MustParseAddrPort("[2001:db8::1]:443"), Remote: netip.MustParseAddrPort("192.0.2.7:40000")},
		},
		{
			name: "close",
			raw:  record(captureEvent{Ts: 9, ConnId: 43, Pid: 7, Fd: 10, Kind: uint8(traffic.Close)}, nil),
			want: &traffic.Event{Kind: traffic.Close, Conn: 43, Time: time.Unix(0, offset+9), PID: 7, FD: 10},
		},
		{
			name: "parts of writes",
			raw: record(captureEvent{Ts: 7, ConnId: 45, Pid: 7, Fd: 11, Size: 4096, Len: skipInfoSize + 5, Kind: kindDataSkip, Dir: uint8(traffic.Egress)},
				append([]byte{0, 0x20, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 9, 1, 0, 0}, "xab\r\n"...)),
			want: &traffic.Event{Kind: traffic.Data, Conn: 45, Time: time.Unix(0, offset+7), PID: 7, FD: 11, Dir: traffic.Egress, Size: 4096,
				Data: []byte("xab\r\n"), Skip: &traffic.Skip{Lead: 8192, LeadLeft: 3, LeadLen: 1, Head: 2, TailLeft: 265}},
		},
		{name: "parts: lead and head beyond the bytes", raw: record(captureEvent{Size: 9, Len: skipInfoSize + 1, Kind: kindDataSkip, Dir: uint8(traffic.Egress)}, append(make([]byte, 8), 1, 0, 1, 0, 0, 0, 0, 0, 'a'))},
		{name: "parts: more than the write", raw: record(captureEvent{Size: 1, Len: skipInfoSize + 2, Kind: kindDataSkip, Dir: uint8(traffic.Egress)}, append(make([]byte, 10), 2, 0, 0, 0, 0, 0, 'a', 'b'))},
		{name: "parts: no skip info", raw: record(captureEvent{Len: 4, Kind: kindDataSkip, Dir: uint8(traffic.Egress)}, []byte{0, 0, 0, 0})},
		{name: "parts: ingress", raw: record(captureEvent{Len: skipInfoSize, Kind: kindDataSkip, Dir: uint8(traffic.Ingress)}, make([]byte, skipInfoSize))},
		{name: "short header", raw: make([]byte, headerSize-1)},
		{name: "length beyond record", raw: record(captureEvent{Len: 10, Kind: uint8(traffic.Data)}, []byte("abc"))},
		{name: "short open", raw: record(captureEvent{Len: 4, Kind: uint8(traffic.Open)}, []byte("abcd"))},
		{name: "unknown kind", raw: record(captureEvent{Kind: 77}, nil)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.malformed.Load()
			var ev traffic.Event
			ok := s.decode(tc.raw, &ev)
			if tc.want == nil {
				if ok || s.malformed.Load() != before+1 {
					t.Fatalf("decode accepted a malformed record (ok=%v, malformed %d→%d)", ok, before, s.malformed.Load())
				}
				return
			}
			if !ok {
				t.Fatal("decode rejected a valid record")
			}
			if !ev.Time.Equal(tc.want.Time) {
				t.Errorf("time %v, want %v", ev.Time, tc.want.Time)
			}
			ev.Time, tc.want.Time = time.Time{}, time.Time{}
			if !bytes.Equal(ev.Data, tc.want.Data) {
				t.Errorf("data %q, want %q", ev.Data, tc.want.Data)
			}
			ev.Data, tc.want.Data = nil, nil
			if !reflect.DeepEqual(ev, *tc.want) {
				t.Errorf("decoded %+v, want %+v", ev, *tc.want)
			}
		})
	}
}

func TestNextLook(t *testing.T) {
	const ring = DefaultRingBufferBytes
	for _, tc := range []struct {
		name    string
		n       uint64
		elapsed time.Duration
		size    int
		want    time.Duration
	}{
		{"idle default ring: the longest sleep", 0, 200 * time.Millisecond, ring, maxPoll},
		{"idle small ring: proportionally shorter", 0, time.Second, ring / 4, maxPoll / 4},
		{"idle tiny ring: never below the shortest", 0, time.Second, 4096, minPoll},
		{"5 MB/s: a sixteenth of the ring is 210 ms away, capped", 250_000, 50 * time.Millisecond, ring, maxPoll},
		{"20 MB/s: back when a sixteenth is written", 1_000_000, 50 * time.Millisecond, ring, 52428800},
		{"a burst: the shortest sleep", ring, 50 * time.Millisecond, ring, minPoll},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := nextLook(tc.n, tc.elapsed, tc.size)
			if got != tc.want {
				t.Errorf("nextLook(%d, %v, %d) = %v, want %v", tc.n, tc.elapsed, tc.size, got, tc.want)
			}
			// At the rate seen, the ring never fills past a quarter before the next look.
			if tc.n > 0 && float64(tc.n)*float64(got)/float64(tc.elapsed) > float64(tc.size)/4 && got > minPoll {
				t.Errorf("sleeping %v at %d bytes per %v would fill more than a quarter of the ring", got, tc.n, tc.elapsed)
			}
		})
	}
}
