package chanhttp

import (
	"context"
	"errors"
	"fmt"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
)

// Splitter sends a text longer than a robot accepts as several messages,
// the way DingTalk and WeCom robots both need it: parts on UTF-8 and line
// boundaries, a retry that resends only the parts not yet accepted, and a
// smaller split when the provider counts the length differently than we do.
type Splitter struct {
	// TooLong is the provider's "message too long" error code.
	TooLong string
	// MinBytes bounds re-splitting after TooLong, so it always ends.
	MinBytes int
	sent     *Sent
}

// NewSplitter remembers accepted parts of the last 4,096 split messages.
func NewSplitter(tooLong string, minBytes int) *Splitter {
	return &Splitter{TooLong: tooLong, MinBytes: minBytes, sent: NewSent(4096)}
}

// Send cuts text into parts of at most limit-overhead bytes (overhead is
// what send adds around a part: numbering, title, mentions) and calls send
// for each part in order, with its index and the number of parts. An
// error names the part that failed and keeps its class.
func (s *Splitter) Send(ctx context.Context, ns []*notify.Notification, text string, limit, overhead int,
	send func(ctx context.Context, i, n int, part string) error,
) error {
	parts := Split(text, max(limit-overhead, s.MinBytes/2))
	for i, p := range parts {
		key := PartKey(ns, fmt.Sprintf("%d/%d/%d\x00%s", i, len(parts), limit, p))
		if len(parts) > 1 && s.sent.Seen(key) {
			continue
		}
		err := send(ctx, i, len(parts), p)
		var e *notify.Error
		if errors.As(err, &e) && e.Code == s.TooLong && limit/2 >= s.MinBytes {
			rest := ""
			for _, q := range parts[i:] {
				rest += q
			}
			return s.Send(ctx, ns, rest, limit/2, overhead, send)
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
		if len(parts) > 1 {
			s.sent.Mark(key)
		}
	}
	return nil
}
