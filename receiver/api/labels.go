package api

import (
	"sync"
	"unicode/utf8"
)

// Label values of autoglm_receiver_alerts_received_total come from the
// payload, so each label keeps a bounded set: the first values seen (short,
// printable) up to a limit, everything else counted as "other".
const (
	// MaxAlertnames is how many distinct alertname values get their own series.
	MaxAlertnames = 250
	// maxLabelBytes is the longest value kept as is.
	maxLabelBytes = 128
	// otherValue replaces values beyond a bound.
	otherValue = "other"
)

// boundedLabel admits at most max distinct values.
type boundedLabel struct {
	mu   sync.Mutex
	max  int
	seen map[string]struct{}
}

func newBoundedLabel(max int, preset ...string) *boundedLabel {
	b := &boundedLabel{max: max + len(preset), seen: make(map[string]struct{}, max+len(preset))}
	for _, v := range preset {
		b.seen[v] = struct{}{}
	}
	return b
}

// value returns v if it is (or may become) one of the admitted values, else "other".
func (b *boundedLabel) value(v string) string {
	if len(v) > maxLabelBytes || !printable(v) {
		return otherValue
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.seen[v]; ok {
		return v
	}
	if len(b.seen) >= b.max {
		return otherValue
	}
	b.seen[v] = struct{}{}
	return v
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
