// Package route turns a webhook message into outbox deliveries: ordered
// routes with Alertmanager matchers, continue, a default route, the
// severity-to-priority mapping and idempotency keys. Plan is a pure function
// of the message, the configuration and the time.
package route

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	amwebhook "github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"

	"github.com/open-autoglm/autoglm-monitor/receiver/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

// Route is one compiled route.
type Route struct {
	Name                  string
	Matchers              labels.Matchers
	Channels              []string
	Fallback              []string
	EscalateAfter         time.Duration
	EscalateAfterFailures int
	Continue              bool
	// Chain is the route's escalation chain ("" for none).
	Chain string
}

// Router matches notifications against routes in order.
type Router struct {
	routes      []Route
	def         *Route
	priorities  func(string) string
	expireAfter time.Duration
}

// New compiles the routes of a validated receiver section.
func New(c *config.Config) (*Router, error) {
	r := &Router{priorities: c.PriorityOf, expireAfter: c.Retry.ExpireAfter.D()}
	compile := func(cr config.Route, i int) (Route, error) {
		ms, err := cr.ParsedMatchers()
		if err != nil {
			return Route{}, fmt.Errorf("route %s: %w", cr.RouteName(i), err)
		}
		n := cr.EscalateAfterFailures
		if n == 0 {
			n = c.Retry.EscalateAfterFailures
		}
		return Route{
			Name: cr.RouteName(i), Matchers: ms, Channels: cr.Channels, Fallback: cr.Fallback,
			EscalateAfter: cr.EscalateAfter.D(), EscalateAfterFailures: n, Continue: cr.Continue, Chain: cr.Chain,
		}, nil
	}
	for i, cr := range c.Routes {
		rt, err := compile(cr, i)
		if err != nil {
			return nil, err
		}
		r.routes = append(r.routes, rt)
	}
	if c.DefaultRoute != nil {
		rt, err := compile(*c.DefaultRoute, -1)
		if err != nil {
			return nil, err
		}
		r.def = &rt
	}
	return r, nil
}

// Match returns the routes a notification takes. Matching uses the group's
// common labels (which include the group labels), so a group is never split.
func (r *Router) Match(d *template.Data) []Route {
	ls := make(model.LabelSet, len(d.CommonLabels))
	for k, v := range d.CommonLabels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	var out []Route
	for _, rt := range r.routes {
		if !rt.Matchers.Matches(ls) {
			continue
		}
		out = append(out, rt)
		if !rt.Continue {
			return out
		}
	}
	if len(out) == 0 && r.def != nil {
		out = append(out, *r.def)
	}
	return out
}

// Plan is what one webhook message becomes.
type Plan struct {
	// Routes are the names of the matched routes, in order.
	Routes   []string
	Priority notify.Priority
	// Record audits the receipt (outcome received, or unrouted when no route matched).
	Record *store.Record
	// Deliveries are the outbox entries: one per channel of the matched
	// routes (a channel named by two routes is delivered once, for the first).
	Deliveries []*store.Delivery
	// Chain is the escalation chain of the first matched route that has one,
	// ChainRoute that route's name.
	Chain, ChainRoute string
}

// Plan routes msg, received at now, into deliveries. It reads nothing but
// its arguments and the compiled configuration.
func (r *Router) Plan(msg *amwebhook.Message, now time.Time) Plan {
	d := msg.Data
	routes := r.Match(d)
	prio := r.Priority(d)
	base := BaseKey(msg.GroupKey, d)
	rec := &store.Record{
		Time: now, Outcome: store.OutcomeReceived, GroupKey: msg.GroupKey, Status: d.Status,
		Alertnames: store.Alertnames(d.Alerts), Receiver: d.Receiver, Priority: string(prio),
		Fingerprints: make([]string, 0, len(d.Alerts)),
	}
	for _, a := range d.Alerts {
		rec.Fingerprints = append(rec.Fingerprints, a.Fingerprint)
	}
	p := Plan{Routes: make([]string, 0, len(routes)), Priority: prio, Record: rec, Deliveries: make([]*store.Delivery, 0, 2*len(routes))}
	seen := make(map[string]bool, 4)
	for _, rt := range routes {
		p.Routes = append(p.Routes, rt.Name)
		if p.Chain == "" && rt.Chain != "" {
			p.Chain, p.ChainRoute = rt.Chain, rt.Name
		}
		for _, ch := range rt.Channels {
			if seen[ch] {
				continue
			}
			seen[ch] = true
			dl := &store.Delivery{
				ID: ChannelKey(base, ch), Base: base, Channel: ch, Route: rt.Name, Fallback: rt.Fallback,
				EscalateAfterFailures: rt.EscalateAfterFailures, GroupKey: msg.GroupKey, Priority: prio,
				Data: d, TruncatedAlerts: int(min(msg.TruncatedAlerts, 1<<31-1)), Received: now, ExpireAt: now.Add(r.expireAfter),
			}
			if rt.EscalateAfter > 0 {
				dl.EscalateAt = now.Add(rt.EscalateAfter)
			}
			p.Deliveries = append(p.Deliveries, dl)
		}
	}
	rec.Route = strings.Join(p.Routes, ",")
	if len(routes) == 0 {
		rec.Outcome = store.OutcomeUnrouted
	}
	return p
}

var rank = map[notify.Priority]int{notify.P1: 1, notify.P2: 2, notify.P3: 3}

// Priority is the most urgent priority among the alerts' severities.
func (r *Router) Priority(d *template.Data) notify.Priority {
	best := notify.P3
	for _, a := range d.Alerts {
		p := notify.Priority(r.priorities(a.Labels["severity"]))
		if rank[p] != 0 && rank[p] < rank[best] {
			best = p
		}
	}
	if len(d.Alerts) == 0 {
		best = notify.Priority(r.priorities(d.CommonLabels["severity"]))
	}
	return best
}

// BaseKey identifies a notification independently of the channel: group key,
// status and every alert's fingerprint with its start and end. Alertmanager
// retries and cluster peers produce the same key for the same notification.
func BaseKey(groupKey string, d *template.Data) string {
	parts := make([]string, 0, len(d.Alerts))
	for _, a := range d.Alerts {
		fp := a.Fingerprint
		if fp == "" {
			fp = labelsKey(a.Labels)
		}
		parts = append(parts, fp+"|"+a.StartsAt.UTC().Format(time.RFC3339Nano)+"|"+a.EndsAt.UTC().Format(time.RFC3339Nano))
	}
	sort.Strings(parts)
	h := sha256.New()
	h.Write([]byte(groupKey))
	h.Write([]byte{0})
	h.Write([]byte(d.Status))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ChannelKey is the idempotency key of a notification over one channel.
func ChannelKey(base, channel string) string {
	h := sha256.Sum256([]byte(base + "\x00" + channel))
	return hex.EncodeToString(h[:16])
}

func labelsKey(kv template.KV) string {
	var b strings.Builder
	for _, p := range kv.SortedPairs() {
		b.WriteString(p.Name)
		b.WriteByte('=')
		b.WriteString(p.Value)
		b.WriteByte(',')
	}
	return b.String()
}
