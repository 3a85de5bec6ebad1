package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/redact"
	"github.com/open-autoglm/autoglm-monitor/receiver/route"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

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
	clock  *clock
	store  *store.Store
	eng    *Engine
	reg    *prometheus.Registry
	logs   *syncBuffer
	cancel context.CancelFunc
	dir    string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var policy = Policy{InitialBackoff: time.Second, MaxBackoff: time.Minute, Jitter: 0, ExpireAfter: time.Hour}

func newEnv(t *testing.T, dir string, c *clock, chs ...notify.Integration) *env {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if c == nil {
		c = &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	}
	st, err := store.Open(dir, store.Options{Now: c.Now, CommitDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	e, err := New(Options{
		Store: st, Logger: slog.New(slog.NewTextHandler(logs, nil)), Now: c.Now, Policy: policy,
		Registerer: reg, Tick: 5 * time.Millisecond, Rand: func() float64 { return 0.5 },
		Redactor: redact.New("TOPSECRET-TOKEN"),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.SetChannels(chs)
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	en := &env{t: t, clock: c, store: st, eng: e, reg: reg, logs: logs, cancel: cancel, dir: dir}
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
	now := en.clock.Now()
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

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
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
	ch := &fakeChannel{}
	en := newEnv(t, "", nil, notify.Integration{Name: "im", Notifier: ch, Target: "https://robot.example/send?access_token=<secret>"})
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
}

func TestRetriesWithBackoffThenDelivers(t *testing.T) {
	ch := &fakeChannel{errs: []error{errors.New("connection refused"), notify.Errorf(notify.Retry, "130101", "too fast")}}
	en := newEnv(t, "", nil, notify.Integration{Name: "im", Notifier: ch})
	en.accept(spec{group: "g", status: "firing", channels: []string{"im"}})
	waitFor(t, "first attempt", func() bool { return len(ch.Calls()) == 1 })
	time.Sleep(50 * time.Millisecond)
	if n := len(ch.Calls()); n != 1 {
		t.Fatalf("retried before the backoff elapsed: %d calls", n)
	}
	en.clock.Advance(999 * time.Millisecond)
	en.eng.Kick()
	time.Sleep(50 * time.Millisecond)
	if n := len(ch.Calls()); n != 1 {
		t.Fatalf("retried 1ms early: %d calls", n)
	}
	en.clock.Advance(time.Millisecond)
	en.eng.Kick()
	waitFor(t, "second attempt", func() bool { return len(ch.Calls()) == 2 })
	// Second failure doubles the backoff.
	en.clock.Advance(1500 * time.Millisecond)
	en.eng.Kick()
	time.Sleep(50 * time.Millisecond)
	if n := len(ch.Calls()); n != 2 {
		t.Fatalf("backoff did not double: %d calls", n)
	}
	en.clock.Advance(time.Second)
	en.eng.Kick()
	waitFor(t, "delivery", func() bool { return en.eng.Depth() == 0 })
	waitFor(t, "audit", func() bool { return strings.Join(en.outcomes("im"), ",") == "retry,retry,delivered" })
	recs, _, _ := en.store.Audit(store.Query{Channel: "im", Outcome: "retry", Limit: 10})
	if len(recs) != 2 || recs[0].Code != "130101" {
		t.Errorf("retry records = %+v", recs)
	}
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
	sms := &fakeChannel{always: notify.Errorf(notify.Retry, "isv.BUSINESS_LIMIT_CONTROL", "gateway down")}
	mail := &fakeChannel{}
	en := newEnv(t, "", nil, notify.Integration{Name: "sms", Notifier: sms}, notify.Integration{Name: "mail", Notifier: mail})
	en.accept(spec{group: "g", status: "firing", channels: []string{"sms"}, fallback: []string{"mail"}, failures: 2})
	waitFor(t, "first attempt", func() bool { return len(sms.Calls()) == 1 })
	if len(mail.Calls()) != 0 {
		t.Fatal("escalated after one failure")
	}
	en.clock.Advance(time.Second)
	en.eng.Kick()
	waitFor(t, "fallback delivery", func() bool { return len(mail.Calls()) == 1 })
	// The failed channel keeps being retried.
	en.clock.Advance(2 * time.Second)
	en.eng.Kick()
	waitFor(t, "third sms attempt", func() bool { return len(sms.Calls()) == 3 })
	sms.setAlways(nil)
	en.clock.Advance(4 * time.Second)
	en.eng.Kick()
	waitFor(t, "sms delivered", func() bool { return en.eng.Depth() == 0 })
	if n := len(mail.Calls()); n != 1 {
		t.Errorf("fallback sent %d times, want 1", n)
	}
	waitFor(t, "audit", func() bool { return strings.Join(en.outcomes("sms"), ",") == "retry,retry,escalated,retry,delivered" })
}

func TestEscalatesAfterTime(t *testing.T) {
	sms := &fakeChannel{always: errors.New("timeout")}
	mail := &fakeChannel{}
	en := newEnv(t, "", nil, notify.Integration{Name: "sms", Notifier: sms}, notify.Integration{Name: "mail", Notifier: mail})
	en.accept(spec{group: "g", status: "firing", channels: []string{"sms"}, fallback: []string{"mail"}, escalateAfter: 2 * time.Minute})
	waitFor(t, "attempt", func() bool { return len(sms.Calls()) == 1 })
	en.clock.Advance(119 * time.Second)
	en.eng.Kick()
	time.Sleep(50 * time.Millisecond)
	if len(mail.Calls()) != 0 {
		t.Fatal("escalated before escalate_after")
	}
	en.clock.Advance(time.Second)
	en.eng.Kick()
	waitFor(t, "fallback", func() bool { return len(mail.Calls()) == 1 })
}

func TestConfigErrorStopsChannelUntilReload(t *testing.T) {
	bot := &fakeChannel{errs: []error{notify.Errorf(notify.Config, "310000", "bad signature for https://oapi.dingtalk.com/robot/send?access_token=TOPSECRET-TOKEN")}}
	mail := &fakeChannel{}
	chs := []notify.Integration{{Name: "bot", Notifier: bot}, {Name: "mail", Notifier: mail}}
	en := newEnv(t, "", nil, chs...)
	en.accept(spec{group: "g", status: "firing", channels: []string{"bot"}, fallback: []string{"mail"}})
	waitFor(t, "escalation", func() bool { return len(mail.Calls()) == 1 })
	en.clock.Advance(10 * time.Minute)
	en.eng.Kick()
	time.Sleep(50 * time.Millisecond)
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
}

func TestExpiryDeadLetterReportsThroughFallback(t *testing.T) {
	sms := &fakeChannel{always: errors.New("down")}
	mail := &fakeChannel{}
	en := newEnv(t, "", nil, notify.Integration{Name: "sms", Notifier: sms}, notify.Integration{Name: "mail", Notifier: mail})
	en.accept(spec{group: "g", status: "firing", channels: []string{"sms"}, fallback: []string{"mail"}})
	waitFor(t, "attempt", func() bool { return len(sms.Calls()) == 1 })
	en.clock.Advance(time.Hour)
	en.eng.Kick()
	waitFor(t, "fallback", func() bool { return len(mail.Calls()) == 1 })
	waitFor(t, "dead letter", func() bool {
		return testutil.ToFloat64(en.eng.m.deadLetters.WithLabelValues("sms")) == 1
	})
	dl, err := en.store.DeadLetters()
	if err != nil || len(dl) != 1 || dl[0].Channel != "sms" {
		t.Fatalf("dead letters = %v, %v", dl, err)
	}
	waitFor(t, "empty outbox", func() bool { return en.eng.Depth() == 0 })
}

func TestPermanentErrorIsDeadImmediately(t *testing.T) {
	bot := &fakeChannel{errs: []error{notify.Errorf(notify.Permanent, "40058", "too long")}}
	en := newEnv(t, "", nil, notify.Integration{Name: "bot", Notifier: bot})
	en.accept(spec{group: "g", status: "firing", channels: []string{"bot"}})
	waitFor(t, "dead letter", func() bool { return en.eng.Depth() == 0 })
	time.Sleep(30 * time.Millisecond)
	if n := len(bot.Calls()); n != 1 {
		t.Errorf("permanent failure retried: %d calls", n)
	}
}

func TestRateLimitedBacklogBecomesDigest(t *testing.T) {
	bot := &fakeChannel{}
	// Hold the worker off until the backlog is queued.
	en := newEnv(t, "", nil)
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
	time.Sleep(50 * time.Millisecond)
	if got := len(bot.Calls()); got != 10 {
		t.Fatalf("calls = %d, want 10 (1 digest + 9 singles, then rate limited)", got)
	}
	if en.eng.Depth() != 1 {
		t.Fatalf("depth = %d, want 1 waiting for a token", en.eng.Depth())
	}
	en.clock.Advance(6 * time.Second)
	en.eng.Kick()
	waitFor(t, "refill", func() bool { return en.eng.Depth() == 0 })
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
	for i := range sent {
		n := 0
		for j := i; j < len(sent) && sent[j].Sub(sent[i]) < time.Minute; j++ {
			n++
		}
		if n > 20 {
			t.Fatalf("%d messages in the minute after %s", n, sent[i])
		}
	}
	if len(sent) < 5*10 {
		t.Fatalf("only %d messages in 5 minutes", len(sent))
	}
}

func TestResolvedNeverOvertakesFiring(t *testing.T) {
	im := &fakeChannel{errs: []error{errors.New("flaky")}}
	en := newEnv(t, "", nil, notify.Integration{Name: "im", Notifier: im})
	en.accept(spec{group: "g", status: "firing", channels: []string{"im"}})
	waitFor(t, "first attempt", func() bool { return len(im.Calls()) == 1 })
	en.accept(spec{group: "g", status: "resolved", channels: []string{"im"}})
	en.accept(spec{group: "other", status: "firing", channels: []string{"im"}})
	waitFor(t, "other group", func() bool { return len(im.Calls()) == 2 })
	time.Sleep(30 * time.Millisecond)
	if got := im.sent(); strings.Join(got, " ") != "g/firing other/firing" {
		t.Fatalf("sent %v: resolved overtook firing or other group blocked", got)
	}
	en.clock.Advance(time.Second)
	en.eng.Kick()
	waitFor(t, "drain", func() bool { return en.eng.Depth() == 0 })
	if got := im.sent(); strings.Join(got, " ") != "g/firing other/firing g/firing g/resolved" {
		t.Fatalf("order %v", got)
	}
}

func TestRestartResumesScheduleAndResendsInFlight(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	down := &fakeChannel{always: errors.New("down")}
	en := newEnv(t, dir, c, notify.Integration{Name: "im", Notifier: down})
	en.accept(spec{group: "g", status: "firing", channels: []string{"im"}})
	waitFor(t, "attempt", func() bool { return len(down.Calls()) == 1 })
	waitFor(t, "schedule stored", func() bool {
		p, _ := en.store.Pending()
		return len(p) == 1 && p[0].Failures == 1 && !p[0].InFlight
	})
	en.stop()

	// Simulate a crash while a send was in flight.
	st, err := store.Open(dir, store.Options{Now: c.Now})
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
	en2 := newEnv(t, dir, c, notify.Integration{Name: "im", Notifier: up})
	time.Sleep(50 * time.Millisecond)
	if len(up.Calls()) != 0 {
		t.Fatal("restart ignored the stored backoff")
	}
	c.Advance(time.Second)
	en2.eng.Kick()
	waitFor(t, "resumed delivery", func() bool { return len(up.Calls()) == 1 && en2.eng.Depth() == 0 })
	waitFor(t, "audit", func() bool { return strings.Join(en2.outcomes("im"), ",") == "retry,uncertain,delivered" })
}

func TestMetricsExposeQueue(t *testing.T) {
	down := &fakeChannel{always: errors.New("down")}
	en := newEnv(t, "", nil, notify.Integration{Name: "im", Notifier: down})
	en.accept(spec{group: "g", status: "firing", channels: []string{"im"}})
	waitFor(t, "attempt", func() bool { return len(down.Calls()) == 1 })
	en.clock.Advance(30 * time.Second)
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
}
