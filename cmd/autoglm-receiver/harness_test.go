package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// sink is a fake provider: the outgoing webhook channel posts here.
type sink struct {
	srv *httptest.Server
	mu  sync.Mutex
	// counts holds deliveries per group key + status.
	counts map[string]int
	order  []string
	bodies []string
	status atomic.Int32
}

func newSink(t testing.TB) *sink {
	s := &sink{counts: map[string]int{}}
	s.status.Store(200)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(500)
			return
		}
		code := int(s.status.Load())
		if code == 200 {
			s.record(b)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

type sinkMsg struct {
	GroupKey string `json:"groupKey"`
	Status   string `json:"status"`
	Digest   bool   `json:"digest"`
	Groups   []struct {
		GroupKey string `json:"groupKey"`
		Status   string `json:"status"`
	} `json:"groups"`
}

func (s *sink) record(b []byte) {
	var m sinkMsg
	_ = json.Unmarshal(b, &m)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bodies = append(s.bodies, string(b))
	if m.Digest {
		for _, g := range m.Groups {
			k := g.GroupKey + "/" + g.Status
			s.counts[k]++
			s.order = append(s.order, k)
		}
		return
	}
	k := m.GroupKey + "/" + m.Status
	s.counts[k]++
	s.order = append(s.order, k)
}

func (s *sink) snapshot() (map[string]int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		c[k] = v
	}
	return c, append([]string(nil), s.order...)
}

// proc is a running receiver binary.
type proc struct {
	cmd  *exec.Cmd
	logs *testenv.LogBuffer
	url  string
	done chan struct{}
}

func writeConfig(t testing.TB, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "autoglm.yml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// start runs the binary and waits until it is ready.
func start(t testing.TB, bin, cfg string, port int, logs *testenv.LogBuffer, extra ...string) *proc {
	t.Helper()
	if logs == nil {
		logs = &testenv.LogBuffer{}
	}
	args := []string{"--config.file=" + cfg, "--web.listen-address=" + testenv.Addr(port)}
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--log.level") }) {
		args = append(args, "--log.level=debug")
	}
	args = append(args, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: logs, url: "http://" + testenv.Addr(port), done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	for i := 0; i < 200; i++ {
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("receiver exited:\n%s", logs)
		case <-time.After(25 * time.Millisecond):
		}
	}
	t.Fatalf("receiver not ready:\n%s", logs)
	return nil
}

func (p *proc) kill() {
	if p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) stop(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("receiver did not stop on SIGTERM")
		p.kill()
	}
}

// payload is an Alertmanager v4 notification for group i.
func payload(prefix string, i int, status string, extra map[string]string) []byte {
	starts := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	ends := time.Time{}
	if status == "resolved" {
		ends = starts.Add(time.Minute)
	}
	labels := map[string]string{"alertname": fmt.Sprintf("%s%05d", prefix, i), "severity": "critical", "instance": "node-1"}
	for k, v := range extra {
		labels[k] = v
	}
	m := map[string]any{
		"version": "4", "groupKey": fmt.Sprintf("{}:{alertname=%q}", labels["alertname"]), "truncatedAlerts": 0,
		"status": status, "receiver": "autoglm", "groupLabels": map[string]string{"alertname": labels["alertname"]},
		"commonLabels": labels, "commonAnnotations": map[string]string{"summary": "test"}, "externalURL": "http://am",
		"alerts": []map[string]any{{
			"status": status, "labels": labels, "annotations": map[string]string{"summary": "test"},
			"startsAt": starts, "endsAt": ends, "generatorURL": "http://prom/graph", "fingerprint": fmt.Sprintf("%016x", i),
		}},
	}
	b, _ := json.Marshal(m)
	return b
}

func groupKeyOf(prefix string, i int) string {
	return fmt.Sprintf("{}:{alertname=%q}", fmt.Sprintf("%s%05d", prefix, i))
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func post(ctx context.Context, url string, body []byte, hdr ...string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/webhook", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

type auditRecord struct {
	Outcome    string   `json:"outcome"`
	By         string   `json:"by"`
	People     []string `json:"people"`
	Detail     string   `json:"detail"`
	GroupKey   string   `json:"group_key"`
	Status     string   `json:"status"`
	Channel    string   `json:"channel"`
	Target     string   `json:"target"`
	Error      string   `json:"error"`
	Alertnames []string `json:"alertnames"`
}

// audit pages through /api/v1/notifications with the given filter, with the token.
func audit(t testing.TB, base, query string) ([]auditRecord, string) {
	t.Helper()
	var all []auditRecord
	var raw bytes.Buffer
	cursor := ""
	for page := 0; page < 100; page++ {
		req, err := http.NewRequest(http.MethodGet, base+"/api/v1/notifications?limit=1000&"+query+"&cursor="+cursor, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Receivers started without auth ignore the header.
		req.Header.Set("Authorization", "Bearer "+authToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		raw.Write(b)
		var out struct {
			Data []auditRecord `json:"data"`
			Next string        `json:"next_cursor"`
		}
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("audit answer: %v: %s", err, b)
		}
		all = append(all, out.Data...)
		if out.Next == "" {
			break
		}
		cursor = out.Next
	}
	return all, raw.String()
}

func metricsText(t testing.TB, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}
