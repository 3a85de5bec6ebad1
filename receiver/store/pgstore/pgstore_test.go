package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
	"github.com/open-autoglm/autoglm-monitor/receiver/store/pgstore"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// replicas opens n stores on one fresh database, as n receivers would.
func replicas(t *testing.T, pg *testenv.Postgres, n int, c *clock, lease time.Duration) []*pgstore.Store {
	t.Helper()
	db := pg.Database(t)
	out := make([]*pgstore.Store, n)
	for i := range out {
		s, err := pgstore.Open(context.Background(), pgstore.Config{DSN: pg.URL(db), Password: pg.Password, Lease: lease, Owner: fmt.Sprintf("replica-%d", i)},
			store.Options{Now: c.Now, DedupWindow: time.Hour, Retention: 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		out[i] = s
	}
	return out
}

func deliveries(ids ...string) []*store.Delivery {
	out := make([]*store.Delivery, len(ids))
	for i, id := range ids {
		ch := "dingtalk"
		if strings.HasSuffix(id, "w") {
			ch = "wecom"
		}
		out[i] = &store.Delivery{ID: id, Channel: ch, GroupKey: "g" + id}
	}
	return out
}

// One PostgreSQL cluster for the package's cases; each case has its own database.
func TestPostgresStore(t *testing.T) {
	pg := testenv.NewPostgres(t)
	t.Run("SameNotificationToEveryReplicaIsOneRow", func(t *testing.T) { sameNotification(t, pg) })
	t.Run("LeasesMoveOnlyWhenTheyRunOut", func(t *testing.T) { leases(t, pg) })
	t.Run("AuditIsTheSameFromEveryReplica", func(t *testing.T) { auditEverywhere(t, pg) })
	t.Run("IncidentsAndPages", func(t *testing.T) { incidents(t, pg) })
	t.Run("BadPasswordErrorNamesNoSecret", func(t *testing.T) { badPassword(t, pg) })
}

// Two Alertmanagers each send a notification to three replicas at once:
// every channel gets exactly one outbox row, and a re-send after delivery
// inside the dedup window is still a duplicate.
func sameNotification(t *testing.T, pg *testenv.Postgres) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	rs := replicas(t, pg, 3, c, 15*time.Second)
	const n = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := map[string]int{}
	errs := make(chan error, 6*n)
	for copyN := 0; copyN < 6; copyN++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				acc, _, err := rs[copyN%3].Accept(&store.Record{Time: c.Now(), Outcome: store.OutcomeReceived, Alertnames: []string{"A"}},
					deliveries(fmt.Sprintf("n%dd", i), fmt.Sprintf("n%dw", i)))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, d := range acc {
					accepted[d.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(accepted) != 2*n {
		t.Fatalf("%d distinct deliveries accepted, want %d", len(accepted), 2*n)
	}
	for id, k := range accepted {
		if k != 1 {
			t.Errorf("%s accepted %d times", id, k)
		}
	}
	p, err := rs[1].Pending()
	if err != nil || len(p) != 2*n {
		t.Fatalf("outbox holds %d rows (%v), want %d", len(p), err, 2*n)
	}
	if _, err := rs[2].Apply([]store.Change{{Delivery: p[0], Done: true}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if acc, dups, _ := rs[0].Accept(&store.Record{Time: c.Now()}, []*store.Delivery{{ID: p[0].ID, Channel: p[0].Channel}}); len(acc) != 0 || dups != 1 {
		t.Fatalf("delivered notification accepted again: %d %d", len(acc), dups)
	}
	c.Advance(time.Hour + time.Second)
	if acc, dups, _ := rs[0].Accept(&store.Record{Time: c.Now()}, []*store.Delivery{{ID: p[0].ID, Channel: p[0].Channel}}); len(acc) != 1 || dups != 0 {
		t.Fatalf("after the dedup window a reminder must go out: %d %d", len(acc), dups)
	}
}

// A channel belongs to one replica until its lease runs out; only the holder
// may mark its deliveries in flight, and a mark on a delivery already done
// is refused.
func leases(t *testing.T, pg *testenv.Postgres) {
	c := &clock{t: time.Now()}
	rs := replicas(t, pg, 2, c, 2*time.Second)
	ctx := context.Background()
	a, b := rs[0], rs[1]
	held, err := a.Lease(ctx, []string{"dingtalk", "wecom"})
	if err != nil || len(held) != 2 {
		t.Fatalf("first replica holds %v (%v)", held, err)
	}
	if held, err := b.Lease(ctx, []string{"dingtalk", "wecom"}); err != nil || len(held) != 0 {
		t.Fatalf("second replica holds %v while the first renews (%v)", held, err)
	}
	acc, _, err := b.Accept(&store.Record{Time: c.Now()}, deliveries("x1d", "x2d"))
	if err != nil || len(acc) != 2 {
		t.Fatal(acc, err)
	}
	// The holder sees what another replica accepted.
	fresh, err := a.Fresh(ctx, []string{"dingtalk"})
	if err != nil || len(fresh) != 2 {
		t.Fatalf("fresh = %d (%v)", len(fresh), err)
	}
	mark := func(s *pgstore.Store, d *store.Delivery) error {
		d.InFlight = true
		_, err := s.Apply([]store.Change{{Delivery: d, FlagOnly: true}}, nil, nil)
		d.InFlight = false
		return err
	}
	if err := mark(b, fresh[0]); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("a replica without the lease marked a delivery in flight: %v", err)
	}
	if err := mark(a, fresh[0]); err != nil {
		t.Fatal(err)
	}
	if err := mark(a, fresh[0]); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("a delivery already in flight was marked again: %v", err)
	}
	if _, err := a.Apply([]store.Change{{Delivery: fresh[1], Done: true}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := mark(a, fresh[1]); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("a delivered notification was marked in flight: %v", err)
	}
	// The first replica stops renewing (killed): after the lease the second takes over.
	deadline := time.Now().Add(10 * time.Second)
	for {
		held, err := b.Lease(ctx, []string{"dingtalk", "wecom"})
		if err != nil {
			t.Fatal(err)
		}
		if len(held) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no takeover 10 s after a 2 s lease ran out: %v", held)
		}
		time.Sleep(200 * time.Millisecond)
	}
	p, err := b.PendingOf(ctx, []string{"dingtalk"})
	if err != nil || len(p) != 1 || !p[0].InFlight {
		t.Fatalf("the new holder must see the interrupted delivery in flight: %+v %v", p, err)
	}
	if err := mark(a, p[0]); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("the old holder marked after losing its lease: %v", err)
	}
}

func auditEverywhere(t *testing.T, pg *testenv.Postgres) {
	c := &clock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	rs := replicas(t, pg, 2, c, 15*time.Second)
	for i := 0; i < 30; i++ {
		c.Advance(time.Second)
		if _, _, err := rs[i%2].Accept(&store.Record{Time: c.Now(), Outcome: store.OutcomeReceived, Alertnames: []string{fmt.Sprint("A", i%3)}},
			deliveries(fmt.Sprintf("a%dd", i))); err != nil {
			t.Fatal(err)
		}
	}
	page := func(s *pgstore.Store, q store.Query) []string {
		var out []string
		for {
			recs, next, err := s.Audit(q)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				out = append(out, r.Time.Format(time.RFC3339)+r.Outcome+strings.Join(r.Alertnames, ","))
			}
			if next == "" {
				return out
			}
			q.Cursor = next
		}
	}
	for _, q := range []store.Query{{Limit: 7}, {Alertname: "A1", Limit: 3}, {From: c.Now().Add(-10 * time.Second), Limit: 4}} {
		a, b := page(rs[0], q), page(rs[1], q)
		if strings.Join(a, "|") != strings.Join(b, "|") || len(a) == 0 {
			t.Errorf("query %+v: replicas answer differently:\n%v\n%v", q, a, b)
		}
	}
	if got := len(page(rs[0], store.Query{Alertname: "A1", Limit: 3})); got != 10 {
		t.Errorf("alertname filter: %d records, want 10", got)
	}
	if got := len(page(rs[1], store.Query{From: c.Now().Add(-9 * time.Second), Limit: 4})); got != 10 {
		t.Errorf("time filter: %d records, want 10", got)
	}
}

func incidents(t *testing.T, pg *testenv.Postgres) {
	c := &clock{t: time.Now()}
	rs := replicas(t, pg, 2, c, 15*time.Second)
	if err := rs[0].PutIncidents(map[string][]byte{"g1": []byte(`{"step":1}`), "g2": []byte(`{}`)}, nil, []*store.Record{{Time: c.Now(), Outcome: "paged"}}); err != nil {
		t.Fatal(err)
	}
	if err := rs[1].PutIncidents(map[string][]byte{"g1": []byte(`{"step":2}`)}, []string{"g2"}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := rs[0].Incidents()
	if err != nil || len(got) != 1 || string(got["g1"]) != `{"step":2}` {
		t.Fatalf("incidents = %q (%v)", got, err)
	}
	// The same page made by two replicas is enqueued once.
	p1, err := rs[0].AcceptPages(deliveries("page-g1-2d"), nil)
	if err != nil || len(p1) != 1 {
		t.Fatal(p1, err)
	}
	if p2, err := rs[1].AcceptPages(deliveries("page-g1-2d"), nil); err != nil || len(p2) != 0 {
		t.Fatalf("second replica's page accepted again: %v %v", p2, err)
	}
}

func badPassword(t *testing.T, pg *testenv.Postgres) {
	db := pg.Database(t)
	const wrong = "not-the-password-4711"
	_, err := pgstore.Open(context.Background(), pgstore.Config{DSN: strings.Replace(pg.URL(db), "@", ":"+wrong+"@", 1)}, store.Options{})
	if err == nil {
		t.Fatal("opened with a wrong password")
	}
	if strings.Contains(err.Error(), wrong) {
		t.Fatalf("error shows the password: %v", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprint(pg.Port)) {
		t.Errorf("error does not say which server: %v", err)
	}
}
