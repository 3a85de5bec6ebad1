package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKafkaOutputDefaults(t *testing.T) {
	f, err := Parse([]byte("exporter:\n  client_prefix_v4: 16\n  outputs:\n    kafka:\n      brokers: [kafka-1:9092, \"[::1]:9093\"]\n      topic: autoglm.requests\n"), "c.yml")
	if err != nil {
		t.Fatal(err)
	}
	k := f.Exporter.Outputs.Kafka
	if k.Key != "route" || k.Compression != "zstd" || k.Acks != "all" || !*k.Idempotent || k.BufferEvents != 16384 ||
		k.BatchMaxBytes != 1_000_000 || k.Linger.D() != 20*time.Millisecond || k.DeliveryTimeout.D() != 30*time.Second ||
		k.ClientAddress != "masked" || *k.ClientPrefixV4 != 16 || *k.ClientPrefixV6 != 64 || k.ClientID != "autoglm-exporter" ||
		k.CreateTopic.Enabled || k.CreateTopic.Partitions != -1 || k.CreateTopic.ReplicationFactor != -1 {
		t.Errorf("defaults = %+v", k)
	}
	if tc, err := k.TLS.Build(f); tc != nil || err != nil {
		t.Errorf("TLS off by default, got %v, %v", tc, err)
	}
	if off, err := Parse([]byte("exporter:\n  ports: [8000]\n"), "c.yml"); err != nil || off.Exporter.Outputs.Kafka != nil {
		t.Errorf("the output must be off unless configured: %v", err)
	}
}

// writePKI writes a CA and a client certificate with its key to dir.
func writePKI(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "exporter"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", der), write("client.pem", "CERTIFICATE", der), write("client.key", "EC PRIVATE KEY", kder)
}

func TestKafkaOutputFullSection(t *testing.T) {
	dir := t.TempDir()
	writePKI(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "kafka-password"), []byte("pw-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := `exporter:
  outputs:
    kafka:
      brokers: [kafka-1:9093, kafka-2:9093]
      topic: llm.requests
      client_id: node-7
      key: client
      compression: lz4
      batch_max_bytes: 524288
      linger: 50ms
      idempotent: false
      acks: leader
      delivery_timeout: 1m
      buffer_events: 1000
      client_address: full
      tls:
        enabled: true
        ca_file: ca.pem
        cert_file: client.pem
        key_file: client.key
        server_name: kafka.internal
      sasl:
        mechanism: SCRAM-SHA-512
        username: exporter
        password_file: kafka-password
      create_topic:
        enabled: true
        partitions: 12
        replication_factor: 3
`
	path := filepath.Join(dir, "autoglm.yml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	k := f.Exporter.Outputs.Kafka
	if k.Key != "client" || k.Compression != "lz4" || *k.Idempotent || k.Acks != "leader" || k.BufferEvents != 1000 ||
		k.ClientAddress != "full" || k.CreateTopic.Partitions != 12 || k.CreateTopic.ReplicationFactor != 3 || k.ClientID != "node-7" {
		t.Errorf("section = %+v", k)
	}
	tc, err := k.TLS.Build(f)
	if err != nil || tc == nil || tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.ServerName != "kafka.internal" {
		t.Fatalf("TLS = %+v, %v", tc, err)
	}
	pw, err := f.ResolveSecret("exporter.outputs.kafka.sasl.password", k.SASL.Password, k.SASL.PasswordFile)
	if err != nil || pw.Value() != "pw-from-file" {
		t.Errorf("password from file = %v, %v", pw, err)
	}
}

func TestKafkaOutputBadInput(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writePKI(t, dir)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	const head = "exporter:\n  outputs:\n    kafka:\n      brokers: [k:9092]\n      topic: t\n"
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"unknown key", head + "      compresion: zstd\n", []string{"c.yml", "line 6", "compresion"}},
		{"no brokers", "exporter:\n  outputs:\n    kafka:\n      topic: t\n", []string{"c.yml:4", "exporter.outputs.kafka.brokers", "at least one broker"}},
		{"broker without port", "exporter:\n  outputs:\n    kafka:\n      brokers: [kafka-1]\n      topic: t\n", []string{"c.yml:4", "brokers[0]", "host:port"}},
		{"bad port", "exporter:\n  outputs:\n    kafka:\n      brokers: [\"k:0\"]\n      topic: t\n", []string{"brokers[0]", "1..65535"}},
		{"no topic", "exporter:\n  outputs:\n    kafka:\n      brokers: [k:9092]\n", []string{"c.yml:4", "kafka.topic", "must name"}},
		{"bad topic", "exporter:\n  outputs:\n    kafka:\n      brokers: [k:9092]\n      topic: a/b\n", []string{"c.yml:5", "kafka.topic", "only ASCII"}},
		{"bad key", head + "      key: tenant\n", []string{"c.yml:6", "kafka.key", `"tenant"`}},
		{"bad compression", head + "      compression: brotli\n", []string{"c.yml:6", "kafka.compression", "brotli"}},
		{"bad acks", head + "      acks: two\n", []string{"kafka.acks", `"two"`}},
		{"idempotent needs all acks", head + "      acks: leader\n", []string{"c.yml:6", "kafka.acks", "idempotent producer needs acks: all"}},
		{"tiny batch", head + "      batch_max_bytes: 100\n", []string{"kafka.batch_max_bytes", "100"}},
		{"linger too long", head + "      linger: 1m\n", []string{"kafka.linger", "1m"}},
		{"bad linger", head + "      linger: soon\n", []string{"c.yml", "line 6", "soon"}},
		{"short delivery timeout", head + "      delivery_timeout: 10ms\n", []string{"kafka.delivery_timeout", "at least 1s"}},
		{"huge buffer", head + "      buffer_events: 100000000\n", []string{"kafka.buffer_events"}},
		{"bad client mode", head + "      client_address: hashed\n", []string{"kafka.client_address", "hashed"}},
		{"bad prefix", head + "      client_prefix_v4: 33\n", []string{"c.yml:6", "kafka.client_prefix_v4", "33"}},
		{"prefix with full addresses", head + "      client_address: full\n      client_prefix_v6: 48\n", []string{"kafka.client_address", "no effect"}},
		{"too many partitions", head + "      create_topic: {enabled: true, partitions: 20000}\n", []string{"create_topic.partitions", "20000"}},
		{"negative replication", head + "      create_topic: {enabled: true, replication_factor: -5}\n", []string{"create_topic.replication_factor", "-5"}},
		{"TLS settings while off", head + "      tls:\n        ca_file: " + ca + "\n", []string{"c.yml:7", "kafka.tls.enabled", "enabled is false"}},
		{"missing CA file", head + "      tls:\n        enabled: true\n        ca_file: /nonexistent/ca.pem\n", []string{"c.yml:8", "kafka.tls.ca_file", "/nonexistent/ca.pem", "no such file"}},
		{"CA file without certificate", head + "      tls:\n        enabled: true\n        ca_file: " + garbage + "\n", []string{"c.yml:8", "kafka.tls.ca_file", "no PEM certificate"}},
		{"cert without key", head + "      tls:\n        enabled: true\n        cert_file: " + cert + "\n", []string{"kafka.tls.key_file", "with cert_file"}},
		{"key without cert", head + "      tls:\n        enabled: true\n        key_file: " + key + "\n", []string{"kafka.tls.cert_file", "with key_file"}},
		{"key that is not a key", head + "      tls:\n        enabled: true\n        cert_file: " + cert + "\n        key_file: " + garbage + "\n", []string{"kafka.tls.cert_file", "do not load"}},
		{"unknown SASL mechanism", head + "      sasl:\n        mechanism: GSSAPI\n        username: u\n        password: p\n", []string{"c.yml:7", "kafka.sasl.mechanism", `"GSSAPI"`, "PLAIN"}},
		{"lower-case mechanism", head + "      sasl:\n        mechanism: scram-sha-256\n        username: u\n        password: p\n", []string{"kafka.sasl.mechanism", "upper case"}},
		{"SASL without user", head + "      sasl:\n        mechanism: PLAIN\n        password: p\n", []string{"kafka.sasl.username", "required"}},
		{"SASL without password", head + "      sasl:\n        mechanism: PLAIN\n        username: u\n", []string{"kafka.sasl.password", "required"}},
		{"credentials without mechanism", head + "      sasl:\n        username: u\n        password: p\n", []string{"kafka.sasl.mechanism", "must be one of"}},
		{"password and file", head + "      sasl:\n        mechanism: PLAIN\n        username: u\n        password: p\n        password_file: /x\n", []string{"kafka.sasl.password", "not both"}},
		{"unreadable password file", head + "      sasl:\n        mechanism: PLAIN\n        username: u\n        password_file: /nonexistent/pw\n", []string{"c.yml:9", "kafka.sasl.password_file", "/nonexistent/pw"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.body), "c.yml")
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// No error about the Kafka section shows a password, inline or from its file.
func TestKafkaOutputErrorsNeverShowSecrets(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("FILE-SECRET-42"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		"exporter:\n  outputs:\n    kafka:\n      topic: t\n      sasl: {mechanism: BOGUS, username: u, password: INLINE-SECRET-42}\n",
		"exporter:\n  outputs:\n    kafka:\n      topic: t\n      sasl: {mechanism: PLAIN, username: u, password: INLINE-SECRET-42, password_file: " + pwFile + "}\n",
		"exporter:\n  outputs:\n    kafka:\n      brokers: [x]\n      topic: t\n      sasl: {mechanism: PLAIN, password_file: " + pwFile + "}\n",
	} {
		_, err := Parse([]byte(body), "c.yml")
		if err == nil {
			t.Fatalf("accepted:\n%s", body)
		}
		if strings.Contains(err.Error(), "SECRET-42") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}
