// Package kafkatest runs franz-go's in-process Kafka broker (kfake, which
// speaks the real protocol on loopback) for the Kafka output's tests: start,
// stop and restart it on the same port with its data kept, and read a topic
// back from the start.
package kafkatest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Broker is a one-node kfake cluster whose data survives restarts.
type Broker struct {
	t     testing.TB
	opts  []kfake.Opt
	dir   string
	port  int
	mu    sync.Mutex
	c     *kfake.Cluster
	Topic string
}

// Start runs a broker with topic seeded with partitions (none when 0);
// opts go to kfake (TLS, SASL users, ...). It stops when the test ends.
func Start(t testing.TB, topic string, partitions int32, opts ...kfake.Opt) *Broker {
	t.Helper()
	b := &Broker{t: t, dir: t.TempDir(), Topic: topic}
	b.opts = append(b.opts, kfake.NumBrokers(1), kfake.DataDir(b.dir))
	if partitions > 0 {
		b.opts = append(b.opts, kfake.SeedTopics(partitions, topic))
	}
	b.opts = append(b.opts, opts...)
	b.start()
	_, port, err := net.SplitHostPort(b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	b.port, _ = strconv.Atoi(port)
	t.Cleanup(b.Stop)
	return b
}

func (b *Broker) start() {
	b.t.Helper()
	opts := b.opts
	if b.port != 0 {
		opts = append(opts[:len(opts):len(opts)], kfake.Ports(b.port))
	}
	var (
		c   *kfake.Cluster
		err error
	)
	// The port may linger for a moment after the previous broker closed it.
	for range 50 {
		if c, err = kfake.NewCluster(opts...); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		b.t.Fatalf("kfake: %v", err)
	}
	b.mu.Lock()
	b.c = c
	b.mu.Unlock()
}

// Addr is the broker's host:port.
func (b *Broker) Addr() string {
	if b.port != 0 {
		return "127.0.0.1:" + strconv.Itoa(b.port)
	}
	return b.c.ListenAddrs()[0]
}

// Cluster is the running kfake cluster (nil while stopped).
func (b *Broker) Cluster() *kfake.Cluster {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.c
}

// Stop shuts the broker down: its listener closes, connections break, and
// its data is written to disk for Restart.
func (b *Broker) Stop() {
	b.mu.Lock()
	c := b.c
	b.c = nil
	b.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// Restart starts the broker again on the same port with the same data.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	b.start()
}

// Client returns a client of the broker with opts added; it closes when the test ends.
func (b *Broker) Client(opts ...kgo.Opt) *kgo.Client {
	b.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addr())}, opts...)...)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(cl.Close)
	return cl
}

// Consume reads the topic from the start until want records have arrived
// and then quiet has passed without another, or until timeout. It returns
// every record read, so duplicates show up as extra records.
func (b *Broker) Consume(want int, quiet, timeout time.Duration, opts ...kgo.Opt) []*kgo.Record {
	b.t.Helper()
	cl := b.Client(append([]kgo.Opt{
		kgo.ConsumeTopics(b.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}, opts...)...)
	defer cl.Close()
	var recs []*kgo.Record
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		wait := time.Until(deadline)
		if len(recs) >= want {
			wait = min(wait, quiet)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fs := cl.PollFetches(ctx)
		expired := ctx.Err() != nil
		cancel()
		n := len(recs)
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				b.t.Logf("consume %s[%d]: %v", e.Topic, e.Partition, e.Err)
			}
		}
		if len(recs) >= want && len(recs) == n && expired {
			break
		}
	}
	return recs
}

// Certificates makes a CA and a server certificate for 127.0.0.1 (and
// kafka.test) signed by it, for a broker started with kfake.TLS.
func Certificates(t testing.TB) (caPEM []byte, server tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kafka"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames: []string{"kafka.test"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("CERTIFICATE", caDER), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
