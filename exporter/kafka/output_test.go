package kafka

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/open-autoglm/autoglm-monitor/exporter/kafka/kafkatest"
	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

const topic = "autoglm.requests"

func baseOptions(brokers ...string) Options {
	return Options{
		Brokers: brokers, Topic: topic, ClientID: "test", Key: "model", Compression: "zstd",
		BatchMaxBytes: 1_000_000, Linger: 5 * time.Millisecond, Idempotent: true, Acks: "all",
		DeliveryTimeout: 3 * time.Second, BufferEvents: 4096, PollInterval: time.Millisecond,
		FlushTimeout: 3 * time.Second, RetryBackoff: 200 * time.Millisecond,
		Encoder: EncoderOptions{
			Endpoints: []string{"/v1/chat/completions"}, Source: SourceEBPF, Host: "node-1", PrefixV4: 24, PrefixV6: 64,
		},
	}
}

// running is an Output whose Run goroutine the test controls.
type running struct {
	*Output
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, o Options) *running {
	t.Helper()
	out, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Output: out, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- out.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

// stop ends Run (flushing) and waits for it; calling it twice is harmless.
func (r *running) stop() {
	r.cancel()
	if r.done != nil {
		<-r.done
		r.done = nil
	}
}

func request(i int) traffic.Request {
	end := t0.Add(time.Duration(i) * time.Millisecond)
	return traffic.Request{
		Start: end.Add(-20 * time.Millisecond), FirstByte: end.Add(-5 * time.Millisecond), End: end,
		Method: "POST", Path: "/v1/chat/completions", Status: 200, RequestBodySize: int64(i), ResponseBodySize: 2 * int64(i),
		Model: fmt.Sprintf("m-%d", i), InputTokens: int64(i % 7), OutputTokens: int64(i % 11),
		Client: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), ServerPort: 8000,
	}
}

func metric(t testing.TB, c prometheus.Collector, name string, labels ...string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

func dropped(t testing.TB, out *Output) float64 {
	total := 0.0
	for _, r := range dropReasons {
		total += metric(t, out.Collector(), "autoglm_exporter_kafka_events_dropped_total", "reason", r)
	}
	return total
}

// Every published request reaches the topic exactly once, keyed as
// configured, with the fields of its request, and the self metrics agree.
func TestEveryEventOnceWithItsFields(t *testing.T) {
	es := loadSchema(t)
	b := kafkatest.Start(t, topic, 3)
	out := start(t, baseOptions(b.Addr()))
	const n = 3000
	for i := range n {
		r := request(i)
		out.Publish(&r)
	}
	recs := b.Consume(n, 500*time.Millisecond, 30*time.Second)
	if len(recs) != n {
		t.Fatalf("%d records on the topic, want %d", len(recs), n)
	}
	seen := make(map[string]bool, n)
	var bytes float64
	for _, rec := range recs {
		ev := es.check(t, rec.Value)
		model := ev["gen_ai_request_model"].(string)
		if seen[model] {
			t.Fatalf("event for %s twice", model)
		}
		seen[model] = true
		var i int
		if _, err := fmt.Sscanf(model, "m-%d", &i); err != nil {
			t.Fatal(err)
		}
		want := request(i)
		if string(rec.Key) != model {
			t.Errorf("key %q, want the model %q", rec.Key, model)
		}
		if ev["request_body_bytes"] != float64(i) || ev["response_body_bytes"] != float64(2*i) ||
			ev["input_tokens"] != float64(i%7) || ev["output_tokens"] != float64(i%11) ||
			ev["end_time"] != want.End.Format("2006-01-02T15:04:05.000Z") ||
			ev["client_address"] != fmt.Sprintf("10.0.%d.0/24", byte(i>>8)) {
			t.Fatalf("event %d = %s", i, rec.Value)
		}
		bytes += float64(len(rec.Key) + len(rec.Value))
	}
	out.stop()
	c := out.Collector()
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"autoglm_exporter_kafka_events_produced_total", nil, n},
		{"autoglm_exporter_kafka_produced_bytes_total", nil, bytes},
		{"autoglm_exporter_kafka_produce_latency_seconds", nil, n},
		{"autoglm_exporter_kafka_buffer_events", nil, 0},
		{"autoglm_exporter_kafka_buffer_capacity_events", nil, 4096},
		{"autoglm_exporter_kafka_producer_buffered_events", nil, 0},
	} {
		if got := metric(t, c, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s = %g, want %g", tc.name, got, tc.want)
		}
	}
	if d := dropped(t, out.Output); d != 0 {
		t.Errorf("dropped %g events", d)
	}
	if got := metric(t, c, "autoglm_exporter_kafka_batches_total"); got < 1 || got > n {
		t.Errorf("batches = %g", got)
	}
}

// With Kafka unreachable, Publish still returns at once; events beyond the
// buffers are dropped as buffer_full, and at shutdown every event is
// accounted for: none is lost without being counted.
func TestUnreachableKafkaDropsAndCountsEveryEvent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	o := baseOptions(addr)
	o.BufferEvents = 64
	o.DeliveryTimeout = time.Second
	o.FlushTimeout = 200 * time.Millisecond
	out := start(t, o)
	const n = 5000
	for i := range n {
		r := request(i)
		out.Publish(&r)
	}
	full := metric(t, out.Collector(), "autoglm_exporter_kafka_events_dropped_total", "reason", DropBufferFull)
	if full < n-2*64 {
		t.Errorf("buffer_full drops = %g, want at least %d", full, n-2*64)
	}
	// Wait for the delivery timeout to fail what the producer holds.
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, out.Collector(), "autoglm_exporter_kafka_events_dropped_total", "reason", DropProduceFailed) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no event failed after the delivery timeout")
		}
		time.Sleep(50 * time.Millisecond)
	}
	out.stop()
	if d := dropped(t, out.Output); d != n {
		t.Errorf("dropped %g of %d events when none could be delivered", d, n)
	}
	if got := metric(t, out.Collector(), "autoglm_exporter_kafka_errors_total", "kind", "connect"); got == 0 {
		t.Error("no connect errors counted")
	}
	if got := metric(t, out.Collector(), "autoglm_exporter_kafka_events_produced_total"); got != 0 {
		t.Errorf("produced = %g", got)
	}
}

// A broker that goes away and comes back: production resumes by itself,
// and every event is either on the topic exactly once or counted as dropped.
func TestResumesAfterBrokerRestart(t *testing.T) {
	es := loadSchema(t)
	b := kafkatest.Start(t, topic, 2)
	o := baseOptions(b.Addr())
	o.BufferEvents = 1024
	o.DeliveryTimeout = 2 * time.Second
	out := start(t, o)
	i := 0
	publish := func(k int) {
		for range k {
			r := request(i)
			out.Publish(&r)
			i++
		}
	}
	publish(500)
	waitProduced(t, out.Output, 500)
	b.Stop()
	// Load while the broker is down, for longer than the delivery timeout.
	for range 40 {
		publish(100)
		time.Sleep(100 * time.Millisecond)
	}
	b.Restart()
	// The backlog held while the broker was down goes out by itself.
	deadline := time.Now().Add(30 * time.Second)
	for metric(t, out.Collector(), "autoglm_exporter_kafka_buffer_events") > 0 ||
		metric(t, out.Collector(), "autoglm_exporter_kafka_producer_buffered_events") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the backlog did not drain after the broker came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := metric(t, out.Collector(), "autoglm_exporter_kafka_events_produced_total")
	publish(500)
	waitProduced(t, out.Output, before+500)
	out.stop()
	produced := metric(t, out.Collector(), "autoglm_exporter_kafka_events_produced_total")
	if d := dropped(t, out.Output); produced+d != float64(i) || d == 0 {
		t.Errorf("produced %g + dropped %g != published %d (drops expected while down)", produced, d, i)
	}
	recs := b.Consume(int(produced), 500*time.Millisecond, 30*time.Second)
	seen := map[string]bool{}
	for _, rec := range recs {
		m := es.check(t, rec.Value)["gen_ai_request_model"].(string)
		if seen[m] {
			t.Errorf("%s on the topic twice", m)
		}
		seen[m] = true
	}
	if float64(len(recs)) != produced {
		t.Errorf("%d records on the topic, %g counted as produced", len(recs), produced)
	}
	for _, k := range []string{"m-0", "m-499", fmt.Sprintf("m-%d", i-1)} {
		if !seen[k] {
			t.Errorf("%s missing: events before and after the outage must arrive", k)
		}
	}
}

func waitProduced(t *testing.T, out *Output, n float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for metric(t, out.Collector(), "autoglm_exporter_kafka_events_produced_total") < n {
		if time.Now().After(deadline) {
			t.Fatalf("produced %g events, want %g", metric(t, out.Collector(), "autoglm_exporter_kafka_events_produced_total"), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An event that cannot fit in a batch is dropped as too_large; the others go through.
func TestTooLargeEvent(t *testing.T) {
	b := kafkatest.Start(t, topic, 1)
	o := baseOptions(b.Addr())
	o.BatchMaxBytes = 2048
	out := start(t, o)
	big := request(1)
	big.Model = strings.Repeat("x", 4096)
	small := request(2)
	out.Publish(&big)
	out.Publish(&small)
	waitProduced(t, out.Output, 1)
	out.stop()
	if got := metric(t, out.Collector(), "autoglm_exporter_kafka_events_dropped_total", "reason", DropTooLarge); got != 1 {
		t.Errorf("too_large drops = %g, want 1", got)
	}
}

// The topic is created when asked, with the configured partitions.
func TestCreatesTopic(t *testing.T) {
	b := kafkatest.Start(t, topic, 0)
	o := baseOptions(b.Addr())
	o.CreateTopic, o.Partitions, o.ReplicationFactor = true, 3, -1
	out := start(t, o)
	r := request(1)
	out.Publish(&r)
	waitProduced(t, out.Output, 1)
	adm := kadm.NewClient(b.Client())
	td, err := adm.ListTopics(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(td[topic].Partitions); got != 3 {
		t.Errorf("topic has %d partitions, want 3", got)
	}
}

// TLS and SASL against a broker that requires both: the right CA and
// password produce; a wrong password or an unknown CA fail with counted
// errors of their kind; the password never reaches the log.
func TestTLSAndSASL(t *testing.T) {
	caPEM, serverCert := kafkatest.Certificates(t)
	const user, password = "exporter", "s3cret-Pa55word"
	b := kafkatest.Start(t, topic, 1,
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", user, password),
		kfake.Superuser("SCRAM-SHA-512", user, password),
		kfake.Superuser("PLAIN", user, password),
	)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	clientTLS := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}

	for _, tc := range []struct {
		name     string
		tls      *tls.Config
		password string
		mech     string
		wantKind string
	}{
		{"SCRAM-SHA-256", clientTLS, password, "SCRAM-SHA-256", ""},
		{"SCRAM-SHA-512", clientTLS, password, "SCRAM-SHA-512", ""},
		{"PLAIN", clientTLS, password, "PLAIN", ""},
		// kfake closes the connection on a failed SCRAM exchange where Kafka
		// answers SASL_AUTHENTICATION_FAILED (kind auth, see TestErrorKinds).
		{"wrong password", clientTLS, "not-the-" + password, "SCRAM-SHA-256", errConnect},
		{"unknown CA", &tls.Config{MinVersion: tls.VersionTLS12}, password, "SCRAM-SHA-256", errTLS},
		{"wrong server name", &tls.Config{RootCAs: pool, ServerName: "other.test", MinVersion: tls.VersionTLS12}, password, "SCRAM-SHA-256", errTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs testenv.LogBuffer
			o := baseOptions(b.Addr())
			o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			o.TLS = tc.tls
			o.DeliveryTimeout = time.Second
			o.FlushTimeout = 500 * time.Millisecond
			switch tc.mech {
			case "PLAIN":
				o.SASL = plain.Auth{User: user, Pass: tc.password}.AsMechanism()
			case "SCRAM-SHA-512":
				o.SASL = scram.Auth{User: user, Pass: tc.password}.AsSha512Mechanism()
			default:
				o.SASL = scram.Auth{User: user, Pass: tc.password}.AsSha256Mechanism()
			}
			out := start(t, o)
			r := request(1)
			out.Publish(&r)
			if tc.wantKind == "" {
				waitProduced(t, out.Output, 1)
			} else {
				deadline := time.Now().Add(15 * time.Second)
				for metric(t, out.Collector(), "autoglm_exporter_kafka_errors_total", "kind", tc.wantKind) == 0 {
					if time.Now().After(deadline) {
						t.Fatalf("no %s error counted; log:\n%s", tc.wantKind, logs.String())
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			out.stop()
			if tc.wantKind != "" {
				if got := metric(t, out.Collector(), "autoglm_exporter_kafka_events_produced_total"); got != 0 {
					t.Errorf("produced %g events through a broken connection", got)
				}
				if d := dropped(t, out.Output); d != 1 {
					t.Errorf("dropped %g, want the 1 event", d)
				}
			}
			if strings.Contains(logs.String(), password) {
				t.Errorf("the password appears in the log:\n%s", logs.String())
			}
		})
	}
}

// SASL over plaintext is allowed but said loudly at start.
func TestSASLWithoutTLSWarns(t *testing.T) {
	var logs testenv.LogBuffer
	o := baseOptions("127.0.0.1:9")
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	o.SASL = plain.Auth{User: "u", Pass: "topsecret"}.AsMechanism()
	out, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if s := logs.String(); !strings.Contains(s, "level=WARN") || !strings.Contains(s, "SASL without TLS") || strings.Contains(s, "topsecret") {
		t.Errorf("log = %s", s)
	}
}

// The self metrics pass client_golang's linter and promtool.
func TestSelfMetricsLint(t *testing.T) {
	b := kafkatest.Start(t, topic, 1)
	out := start(t, baseOptions(b.Addr()))
	r := request(1)
	out.Publish(&r)
	waitProduced(t, out.Output, 1)
	problems, err := testutil.CollectAndLint(out.Collector())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(out.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(testenv.Promtool(t), "check", "metrics")
	cmd.Stdin = &buf
	if outp, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, outp)
	}
}

func TestErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{kerr.SaslAuthenticationFailed, errAuth},
		{fmt.Errorf("init: %w", kerr.UnsupportedSaslMechanism), errAuth},
		{kerr.TopicAuthorizationFailed, errTopic},
		{kerr.UnknownTopicOrPartition, errTopic},
		{fmt.Errorf("%w (uncompressed_bytes=9)", kerr.MessageTooLarge), errTooLarge},
		{fmt.Errorf("%w, last err: %w", kgo.ErrRecordTimeout, io.EOF), errTimeout},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, errConnect},
		{io.EOF, errConnect},
		{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, errTLS},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, errTLS},
		{kerr.NotLeaderForPartition, errOther},
		{errors.New("something else"), errOther},
	} {
		if got := errorKind(tc.err); got != tc.want {
			t.Errorf("errorKind(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}
