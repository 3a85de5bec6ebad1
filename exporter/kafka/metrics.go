package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Reasons an event is dropped (autoglm_exporter_kafka_events_dropped_total{reason}).
const (
	// DropBufferFull: the buffer between capture and producer was full (Kafka slow or down).
	DropBufferFull = "buffer_full"
	// DropTooLarge: the event does not fit in one batch (batch_max_bytes, or the topic's max.message.bytes).
	DropTooLarge = "too_large"
	// DropProduceFailed: Kafka did not take the event within delivery_timeout, or refused it.
	DropProduceFailed = "produce_failed"
	// DropShutdown: the exporter stopped before the event was delivered.
	DropShutdown = "shutdown"
)

var dropReasons = []string{DropBufferFull, DropTooLarge, DropProduceFailed, DropShutdown}

// Kinds of errors (autoglm_exporter_kafka_errors_total{kind}).
const (
	errConnect  = "connect"
	errTLS      = "tls"
	errAuth     = "auth"
	errTopic    = "topic"
	errTimeout  = "timeout"
	errTooLarge = "too_large"
	errOther    = "other"
)

var errorKinds = []string{errConnect, errTLS, errAuth, errTopic, errTimeout, errTooLarge, errOther}

// selfMetrics are the output's own metrics, updated from the producer and
// franz-go's callbacks; the capture's path touches only dropFull (an atomic add).
type selfMetrics struct {
	dropFull prometheus.Counter

	produced      prometheus.Counter
	producedBytes prometheus.Counter
	sentBytes     prometheus.Counter
	batches       prometheus.Counter
	dropped       *prometheus.CounterVec
	errors        *prometheus.CounterVec
	latency       prometheus.Histogram
	connections   prometheus.Gauge

	bufferDesc, capacityDesc, producerDesc *prometheus.Desc
	buffered, capacity, inProducer         func() float64
}

func newSelfMetrics() *selfMetrics {
	m := &selfMetrics{
		produced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "autoglm_exporter_kafka_events_produced_total",
			Help: "Request events acknowledged by Kafka.",
		}),
		producedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "autoglm_exporter_kafka_produced_bytes_total",
			Help: "Bytes of the request events (key and value, before compression) acknowledged by Kafka.",
		}),
		sentBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "autoglm_exporter_kafka_batch_bytes_total",
			Help: "Bytes of record batches acknowledged by Kafka, after compression.",
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "autoglm_exporter_kafka_batches_total",
			Help: "Record batches acknowledged by Kafka.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autoglm_exporter_kafka_events_dropped_total",
			Help: "Request events not delivered to Kafka, by reason (buffer_full, too_large, produce_failed, shutdown). Capture and metrics are not affected.",
		}, []string{"reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autoglm_exporter_kafka_errors_total",
			Help: "Errors talking to Kafka by kind: connect, tls, auth, topic, timeout, too_large, other (connection attempts and failed events).",
		}, []string{"kind"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:                            "autoglm_exporter_kafka_produce_latency_seconds",
			Help:                            "Time from handing an event to the producer to Kafka's acknowledgement (linger and retries included).",
			Buckets:                         []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "autoglm_exporter_kafka_broker_connections",
			Help: "Open connections to Kafka brokers.",
		}),
		bufferDesc: prometheus.NewDesc("autoglm_exporter_kafka_buffer_events",
			"Request events waiting in the buffer between capture and producer.", nil, nil),
		capacityDesc: prometheus.NewDesc("autoglm_exporter_kafka_buffer_capacity_events",
			"Capacity of the buffer between capture and producer (exporter.outputs.kafka.buffer_events).", nil, nil),
		producerDesc: prometheus.NewDesc("autoglm_exporter_kafka_producer_buffered_events",
			"Request events handed to the producer and not yet acknowledged or failed (at most buffer_events).", nil, nil),
	}
	for _, r := range dropReasons {
		m.dropped.WithLabelValues(r)
	}
	for _, k := range errorKinds {
		m.errors.WithLabelValues(k)
	}
	m.dropFull = m.dropped.WithLabelValues(DropBufferFull)
	return m
}

func (m *selfMetrics) counters() []prometheus.Collector {
	return []prometheus.Collector{m.produced, m.producedBytes, m.sentBytes, m.batches, m.dropped, m.errors, m.latency, m.connections}
}

// Describe implements prometheus.Collector.
func (m *selfMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.counters() {
		c.Describe(ch)
	}
	ch <- m.bufferDesc
	ch <- m.capacityDesc
	ch <- m.producerDesc
}

// Collect implements prometheus.Collector.
func (m *selfMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.counters() {
		c.Collect(ch)
	}
	ch <- prometheus.MustNewConstMetric(m.bufferDesc, prometheus.GaugeValue, m.buffered())
	ch <- prometheus.MustNewConstMetric(m.capacityDesc, prometheus.GaugeValue, m.capacity())
	ch <- prometheus.MustNewConstMetric(m.producerDesc, prometheus.GaugeValue, m.inProducer())
}

// franz-go hooks.
var (
	_ kgo.HookBrokerConnect       = (*selfMetrics)(nil)
	_ kgo.HookBrokerDisconnect    = (*selfMetrics)(nil)
	_ kgo.HookProduceBatchWritten = (*selfMetrics)(nil)
)

// OnBrokerConnect implements kgo.HookBrokerConnect. It also reports
// connections that opened but failed to initialise (TLS handshake, API
// versions, SASL); franz-go reports their close as a disconnect.
func (m *selfMetrics) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, conn net.Conn, err error) {
	if conn != nil {
		m.connections.Inc()
	}
	if err != nil {
		m.errors.WithLabelValues(errorKind(err)).Inc()
	}
}

// OnBrokerDisconnect implements kgo.HookBrokerDisconnect.
func (m *selfMetrics) OnBrokerDisconnect(kgo.BrokerMetadata, net.Conn) { m.connections.Dec() }

// OnProduceBatchWritten implements kgo.HookProduceBatchWritten.
func (m *selfMetrics) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, b kgo.ProduceBatchMetrics) {
	m.batches.Inc()
	m.sentBytes.Add(float64(b.CompressedBytes))
}

// errorKind sorts an error of franz-go into a bounded set of kinds.
func errorKind(err error) string {
	var (
		ke      *kerr.Error
		netErr  net.Error
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
		unknown x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invalid x509.CertificateInvalidError
		verify  *tls.CertificateVerificationError
	)
	switch {
	case errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, context.DeadlineExceeded):
		return errTimeout
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return errTooLarge
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.InvalidTopicException),
		errors.Is(err, kerr.TopicAuthorizationFailed):
		return errTopic
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.UnsupportedSaslMechanism),
		errors.Is(err, kerr.IllegalSaslState), errors.Is(err, kerr.ClusterAuthorizationFailed):
		return errAuth
	case errors.As(err, &recErr), errors.As(err, &alert), errors.As(err, &unknown), errors.As(err, &hostErr),
		errors.As(err, &invalid), errors.As(err, &verify):
		return errTLS
	case errors.As(err, &ke):
		return errOther
	case errors.As(err, &netErr), errors.Is(err, net.ErrClosed), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED):
		return errConnect
	}
	return errOther
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
