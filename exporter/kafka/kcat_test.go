package kafka

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/open-autoglm/autoglm-monitor/exporter/kafka/kafkatest"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// readmeKcat returns the kcat command lines of the exporter README's
// consumer recipes that end by themselves (-e).
func readmeKcat(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "### Consumers")
	if !ok {
		t.Fatal("exporter/README.md has no Consumers section")
	}
	_, block, ok := strings.Cut(section, "```sh\n")
	if !ok {
		t.Fatal("the Consumers section has no sh block")
	}
	block, _, _ = strings.Cut(block, "```")
	var cmds []string
	sc := bufio.NewScanner(strings.NewReader(block))
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "kcat ") && strings.Contains(line, " -e ") {
			cmds = append(cmds, line)
		}
	}
	if len(cmds) < 3 {
		t.Fatalf("found %d finite kcat recipes in the README, want at least 3", len(cmds))
	}
	return cmds
}

// TestReadmeKcatRecipes runs the README's kcat commands, as written but for
// the broker address, against a broker holding events the output produced:
// a plaintext broker, and one that requires TLS for the command that says so.
func TestReadmeKcatRecipes(t *testing.T) {
	kcat := testenv.Tool(t, "kcat")
	caPEM, serverCert := kafkatest.Certificates(t)
	plain := kafkatest.Start(t, topic, 2)
	secure := kafkatest.Start(t, topic, 2,
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// Events from the output itself: 30 requests, 3 of them 503s of glm-4.
	for _, b := range []*kafkatest.Broker{plain, secure} {
		o := baseOptions(b.Addr())
		o.Key = "route"
		if b == secure {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(caPEM)
			o.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		out := start(t, o)
		for i := range 30 {
			r := request(i)
			r.Model = "glm-4"
			if i%10 == 0 {
				r.Status = 503
			}
			out.Publish(&r)
		}
		waitProduced(t, out.Output, 30)
		// The batches kcat reads are zstd frames of our compressor (no
		// content checksum), decoded by librdkafka's zstd.
		c := out.Collector()
		if sent, events := metric(t, c, "autoglm_exporter_kafka_batch_bytes_total"), metric(t, c, "autoglm_exporter_kafka_produced_bytes_total"); sent >= events/2 {
			t.Fatalf("batches of %g bytes for %g bytes of events: not compressed", sent, events)
		}
		out.stop()
	}
	for _, cmd := range readmeKcat(t) {
		if strings.Contains(cmd, "| jq") {
			testenv.Tool(t, "jq")
		}
		b := plain
		if strings.Contains(cmd, "security.protocol=SSL") {
			b = secure
		}
		line := strings.ReplaceAll(cmd, "kafka-1:9092", b.Addr())
		line = strings.Replace(line, "kcat ", kcat+" ", 1)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c := exec.CommandContext(ctx, "sh", "-c", line)
		c.Dir = dir
		out, err := c.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		want := 30
		if strings.Contains(cmd, "| jq") {
			want = 3
		}
		if len(lines) != want {
			t.Errorf("%s: %d lines, want %d:\n%s", cmd, len(lines), want, out)
		}
		for _, l := range lines {
			if !strings.Contains(l, "{") || (strings.Contains(cmd, "%k") && !strings.HasPrefix(l, "/v1/chat/completions\t{")) {
				t.Errorf("%s: unexpected line %q", cmd, l)
				break
			}
		}
	}
}
