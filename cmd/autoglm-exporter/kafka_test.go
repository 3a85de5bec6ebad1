package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/open-autoglm/autoglm-monitor/exporter/kafka/kafkatest"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// The binary sends access-log requests as events to a broker that requires
// TLS and SCRAM, with the CA and the password read from files, exposes the
// output's self metrics, and never logs the password (even at debug level).
func TestKafkaOutput(t *testing.T) {
	bin := testenv.Binary(t, "autoglm-exporter")
	dir := t.TempDir()
	caPEM, serverCert := kafkatest.Certificates(t)
	const password = "Kafka-Pa55-do-not-log"
	b := kafkatest.Start(t, "autoglm.requests", 2,
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "exporter", password))
	for name, content := range map[string]string{"ca.pem": string(caPEM), "kafka-password": password + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(dir, "access.log")
	var lines strings.Builder
	for range 9 {
		lines.WriteString(`10.1.2.3 - - [25/Nov/2026:17:52:38 +0000] "POST /v1/chat/completions HTTP/1.1" 200 5123 "-" "openai-python/1.51.0" 2.345` + "\n")
	}
	lines.WriteString(`10.9.9.9 - - [25/Nov/2026:17:52:39 +0000] "POST /v1/chat/completions HTTP/1.1" 503 12 "-" "curl" 0.010` + "\n")
	if err := os.WriteFile(logPath, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(cfg, []byte(`metrics:
  endpoints: [/v1/chat/completions]
exporter:
  source: accesslog
  ports: [8000]
  accesslog: {path: `+logPath+`, format: nginx, from_start: true, service_name: gateway}
  outputs:
    kafka:
      brokers: [`+b.Addr()+`]
      topic: autoglm.requests
      tls: {enabled: true, ca_file: ca.pem}
      sasl: {mechanism: SCRAM-SHA-512, username: exporter, password_file: kafka-password}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfg, "--web.listen-address="+testenv.Addr(port), "--log.level=debug")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			cancel()
			_ = cmd.Wait()
			stopped = true
		}
	}
	defer func() {
		stop()
		if t.Failed() {
			t.Logf("exporter log:\n%s", stderr.String())
		}
	}()
	url := "http://" + testenv.Addr(port) + "/metrics"
	text := scrape(t, url, func(s string) bool { return strings.Contains(s, "autoglm_exporter_kafka_events_produced_total 10") })
	for _, want := range []string{
		`autoglm_exporter_kafka_events_dropped_total{reason="buffer_full"} 0`,
		`autoglm_exporter_kafka_buffer_capacity_events 16384`,
		`autoglm_exporter_kafka_produce_latency_seconds_count 10`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	check := exec.Command(testenv.Promtool(t), "check", "metrics")
	check.Stdin = strings.NewReader(text)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	recs := b.Consume(10, time.Second, 20*time.Second,
		kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: "exporter", Pass: password}.AsSha512Mechanism()))
	if len(recs) != 10 {
		t.Fatalf("%d events on the topic, want 10", len(recs))
	}
	var ev map[string]any
	if err := json.Unmarshal(recs[0].Value, &ev); err != nil {
		t.Fatal(err)
	}
	if ev["source"] != "accesslog" || ev["service_name"] != "gateway" || ev["http_route"] != "/v1/chat/completions" {
		t.Errorf("event = %v", ev)
	}
	stop()
	if strings.Contains(stderr.String(), strings.TrimSuffix(password, "-do-not-log")) {
		t.Errorf("the SASL password is in the log:\n%s", stderr.String())
	}
}

// A misconfigured output stops the exporter at start with one line that
// names the file, the line and the key.
func TestKafkaMisconfigurationFailsAtStart(t *testing.T) {
	bin := testenv.Binary(t, "autoglm-exporter")
	dir := t.TempDir()
	for _, tc := range []struct {
		name, kafka string
		want        []string
	}{
		{"missing CA file", "tls: {enabled: true, ca_file: missing-ca.pem}",
			[]string{"c.yml:11: exporter.outputs.kafka.tls.ca_file", "missing-ca.pem", "no such file"}},
		{"unknown SASL mechanism", "sasl: {mechanism: OAUTHBEARER, username: u, password: pw}",
			[]string{"c.yml:11: exporter.outputs.kafka.sasl.mechanism", `"OAUTHBEARER"`, "SCRAM-SHA-512"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, "c.yml")
			if err := os.WriteFile(cfg, []byte(`metrics:
  endpoints: [/v1/chat/completions]
exporter:
  source: accesslog
  ports: [8000]
  accesslog: {path: /dev/null/none.log, format: nginx}
  outputs:
    kafka:
      brokers: [127.0.0.1:9]
      topic: autoglm.requests
      `+tc.kafka+`
`), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "--config.file="+cfg, "--web.listen-address="+testenv.Addr(testenv.FreePort(t))).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("exporter started with %s: %v\n%s", tc.name, err, out)
			}
			last := strings.TrimSpace(string(out))
			if i := strings.LastIndexByte(last, '\n'); i >= 0 {
				last = last[i+1:]
			}
			for _, w := range tc.want {
				if !strings.Contains(last, w) {
					t.Errorf("last line %q does not say %q", last, w)
				}
			}
			if strings.Contains(string(out), "pw}") {
				t.Errorf("output shows the password: %s", out)
			}
		})
	}
}
