package ebpf

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Indexes of the per-CPU stats array (enum capture_stat in capture.bpf.c).
const (
	statRingbufFull uint32 = iota
	statMapFull
	statTruncated
	statConnsOpened
	statConnsClosed
	statNextID
	statTLSPlaintext
	statTLSCiphertext
	statTLSNoSocket
	statTLSUndecrypted
	statStreamSkipped
	statMax
)

// Stats are the source's counters at one moment.
type Stats struct {
	// Events were read from the ring buffer and handed out.
	Events uint64
	// Lost events by reason: the ring buffer was full, a map was full (the
	// connection or call could not be tracked), data was longer than captured.
	RingbufFull, MapFull, Truncated uint64
	// Malformed records could not be decoded.
	Malformed uint64
	// TrackedConnections are open connections the kernel side follows.
	TrackedConnections int64
	// TLSPlaintext are Data events from the TLS probes; TLSCiphertext
	// syscalls on probed TLS connections that were not emitted (their
	// plaintext was); TLSNoSocket TLS calls whose socket was not found
	// (their plaintext is lost); TLSUndecrypted TLS connections of
	// processes without probes (the parser sees their ciphertext).
	TLSPlaintext, TLSCiphertext, TLSNoSocket, TLSUndecrypted uint64
	// StreamBytesSkipped are bytes in the middle of large event-stream
	// writes that were not copied (counted, their framing followed).
	StreamBytesSkipped uint64
	// RingbufFill is the unread part of the ring buffer, 0..1.
	RingbufFill float64
}

// Stats reads the kernel and user-side counters.
func (s *Source) Stats() (Stats, error) {
	if s.closed.Load() {
		return Stats{}, errors.New("ebpf: source is closed")
	}
	var sum [statMax]uint64
	var perCPU []uint64
	for i := range sum {
		if err := s.objs.Stats.Lookup(uint32(i), &perCPU); err != nil {
			return Stats{}, fmt.Errorf("ebpf: reading stats[%d]: %w", i, err)
		}
		for _, v := range perCPU {
			sum[i] += v
		}
	}
	st := Stats{
		Events:             s.events.Load(),
		RingbufFull:        sum[statRingbufFull],
		MapFull:            sum[statMapFull],
		Truncated:          sum[statTruncated],
		Malformed:          s.malformed.Load(),
		TrackedConnections: int64(sum[statConnsOpened] - sum[statConnsClosed] - s.reaped.Load()),
		TLSPlaintext:       sum[statTLSPlaintext],
		TLSCiphertext:      sum[statTLSCiphertext],
		TLSNoSocket:        sum[statTLSNoSocket],
		TLSUndecrypted:     sum[statTLSUndecrypted],
		StreamBytesSkipped: sum[statStreamSkipped],
	}
	if size := s.rd.size(); size > 0 {
		st.RingbufFill = float64(s.rd.available()) / float64(size)
	}
	return st, nil
}

// Collector exposes the source's self metrics, read from the kernel at scrape time.
func (s *Source) Collector() prometheus.Collector {
	return &collector{
		src: s,
		events: prometheus.NewDesc("autoglm_exporter_events_total",
			"Kernel socket events read from the eBPF ring buffer.", nil, nil),
		lost: prometheus.NewDesc("autoglm_exporter_events_lost_total",
			"Kernel socket events lost or cut short, by reason (ringbuf_full, map_full, truncated, malformed, tls_no_socket).", []string{"reason"}, nil),
		tlsEvents: prometheus.NewDesc("autoglm_exporter_tls_events_total",
			"Syscalls on TLS connections whose plaintext the TLS probes report: plaintext events emitted, ciphertext syscalls not emitted.", []string{"kind"}, nil),
		tlsUndecrypted: prometheus.NewDesc("autoglm_exporter_tls_connections_undecrypted_total",
			"TLS connections of processes without TLS probes: their ciphertext reaches the parser (not_http).", nil, nil),
		tlsProcesses: prometheus.NewDesc("autoglm_exporter_tls_processes",
			"Processes serving an observed port, by TLS library found in them and whether its plaintext is probed (attached) or cannot be (unsupported).", []string{"library", "status"}, nil),
		streamSkipped: prometheus.NewDesc("autoglm_exporter_stream_bytes_skipped_total",
			"Event-stream body bytes not copied from the kernel (the middle of large writes; of writes held back, all but the last one's tail): their size is counted and their chunk framing followed there.", nil, nil),
		fill: prometheus.NewDesc("autoglm_exporter_ringbuf_fill_ratio",
			"Unread share of the eBPF ring buffer.", nil, nil),
		tracked: prometheus.NewDesc("autoglm_exporter_tracked_connections",
			"Server connections currently tracked by the eBPF programs.", nil, nil),
		up: prometheus.NewDesc("autoglm_exporter_ebpf_stats_up",
			"Whether the eBPF counters could be read at this scrape.", nil, nil),
	}
}

type collector struct {
	src                                     *Source
	events, lost, fill, tracked, up         *prometheus.Desc
	streamSkipped                           *prometheus.Desc
	tlsEvents, tlsUndecrypted, tlsProcesses *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.events
	ch <- c.lost
	ch <- c.fill
	ch <- c.tracked
	ch <- c.up
	ch <- c.tlsEvents
	ch <- c.tlsUndecrypted
	ch <- c.tlsProcesses
	ch <- c.streamSkipped
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.src.Stats()
	if err != nil {
		c.src.logger.Warn("reading ebpf stats", "err", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(st.Events))
	for _, l := range []struct {
		reason string
		v      uint64
	}{
		{"ringbuf_full", st.RingbufFull},
		{"map_full", st.MapFull},
		{"truncated", st.Truncated},
		{"malformed", st.Malformed},
		{"tls_no_socket", st.TLSNoSocket},
	} {
		ch <- prometheus.MustNewConstMetric(c.lost, prometheus.CounterValue, float64(l.v), l.reason)
	}
	ch <- prometheus.MustNewConstMetric(c.fill, prometheus.GaugeValue, st.RingbufFill)
	ch <- prometheus.MustNewConstMetric(c.tracked, prometheus.GaugeValue, float64(st.TrackedConnections))
	ch <- prometheus.MustNewConstMetric(c.tlsEvents, prometheus.CounterValue, float64(st.TLSPlaintext), "plaintext")
	ch <- prometheus.MustNewConstMetric(c.tlsEvents, prometheus.CounterValue, float64(st.TLSCiphertext), "ciphertext_skipped")
	ch <- prometheus.MustNewConstMetric(c.tlsUndecrypted, prometheus.CounterValue, float64(st.TLSUndecrypted))
	ch <- prometheus.MustNewConstMetric(c.streamSkipped, prometheus.CounterValue, float64(st.StreamBytesSkipped))
	if c.src.tls != nil {
		for k, n := range c.src.tls.counts() {
			ch <- prometheus.MustNewConstMetric(c.tlsProcesses, prometheus.GaugeValue, float64(n), k[0], k[1])
		}
	}
}
