// Package kafka is the exporter's Kafka output: one JSON event per finished
// request (schema/request-event.v1.json), produced with franz-go.
//
// The capture never waits for Kafka. Publish copies the request into a
// bounded buffer and returns; a producer goroutine encodes events and hands
// them to franz-go, which batches, compresses and retries. When Kafka is slow
// or down the buffer fills and further events are dropped and counted
// (autoglm_exporter_kafka_events_dropped_total{reason}); production resumes by
// itself when Kafka is back.
package kafka

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
	"github.com/open-autoglm/autoglm-monitor/internal/config"
)

// Options configure an Output. FromConfig builds them from the configuration file.
type Options struct {
	Brokers  []string
	Topic    string
	ClientID string
	// Key is route, client, model or none.
	Key string
	// Compression is zstd, lz4, snappy, gzip or none.
	Compression string
	// ZstdLevel is the zstd encoder level (1 fastest .. 4 best; 0: fastest).
	ZstdLevel     int
	BatchMaxBytes int
	Linger        time.Duration
	Idempotent    bool
	// Acks is all, leader or none.
	Acks            string
	DeliveryTimeout time.Duration
	// BufferEvents bounds the events between Publish and the producer, and the producer's own records.
	BufferEvents int
	TLS          *tls.Config
	// SASL authenticates the producer; nil for none.
	SASL sasl.Mechanism
	// CreateTopic creates Topic at start with these partitions and replication (-1: broker defaults).
	CreateTopic       bool
	Partitions        int32
	ReplicationFactor int16

	Encoder EncoderOptions
	Logger  *slog.Logger

	// PollInterval is how often the producer looks for new events (default 5ms);
	// FlushTimeout bounds the final flush at shutdown (default 5s).
	PollInterval, FlushTimeout time.Duration
	// RetryBackoff bounds franz-go's backoff between retries (default: franz-go's, up to 1s).
	RetryBackoff time.Duration
}

// FromConfig builds Options from the exporter.outputs.kafka section (already
// validated by config.Load) for requests of source.
func FromConfig(f *config.File, source Source, logger *slog.Logger) (Options, error) {
	k := f.Exporter.Outputs.Kafka
	if k == nil {
		return Options{}, errors.New("kafka output: not configured")
	}
	tlsCfg, err := k.TLS.Build(f)
	if err != nil {
		return Options{}, fmt.Errorf("kafka output: %w", err)
	}
	o := Options{
		Brokers: k.Brokers, Topic: k.Topic, ClientID: k.ClientID, Key: k.Key, Compression: k.Compression,
		BatchMaxBytes: k.BatchMaxBytes, Linger: k.Linger.D(), Idempotent: *k.Idempotent, Acks: k.Acks,
		DeliveryTimeout: k.DeliveryTimeout.D(), BufferEvents: k.BufferEvents, TLS: tlsCfg,
		CreateTopic: k.CreateTopic.Enabled, Partitions: k.CreateTopic.Partitions, ReplicationFactor: k.CreateTopic.ReplicationFactor,
		Encoder: EncoderOptions{
			Endpoints: f.Metrics.Endpoints, Source: source,
			FullClient: k.ClientAddress == config.KafkaClientFull, PrefixV4: *k.ClientPrefixV4, PrefixV6: *k.ClientPrefixV6,
		},
		Logger: logger,
	}
	if m := k.SASL.Mechanism; m != "" {
		pw, err := f.ResolveSecret("exporter.outputs.kafka.sasl.password", k.SASL.Password, k.SASL.PasswordFile)
		if err != nil {
			return Options{}, fmt.Errorf("kafka output: %w", err)
		}
		switch m {
		case config.SASLPlain:
			o.SASL = plain.Auth{User: k.SASL.Username, Pass: pw.Value()}.AsMechanism()
		case config.SASLScramSHA256:
			o.SASL = scram.Auth{User: k.SASL.Username, Pass: pw.Value()}.AsSha256Mechanism()
		case config.SASLScramSHA512:
			o.SASL = scram.Auth{User: k.SASL.Username, Pass: pw.Value()}.AsSha512Mechanism()
		default:
			return Options{}, fmt.Errorf("kafka output: unknown SASL mechanism %q", m)
		}
	}
	return o, nil
}

// Output sends request events to Kafka.
type Output struct {
	o      Options
	logger *slog.Logger
	queue  *eventQueue
	client *kgo.Client
	enc    *Encoder
	m      *selfMetrics
	key    func(dst []byte, r *traffic.Request) []byte
	// records are reused once franz-go has called their promise.
	records *recordCache
	// promiseFn is out.promise, made once: a method value passed to
	// Produce would be a new closure on the heap for every event.
	promiseFn func(*kgo.Record, error)
	maxRecord int

	// now is when the current drain began: every record handed over in it
	// gets this timestamp, one clock read per drain instead of per event.
	now time.Time

	lastErr   error
	lastErrMu sync.Mutex
	closeOnce sync.Once
}

// New checks the options and creates the producer. It does not wait for
// Kafka: brokers that cannot be reached now are retried while the exporter runs.
func New(o Options) (*Output, error) {
	if len(o.Brokers) == 0 || o.Topic == "" {
		return nil, errors.New("kafka output: brokers and topic are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.BufferEvents <= 0 {
		o.BufferEvents = 16384
	}
	if o.BatchMaxBytes <= 0 {
		o.BatchMaxBytes = 1_000_000
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 5 * time.Millisecond
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = 5 * time.Second
	}
	if o.Encoder.Host == "" {
		o.Encoder.Host, _ = os.Hostname()
	}
	if o.Encoder.RunID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		o.Encoder.RunID = hex.EncodeToString(b[:])
	}
	out := &Output{
		o:      o,
		logger: o.Logger.With("output", "kafka", "topic", o.Topic),
		queue:  newEventQueue(o.BufferEvents),
		enc:    NewEncoder(o.Encoder),
		m:      newSelfMetrics(),
		// Record and batch framing take up to about 100 bytes beside key and value.
		maxRecord: o.BatchMaxBytes - 128,
	}
	switch o.Key {
	case "", config.KafkaKeyRoute:
		// Append has just looked the route up for the event's http_route.
		out.key = func(dst []byte, _ *traffic.Request) []byte { return append(dst, out.enc.route...) }
	case config.KafkaKeyClient:
		out.key = func(dst []byte, r *traffic.Request) []byte { return out.enc.AppendClient(dst, r.Client) }
	case config.KafkaKeyModel:
		out.key = func(dst []byte, r *traffic.Request) []byte { return append(dst, r.Model...) }
	case config.KafkaKeyNone:
	default:
		return nil, fmt.Errorf("kafka output: unknown key %q", o.Key)
	}
	out.promiseFn = out.promise
	// Enough records for what is in flight at 50k events/s (linger and
	// round trip); about 5 MiB at most.
	out.records = newRecordCache(min(o.BufferEvents, 4096))

	opts, err := out.clientOptions()
	if err != nil {
		return nil, err
	}
	out.client, err = kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka output: %w", err)
	}
	out.m.buffered = func() float64 { return float64(out.queue.len()) }
	out.m.capacity = func() float64 { return float64(o.BufferEvents) }
	out.m.inProducer = func() float64 { return float64(out.client.BufferedProduceRecords()) }
	if o.SASL != nil && o.TLS == nil {
		out.logger.Warn("SASL without TLS: credentials and events cross the network unencrypted; set exporter.outputs.kafka.tls.enabled",
			"mechanism", o.SASL.Name())
	}
	return out, nil
}

func (out *Output) clientOptions() ([]kgo.Opt, error) {
	o := out.o
	opts := []kgo.Opt{
		kgo.SeedBrokers(o.Brokers...),
		kgo.DefaultProduceTopic(o.Topic),
		kgo.ClientID(o.ClientID),
		kgo.ProducerBatchMaxBytes(int32(o.BatchMaxBytes)),
		kgo.ProducerLinger(o.Linger),
		kgo.MaxBufferedRecords(o.BufferEvents),
		kgo.WithHooks(out.m),
		kgo.WithLogger(kgoLogger{out.logger}),
	}
	if o.DeliveryTimeout > 0 {
		opts = append(opts, kgo.RecordDeliveryTimeout(o.DeliveryTimeout))
	}
	if o.RetryBackoff > 0 {
		max := o.RetryBackoff
		opts = append(opts, kgo.RetryBackoffFn(func(tries int) time.Duration {
			return min(time.Duration(tries)*max/4, max)
		}))
	}
	switch o.Compression {
	case "", "zstd":
		level := o.ZstdLevel
		if level == 0 {
			level = 1
		}
		c, err := newZstdCompressor(level)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.WithCompressor(c))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "snappy":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case "none":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	default:
		return nil, fmt.Errorf("kafka output: unknown compression %q", o.Compression)
	}
	switch o.Acks {
	case "", config.KafkaAcksAll:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case config.KafkaAcksLeader:
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	case config.KafkaAcksNone:
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
	default:
		return nil, fmt.Errorf("kafka output: unknown acks %q", o.Acks)
	}
	if !o.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	} else if o.Acks != "" && o.Acks != config.KafkaAcksAll {
		return nil, errors.New("kafka output: the idempotent producer needs acks all")
	}
	if o.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(o.TLS.Clone()))
	}
	if o.SASL != nil {
		opts = append(opts, kgo.SASL(o.SASL))
	}
	return opts, nil
}

// Publish hands a finished request to the producer. It never blocks and
// does not keep r: the request is copied into the buffer, or dropped and
// counted when the buffer is full.
func (out *Output) Publish(r *traffic.Request) {
	if !out.queue.push(r) {
		out.m.dropFull.Inc()
	}
}

// Collector exposes the output's self metrics.
func (out *Output) Collector() prometheus.Collector { return out.m }

// Run produces events until ctx is done, then delivers what it can within
// FlushTimeout and closes the producer. Publish must not be called after
// Run returns.
func (out *Output) Run(ctx context.Context) error {
	defer out.Close()
	out.logger.Info("producing request events to kafka", "brokers", out.o.Brokers, "key", out.o.Key,
		"compression", out.o.Compression, "tls", out.o.TLS != nil, "sasl", out.o.SASL != nil)
	var wg sync.WaitGroup
	if out.o.CreateTopic {
		wg.Go(func() { out.ensureTopic(ctx) })
	}
	defer wg.Wait()

	tick := time.NewTicker(out.o.PollInterval)
	defer tick.Stop()
	report := time.NewTicker(30 * time.Second)
	defer report.Stop()
	var reported dropCounts
	for {
		select {
		case <-ctx.Done():
			return out.shutdown()
		case <-report.C:
			reported = out.reportDrops(reported)
		case <-tick.C:
			out.drain()
		}
	}
}

// Close releases the producer; events not yet delivered are failed and
// counted as dropped (shutdown). Run closes it too.
func (out *Output) Close() error {
	out.closeOnce.Do(func() {
		out.client.Close()
		// Close fails what is still buffered; their promises may still be
		// running. Wait for them (briefly) so the drop counters are final.
		deadline := time.Now().Add(2 * time.Second)
		for out.client.BufferedProduceRecords() > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	})
	return nil
}

// drain hands every buffered event to franz-go while it has room; the rest
// wait in the buffer for the next tick.
func (out *Output) drain() {
	out.now = time.Now()
	// The producer's count only falls while we hand over, so the room
	// measured once is there for the whole pass.
	room := int64(out.o.BufferEvents) - out.client.BufferedProduceRecords()
	for room > 0 {
		c := out.queue.take()
		if c == nil {
			return
		}
		for ; c.off < c.n && room > 0; c.off, room = c.off+1, room-1 {
			out.produce(&c.reqs[c.off])
		}
		out.queue.putBack(c)
	}
}

func (out *Output) produce(r *traffic.Request) {
	rec := out.records.get()
	rec.Timestamp = out.now
	rec.Value = out.enc.Append(rec.Value, r)
	if out.key != nil {
		rec.Key = out.key(rec.Key, r)
	} else {
		rec.Key = nil
	}
	if len(rec.Key)+len(rec.Value) > out.maxRecord {
		out.m.dropped.WithLabelValues(DropTooLarge).Inc()
		out.records.put(rec)
		return
	}
	// Never cancelled: a cancelled context would fail records still
	// buffered instead of letting the final flush deliver them.
	out.client.Produce(context.Background(), rec, out.promiseFn)
}

// promise runs on franz-go's goroutine once Kafka took or refused a record.
func (out *Output) promise(rec *kgo.Record, err error) {
	if err == nil {
		out.m.produced.Inc()
		out.m.producedBytes.Add(float64(len(rec.Key) + len(rec.Value)))
		out.m.latency.Observe(time.Since(rec.Timestamp).Seconds())
	} else {
		reason := DropProduceFailed
		switch kind := errorKind(err); {
		case errors.Is(err, kgo.ErrClientClosed):
			reason = DropShutdown
		case kind == errTooLarge:
			reason = DropTooLarge
			out.m.errors.WithLabelValues(kind).Inc()
		default:
			out.m.errors.WithLabelValues(kind).Inc()
		}
		out.m.dropped.WithLabelValues(reason).Inc()
		out.lastErrMu.Lock()
		out.lastErr = err
		out.lastErrMu.Unlock()
	}
	out.records.put(rec)
}

// shutdown hands over what is buffered, flushes for at most FlushTimeout,
// and counts what could not be delivered.
func (out *Output) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), out.o.FlushTimeout)
	defer cancel()
	for out.queue.len() > 0 && ctx.Err() == nil {
		out.drain()
		if out.queue.len() == 0 {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(out.o.PollInterval):
		}
	}
	left := out.queue.discard()
	out.m.dropped.WithLabelValues(DropShutdown).Add(float64(left))
	if err := out.client.Flush(ctx); err != nil {
		out.logger.Warn("kafka output stopped before every event was delivered",
			"undelivered", out.client.BufferedProduceRecords()+int64(left), "err", err)
	}
	return nil
}

// ensureTopic creates the topic, retrying while the brokers cannot be
// reached; an existing topic is left as it is.
func (out *Output) ensureTopic(ctx context.Context) {
	adm := kadm.NewClient(out.client)
	wait := time.Second
	for {
		resp, err := adm.CreateTopic(ctx, out.o.Partitions, out.o.ReplicationFactor, nil, out.o.Topic)
		if err == nil {
			err = resp.Err
		}
		switch {
		case err == nil:
			out.logger.Info("created kafka topic", "partitions", resp.NumPartitions, "replication_factor", resp.ReplicationFactor)
			return
		case errors.Is(err, kerr.TopicAlreadyExists):
			return
		case ctx.Err() != nil:
			return
		}
		out.m.errors.WithLabelValues(errorKind(err)).Inc()
		out.logger.Warn("cannot create kafka topic yet, retrying", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// dropCounts are the drops already reported in the log.
type dropCounts [4]float64

// reportDrops logs, at most every 30 s, how many events were dropped since
// the last report and the last error, so an outage is visible in the log
// without one line per event.
func (out *Output) reportDrops(prev dropCounts) dropCounts {
	var now dropCounts
	attrs := []any{}
	for i, r := range dropReasons {
		now[i] = counterValue(out.m.dropped.WithLabelValues(r))
		if d := now[i] - prev[i]; d > 0 {
			attrs = append(attrs, r, d)
		}
	}
	if len(attrs) == 0 {
		return now
	}
	out.lastErrMu.Lock()
	if out.lastErr != nil {
		attrs = append(attrs, "last_err", out.lastErr.Error())
	}
	out.lastErrMu.Unlock()
	out.logger.Warn("kafka output dropped events (capture and metrics are not affected)", attrs...)
	return now
}

// kgoLogger passes franz-go's messages down to info level to slog at debug
// level, and only when debug logging is on: while Kafka is down they repeat
// for every retry, and reportDrops already says what matters every 30 s.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelNone
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	k.l.Debug("franz-go: "+msg, append(keyvals, "franz_level", level.String())...)
}
