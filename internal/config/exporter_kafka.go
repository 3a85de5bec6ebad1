package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ExporterOutputs is the "exporter.outputs:" section: where request events go
// besides the metrics.
type ExporterOutputs struct {
	// Kafka, when present, sends one event per finished request to a Kafka topic.
	Kafka *ExporterKafka `yaml:"kafka"`
}

// ExporterKafka is the "exporter.outputs.kafka:" section. Its keys are
// documented in exporter/README.md; zero values take the defaults below when
// the section is validated.
type ExporterKafka struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string `yaml:"brokers"`
	// Topic receives the events.
	Topic string `yaml:"topic"`
	// ClientID names the producer to the brokers (quotas, logs).
	ClientID string `yaml:"client_id"`
	// Key chooses the record key, and so the partition: route, client, model or none.
	Key string `yaml:"key"`
	// Compression of record batches: zstd, lz4, snappy, gzip or none.
	Compression string `yaml:"compression"`
	// BatchMaxBytes bounds one record batch; it must not exceed the topic's max.message.bytes.
	BatchMaxBytes int `yaml:"batch_max_bytes"`
	// Linger is how long a partition's batch may wait for more records.
	Linger Duration `yaml:"linger"`
	// Idempotent enables the idempotent producer (no duplicates or reordering on retries); default true.
	Idempotent *bool `yaml:"idempotent"`
	// Acks is how many replicas acknowledge a batch: all, leader or none.
	Acks string `yaml:"acks"`
	// DeliveryTimeout is how long an event may wait for Kafka before it is dropped and counted.
	DeliveryTimeout Duration `yaml:"delivery_timeout"`
	// BufferEvents bounds the events waiting between the capture and the producer
	// (and, separately, the records the producer holds in flight).
	BufferEvents int `yaml:"buffer_events"`
	// ClientAddress is "masked" (the client's network at ClientPrefixV4/V6) or "full".
	ClientAddress string `yaml:"client_address"`
	// ClientPrefixV4 and ClientPrefixV6 mask client addresses; they default to exporter.client_prefix_v4/v6.
	ClientPrefixV4 *int `yaml:"client_prefix_v4"`
	ClientPrefixV6 *int `yaml:"client_prefix_v6"`
	// TLS secures the connections to the brokers.
	TLS KafkaTLS `yaml:"tls"`
	// SASL authenticates the producer.
	SASL KafkaSASL `yaml:"sasl"`
	// CreateTopic creates the topic at start when it does not exist.
	CreateTopic KafkaTopic `yaml:"create_topic"`
}

// KafkaTLS is "exporter.outputs.kafka.tls:". Key names follow Prometheus' tls_config.
type KafkaTLS struct {
	Enabled bool `yaml:"enabled"`
	// CAFile verifies the brokers' certificates (default: the system roots).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate for mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the brokers' certificates.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables certificate verification (tests only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// KafkaSASL is "exporter.outputs.kafka.sasl:".
type KafkaSASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty disables SASL.
	Mechanism    string `yaml:"mechanism"`
	Username     string `yaml:"username"`
	Password     Secret `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// KafkaTopic is "exporter.outputs.kafka.create_topic:".
type KafkaTopic struct {
	Enabled bool `yaml:"enabled"`
	// Partitions of a created topic; -1 takes the broker's num.partitions.
	Partitions int32 `yaml:"partitions"`
	// ReplicationFactor of a created topic; -1 takes the broker's default.replication.factor.
	ReplicationFactor int16 `yaml:"replication_factor"`
}

// Kafka output choices.
const (
	KafkaKeyRoute  = "route"
	KafkaKeyClient = "client"
	KafkaKeyModel  = "model"
	KafkaKeyNone   = "none"

	KafkaAcksAll    = "all"
	KafkaAcksLeader = "leader"
	KafkaAcksNone   = "none"

	KafkaClientMasked = "masked"
	KafkaClientFull   = "full"

	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

var (
	kafkaKeys         = []string{KafkaKeyRoute, KafkaKeyClient, KafkaKeyModel, KafkaKeyNone}
	kafkaCompressions = []string{"zstd", "lz4", "snappy", "gzip", "none"}
	kafkaAcks         = []string{KafkaAcksAll, KafkaAcksLeader, KafkaAcksNone}
	kafkaClient       = []string{KafkaClientMasked, KafkaClientFull}
	saslMechanisms    = []string{SASLPlain, SASLScramSHA256, SASLScramSHA512}
)

// Bounds that keep the output's memory and the brokers' limits sane.
const (
	minKafkaBatch  = 1 << 10
	maxKafkaBatch  = 64 << 20
	minKafkaBuffer = 16
	maxKafkaBuffer = 1 << 22
	maxKafkaLinger = 10 * time.Second
	maxBrokers     = 64
)

const kafkaKey = "exporter.outputs.kafka"

// setDefaults fills what the file left out.
func (k *ExporterKafka) setDefaults(e *Exporter) {
	if k.ClientID == "" {
		k.ClientID = "autoglm-exporter"
	}
	if k.Key == "" {
		k.Key = KafkaKeyRoute
	}
	if k.Compression == "" {
		k.Compression = "zstd"
	}
	if k.BatchMaxBytes == 0 {
		k.BatchMaxBytes = 1_000_000
	}
	if k.Linger == 0 {
		k.Linger = Duration(20 * time.Millisecond)
	}
	if k.Idempotent == nil {
		on := true
		k.Idempotent = &on
	}
	if k.Acks == "" {
		k.Acks = KafkaAcksAll
	}
	if k.DeliveryTimeout == 0 {
		k.DeliveryTimeout = Duration(30 * time.Second)
	}
	if k.BufferEvents == 0 {
		k.BufferEvents = 16384
	}
	if k.ClientAddress == "" {
		k.ClientAddress = KafkaClientMasked
	}
	if k.ClientPrefixV4 == nil {
		v := e.ClientPrefixV4
		k.ClientPrefixV4 = &v
	}
	if k.ClientPrefixV6 == nil {
		v := e.ClientPrefixV6
		k.ClientPrefixV6 = &v
	}
	if k.CreateTopic.Partitions == 0 {
		k.CreateTopic.Partitions = -1
	}
	if k.CreateTopic.ReplicationFactor == 0 {
		k.CreateTopic.ReplicationFactor = -1
	}
}

// validate fills in the defaults, then checks every key. TLS files are read
// and parsed and the SASL password resolved here, so a misconfigured output
// fails at start with the key and line instead of at the first connection.
func (k *ExporterKafka) validate(f *File, e *Exporter) []error {
	k.setDefaults(e)
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, Errorf(kafkaKey+key, format, args...))
	}
	if len(k.Brokers) == 0 {
		add(".brokers", "must list at least one broker as host:port")
	}
	if len(k.Brokers) > maxBrokers {
		add(".brokers", "at most %d seed brokers, got %d", maxBrokers, len(k.Brokers))
	}
	for i, b := range k.Brokers {
		if err := checkHostPort(b); err != nil {
			add(fmt.Sprintf(".brokers[%d]", i), "%v", err)
		}
	}
	if k.Topic == "" {
		add(".topic", "must name the topic that receives the events")
	} else if err := checkTopic(k.Topic); err != nil {
		add(".topic", "%v", err)
	}
	if !slices.Contains(kafkaKeys, k.Key) {
		add(".key", "must be one of %v, got %q", kafkaKeys, k.Key)
	}
	if !slices.Contains(kafkaCompressions, k.Compression) {
		add(".compression", "must be one of %v, got %q", kafkaCompressions, k.Compression)
	}
	if k.BatchMaxBytes < minKafkaBatch || k.BatchMaxBytes > maxKafkaBatch {
		add(".batch_max_bytes", "must be within [%d, %d], got %d", minKafkaBatch, maxKafkaBatch, k.BatchMaxBytes)
	}
	if k.Linger < 0 || k.Linger.D() > maxKafkaLinger {
		add(".linger", "must be within [0s, %s], got %s", maxKafkaLinger, k.Linger)
	}
	if !slices.Contains(kafkaAcks, k.Acks) {
		add(".acks", "must be one of %v, got %q", kafkaAcks, k.Acks)
	} else if *k.Idempotent && k.Acks != KafkaAcksAll {
		add(".acks", "the idempotent producer needs acks: all; set idempotent: false to use acks: %s", k.Acks)
	}
	if k.DeliveryTimeout.D() < time.Second {
		add(".delivery_timeout", "must be at least 1s, got %s", k.DeliveryTimeout)
	}
	if k.BufferEvents < minKafkaBuffer || k.BufferEvents > maxKafkaBuffer {
		add(".buffer_events", "must be within [%d, %d], got %d", minKafkaBuffer, maxKafkaBuffer, k.BufferEvents)
	}
	if !slices.Contains(kafkaClient, k.ClientAddress) {
		add(".client_address", "must be %q or %q, got %q", KafkaClientMasked, KafkaClientFull, k.ClientAddress)
	}
	if v := *k.ClientPrefixV4; v < 0 || v > 32 {
		add(".client_prefix_v4", "must be within [0, 32], got %d", v)
	}
	if v := *k.ClientPrefixV6; v < 0 || v > 128 {
		add(".client_prefix_v6", "must be within [0, 128], got %d", v)
	}
	if k.ClientAddress == KafkaClientFull && (*k.ClientPrefixV4 != e.ClientPrefixV4 || *k.ClientPrefixV6 != e.ClientPrefixV6) {
		add(".client_address", "is full, so client_prefix_v4/v6 have no effect; remove them or use client_address: masked")
	}
	if t := k.CreateTopic; t.Partitions < -1 || t.Partitions > 10000 {
		add(".create_topic.partitions", "must be -1 (broker default) or within [1, 10000], got %d", t.Partitions)
	}
	if t := k.CreateTopic; t.ReplicationFactor < -1 || t.ReplicationFactor > 32 {
		add(".create_topic.replication_factor", "must be -1 (broker default) or within [1, 32], got %d", t.ReplicationFactor)
	}
	if _, err := k.TLS.Build(f); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, k.SASL.validate(f)...)
	return errs
}

// checkHostPort accepts host:port with a port in 1..65535.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return fmt.Errorf("must be host:port, got %q", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port must be within 1..65535, got %q", port)
	}
	return nil
}

// checkTopic applies Kafka's own rules for topic names.
func checkTopic(t string) error {
	if len(t) > 249 {
		return fmt.Errorf("topic names are at most 249 characters, got %d", len(t))
	}
	if t == "." || t == ".." {
		return fmt.Errorf("topic name %q is not allowed", t)
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic %q: only ASCII letters, digits, '.', '_' and '-' are allowed", t)
		}
	}
	return nil
}

// ResolvePath makes a path from the file relative to the file's directory.
func (f *File) ResolvePath(p string) string {
	if p == "" || filepath.IsAbs(p) || f == nil || f.path == "" {
		return p
	}
	return filepath.Join(filepath.Dir(f.path), p)
}

// Build returns the TLS client configuration, nil when TLS is off. Errors
// name the key and the file, never file contents.
func (t KafkaTLS) Build(f *File) (*tls.Config, error) {
	key := kafkaKey + ".tls"
	if !t.Enabled {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify {
			return nil, Errorf(key+".enabled", "TLS settings are given but enabled is false; set enabled: true or remove them")
		}
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented as for tests
	if t.CAFile != "" {
		p := f.ResolvePath(t.CAFile)
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, Errorf(key+".ca_file", "cannot read CA file %s: %v", p, unwrapPathError(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, Errorf(key+".ca_file", "no PEM certificate found in %s", p)
		}
		c.RootCAs = pool
	}
	switch {
	case t.CertFile != "" && t.KeyFile != "":
		cp, kp := f.ResolvePath(t.CertFile), f.ResolvePath(t.KeyFile)
		for _, file := range []struct{ key, path string }{{"cert_file", cp}, {"key_file", kp}} {
			if _, err := os.Stat(file.path); err != nil {
				return nil, Errorf(key+"."+file.key, "cannot read %s: %v", file.path, unwrapPathError(err))
			}
		}
		cert, err := tls.LoadX509KeyPair(cp, kp)
		if err != nil {
			// The error of LoadX509KeyPair names a mismatch or a bad PEM block, never key material.
			return nil, Errorf(key+".cert_file", "client certificate %s and key %s do not load: %v", cp, kp, err)
		}
		c.Certificates = []tls.Certificate{cert}
	case t.CertFile != "":
		return nil, Errorf(key+".key_file", "must be set with cert_file")
	case t.KeyFile != "":
		return nil, Errorf(key+".cert_file", "must be set with key_file")
	}
	return c, nil
}

func (s KafkaSASL) validate(f *File) []error {
	key := kafkaKey + ".sasl"
	if s.Mechanism == "" {
		if s.Username != "" || s.Password != "" || s.PasswordFile != "" {
			return []error{Errorf(key+".mechanism", "must be one of %v when a username or password is given", saslMechanisms)}
		}
		return nil
	}
	var errs []error
	if !slices.Contains(saslMechanisms, s.Mechanism) {
		hint := ""
		if slices.Contains(saslMechanisms, strings.ToUpper(s.Mechanism)) {
			hint = " (mechanism names are upper case)"
		}
		errs = append(errs, Errorf(key+".mechanism", "unknown SASL mechanism %q, known: %v%s", s.Mechanism, saslMechanisms, hint))
	}
	if s.Username == "" {
		errs = append(errs, Errorf(key+".username", "is required for SASL %s", s.Mechanism))
	}
	pw, err := f.ResolveSecret(key+".password", s.Password, s.PasswordFile)
	switch {
	case err != nil:
		errs = append(errs, err)
	case pw == "":
		errs = append(errs, Errorf(key+".password", "is required for SASL %s (or password_file)", s.Mechanism))
	}
	return errs
}
