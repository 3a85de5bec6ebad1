package chanhttp

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
	"sync"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
)

// Sent remembers which parts of split messages a provider already accepted,
// so a retry after a failure in part k resends only parts k..n. It is bounded
// (oldest forgotten first) and in memory only.
type Sent struct {
	mu    sync.Mutex
	max   int
	seen  map[string]bool
	order []string
}

// NewSent remembers up to max parts.
func NewSent(max int) *Sent { return &Sent{max: max, seen: make(map[string]bool, max)} }

// PartKey identifies one part of the message for ns.
func PartKey(ns []*notify.Notification, part string) string {
	ids := make([]string, 0, len(ns))
	for _, n := range ns {
		ids = append(ids, n.ID)
	}
	sort.Strings(ids)
	h := sha256.Sum256([]byte(strings.Join(ids, ",") + "\x00" + part))
	return hex.EncodeToString(h[:16])
}

// Seen reports whether key was marked.
func (s *Sent) Seen(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[key]
}

// Mark records key.
func (s *Sent) Mark(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[key] {
		return
	}
	s.seen[key] = true
	s.order = append(s.order, key)
	if len(s.order) > s.max {
		delete(s.seen, s.order[0])
		s.order = s.order[1:]
	}
}
