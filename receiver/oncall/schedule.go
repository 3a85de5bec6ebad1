// Package oncall answers who is on call: rotations with a hand-off time in
// a time zone, layers that cover part of the week, and temporary overrides.
// Everything here is pure: a compiled Schedule maps an instant to a person.
//
// Rotations of whole days hand off at the same wall-clock time every day,
// across daylight-saving changes (a 24h rotation over the spring change
// lasts 23 hours). Rotations that divide a day (8h, 12h) hand off at the same
// wall-clock times each day. Other lengths are absolute durations.
//
// A wall-clock time that does not exist that day (inside the spring gap) is
// read with the offset in force before the change, so 02:30 becomes 03:30; a
// time that happens twice (autumn) means its first occurrence. Go's
// time.Date leaves both cases unspecified, so they are settled here.
package oncall

import (
	"sort"
	"time"
	// Time zones must resolve on hosts and images without a zoneinfo database.
	_ "time/tzdata"
)

// Shift is one person's stretch on call.
type Shift struct {
	// Person is the id under oncall.people; "" when nobody is on call.
	Person string
	Start  time.Time
	End    time.Time
	// Layer is the name of the layer that put Person on call, or "override".
	Layer string
}

// Override puts Person on call from From to To, above every layer.
type Override struct {
	Person string
	From   time.Time
	To     time.Time
}

// Window restricts a layer to part of each day on some weekdays.
type Window struct {
	// From and To are minutes after local midnight; To <= From wraps past midnight.
	From, To int
	// Days the window starts on; empty means every day.
	Days []time.Weekday
}

// Layer is one rotation.
type Layer struct {
	Name    string
	Members []string
	// Start is the first hand-off (to Members[0]).
	Start time.Time
	// Rotation is the length of one turn.
	Rotation time.Duration
	// Window limits when the layer is on call (nil: always).
	Window *Window
}

// Schedule is a compiled on-call schedule. Later layers win where they cover
// an instant; overrides win over every layer.
type Schedule struct {
	Name      string
	Loc       *time.Location
	Layers    []Layer
	Overrides []Override
}

// wallDate builds a local time by wall clock (see the package comment for
// gaps and repeats). Day and minute overflow normalise as in time.Date.
func wallDate(y int, m time.Month, d, minutes int, loc *time.Location) time.Time {
	want := time.Date(y, m, d, 0, minutes, 0, 0, time.UTC)
	t := time.Date(y, m, d, 0, minutes, 0, 0, loc)
	wall := func(x time.Time) time.Time {
		l := x.In(loc)
		return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
	}
	if !wall(t).Equal(want) {
		_, off := t.Add(-6 * time.Hour).In(loc).Zone()
		return want.Add(-time.Duration(off) * time.Second).In(loc)
	}
	// Zones shift by 30 minutes to 2 hours; take the earliest instant with this wall clock.
	for _, back := range []time.Duration{2 * time.Hour, time.Hour, 30 * time.Minute} {
		if e := t.Add(-back); wall(e).Equal(want) {
			return e
		}
	}
	return t
}

func minutesOf(t time.Time) int { return t.Hour()*60 + t.Minute() }

const day = 24 * time.Hour

// handoff returns the k-th hand-off of the layer (k may be negative).
func (l *Layer) handoff(k int, loc *time.Location) time.Time {
	s := l.Start.In(loc)
	switch {
	case l.Rotation%day == 0:
		days := int(l.Rotation / day)
		return wallDate(s.Year(), s.Month(), s.Day()+k*days, minutesOf(s), loc)
	case day%l.Rotation == 0:
		per := int(day / l.Rotation)
		dk := floorDiv(k, per)
		slot := k - dk*per
		return wallDate(s.Year(), s.Month(), s.Day()+dk, minutesOf(s)+slot*int(l.Rotation/time.Minute), loc)
	}
	return l.Start.Add(time.Duration(k) * l.Rotation)
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// turn returns k with handoff(k) <= t < handoff(k+1).
func (l *Layer) turn(t time.Time, loc *time.Location) int {
	k := int(floorDiv(int(t.Sub(l.Start)/time.Minute), int(l.Rotation/time.Minute)))
	for !l.handoff(k+1, loc).After(t) {
		k++
	}
	for l.handoff(k, loc).After(t) {
		k--
	}
	return k
}

// covers reports whether the layer's window includes t.
func (l *Layer) covers(t time.Time, loc *time.Location) bool {
	if l.Window == nil {
		return true
	}
	lt := t.In(loc)
	// The window may have started today or, when it wraps midnight, yesterday.
	for back := 0; back <= 1; back++ {
		d := lt.AddDate(0, 0, -back)
		from, to := l.Window.span(d, loc)
		if !from.After(t) && t.Before(to) && l.Window.onDay(from.In(loc).Weekday()) {
			return true
		}
	}
	return false
}

func (w *Window) onDay(d time.Weekday) bool {
	if len(w.Days) == 0 {
		return true
	}
	for _, x := range w.Days {
		if x == d {
			return true
		}
	}
	return false
}

// span is the window that starts on the local day of d.
func (w *Window) span(d time.Time, loc *time.Location) (time.Time, time.Time) {
	from := wallDate(d.Year(), d.Month(), d.Day(), w.From, loc)
	toDay := d.Day()
	if w.To <= w.From {
		toDay++
	}
	return from, wallDate(d.Year(), d.Month(), toDay, w.To, loc)
}

// layerAt returns who the layer has on call at t ("" when its window does not cover t).
func (l *Layer) at(t time.Time, loc *time.Location) string {
	if len(l.Members) == 0 || !l.covers(t, loc) {
		return ""
	}
	k := l.turn(t, loc)
	n := len(l.Members)
	return l.Members[((k%n)+n)%n]
}

// who returns the person and the layer name at t.
func (s *Schedule) who(t time.Time) (string, string) {
	// The override added last wins when overrides overlap.
	for i := len(s.Overrides) - 1; i >= 0; i-- {
		o := s.Overrides[i]
		if !o.From.After(t) && t.Before(o.To) {
			return o.Person, "override"
		}
	}
	for i := len(s.Layers) - 1; i >= 0; i-- {
		if p := s.Layers[i].at(t, s.Loc); p != "" {
			return p, s.Layers[i].Name
		}
	}
	return "", ""
}

// horizon bounds how far a shift's start or end is searched for.
const horizon = 120 * day

// boundaries returns the instants in (from, to] at which the answer may change, sorted.
func (s *Schedule) boundaries(from, to time.Time) []time.Time {
	var out []time.Time
	add := func(t time.Time) {
		if t.After(from) && !t.After(to) {
			out = append(out, t)
		}
	}
	for _, o := range s.Overrides {
		add(o.From)
		add(o.To)
	}
	for i := range s.Layers {
		l := &s.Layers[i]
		if len(l.Members) == 0 {
			continue
		}
		for k := l.turn(from, s.Loc) + 1; ; k++ {
			h := l.handoff(k, s.Loc)
			if h.After(to) {
				break
			}
			add(h)
		}
		if l.Window != nil {
			d := from.In(s.Loc).AddDate(0, 0, -1)
			for !d.After(to.Add(day)) {
				f, e := l.Window.span(d, s.Loc)
				add(f)
				add(e)
				d = d.AddDate(0, 0, 1)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// At returns the shift covering t: who is on call and from when until when
// (Start and End are zero when no change happens within 120 days).
func (s *Schedule) At(t time.Time) Shift {
	p, layer := s.who(t)
	sh := Shift{Person: p, Layer: layer}
	// End: first boundary after t where the person changes.
	step := 14 * day
	for from := t; from.Before(t.Add(horizon)) && sh.End.IsZero(); from = from.Add(step) {
		for _, b := range s.boundaries(from, from.Add(step)) {
			if q, _ := s.who(b); q != p {
				sh.End = b
				break
			}
		}
	}
	// Start: last boundary at or before t after which the person was p all along.
	for to := t; to.After(t.Add(-horizon)) && sh.Start.IsZero(); to = to.Add(-step) {
		bs := s.boundaries(to.Add(-step), to)
		for i := len(bs) - 1; i >= 0; i-- {
			b := bs[i]
			if b.After(t) {
				continue
			}
			if q, _ := s.who(b.Add(-time.Nanosecond)); q != p {
				sh.Start = b
				break
			}
		}
	}
	return sh
}

// Next returns the shift that follows the one covering t (zero when none within the horizon).
func (s *Schedule) Next(t time.Time) Shift {
	cur := s.At(t)
	if cur.End.IsZero() {
		return Shift{}
	}
	return s.At(cur.End)
}

// Shifts lists the shifts overlapping [from, to), at most max of them.
func (s *Schedule) Shifts(from, to time.Time, max int) []Shift {
	var out []Shift
	t := from
	for len(out) < max && t.Before(to) {
		sh := s.At(t)
		out = append(out, sh)
		if sh.End.IsZero() {
			break
		}
		t = sh.End
	}
	return out
}
