package store

import (
	"fmt"
	"sync"
	"testing"
	"time"
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

func open(t *testing.T, dir string, c *clock) *Bolt {
	t.Helper()
	s, err := Open(dir, Options{Now: c.Now, DedupWindow: time.Hour, Retention: 24 * time.Hour, CommitDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAcceptIsIdempotentWithinWindowAndDurable(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := open(t, dir, c)
	mk := func() []*Delivery {
		return []*Delivery{{ID: "a", Channel: "x", GroupKey: "g"}, {ID: "b", Channel: "y", GroupKey: "g"}}
	}
	acc, dups, err := s.Accept(&Record{Time: c.Now(), Outcome: OutcomeReceived, Alertnames: []string{"A"}}, mk())
	if err != nil || len(acc) != 2 || dups != 0 || acc[0].Seq >= acc[1].Seq {
		t.Fatalf("first accept: %v %d %v", acc, dups, err)
	}
	acc, dups, err = s.Accept(&Record{Time: c.Now(), Outcome: OutcomeReceived}, mk())
	if err != nil || len(acc) != 0 || dups != 2 {
		t.Fatalf("re-sent payload: accepted %d dups %d %v", len(acc), dups, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, c)
	defer s.Close()
	p, err := s.Pending()
	if err != nil || len(p) != 2 || p[0].ID != "a" {
		t.Fatalf("after reopen: %v %v", p, err)
	}
	// Delivered then re-sent: still a duplicate.
	if _, err := s.Apply([]Change{{Delivery: p[0], Done: true}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if acc, dups, _ := s.Accept(&Record{Time: c.Now()}, mk()[:1]); len(acc) != 0 || dups != 1 {
		t.Fatalf("delivered notification accepted again: %d %d", len(acc), dups)
	}
	c.Advance(time.Hour + time.Second)
	if acc, dups, _ := s.Accept(&Record{Time: c.Now()}, mk()[:1]); len(acc) != 1 || dups != 0 {
		t.Fatalf("after the dedup window a reminder must go out: %d %d", len(acc), dups)
	}
}

func TestConcurrentAcceptsShareCommits(t *testing.T) {
	c := &clock{t: time.Now()}
	s := open(t, t.TempDir(), c)
	defer s.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := s.Accept(&Record{Time: c.Now()}, []*Delivery{{ID: fmt.Sprint(i), Channel: "x"}})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	p, _ := s.Pending()
	if len(p) != 200 {
		t.Fatalf("pending = %d", len(p))
	}
	seen := map[uint64]bool{}
	for _, d := range p {
		if seen[d.Seq] {
			t.Fatalf("sequence %d reused", d.Seq)
		}
		seen[d.Seq] = true
	}
}

func TestAuditQueryFiltersAndPages(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := open(t, t.TempDir(), c)
	defer s.Close()
	t0 := c.Now()
	var recs []*Record
	for i := 0; i < 25; i++ {
		ch := "im"
		if i%2 == 1 {
			ch = "sms"
		}
		recs = append(recs, &Record{Time: t0.Add(time.Duration(i) * time.Minute), Outcome: OutcomeDelivered, Channel: ch, Alertnames: []string{fmt.Sprintf("A%d", i%3)}})
	}
	if _, err := s.Apply(nil, nil, recs); err != nil {
		t.Fatal(err)
	}
	var all []Record
	cursor := ""
	for pages := 0; pages < 10; pages++ {
		got, next, err := s.Audit(Query{Limit: 10, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, got...)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(all) != 25 {
		t.Fatalf("paged through %d records, want 25", len(all))
	}
	for i := 1; i < len(all); i++ {
		if !all[i].Time.Before(all[i-1].Time) {
			t.Fatalf("not newest first at %d", i)
		}
	}
	got, _, _ := s.Audit(Query{Channel: "sms", Alertname: "A1", Limit: 100})
	for _, r := range got {
		if r.Channel != "sms" || r.Alertnames[0] != "A1" {
			t.Fatalf("filter leaked %+v", r)
		}
	}
	if len(got) != 4 { // i in {1,7,13,19}
		t.Errorf("sms+A1 = %d, want 4", len(got))
	}
	got, _, _ = s.Audit(Query{From: t0.Add(5 * time.Minute), To: t0.Add(9 * time.Minute), Limit: 100})
	if len(got) != 5 || !got[0].Time.Equal(t0.Add(9*time.Minute)) || !got[4].Time.Equal(t0.Add(5*time.Minute)) {
		t.Errorf("time range gave %d records", len(got))
	}
	if _, _, err := s.Audit(Query{Cursor: "zz"}); err != ErrBadCursor {
		t.Errorf("bad cursor: %v", err)
	}
}

func TestPruneHonoursRetentionAndPending(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := open(t, t.TempDir(), c)
	defer s.Close()
	if _, _, err := s.Accept(&Record{Time: c.Now()}, []*Delivery{{ID: "old", Channel: "x"}}); err != nil {
		t.Fatal(err)
	}
	c.Advance(25 * time.Hour)
	if _, err := s.Apply(nil, nil, []*Record{{Time: c.Now(), Outcome: OutcomeDelivered}}); err != nil {
		t.Fatal(err)
	}
	n, err := s.Prune()
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v; want the old audit record only", n, err)
	}
	if acc, _, _ := s.Accept(&Record{Time: c.Now()}, []*Delivery{{ID: "old", Channel: "x"}}); len(acc) != 0 {
		t.Fatal("idempotency key pruned while a delivery could still be pending")
	}
	p, _ := s.Pending()
	if _, err := s.Apply([]Change{{Delivery: p[0], Done: true}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	c.Advance(24*time.Hour + time.Second)
	// The delivered record, the received and duplicate records of the re-send, and the key.
	if n, _ := s.Prune(); n != 4 {
		t.Fatalf("pruned %d, want 4", n)
	}
	if got, _, _ := s.Audit(Query{}); len(got) != 0 {
		t.Fatalf("audit after prune = %d", len(got))
	}
}
