package voice

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type scripted struct {
	mu      sync.Mutex
	readyAt map[string]time.Time
	asked   map[string][]time.Time
}

func (s *scripted) Query(_ context.Context, c Call) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked[c.ID] = append(s.asked[c.ID], time.Now())
	if t, ok := s.readyAt[c.ID]; ok && !time.Now().Before(t) {
		return Result{CallID: c.ID, Answered: c.ID == "a", Status: "200000"}, nil
	}
	return Result{}, ErrPending
}

func TestPollerBacksOffAndGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		q := &scripted{readyAt: map[string]time.Time{"a": start.Add(4 * time.Minute)}, asked: map[string][]time.Time{}}
		var mu sync.Mutex
		results := map[string]Result{}
		gaveUp := map[string]bool{}
		p := &Poller{
			OnResult: func(c Call, r Result) { mu.Lock(); results[c.ID] = r; mu.Unlock() },
			OnGiveUp: func(c Call, err error) { mu.Lock(); gaveUp[c.ID] = true; mu.Unlock() },
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go p.Run(ctx)
		p.Track(q, Call{ID: "a", Placed: start})
		p.Track(q, Call{ID: "never", Placed: start})
		time.Sleep(time.Hour)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if r := results["a"]; !r.Answered {
			t.Errorf("result of a = %+v", r)
		}
		// Asked at +1m, +3m (pending) and +7m (ready since +4m).
		want := []time.Duration{time.Minute, 3 * time.Minute, 7 * time.Minute}
		if got := q.asked["a"]; len(got) != len(want) {
			t.Errorf("asked a at %v", got)
		} else {
			for i, w := range want {
				if d := got[i].Sub(start); d != w {
					t.Errorf("poll %d at +%s, want +%s", i, d, w)
				}
			}
		}
		if !gaveUp["never"] || p.Pending() != 0 {
			t.Errorf("gave up = %v, pending %d", gaveUp, p.Pending())
		}
		if n := len(q.asked["never"]); n > 8 {
			t.Errorf("asked %d times in 30 minutes", n)
		}
	})
}
