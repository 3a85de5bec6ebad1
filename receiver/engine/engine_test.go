package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/redact"
	"github.com/open-autoglm/autoglm-monitor/receiver/route"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

// fakeChannel records calls and fails with the queued errors first.
type fakeChannel struct {
	mu    sync.Mutex
	calls [][]*notify.Notification
	errs  []error
	// always, when set, is returned on every call after errs ran out.
	always error
}

func (f *fakeChannel) Notify(_ context.Context, ns ...*notify.Notification) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, ns)
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return err
	}
	return f.always
}

func (f *fakeChannel) setAlways(err error) {
	f.mu.Lock()
	f.always = err
	f.mu.Unlock()
}

func (f *fakeChannel) Calls() [][]*notify.Notification {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]*notify.Notification(nil), f.calls...)
}

// groupKeys lists the delivered group keys with status, in call order.
func (f *fakeChannel) sent() []string {
	var out []string
	for _, c := range f.Calls() {
		for _, n := range c {
			out = append(out, n.GroupKey+"/"+n.Data.Status)
		}
	}
	return out
}

type env struct {
	t      *testing.T
	store  store.Store
	eng    *Engine
	reg    *prometheus.Registry
	logs   *testenv.LogBuffer
	cancel context.CancelFunc
	dir    string
}

var policy = Policy{InitialBackoff: time.Second, MaxBackoff: time.Minute, Jitter: 0, ExpireAfter: time.Hour}

// newEnv starts a store and an engine inside the test's synctest bubble, on
// its fake clock: time moves only when every goroutine waits, so timers fire
// exactly when due and a test can step to any instant.
func newEnv(t *testing.T, dir string, chs ...notify.Integration) *env {
	t.Helper()
	return newEnvWith(t, dir, nil, chs...)
}

// newEnvWith is newEnv with an Escalator in place of RouteEscalator.
func newEnvWith(t *testing.T, dir string, esc Escalator, chs ...notify.Integration) *env {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.LogBuffer{}
	reg := prometheus.NewRegistry()
	e, err := New(Options{
		Store: st, Logger: slog.New(slog.NewTextHandler(logs, nil)), Policy: policy,
		// A long tick: deliveries must wake on their own timers, not on polling.
		Registerer: reg, Tick: time.Hour, Rand: func() float64 { return 0.5 },
		Redactor: redact.New("TOPSECRET-TOKEN"), Escalator: esc,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.SetChannels(chs)
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	en := &env{t: t, store: st, eng: e, reg: reg, logs: logs, cancel: cancel, dir: dir}
	t.Cleanup(en.stop)
	return en
}

func (en *env) stop() {
	if en.cancel == nil {
		return
	}
	en.cancel()
	en.eng.Wait()
	if err := en.store.Close(); err != nil {
		en.t.Error(err)
	}
	en.cancel = nil
}

type spec struct {
	group, status string
	channels      []string
	fallback      []string
	escalateAfter time.Duration
	failures      int
}

func (en *env) accept(s spec) []*store.Delivery {
	en.t.Helper()
	now := time.Now()
	data := &template.Data{
		Receiver: "autoglm", Status: s.status,
		Alerts: template.Alerts{{
			Status: s.status, Labels: template.KV{"alertname": "Alert-" + s.group, "severity": "critical"},
			StartsAt: now.Add(-time.Minute), Fingerprint: "fp-" + s.group,
		}},
		CommonLabels: template.KV{"alertname": "Alert-" + s.group},
	}
	base := route.BaseKey(s.group, data)
	var ds []*store.Delivery
	for _, ch := range s.channels {
		d := &store.Delivery{
			ID: route.ChannelKey(base, ch), Base: base, Channel: ch, Route: "r", Fallback: s.fallback,
			EscalateAfterFailures: s.failures, GroupKey: s.group, Priority: notify.P1, Data: data,
			Received: now, ExpireAt: now.Add(policy.ExpireAfter),
		}
		if s.escalateAfter > 0 {
			d.EscalateAt = now.Add(s.escalateAfter)
		}
		ds = append(ds, d)
	}
	acc, _, err := en.store.Accept(&store.Record{Time: now, Outcome: store.OutcomeReceived, GroupKey: s.group}, ds)
	if err != nil {
		en.t.Fatal(err)
	}
	en.eng.Enqueue(acc)
	return acc
}

// waitFor lets every goroutine of the bubble run until it waits, then checks cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	synctest.Wait()
	if !cond() {
		t.Fatalf("not done once everything settled: %s", what)
	}
}

// advance moves the fake clock by d, firing every timer due on the way, and
// lets the engine settle.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func (en *env) outcomes(channel string) []string {
	recs, _, err := en.store.Audit(store.Query{Channel: channel, Limit: 1000})
	if err != nil {
		en.t.Fatal(err)
	}
	out := make([]string, 0, len(recs))
	for i := len(recs) - 1; i >= 0; i-- {
		out = append(out, recs[i].Outcome)
	}
	return out
}

func TestDeliversAndAudits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := &fakeChannel{}
		en := newEnv(t, "", notify.Integration{Name: "im", Notifier: ch, Target: "https://robot.example/send?access_token=<secret>"})
		en.accept(spec{group: "g1", status: "firing", channels: []string{"im"}})
		waitFor(t, "delivery", func() bool { return len(ch.Calls()) == 1 && en.eng.Depth() == 0 })
		waitFor(t, "audit", func() bool { return strings.Join(en.outcomes("im"), ",") == "delivered" })
		pending, err := en.store.Pending()
		if err != nil || len(pending) != 0 {
			t.Fatalf("outbox not empty: %d %v", len(pending), err)
		}
		if !strings.Contains(en.logs.String(), "msg=\"notification delivered\" channel=im alertname=Alert-g1 route=r") {
			t.Errorf("delivery log line missing:\n%s", en.logs)
		}
		if got := testutil.ToFloat64(en.eng.m.notifications.WithLabelValues("im", "delivered")); got != 1 {
			t.Errorf("delivered counter = %v", got)
		}
	})
}

func TestRetriesWithBackoffThenDelivers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := &fakeChannel{errs: []error{errors.New("connection refused"), notify.Errorf(notify.Retry, "130101", "too fast")}}
		en := newEnv(t, "", notify.Integration{Name: "im", Notifier: ch})
		en.accept(spec{group: "g", status: "firing", channels: []string{"im"}})
		waitFor(t, "first attempt", func() bool { return len(ch.Calls()) == 1 })
		if n := len(ch.Calls()); n != 1 {
			t.Fatalf("retried before the backoff elapsed: %d calls", n)
		}
		advance(999 * time.Millisecond)
		if n := len(ch.Calls()); n != 1 {
			t.Fatalf("retried 1ms early: %d calls", n)
		}
		advance(time.Millisecond)
		waitFor(t, "second attempt", func() bool { return len(ch.Calls()) == 2 })
		// Second failure doubles the backoff.
		advance(1500 * time.Millisecond)
		if n := len(ch.Calls()); n != 2 {
			t.Fatalf("backoff did not double: %d calls", n)
		}
		advance(time.Second)
		waitFor(t, "delivery", func() bool { return en.eng.Depth() == 0 })
		waitFor(t, "audit", func() bool { return strings.Join(en.outcomes("im"), ",") == "retry,retry,delivered" })
		recs, _, _ := en.store.Audit(store.Query{Channel: "im", Outcome: "retry", Limit: 10})
		if len(recs) != 2 || recs[0].Code != "130101" {
			t.Errorf("retry records = %+v", recs)
		}
	})
}

func TestBackoffSchedule(t *testing.T) {
	p := Policy{InitialBackoff: time.Second, MaxBackoff: 10 * time.Second, Jitter: 0.2}
	for _, tc := range []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{1, 0.5, time.Second}, {2, 0.5, 2 * time.Second}, {4, 0.5, 8 * time.Second}, {5, 0.5, 10 * time.Second},
		{50, 0.5, 10 * time.Second}, {1, 0, 800 * time.Millisecond}, {1, 1, 1200 * time.Millisecond},
	} {
		if got := p.Backoff(tc.n, tc.r); got != tc.want {
			t.Errorf("Backoff(%d, %v) = %s, want %s", tc.n, tc.r, got, tc.want)
		}
	}
}

func TestEscalatesAfterFailuresAndKeepsRetrying(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sms := &fakeChannel{always: notify.Errorf(notify.Retry, "isv.BUSINESS_LIMIT_CONTROL", "gateway down")}
		mail := &fakeChannel{}
		en := newEnv(t, "", notify.Integration{Name: "sms", Notifier: sms}, notify.Integration{Name: "mail", Notifier: mail})
		en.accept(spec{group: "g", status: "firing", channels: []string{"sms"}, fallback: []string{"mail"}, failures: 2})
		waitFor(t, "first attempt", func() bool { return len(sms.Calls()) == 1 })
		if len(mail.Calls()) != 0 {
			t.Fatal("escalated after one failure")
		}
		advance(time.Second)
		waitFor(t, "fallback delivery", func() bool { return len(mail.Calls()) == 1 })
		// The failed channel keeps being retried.
		advance(2 * time.Second)
		waitFor(t, "third sms attempt", func() bool { return len(sms.Calls()) == 3 })
		sms.setAlways(nil)
		advance(4 * time.Second)
		waitFor(t, "sms delivered", func() bool { return en.eng.Depth() == 0 })
		if n := len(mail.Calls()); n != 1 {
			t.Errorf("fallback sent %d times, want 1", n)
		}
		waitFor(t, "audit", func() bool { return strings.Join(en.outcomes("sms"), ",") == "retry,retry,escalated,retry,delivered" })
	})
}

func TestEscalatesAfterTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sms := &fakeChannel{always: errors.New("timeout")}
		mail := &fakeChannel{}
		en := newEnv(t, "", notify.Integration{Name: "sms", Notifier: sms}, notify.Integration{Name: "mail", Notifier: mail})
		en.accept(spec{group: "g", status: "firing", channels: []string{"sms"}, fallback: []string{"mail"}, escalateAfter: 2 * time.Minute})
		waitFor(t, "attempt", func() bool { return len(sms.Calls()) == 1 })
		advance(119 * time.Second)
		if len(mail.Calls()) != 0 {
			t.Fatal("escalated before escalate_after")
		}
		advance(time.Second)
		waitFor(t, "fallback", func() bool { return len(mail.Calls()) == 1 })
	})
}

func TestConfigErrorStopsChannelUntilReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bot := &fakeChannel{errs: []error{notify.Errorf(notify.Config, "310000", "bad signature for https://oapi.dingtalk.com/robot/send?access_token=TOPSECRET-TOKEN")}}
		mail := &fakeChannel{}
		chs := []notify.Integration{{Name: "bot", Notifier: bot}, {Name: "mail", Notifier: mail}}
		en := newEnv(t, "", chs...)
		en.accept(spec{group: "g", status: "firing", channels: []string{"bot"}, fallback: []string{"mail"}})
		waitFor(t, "escalation", func() bool { return len(mail.Calls()) == 1 })
		advance(10 * time.Minute)
		if n := len(bot.Calls()); n != 1 {
			t.Fatalf("broken channel retried before reload: %d calls", n)
		}
		en.eng.SetChannels(chs)
		waitFor(t, "retry after reload", func() bool { return len(bot.Calls()) == 2 && en.eng.Depth() == 0 })
		for _, s := range []string{en.logs.String(), fmt.Sprint(en.outcomes("bot"))} {
			if strings.Contains(s, "TOPSECRET-TOKEN") {
				t.Fatalf("secret leaked: %s", s)
			}
		}
		recs, _, _ := en.store.Audit(store.Query{Channel: "bot", Outcome: store.OutcomeConfig})
		if len(recs) != 1 || !strings.Contains(recs[0].Error, "access_token=<secret>") || strings.Contains(recs[0].Error, "TOPSECRET") {
			t.Errorf("config record = %+v", recs)
		}
	})
}

func TestExpiryDeadLetterReportsThroughFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sms := &fakeChannel{always: errors.New("down")}
		mail := &fakeChannel{}
		en := newEnv(t, "", notify.Integration{Name: "sms", Notifier: sms}, notify.Integration{Name: "mail", Notifier: mail})
		en.accept(spec{group: "g", status: "firing", channels: []string{"sms"}, fallback: []string{"mail"}})
		waitFor(t, "attempt", func() bool { return len(sms.Calls()) == 1 })
		advance(time.Hour)
		waitFor(t, "fallback", func() bool { return len(mail.Calls()) == 1 })
		waitFor(t, "dead letter", func() bool {
			return testutil.ToFloat64(en.eng.m.deadLetters.WithLabelValues("sms")) == 1
		})
		dl, err := en.store.DeadLetters()
		if err != nil || len(dl) != 1 || dl[0].Channel != "sms" {
			t.Fatalf("dead letters = %v, %v", dl, err)
		}
		waitFor(t, "empty outbox", func() bool { return en.eng.Depth() == 0 })
	})
}

func TestPermanentErrorIsDeadImmediately(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bot := &fakeChannel{errs: []error{notify.Errorf(notify.Permanent, "40058", "too long")}}
		en := newEnv(t, "", notify.Integration{Name: "bot", Notifier: bot})
		en.accept(spec{group: "g", status: "firing", channels: []string{"bot"}})
		waitFor(t, "dead letter", func() bool { return en.eng.Depth() == 0 })
		if n := len(bot.Calls()); n != 1 {
			t.Errorf("permanent failure retried: %d calls", n)
		}
	})
}

func TestRateLimitedBacklogBecomesDigest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bot := &fakeChannel{}
		// Hold the worker off until the backlog is queued.
		en := newEnv(t, "")
		for i := 0; i < 40; i++ {
			en.accept(spec{group: fmt.Sprintf("g%02d", i), status: "firing", channels: []string{"bot"}})
		}
		en.eng.SetChannels([]notify.Integration{{Name: "bot", Notifier: bot, PerMinute: 20}})
		waitFor(t, "digest", func() bool { return en.eng.Depth() == 0 })
		calls := bot.Calls()
		if len(calls) != 1 || len(calls[0]) != 40 {
			sizes := []int{}
			for _, c := range calls {
				sizes = append(sizes, len(c))
			}
			t.Fatalf("want one digest of 40, got calls of sizes %v", sizes)
		}
		for i, n := range calls[0] {
			if want := fmt.Sprintf("g%02d", i); n.GroupKey != want {
				t.Errorf("digest[%d] = %s, want %s (acceptance order)", i, n.GroupKey, want)
			}
		}
		// The bucket holds 10 tokens; one was used. Nine singles go out right away, the tenth waits.
		for i := 0; i < 10; i++ {
			en.accept(spec{group: fmt.Sprintf("h%02d", i), status: "firing", channels: []string{"bot"}})
			waitFor(t, "single", func() bool { return en.eng.Depth() == 0 || i == 9 })
		}
		synctest.Wait()
		if got := len(bot.Calls()); got != 10 {
			t.Fatalf("calls = %d, want 10 (1 digest + 9 singles, then rate limited)", got)
		}
		if en.eng.Depth() != 1 {
			t.Fatalf("depth = %d, want 1 waiting for a token", en.eng.Depth())
		}
		advance(6 * time.Second)
		waitFor(t, "refill", func() bool { return en.eng.Depth() == 0 })
	})
}

func TestLimiterNeverExceedsPerMinute(t *testing.T) {
	lim := Limiter(20)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var sent []time.Time
	for ms := 0; ms < 5*60*1000; ms += 100 {
		now := start.Add(time.Duration(ms) * time.Millisecond)
		if lim.AllowN(now, 1) {
			sent = append(sent, now)
		}
	}
	if n, at := busiestMinute(sent); n > 20 {
		t.Fatalf("%d messages in the minute after %s", n, at)
	}
	if len(sent) < 5*10 {
		t.Fatalf("only %d messages in 5 minutes", len(sent))
	}
}

func TestResolvedNeverOvertakesFiring(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		im := &fakeChannel{errs: []error{errors.New("flaky")}}
		en := newEnv(t, "", notify.Integration{Name: "im", Notifier: im})
		en.accept(spec{group: "g", status: "firing", channels: []string{"im"}})
		waitFor(t, "first attempt", func() bool { return len(im.Calls()) == 1 })
		en.accept(spec{group: "g", status: "resolved", channels: []string{"im"}})
		en.accept(spec{group: "other", status: "firing", channels: []string{"im"}})
		waitFor(t, "other group", func() bool { return len(im.Calls()) == 2 })
		if got := im.sent(); strings.Join(got, " ") != "g/firing other/firing" {
			t.Fatalf("sent %v: resolved overtook firing or other group blocked", got)
		}
		advance(time.Second)
		waitFor(t, "drain", func() bool { return en.eng.Depth() == 0 })
		if got := im.sent(); strings.Join(got, " ") != "g/firing other/firing g/firing g/resolved" {
			t.Fatalf("order %v", got)
		}
	})
}

func TestRestartResumesScheduleAndResendsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		down := &fakeChannel{always: errors.New("down")}
		en := newEnv(t, dir, notify.Integration{Name: "im", Notifier: down})
		en.accept(spec{group: "g", status: "firing", channels: []string{"im"}})
		waitFor(t, "attempt", func() bool { return len(down.Calls()) == 1 })
		waitFor(t, "schedule stored", func() bool {
			p, _ := en.store.Pending()
			return len(p) == 1 && p[0].Failures == 1 && !p[0].InFlight
		})
		en.stop()

		// Simulate a crash while a send was in flight.
		st, err := store.Open(dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := st.Pending()
		p[0].InFlight = true
		if _, err := st.Apply([]store.Change{{Delivery: p[0]}}, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}

		up := &fakeChannel{}
		en2 := newEnv(t, dir, notify.Integration{Name: "im", Notifier: up})
		synctest.Wait()
		if len(up.Calls()) != 0 {
			t.Fatal("restart ignored the stored backoff")
		}
		advance(time.Second)
		waitFor(t, "resumed delivery", func() bool { return len(up.Calls()) == 1 && en2.eng.Depth() == 0 })
		waitFor(t, "audit", func() bool { return strings.Join(en2.outcomes("im"), ",") == "retry,uncertain,delivered" })
	})
}

func TestMetricsExposeQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		down := &fakeChannel{always: errors.New("down")}
		en := newEnv(t, "", notify.Integration{Name: "im", Notifier: down})
		en.accept(spec{group: "g", status: "firing", channels: []string{"im"}})
		waitFor(t, "attempt", func() bool { return len(down.Calls()) == 1 })
		advance(30 * time.Second)
		want := `
	# HELP autoglm_receiver_oldest_pending_seconds Age of the oldest pending delivery, 0 when the outbox is empty.
	# TYPE autoglm_receiver_oldest_pending_seconds gauge
	autoglm_receiver_oldest_pending_seconds 30
	# HELP autoglm_receiver_queue_depth Deliveries waiting in the outbox.
	# TYPE autoglm_receiver_queue_depth gauge
	autoglm_receiver_queue_depth 1
	`
		if err := testutil.GatherAndCompare(en.reg, strings.NewReader(want), "autoglm_receiver_queue_depth", "autoglm_receiver_oldest_pending_seconds"); err != nil {
			t.Error(err)
		}
		if problems, err := testutil.GatherAndLint(en.reg); err != nil || len(problems) > 0 {
			t.Errorf("lint: %v %v", problems, err)
		}
	})
}

// holdEscalator holds the escalation of some groups (as a claim would) and
// leaves the rest to the route's policy.
type holdEscalator struct{ held map[string]bool }

func (h holdEscalator) Decide(d *store.Delivery, s Situation, now time.Time) Decision {
	if h.held[d.GroupKey] {
		return Decision{}
	}
	return RouteEscalator{}.Decide(d, s, now)
}

func TestEscalatorDecidesEveryEscalation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sms := &fakeChannel{always: errors.New("gateway down")}
		mail := &fakeChannel{}
		en := newEnvWith(t, "", holdEscalator{held: map[string]bool{"claimed": true}},
			notify.Integration{Name: "sms", Notifier: sms}, notify.Integration{Name: "mail", Notifier: mail})
		for _, g := range []string{"claimed", "open"} {
			en.accept(spec{group: g, status: "firing", channels: []string{"sms"}, fallback: []string{"mail"}, escalateAfter: time.Minute})
		}
		advance(59 * time.Second)
		if n := len(mail.Calls()); n != 0 {
			t.Fatalf("escalated before escalate_after: %d", n)
		}
		advance(time.Second)
		if got := mail.sent(); strings.Join(got, " ") != "open/firing" {
			t.Fatalf("fallback got %v, want only the group nobody held", got)
		}
		advance(time.Hour)
		if got := mail.sent(); strings.Join(got, " ") != "open/firing" {
			t.Fatalf("a held group escalated on expiry or failures: %v", got)
		}
		dl, err := en.store.DeadLetters()
		if err != nil || len(dl) != 2 {
			t.Fatalf("dead letters = %d %v, want both expired sms deliveries", len(dl), err)
		}
	})
}

// busiestMinute is the most messages in any 60-second window of the sorted
// times, and when that window starts.
func busiestMinute(sent []time.Time) (int, time.Time) {
	best, at := 0, time.Time{}
	for i := range sent {
		n := 0
		for j := i; j < len(sent) && sent[j].Sub(sent[i]) < time.Minute; j++ {
			n++
		}
		if n > best {
			best, at = n, sent[i]
		}
	}
	return best, at
}
