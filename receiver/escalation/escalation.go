// Package escalation runs on-call escalation chains: when a P1 group starts
// firing, the chain's first step pages at once; each later step pages when
// its delay has passed and nobody claimed the group; a claim or the group's
// resolution ends the chain. Who is paged comes from the on-call schedules at
// the moment the step runs.
//
// Incidents are stored before their pages are sent and the pages have
// deterministic ids, so a crash between the two repeats a step at most
// once, and the outbox's idempotency drops the repeat.
package escalation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/open-autoglm/autoglm-monitor/receiver/action"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/oncall"
)

// Claim says who took a group.
type Claim struct {
	By      string    `json:"by"`
	Channel string    `json:"channel,omitempty"`
	At      time.Time `json:"at"`
}

// Incident is the escalation state of one alert group.
type Incident struct {
	// ID is the group's action.GroupID in string form.
	ID       string          `json:"id"`
	GroupKey string          `json:"group_key"`
	Name     string          `json:"name"`
	Route    string          `json:"route"`
	Chain    string          `json:"chain"`
	Priority notify.Priority `json:"priority"`
	// Labels identify the group for silences (group labels, else common labels).
	Labels map[string]string `json:"labels"`
	// Data is the latest firing payload, sent again by later steps.
	Data    *template.Data `json:"data"`
	Started time.Time      `json:"started"`
	// StepsDone counts the chain steps already paged.
	StepsDone int        `json:"steps_done"`
	Claimed   *Claim     `json:"claimed,omitempty"`
	Resolved  time.Time  `json:"resolved,omitzero"`
	Silences  []Silenced `json:"silences,omitempty"`
	// Channels are the channels the group was sent to so far (its route's and its steps').
	Channels []string `json:"channels,omitempty"`
	// RouteChannels got the group from its route: the first step does not
	// send there again, the route's message mentions the step's people.
	RouteChannels []string `json:"route_channels,omitempty"`
}

// Silenced records a silence created from a message.
type Silenced struct {
	ID      string    `json:"id"`
	Until   time.Time `json:"until"`
	By      string    `json:"by"`
	Channel string    `json:"channel,omitempty"`
}

// Active reports whether the chain may still page.
func (i *Incident) Active() bool { return i.Claimed == nil && i.Resolved.IsZero() }

// Page is one step's notification over one channel.
type Page struct {
	// ID is deterministic: incident, start, step and channel.
	ID         string
	Incident   string
	GroupKey   string
	Step       int
	Channel    string
	Recipients []oncall.Recipient
	Data       *template.Data
	Priority   notify.Priority
	Route      string
	// Note, when set, makes the page an announcement (e.g. who claimed the group).
	Note string
}

// Event kinds, audited.
const (
	EventOpened   = "incident_opened"
	EventStep     = "escalation_step"
	EventNobody   = "nobody_on_call"
	EventClaimed  = "claimed"
	EventSilenced = "silenced"
	EventResolved = "incident_resolved"
)

// Event is one audited escalation fact.
type Event struct {
	Time     time.Time
	Kind     string
	Incident *Incident
	Step     int
	Channel  string
	// People paged by a step, or who claimed / silenced.
	People []string
	Detail string
}

// Store keeps incidents durably.
type Store interface {
	Incidents() ([]*Incident, error)
	// SaveIncidents writes incidents and their audit events durably (after fsync).
	SaveIncidents(incs []*Incident, events []Event) error
}

// Pager hands pages to the delivery engine.
type Pager interface {
	// Page durably enqueues pages; ids already accepted are dropped as duplicates.
	Page(pages []Page) error
	// Cancel drops the pages of a group that are not yet sent and returns how many.
	Cancel(groupKey string) int
}

// Config is what a reload changes.
type Config struct {
	Chains    map[string]oncall.Chain
	Schedules map[string]*oncall.Schedule
	People    map[string]oncall.Person
}

// Options configure an Escalator.
type Options struct {
	Store Store
	Pager Pager
	Now   func() time.Time
	// OnError receives failures of the background loop (a store or outbox write).
	OnError func(error)
}

// Escalator runs the chains.
type Escalator struct {
	o    Options
	wake chan struct{}

	mu        sync.Mutex
	cfg       Config
	incidents map[string]*Incident
}

// New loads the stored incidents.
func New(o Options, cfg Config) (*Escalator, error) {
	if o.Store == nil || o.Pager == nil {
		return nil, errors.New("escalation needs a store and a pager")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OnError == nil {
		o.OnError = func(error) {}
	}
	incs, err := o.Store.Incidents()
	if err != nil {
		return nil, fmt.Errorf("load incidents: %w", err)
	}
	e := &Escalator{o: o, cfg: cfg, wake: make(chan struct{}, 1), incidents: make(map[string]*Incident, len(incs))}
	for _, in := range incs {
		e.incidents[in.ID] = in
	}
	return e, nil
}

// SetConfig installs chains and schedules after a reload. Incidents keep
// their progress; a chain that disappeared stops paging.
func (e *Escalator) SetConfig(cfg Config) {
	e.mu.Lock()
	e.cfg = cfg
	e.mu.Unlock()
	e.poke()
}

func (e *Escalator) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func pageID(in *Incident, step int, channel string) string {
	h := sha256.Sum256([]byte(in.ID + "\x00" + strconv.FormatInt(in.Started.UnixNano(), 10) + "\x00" + strconv.Itoa(step) + "\x00" + channel))
	return "esc-" + hex.EncodeToString(h[:16])
}

// groupLabels are the labels a silence of the group matches.
func groupLabels(d *template.Data) map[string]string {
	src := d.GroupLabels
	if len(src) == 0 {
		src = d.CommonLabels
	}
	out := make(map[string]string, len(src))
	for k, v := range src {
		out[k] = v
	}
	return out
}

func nameOf(d *template.Data) string {
	if n := d.CommonLabels["alertname"]; n != "" {
		return n
	}
	if n := d.GroupLabels["alertname"]; n != "" {
		return n
	}
	if len(d.Alerts) > 0 {
		return d.Alerts[0].Labels["alertname"]
	}
	return ""
}

// Notify tells the escalator about an accepted notification that carries
// actions: channels are the route's channels it was sent to, chain the
// route's escalation chain ("" for none: the group can still be claimed and
// silenced). A firing group opens (or reopens, after a resolution) an
// incident and pages its due steps; a resolved one closes it.
func (e *Escalator) Notify(groupKey, route, chain string, channels []string, prio notify.Priority, d *template.Data, received time.Time) error {
	id := action.GroupOf(groupKey).String()
	e.mu.Lock()
	defer e.mu.Unlock()
	in := e.incidents[id]
	var events []Event
	switch {
	case d.Status == "resolved":
		if in == nil || !in.Resolved.IsZero() {
			return nil
		}
		in.Resolved = received
		events = append(events, Event{Time: received, Kind: EventResolved, Incident: in})
	case in == nil || !in.Resolved.IsZero():
		in = &Incident{ID: id, GroupKey: groupKey, Name: nameOf(d), Route: route, Chain: chain, Priority: prio,
			Labels: groupLabels(d), Data: d, Started: received, Channels: append([]string(nil), channels...),
			RouteChannels: append([]string(nil), channels...)}
		e.incidents[id] = in
		events = append(events, Event{Time: received, Kind: EventOpened, Incident: in, Detail: "chain " + chain})
	default:
		// A repeat or an update of a running incident: later steps send the latest alerts.
		in.Data, in.Priority = d, prio
		for _, c := range channels {
			if !contains(in.Channels, c) {
				in.Channels = append(in.Channels, c)
			}
		}
		return e.o.Store.SaveIncidents([]*Incident{in}, nil)
	}
	if err := e.o.Store.SaveIncidents([]*Incident{in}, events); err != nil {
		return err
	}
	if in.Active() {
		if err := e.stepLocked(in, e.o.Now()); err != nil {
			return err
		}
	}
	e.poke()
	return nil
}

// stepLocked pages every step of in that is due at now. Called with e.mu held.
func (e *Escalator) stepLocked(in *Incident, now time.Time) error {
	ch, ok := e.cfg.Chains[in.Chain]
	if !ok {
		return nil
	}
	for {
		i := ch.Due(in.Started, now, in.StepsDone)
		if i < 0 {
			return nil
		}
		rs := ch.Recipients(i, now, e.cfg.Schedules, e.cfg.People)
		var pages []Page
		var events []Event
		people := make([]string, 0, len(rs))
		for _, r := range rs {
			people = append(people, r.ID)
		}
		if len(rs) == 0 {
			events = append(events, Event{Time: now, Kind: EventNobody, Incident: in, Step: i,
				Detail: "nobody on call in the step's schedules; the channels' own recipients are paged"})
		}
		for _, c := range ch.Steps[i].Channels {
			if i == 0 && contains(in.RouteChannels, c) {
				// The route's own message is this step's page here.
				events = append(events, Event{Time: now, Kind: EventStep, Incident: in, Step: i, Channel: c, People: people,
					Detail: fmt.Sprintf("step 1 of chain %s, with the route's message", in.Chain)})
				continue
			}
			pages = append(pages, Page{ID: pageID(in, i, c), Incident: in.ID, GroupKey: in.GroupKey, Step: i, Channel: c,
				Recipients: rs, Data: in.Data, Priority: in.Priority, Route: in.Route})
			events = append(events, Event{Time: now, Kind: EventStep, Incident: in, Step: i, Channel: c, People: people,
				Detail: fmt.Sprintf("step %d of chain %s, due %s after the first notification", i+1, in.Chain, ch.Steps[i].After)})
			if !contains(in.Channels, c) {
				in.Channels = append(in.Channels, c)
			}
		}
		if len(pages) > 0 {
			if err := e.o.Pager.Page(pages); err != nil {
				return fmt.Errorf("page step %d of %s: %w", i+1, in.Name, err)
			}
		}
		in.StepsDone = i + 1
		if err := e.o.Store.SaveIncidents([]*Incident{in}, events); err != nil {
			// The pages are in the outbox; a retry of this step is dropped as a duplicate.
			in.StepsDone = i
			return err
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Errors of Claim and Silence.
var (
	ErrUnknown = errors.New("no incident for this alert group")
)

// Claim records who took the group and stops its escalation: no later step
// pages, and pages not yet sent are dropped. The first claim wins; a later
// one returns the existing claim with claimed=false. The group's paged IM
// channels get an announcement.
func (e *Escalator) Claim(g action.GroupID, by, channel string, announce []string) (in *Incident, claimed bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	in = e.incidents[g.String()]
	if in == nil {
		return nil, false, ErrUnknown
	}
	if in.Claimed != nil {
		return in, false, nil
	}
	now := e.o.Now()
	in.Claimed = &Claim{By: by, Channel: channel, At: now}
	cancelled := e.o.Pager.Cancel(in.GroupKey)
	detail := fmt.Sprintf("escalation stopped after step %d", in.StepsDone)
	if cancelled > 0 {
		detail += fmt.Sprintf("; %d unsent pages dropped", cancelled)
	}
	if err := e.o.Store.SaveIncidents([]*Incident{in}, []Event{{Time: now, Kind: EventClaimed, Incident: in, Channel: channel, People: []string{by}, Detail: detail}}); err != nil {
		in.Claimed = nil
		return nil, false, err
	}
	var pages []Page
	for _, c := range announce {
		pages = append(pages, Page{ID: pageID(in, -1, "claim:"+c), Incident: in.ID, GroupKey: in.GroupKey, Step: -1, Channel: c,
			Data: in.Data, Priority: in.Priority, Route: in.Route, Note: claimNote(in)})
	}
	if len(pages) > 0 {
		if err := e.o.Pager.Page(pages); err != nil {
			// The claim stands; only the announcement is missing.
			e.o.OnError(fmt.Errorf("announce claim of %s: %w", in.Name, err))
		}
	}
	return in, true, nil
}

func claimNote(in *Incident) string {
	via := ""
	if in.Claimed.Channel != "" {
		via = " (" + in.Claimed.Channel + ")"
	}
	return fmt.Sprintf("%s claimed at %s%s", in.Claimed.By, in.Claimed.At.UTC().Format(time.RFC3339), via)
}

// Silenced records a silence created for the group.
func (e *Escalator) Silenced(g action.GroupID, s Silenced) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	in := e.incidents[g.String()]
	if in == nil {
		return ErrUnknown
	}
	in.Silences = append(in.Silences, s)
	return e.o.Store.SaveIncidents([]*Incident{in}, []Event{{Time: e.o.Now(), Kind: EventSilenced, Incident: in, Channel: s.Channel,
		People: []string{s.By}, Detail: fmt.Sprintf("silence %s until %s", s.ID, s.Until.UTC().Format(time.RFC3339))}})
}

// RouteRecipients returns whom the route's message over channel pages: the
// first step's people when the group's chain starts on that channel and
// nobody claimed it yet.
func (e *Escalator) RouteRecipients(groupKey, channel string) ([]oncall.Recipient, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	in := e.incidents[action.GroupOf(groupKey).String()]
	if in == nil || !in.Active() || !contains(in.RouteChannels, channel) {
		return nil, false
	}
	ch, ok := e.cfg.Chains[in.Chain]
	if !ok || len(ch.Steps) == 0 || ch.Steps[0].After > 0 || !contains(ch.Steps[0].Channels, channel) {
		return nil, false
	}
	return ch.Recipients(0, e.o.Now(), e.cfg.Schedules, e.cfg.People), true
}

// Incident returns a copy of the group's incident.
func (e *Escalator) Incident(g action.GroupID) (Incident, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	in := e.incidents[g.String()]
	if in == nil {
		return Incident{}, false
	}
	return *in, true
}

// Due pages every due step and returns when the next step is due (zero: none).
func (e *Escalator) Due() (time.Time, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.o.Now()
	var next time.Time
	var errs []error
	ids := make([]string, 0, len(e.incidents))
	for id := range e.incidents {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		in := e.incidents[id]
		if !in.Active() {
			continue
		}
		if err := e.stepLocked(in, now); err != nil {
			errs = append(errs, err)
			continue
		}
		if ch, ok := e.cfg.Chains[in.Chain]; ok {
			if t := ch.NextAt(in.Started, in.StepsDone); !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
	}
	return next, errors.Join(errs...)
}

// Run pages due steps until ctx ends, sleeping until the next step is due
// (at most retry when a write failed) or something changed.
func (e *Escalator) Run(ctx context.Context) {
	const retry = 5 * time.Second
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-e.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		next, err := e.Due()
		wait := time.Hour
		if err != nil {
			e.o.OnError(err)
			wait = retry
		}
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(e.o.Now()), 0))
		}
		timer.Reset(wait)
	}
}

// Prune forgets incidents resolved (or claimed and quiet) before cutoff.
func (e *Escalator) Prune(cutoff time.Time) []*Incident {
	e.mu.Lock()
	defer e.mu.Unlock()
	var gone []*Incident
	for id, in := range e.incidents {
		end := in.Resolved
		if end.IsZero() {
			continue
		}
		if end.Before(cutoff) {
			gone = append(gone, in)
			delete(e.incidents, id)
		}
	}
	return gone
}
