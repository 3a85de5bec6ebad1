package chanhttp

import (
	"context"
	"errors"
	"fmt"
	"sort"

	amtemplate "github.com/prometheus/alertmanager/template"

	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanconf"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// Splitter sends a text longer than a robot accepts as several messages,
// the way DingTalk and WeCom robots both need it: parts on UTF-8 and line
// boundaries, a retry that resends only the parts not yet accepted, and a
// smaller split when the provider counts the length differently than we do.
//
// Each part is one provider message: it takes one token of the provider's
// rate limit and, once accepted, is recorded before the next part is sent
// (through the engine's notify.Ledger; without one, in memory).
type Splitter struct {
	// TooLong is the provider's "message too long" error code.
	TooLong string
	// MinBytes bounds re-splitting after TooLong, so it always ends.
	MinBytes int
	mem      *memLedger
}

// NewSplitter remembers accepted parts of the last 4,096 split messages
// when the caller lends no Ledger.
func NewSplitter(tooLong string, minBytes int) *Splitter {
	return &Splitter{TooLong: tooLong, MinBytes: minBytes, mem: &memLedger{sent: NewSent(4096)}}
}

// Ledger is the engine's ledger in ctx, or the splitter's own memory.
func (s *Splitter) Ledger(ctx context.Context) notify.Ledger {
	if l := notify.LedgerFrom(ctx); l != nil {
		return l
	}
	return s.mem
}

// memLedger has no rate limit and remembers accepted parts in memory.
type memLedger struct{ sent *Sent }

func (m *memLedger) Take() error               { return nil }
func (m *memLedger) Sent(key string) bool      { return m.sent.Seen(key) }
func (m *memLedger) Accepted(key string) error { m.sent.Mark(key); return nil }

// Once sends one provider message identified by key within the message for
// ns: skipped when accepted before, else a token is taken, the message
// sent, and its acceptance recorded.
func (s *Splitter) Once(ctx context.Context, ns []*notify.Notification, key string, send func(context.Context) error) error {
	l := s.Ledger(ctx)
	k := PartKey(ns, key)
	if l.Sent(k) {
		return nil
	}
	if err := l.Take(); err != nil {
		return err
	}
	if err := send(ctx); err != nil {
		return err
	}
	return accepted(l, k)
}

func accepted(l notify.Ledger, key string) error {
	if err := l.Accepted(key); err != nil {
		// The part went out but is not recorded: retrying may repeat it,
		// which is the price of never losing one.
		return &notify.Error{Class: notify.Retry, Err: fmt.Errorf("record accepted part: %w", err)}
	}
	return nil
}

// Send cuts text into parts of at most limit-overhead bytes (overhead is
// what send adds around a part: numbering, title, mentions) and calls send
// for each part in order, with its index and the number of parts. An
// error names the part that failed and keeps its class. Parts are recorded
// as accepted when there are several, or when more is set (the caller
// sends another message after them); a lone message needs no record, the
// delivery's outcome is.
func (s *Splitter) Send(ctx context.Context, ns []*notify.Notification, text string, limit, overhead int, more bool,
	send func(ctx context.Context, i, n int, part string) error,
) error {
	l := s.Ledger(ctx)
	parts := Split(text, max(limit-overhead, s.MinBytes/2))
	record := more || len(parts) > 1
	for i, p := range parts {
		key := PartKey(ns, fmt.Sprintf("%d/%d/%d\x00%s", i, len(parts), limit, p))
		if record && l.Sent(key) {
			continue
		}
		if err := l.Take(); err != nil {
			return err
		}
		err := send(ctx, i, len(parts), p)
		var e *notify.Error
		if errors.As(err, &e) && e.Code == s.TooLong && limit/2 >= s.MinBytes {
			rest := ""
			for _, q := range parts[i:] {
				rest += q
			}
			return s.Send(ctx, ns, rest, limit/2, overhead, more, send)
		}
		if err != nil {
			if len(parts) == 1 {
				return err
			}
			if e != nil {
				return &notify.Error{Class: e.Class, Code: e.Code, RetryAfter: e.RetryAfter, Err: fmt.Errorf("part %d/%d: %w", i+1, len(parts), e.Err)}
			}
			return fmt.Errorf("part %d/%d: %w", i+1, len(parts), err)
		}
		if !record {
			continue
		}
		if err := accepted(l, key); err != nil {
			return err
		}
	}
	return nil
}

// Fit renders ns with render and, when the text would take more than
// maxParts parts of limit-overhead bytes, renders again with only as many
// alerts as fit (the first ones, in order) and the number left out, which
// render must state in the text with a link to the full list. A group of
// 10,000 alerts thus takes maxParts robot messages, not hundreds. When not
// even one alert fits, the text is cut and ends with cutNote.
func Fit(ns []*notify.Notification, maxParts, limit, overhead int, cutNote string,
	render func(ns []*notify.Notification, omitted int) string,
) string {
	size := max(limit-overhead, 1)
	fits := func(text string) bool { return len(Split(text, size)) <= maxParts }
	text := render(ns, 0)
	if maxParts <= 0 || fits(text) {
		return text
	}
	total := 0
	for _, n := range ns {
		if n.Data != nil {
			total += len(n.Data.Alerts)
		}
	}
	// The largest k in [1, total) whose text fits.
	k := sort.Search(total, func(k int) bool { return k > 0 && !fits(render(firstAlerts(ns, k), total-k)) }) - 1
	if k >= 1 {
		return render(firstAlerts(ns, k), total-k)
	}
	if total > 1 {
		text = render(firstAlerts(ns, 1), total-1)
	}
	parts := Split(text, size)[:maxParts]
	last := parts[maxParts-1]
	parts[maxParts-1] = tmpl.TruncateBytes(last, max(len(last)-len(cutNote)-2, 0)) + "\n\n" + cutNote
	out := ""
	for _, p := range parts {
		out += p
	}
	return out
}

// firstAlerts returns copies of ns holding only the first k alerts overall.
func firstAlerts(ns []*notify.Notification, k int) []*notify.Notification {
	out := make([]*notify.Notification, len(ns))
	for i, n := range ns {
		c := *n
		if n.Data != nil {
			d := *n.Data
			keep := min(k, len(d.Alerts))
			d.Alerts = append(amtemplate.Alerts(nil), d.Alerts[:keep]...)
			k -= keep
			c.Data = &d
		}
		out[i] = &c
	}
	return out
}

// MaxPartsLimit is the largest max_parts: half a 20/minute robot's limit,
// the burst its token bucket allows, so one notification always goes out
// in one go.
const MaxPartsLimit = 10

// Parts is the max_parts key of the robot channels: how many messages one
// notification may take before its alert list is cut (with a note and a
// link to the full list).
type Parts struct {
	MaxParts int `yaml:"max_parts"`
}

// Validate checks the key.
func (p *Parts) Validate(c *chanconf.Checker) {
	if p.MaxParts < 0 || p.MaxParts > MaxPartsLimit {
		c.Add("max_parts", "must be within [1, %d] (0 or unset: the channel's default), got %d", MaxPartsLimit, p.MaxParts)
	}
}

// Or is the configured value, or def when unset.
func (p Parts) Or(def int) int {
	if p.MaxParts > 0 {
		return p.MaxParts
	}
	return def
}
