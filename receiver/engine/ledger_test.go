package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

// splitChannel sends every notification as parts robot messages through
// the engine's ledger, like the DingTalk and WeCom channels do.
type splitChannel struct {
	parts int
	mu    sync.Mutex
	sent  []time.Time
	count map[string]int // message/part → robot messages
}

// messageID names the message for ns: a digest is a message of its own.
func messageID(ns []*notify.Notification) string {
	ids := make([]string, len(ns))
	for i, n := range ns {
		ids[i] = n.GroupKey
	}
	sort.Strings(ids)
	return strings.Join(ids, "+")
}

func (s *splitChannel) Notify(ctx context.Context, ns ...*notify.Notification) error {
	l := notify.LedgerFrom(ctx)
	for i := 0; i < s.parts; i++ {
		key := fmt.Sprintf("%s/%d", messageID(ns), i)
		if l.Sent(key) {
			continue
		}
		if err := l.Take(); err != nil {
			return err
		}
		s.mu.Lock()
		s.sent = append(s.sent, time.Now())
		s.count[key]++
		s.mu.Unlock()
		if err := l.Accepted(key); err != nil {
			return err
		}
	}
	return nil
}

func (s *splitChannel) messages() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

// The robot limit counts provider messages, not notifications: five
// notifications of 8 parts each to a 20/minute robot never put more than
// 20 messages in any minute, a message held back by the limit is not a
// failure and continues where it stopped, and parts accepted before a
// restart are not sent again.
func TestRateLimitCountsEveryProviderMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		bot := &splitChannel{parts: 8, count: map[string]int{}}
		in := notify.Integration{Name: "bot", Notifier: bot, PerMinute: 20}
		en := newEnv(t, dir, in)
		for i := 0; i < 5; i++ {
			en.accept(spec{group: fmt.Sprintf("g%d", i), status: "firing", channels: []string{"bot"}})
		}
		// g0 takes 8 of the 10 tokens, g1 two; then one message per 6 s as
		// the bucket refills: the other four groups as one digest of 8 parts.
		waitFor(t, "burst", func() bool { return bot.messages() == 10 })
		advance(31 * time.Second)
		if n := bot.messages(); n != 15 {
			t.Fatalf("%d messages after 31 s, want 10 + 5 refilled", n)
		}
		// Restart: parts already accepted are recorded and not sent again.
		en.stop()
		restart := bot.messages()
		en = newEnv(t, dir, in)
		for i := 0; en.eng.Depth() > 0 && i < 400; i++ {
			advance(time.Second)
		}
		if en.eng.Depth() != 0 {
			t.Fatalf("%d deliveries still pending", en.eng.Depth())
		}
		bot.mu.Lock()
		defer bot.mu.Unlock()
		// A message is resumed when the same notifications go out together
		// again; a different set (a digest) is a message of its own.
		for k, c := range bot.count {
			if c != 1 {
				t.Errorf("message part %s sent %d times", k, c)
			}
		}
		// The bucket is per process: check each life of the engine.
		for _, life := range [][]time.Time{bot.sent[:restart], bot.sent[restart:]} {
			if n, at := busiestMinute(life); n > 20 {
				t.Fatalf("%d robot messages in the minute after %s", n, at)
			}
		}
		recs, _, err := en.store.Audit(store.Query{Channel: "bot", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Outcome != store.OutcomeDelivered && r.Outcome != store.OutcomeUncertain {
				t.Errorf("audit has %s: waiting for the rate limit is not a failure", r.Outcome)
			}
		}
	})
}
