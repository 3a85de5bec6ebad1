package escalation

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/action"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/oncall"
)

// memStore keeps incidents as JSON, the way a durable store would.
type memStore struct {
	mu     sync.Mutex
	incs   map[string][]byte
	events []Event
}

func (m *memStore) Incidents() ([]*Incident, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Incident
	for _, b := range m.incs {
		in := new(Incident)
		if err := json.Unmarshal(b, in); err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

func (m *memStore) SaveIncidents(incs []*Incident, ev []Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.incs == nil {
		m.incs = map[string][]byte{}
	}
	for _, in := range incs {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		m.incs[in.ID] = b
	}
	m.events = append(m.events, ev...)
	return nil
}

func (m *memStore) kinds() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for _, e := range m.events {
		out[e.Kind]++
	}
	return out
}

type sent struct {
	at   time.Time
	page Page
}

// memPager records pages with the (fake) time they were handed over and drops repeated ids.
type memPager struct {
	mu        sync.Mutex
	seen      map[string]bool
	pages     []sent
	cancelled []string
}

func (p *memPager) Page(ps []Page) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	for _, pg := range ps {
		if p.seen[pg.ID] {
			continue
		}
		p.seen[pg.ID] = true
		p.pages = append(p.pages, sent{time.Now(), pg})
	}
	return nil
}

func (p *memPager) Cancel(groupKey string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cancelled = append(p.cancelled, groupKey)
	return 0
}

func (p *memPager) all() []sent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]sent(nil), p.pages...)
}

func testConfig(t *testing.T) Config {
	t.Helper()
	c := &oncall.Config{
		People: map[string]oncall.Person{
			"ann": {Phone: "+8613800000001", FeishuOpenID: "ou_ann"}, "bob": {Phone: "+8613800000002"}, "lead": {Phone: "+8613800000009"},
		},
		Schedules: map[string]oncall.ScheduleConfig{
			"sre":       {TimeZone: "Asia/Shanghai", Layers: []oncall.LayerConfig{{Members: []string{"ann", "bob"}, Start: "1999-12-27 09:00", Rotation: config.Duration(7 * 24 * time.Hour)}}},
			"secondary": {TimeZone: "Asia/Shanghai", Layers: []oncall.LayerConfig{{Members: []string{"bob", "ann"}, Start: "1999-12-27 09:00", Rotation: config.Duration(7 * 24 * time.Hour)}}},
		},
		Chains: map[string][]oncall.StepConfig{"p1": {
			{After: 0, Channels: []string{"im"}, Schedules: []string{"sre"}},
			{After: config.Duration(5 * time.Minute), Channels: []string{"sms"}, Schedules: []string{"sre"}},
			{After: config.Duration(10 * time.Minute), Channels: []string{"voice"}, Schedules: []string{"sre"}},
			{After: config.Duration(15 * time.Minute), Channels: []string{"voice"}, Schedules: []string{"secondary"}, People: []string{"lead"}},
		}},
	}
	if errs := c.Validate("receiver.oncall"); len(errs) > 0 {
		t.Fatal(errs)
	}
	scheds, err := c.CompileAll()
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := c.Chain("p1")
	return Config{Chains: map[string]oncall.Chain{"p1": ch}, Schedules: scheds, People: c.People}
}

func firing(name string) *template.Data {
	return &template.Data{Status: "firing", GroupLabels: template.KV{"alertname": name}, CommonLabels: template.KV{"alertname": name, "severity": "critical"},
		Alerts: template.Alerts{{Status: "firing", Labels: template.KV{"alertname": name, "severity": "critical"}}}}
}

const key = `{}:{alertname="LLMHighErrorRate"}`

func TestUnclaimedP1ReachesEveryStepOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, pg := &memStore{}, &memPager{}
		e, err := New(Options{Store: st, Pager: pg}, testConfig(t))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go e.Run(ctx)
		t0 := time.Now()
		if err := e.Notify(key, "pager", "p1", []string{"route-im"}, notify.P1, firing("LLMHighErrorRate"), t0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Minute)
		synctest.Wait()
		got := pg.all()
		want := []struct {
			after   time.Duration
			channel string
			people  string
		}{{0, "im", "ann"}, {5 * time.Minute, "sms", "ann"}, {10 * time.Minute, "voice", "ann"}, {15 * time.Minute, "voice", "bob,lead"}}
		if len(got) != len(want) {
			t.Fatalf("%d pages, want %d: %+v", len(got), len(want), got)
		}
		for i, w := range want {
			people := ""
			for j, r := range got[i].page.Recipients {
				if j > 0 {
					people += ","
				}
				people += r.ID
			}
			if d := got[i].at.Sub(t0); d < w.after || d > w.after+5*time.Second || got[i].page.Channel != w.channel || people != w.people {
				t.Errorf("page %d: %s after %s to %s, want %s after %s to %s", i, got[i].page.Channel, d, people, w.channel, w.after, w.people)
			}
		}
		if k := st.kinds(); k[EventOpened] != 1 || k[EventStep] != 4 {
			t.Errorf("events = %v", k)
		}
	})
}

func TestClaimStopsEscalationWithinASecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, pg := &memStore{}, &memPager{}
		e, _ := New(Options{Store: st, Pager: pg}, testConfig(t))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go e.Run(ctx)
		t0 := time.Now()
		_ = e.Notify(key, "pager", "p1", []string{"route-im"}, notify.P1, firing("LLMHighErrorRate"), t0)
		// Claimed a moment before the voice step is due.
		time.Sleep(10*time.Minute - 500*time.Millisecond)
		in, claimed, err := e.Claim(action.GroupOf(key), "ann", "im", []string{"im"})
		if err != nil || !claimed || in.Claimed.By != "ann" {
			t.Fatalf("claim = %+v %v %v", in, claimed, err)
		}
		claimedAt := time.Now()
		time.Sleep(time.Hour)
		synctest.Wait()
		for _, s := range pg.all() {
			if s.at.After(claimedAt) && s.page.Note == "" {
				t.Errorf("paged %s at +%s after the claim at +%s", s.page.Channel, s.at.Sub(t0), claimedAt.Sub(t0))
			}
		}
		pages := pg.all()
		last := pages[len(pages)-1].page
		if last.Note == "" || last.Channel != "im" || last.Step != -1 {
			t.Errorf("no claim announcement in the IM channel: %+v", last)
		}
		if len(pg.cancelled) != 1 || pg.cancelled[0] != key {
			t.Errorf("unsent pages not cancelled: %v", pg.cancelled)
		}
		// A second claim does not take the group from ann.
		in, claimed, _ = e.Claim(action.GroupOf(key), "bob", "sms", nil)
		if claimed || in.Claimed.By != "ann" {
			t.Errorf("second claim = %+v %v", in.Claimed, claimed)
		}
		if k := st.kinds(); k[EventClaimed] != 1 || k[EventStep] != 2 {
			t.Errorf("events = %v", k)
		}
	})
}

func TestResolutionEndsTheChainAndARefireStartsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, pg := &memStore{}, &memPager{}
		e, _ := New(Options{Store: st, Pager: pg}, testConfig(t))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go e.Run(ctx)
		_ = e.Notify(key, "pager", "p1", []string{"route-im"}, notify.P1, firing("LLMHighErrorRate"), time.Now())
		time.Sleep(6 * time.Minute)
		res := firing("LLMHighErrorRate")
		res.Status = "resolved"
		_ = e.Notify(key, "pager", "p1", []string{"route-im"}, notify.P1, res, time.Now())
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := len(pg.all()); n != 2 {
			t.Errorf("%d pages after resolving at 6m, want 2", n)
		}
		// It fires again: a new incident, its chain from the first step.
		_ = e.Notify(key, "pager", "p1", []string{"route-im"}, notify.P1, firing("LLMHighErrorRate"), time.Now())
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(pg.all()); n != 3 {
			t.Errorf("%d pages after firing again, want 3", n)
		}
		if k := st.kinds(); k[EventOpened] != 2 || k[EventResolved] != 1 {
			t.Errorf("events = %v", k)
		}
	})
}

func TestRestartResumesWithoutRepeatingSteps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, pg := &memStore{}, &memPager{}
		cfg := testConfig(t)
		e, _ := New(Options{Store: st, Pager: pg}, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		go e.Run(ctx)
		t0 := time.Now()
		_ = e.Notify(key, "pager", "p1", []string{"route-im"}, notify.P1, firing("LLMHighErrorRate"), t0)
		time.Sleep(6 * time.Minute)
		cancel()
		synctest.Wait()
		// The process is down for ten minutes; on start the overdue steps page at once, each once.
		time.Sleep(10 * time.Minute)
		e2, err := New(Options{Store: st, Pager: pg}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx2, cancel2 := context.WithCancel(context.Background())
		defer cancel2()
		go e2.Run(ctx2)
		time.Sleep(time.Second)
		synctest.Wait()
		pages := pg.all()
		if len(pages) != 4 {
			t.Fatalf("%d pages, want 4", len(pages))
		}
		for _, s := range pages[2:] {
			if d := s.at.Sub(t0); d != 16*time.Minute {
				t.Errorf("overdue step %d paged at +%s, want at restart (+16m)", s.page.Step, d)
			}
		}
		if in, ok := e2.Incident(action.GroupOf(key)); !ok || in.StepsDone != 4 {
			t.Errorf("incident after restart = %+v", in)
		}
	})
}

func TestNobodyOnCallIsAuditedAndChannelsStillPaged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Schedules = map[string]*oncall.Schedule{} // every schedule gone: nobody on call
		st, pg := &memStore{}, &memPager{}
		e, _ := New(Options{Store: st, Pager: pg}, cfg)
		_ = e.Notify(key, "pager", "p1", []string{"route-im"}, notify.P1, firing("LLMHighErrorRate"), time.Now())
		if p := pg.all(); len(p) != 1 || len(p[0].page.Recipients) != 0 {
			t.Errorf("pages = %+v", p)
		}
		if k := st.kinds(); k[EventNobody] != 1 {
			t.Errorf("events = %v", k)
		}
	})
}

func TestRouteMessageIsTheFirstStepOnItsChannel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, pg := &memStore{}, &memPager{}
		e, _ := New(Options{Store: st, Pager: pg}, testConfig(t))
		_ = e.Notify(key, "pager", "p1", []string{"im"}, notify.P1, firing("LLMHighErrorRate"), time.Now())
		if p := pg.all(); len(p) != 0 {
			t.Errorf("the route already sent to im, yet step 1 paged it again: %+v", p)
		}
		rs, ok := e.RouteRecipients(key, "im")
		if !ok || len(rs) != 1 || rs[0].ID != "ann" {
			t.Errorf("route message mentions %+v %v, want ann", rs, ok)
		}
		if _, ok := e.RouteRecipients(key, "email"); ok {
			t.Error("a channel outside the first step mentions on-call people")
		}
		if k := st.kinds(); k[EventStep] != 1 {
			t.Errorf("events = %v", k)
		}
	})
}
