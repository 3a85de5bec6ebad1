package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// idemSink is a webhook consumer that honours the notificationID contract:
// a repeated notificationID is answered 200 and not delivered again. It
// counts deliveries per group and channel, and the repeats it absorbed.
type idemSink struct {
	srv       *httptest.Server
	mu        sync.Mutex
	delivered map[string]int // channel/groupKey/status → deliveries
	seen      map[string]bool
	repeats   map[string]int // channel/groupKey/status → repeated notificationIDs
}

func newIdemSink(t testing.TB) *idemSink {
	s := &idemSink{delivered: map[string]int{}, seen: map[string]bool{}, repeats: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(500)
			return
		}
		var m struct {
			ID       string `json:"notificationID"`
			GroupKey string `json:"groupKey"`
			Status   string `json:"status"`
		}
		if err := json.Unmarshal(b, &m); err != nil || m.ID == "" {
			w.WriteHeader(400)
			return
		}
		k := strings.TrimPrefix(r.URL.Path, "/") + "/" + m.GroupKey + "/" + m.Status
		s.mu.Lock()
		if s.seen[m.ID] {
			s.repeats[k]++
		} else {
			s.seen[m.ID] = true
			s.delivered[k]++
		}
		s.mu.Unlock()
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *idemSink) snapshot() (delivered, repeats map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delivered, repeats = map[string]int{}, map[string]int{}
	for k, v := range s.delivered {
		delivered[k] = v
	}
	for k, v := range s.repeats {
		repeats[k] = v
	}
	return delivered, repeats
}

func haConfig(dsn, pwfile, sinkURL string) string {
	return fmt.Sprintf(`receiver:
  storage:
    postgres: {dsn: %q, password_file: %s, lease: 5s}
  retry: {initial_backoff: 50ms, max_backoff: 500ms, expire_after: 1h}
  channels:
    hook-a: {type: webhook, url: "%s/hook-a"}
    hook-b: {type: webhook, url: "%s/hook-b"}
  routes:
    - name: all
      matchers: ['severity=~".+"']
      channels: [hook-a, hook-b]
`, dsn, pwfile, sinkURL, sinkURL)
}

// startAMCluster runs two Alertmanagers gossiping with each other, each
// notifying every receiver replica.
func startAMCluster(t *testing.T, dir string, replicas []string) []string {
	t.Helper()
	bin := testenv.Alertmanager(t)
	var hooks strings.Builder
	for _, r := range replicas {
		fmt.Fprintf(&hooks, "      - url: %s/webhook\n        send_resolved: true\n", r)
	}
	cfg := filepath.Join(dir, "am.yml")
	if err := os.WriteFile(cfg, []byte(`route:
  receiver: autoglm
  group_by: [alertname, group]
  group_wait: 500ms
  group_interval: 1m
  repeat_interval: 1h
receivers:
  - name: autoglm
    webhook_configs:
`+hooks.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	gossip := []int{testenv.FreePort(t), testenv.FreePort(t)}
	var urls []string
	for i := range 2 {
		port := testenv.FreePort(t)
		logs := &testenv.LogBuffer{}
		cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, fmt.Sprint("am", i)),
			"--web.listen-address="+testenv.Addr(port),
			"--cluster.listen-address="+testenv.Addr(gossip[i]), "--cluster.advertise-address="+testenv.Addr(gossip[i]),
			"--cluster.peer="+testenv.Addr(gossip[1-i]), "--cluster.peer-timeout=2s", "--cluster.settle-timeout=2s")
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("alertmanager %d:\n%s", i, logs)
			}
		})
		urls = append(urls, "http://"+testenv.Addr(port))
	}
	for _, u := range urls {
		waitUntil(t, "alertmanager cluster ready", 30*time.Second, func() bool {
			resp, err := http.Get(u + "/api/v2/status")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			var st struct {
				Cluster struct {
					Status string `json:"status"`
					Peers  []any  `json:"peers"`
				} `json:"cluster"`
			}
			return json.NewDecoder(resp.Body).Decode(&st) == nil && st.Cluster.Status == "ready" && len(st.Cluster.Peers) == 2
		})
	}
	return urls
}

// leaseOwner is the replica (by pid in its owner name) delivering channel.
func leaseOwner(t *testing.T, pg *testenv.Postgres, db, channel string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(pg.URL(db))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = pg.Password
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var owner string
	if err := conn.QueryRow(ctx, "SELECT owner FROM channel_lease WHERE channel = $1 AND until > now()", channel).Scan(&owner); err != nil {
		return ""
	}
	return owner
}

// Three replicas share one PostgreSQL outbox; a two-node Alertmanager
// cluster sends every notification to every replica. The replica
// delivering hook-a is SIGKILLed in the middle of a burst: every group
// still reaches both channels, none twice, and the killed replica's
// channel is taken over within the lease.
func TestReplicasShareOnePostgresOutbox(t *testing.T) {
	pg := testenv.NewPostgres(t)
	bin := testenv.Binary(t, name)
	dir := t.TempDir()
	db := pg.Database(t)
	sk := newIdemSink(t)
	cfg := writeConfig(t, dir, haConfig(pg.URL(db), pg.PasswordFile(t, dir), sk.srv.URL))
	var ps []*proc
	var urls []string
	for range 3 {
		p := start(t, bin, cfg, testenv.FreePort(t), nil, "--log.level=info")
		ps = append(ps, p)
		urls = append(urls, p.url)
	}
	ams := startAMCluster(t, dir, urls)

	const groups = 600
	starts := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	var wg sync.WaitGroup
	for _, am := range ams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; b < groups; b += 50 {
				var alerts []string
				for i := b; i < b+50; i++ {
					alerts = append(alerts, fmt.Sprintf(`{"labels":{"alertname":"HABurst","group":"g%03d","severity":"critical"},"startsAt":%q,"endsAt":%q}`,
						i, starts, time.Now().Add(time.Hour).UTC().Format(time.RFC3339)))
				}
				resp, err := http.Post(am+"/api/v2/alerts", "application/json", strings.NewReader("["+strings.Join(alerts, ",")+"]"))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				time.Sleep(150 * time.Millisecond)
			}
		}()
	}
	// Mid-burst: kill the replica delivering hook-a.
	waitUntil(t, "deliveries under way", 60*time.Second, func() bool {
		d, _ := sk.snapshot()
		n := 0
		for k := range d {
			if strings.HasPrefix(k, "hook-a/") {
				n++
			}
		}
		return n >= groups/5
	})
	owner := leaseOwner(t, pg, db, "hook-a")
	var victim *proc
	for _, p := range ps {
		if strings.Contains(owner, fmt.Sprintf("-%d-", p.cmd.Process.Pid)) {
			victim = p
		}
	}
	if victim == nil {
		t.Fatalf("no replica owns hook-a (owner %q)", owner)
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-victim.done
	before, _ := sk.snapshot()
	wg.Wait()

	var takeover time.Duration
	waitUntil(t, "hook-a taken over", 30*time.Second, func() bool {
		o := leaseOwner(t, pg, db, "hook-a")
		if o != "" && o != owner {
			takeover = time.Since(killed)
			return true
		}
		return false
	})
	want := func(d map[string]int) int {
		n := 0
		for k := range d {
			if strings.HasSuffix(k, "/firing") {
				n++
			}
		}
		return n
	}
	waitUntil(t, "every group delivered on both channels", 120*time.Second, func() bool {
		d, _ := sk.snapshot()
		return want(d) >= 2*groups
	})
	// Let anything still pending settle before counting repeats.
	time.Sleep(3 * time.Second)
	delivered, repeats := sk.snapshot()
	lost, dups := 0, 0
	for i := 0; i < groups; i++ {
		for _, ch := range []string{"hook-a", "hook-b"} {
			k := fmt.Sprintf(`%s/{}:{alertname="HABurst", group="g%03d"}/firing`, ch, i)
			switch c := delivered[k]; {
			case c == 0:
				lost++
			case c > 1:
				dups += c - 1
			}
		}
	}
	absorbed := 0
	for _, n := range repeats {
		absorbed += n
	}
	var alive *proc
	for _, p := range ps {
		if p != victim {
			alive = p
		}
	}
	uncertain, _ := audit(t, alive.url, "status=uncertain")
	t.Logf("HA test: %d groups × 2 channels, killed the hook-a replica after %d deliveries; taken over after %s; lost %d, duplicates %d; %d repeated notificationIDs absorbed by the consumer; %d audited uncertain",
		groups, len(before), takeover.Round(100*time.Millisecond), lost, dups, absorbed, len(uncertain))
	if lost != 0 {
		t.Errorf("%d group/channel pairs never delivered", lost)
	}
	if dups != 0 {
		t.Errorf("%d duplicate deliveries", dups)
	}
	if takeover > 30*time.Second {
		t.Errorf("takeover after %s, want within 30 s", takeover)
	}
	// Only a send interrupted by the kill may be repeated (same
	// notificationID, absorbed by the consumer), at most one per channel
	// the killed replica was delivering, and each is audited as uncertain.
	if absorbed > 2 || absorbed > len(uncertain) {
		t.Errorf("%d repeated sends, %d audited uncertain: more than the messages in flight at the kill", absorbed, len(uncertain))
	}
	// The two survivors deliver both channels between them.
	delivering := 0
	for _, p := range ps {
		if p == victim {
			continue
		}
		for _, l := range strings.Split(metricsText(t, p.url), "\n") {
			var n int
			if _, err := fmt.Sscanf(l, "autoglm_receiver_channels_delivering %d", &n); err == nil {
				delivering += n
			}
		}
	}
	if delivering != 2 {
		t.Errorf("the survivors deliver %d channels, want 2", delivering)
	}
	for i, p := range ps {
		if strings.Contains(p.logs.String(), pg.Password) {
			t.Errorf("replica %d logged the database password", i)
		}
	}
	// The audit API answers the same from every live replica.
	var answers []string
	for _, p := range ps {
		if p == victim {
			continue
		}
		recs, _ := audit(t, p.url, "status=delivered&limit=50")
		b, _ := json.Marshal(recs)
		answers = append(answers, string(b))
	}
	if answers[0] != answers[1] || len(answers[0]) < 100 {
		t.Errorf("replicas answer the audit API differently:\n%s\n%s", answers[0], answers[1])
	}
}
