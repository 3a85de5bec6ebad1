package baseline

import (
	"math"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// profileModel is the robust seasonal profile: per slot of the season the
// median of the (level-free) history around that slot, a robust noise scale
// per hour of day, and a current level that follows recent drift.
type profileModel struct {
	name    string
	tr      transform
	k       float64
	step    time.Duration
	stepSec int64
	period  int // slots per season (1 = no season)
	prof    []float64
	scale   [24]float64
	floor   float64 // smallest half-width/k, in transformed space
	// forSteps is how many buckets a value must stay outside before firing.
	forSteps int
	// spikeK is the half-width of the spike band, in robust σ like k (0: none).
	spikeK float64

	// State refreshed from recent observations.
	level    float64
	dayShift int       // use the profile of another weekday until dayEnd
	dayEnd   time.Time // end of the day the shift applies to
	end      time.Time
}

func (m *profileModel) Name() string { return m.name }

func (m *profileModel) slot(t time.Time) int {
	if m.period == 1 {
		return 0
	}
	i := int(floorDiv(t.Unix(), m.stepSec) % int64(m.period))
	if m.dayShift != 0 && t.Before(m.dayEnd) {
		i = (i + m.dayShift*m.slotsPerDay()) % m.period
	}
	return i
}

func (m *profileModel) slotsPerDay() int { return int(int64(day/time.Second) / m.stepSec) }

func (m *profileModel) expected(t time.Time) float64 { return m.prof[m.slot(t)] + m.level }

func (m *profileModel) half(t time.Time) float64 {
	return m.k * math.Max(m.scale[t.UTC().Hour()], m.floor)
}

func (m *profileModel) Band(t time.Time) Band {
	exp, half := m.expected(t), m.half(t)
	b := m.tr.band(exp, half)
	// The first bucket of a day may open at another day type's level (a
	// weekend), which the level only adopts at the next refresh; the main
	// band's `for` bridges that, a single-bucket spike rule would not.
	if m.period > 1 && time.Duration(t.Unix()-floorDiv(t.Unix(), 86400)*86400)*time.Second <= m.step {
		return b
	}
	return m.tr.withSpike(b, exp, half*m.spikeK/m.k)
}

// profileSlots computes per-slot medians of v over all cycles, pooling
// ±halfWidth neighbouring slots so a few weeks of history give stable values.
func profileSlots(v []float64, phase int, period, halfWidth, spd int, buf []float64) []float64 {
	prof := make([]float64, period)
	if spd > period {
		spd = period
	}
	if period == 1 {
		buf = buf[:0]
		for _, x := range v {
			if !math.IsNaN(x) {
				buf = append(buf, x)
			}
		}
		prof[0] = median(buf)
		return prof
	}
	// Group indices by slot once: values of slot s are v[j] with (phase+j) % period == s.
	for s := 0; s < period; s++ {
		buf = buf[:0]
		for d := -halfWidth; d <= halfWidth; d++ {
			ss := s + d
			// Pooling stops at midnight: day types change there in one step.
			if ss < 0 || ss >= period || ss/spd != s/spd {
				continue
			}
			first := ((ss-phase)%period + period) % period
			for j := first; j < len(v); j += period {
				if x := v[j]; !math.IsNaN(x) {
					buf = append(buf, x)
				}
			}
		}
		prof[s] = median(buf)
	}
	// Slots never seen (short or gappy history) borrow from their neighbours.
	fillNaN(prof)
	return prof
}

func fillNaN(p []float64) {
	n := len(p)
	last := math.NaN()
	for i := 0; i < 2*n; i++ {
		if math.IsNaN(p[i%n]) {
			p[i%n] = last
		} else {
			last = p[i%n]
		}
	}
}

// fitProfile fits the profile model on s.y[:upto].
func fitProfile(s *series, upto int, period int, name string) *profileModel {
	y := s.y[:upto]
	spd := int(int64(day/time.Second) / s.stepSec)
	phase := 0
	if period > 1 {
		phase = int(floorDiv(s.t0/s.stepSec, 1) % int64(period))
	}
	halfWidth := max(1, int(int64(10*time.Minute/time.Second)/s.stepSec))
	if period == 1 {
		halfWidth = 0
	}
	buf := make([]float64, 0, 4096)
	work := make([]float64, len(y))
	slotOf := func(j int) int {
		if period == 1 {
			return 0
		}
		return (phase + j) % period
	}
	// Day index of each bucket for a per-day level: absorbs growth and past
	// level shifts so the profile learns shape, not level.
	dayOf := func(j int) int { return int(floorDiv(s.t0+int64(j)*s.stepSec, 86400) - floorDiv(s.t0, 86400)) }
	nDays := dayOf(len(y)-1) + 1
	levels := make([]float64, nDays)

	prof := profileSlots(y, phase, period, halfWidth, spd, buf)
	var global float64
	for iter := 0; iter < 3; iter++ {
		// Per-day level of the residuals.
		for d := range levels {
			levels[d] = math.NaN()
		}
		cur, start := -1, 0
		flush := func(end int) {
			if cur < 0 {
				return
			}
			buf = buf[:0]
			for j := start; j < end; j++ {
				if x := y[j]; !math.IsNaN(x) && !math.IsNaN(work[j]) {
					buf = append(buf, x-prof[slotOf(j)])
				}
			}
			levels[cur] = median(buf)
		}
		for j := range y {
			if d := dayOf(j); d != cur {
				flush(j)
				cur, start = d, j
			}
		}
		flush(len(y))
		if period == 1 {
			// Without a season the level is all there is; keep it slow.
			break
		}
		fillNaN(levels)
		// Deseasonalised residuals, flagging outliers (self-exclusion).
		buf = buf[:0]
		for j, x := range y {
			work[j] = math.NaN()
			if !math.IsNaN(x) {
				work[j] = x - levels[dayOf(j)]
				buf = append(buf, x-levels[dayOf(j)]-prof[slotOf(j)])
			}
		}
		global = mad(buf, median(append([]float64(nil), buf...)))
		if iter == 2 {
			break
		}
		for j, x := range work {
			if !math.IsNaN(x) && math.Abs(x-prof[slotOf(j)]) > s.k*math.Max(global, 1e-12) {
				work[j] = math.NaN()
			}
		}
		prof = profileSlots(work, phase, period, halfWidth, spd, buf)
	}

	m := &profileModel{name: name, tr: s.tr, k: s.k, step: s.step, stepSec: s.stepSec, period: period, prof: prof, end: s.timeOf(upto - 1)}
	// Residual scale per hour of day, after removing the day level.
	var hour [24][]float64
	var all []float64
	for j, x := range y {
		if math.IsNaN(x) {
			continue
		}
		lv := 0.0
		if period > 1 || len(levels) > 0 {
			lv = levels[dayOf(j)]
			if math.IsNaN(lv) {
				continue
			}
		}
		e := x - lv - prof[slotOf(j)]
		h := s.timeOf(j).Hour()
		hour[h] = append(hour[h], e)
		all = append(all, e)
	}
	global = mad(all, median(append([]float64(nil), all...)))
	for h := range hour {
		if len(hour[h]) < 6 {
			m.scale[h] = global
			continue
		}
		// Outliers inside an hour must not widen the band: trim at k·global first.
		kept := hour[h][:0]
		for _, e := range hour[h] {
			if math.Abs(e) <= s.k*math.Max(global, 1e-12) {
				kept = append(kept, e)
			}
		}
		m.scale[h] = math.Max(mad(kept, median(append([]float64(nil), kept...))), 0.5*global)
	}
	m.floor = math.Max(math.Max(0.5*s.noise, 0.01*s.spread), 1e-9)
	if s.tr.fn == trLog {
		// Never alert on less than a ±2% move (in log space).
		m.floor = math.Max(m.floor, 0.02/s.k*2)
	}
	// Widen the band until the training data itself would not page more
	// than the alert budget: heavy-tailed series get wider bands, clean ones keep K.
	resid := make([]float64, len(y))
	for j, x := range y {
		resid[j] = math.NaN()
		if math.IsNaN(x) {
			continue
		}
		lv := levels[dayOf(j)]
		if math.IsNaN(lv) {
			continue
		}
		resid[j] = (x - lv - prof[slotOf(j)]) / math.Max(m.scale[s.timeOf(j).Hour()], m.floor)
	}
	// The budget is per day of data actually seen: gappy series must not
	// earn alerts for the hours they were silent.
	seen := 0
	for _, z := range resid {
		if !math.IsNaN(z) {
			seen++
		}
	}
	days := float64(seen) * s.step.Hours() / 24
	m.k, m.forSteps = calibrate(resid, s.tr, s.k, days, s.budget)
	m.spikeK = calibrateSpike(resid, s.tr, m.k, days, s.budget)
	m.refreshFrom(s, upto)
	return m
}

// refreshFrom sets level and day type from the buckets of s before upto.
func (m *profileModel) refreshFrom(s *series, upto int) {
	end := s.timeOf(upto - 1)
	m.end = end
	dayStart := time.Unix(floorDiv(end.Unix(), 86400)*86400, 0).UTC()
	prevShift := 0
	if m.dayEnd.Equal(dayStart.Add(day)) {
		prevShift = m.dayShift
	}
	m.dayShift = 0
	m.dayEnd = dayStart.Add(day)
	resid := func(j int, shift int) float64 {
		t := s.timeOf(j)
		i := 0
		if m.period > 1 {
			i = int(floorDiv(t.Unix(), m.stepSec) % int64(m.period))
			if shift != 0 && !t.Before(dayStart) {
				i = (i + shift*m.slotsPerDay()) % m.period
			}
		}
		return s.y[j] - m.prof[i]
	}
	buf := make([]float64, 0, 512)
	levelOver := func(from, to time.Time, shift int, center, tol float64) float64 {
		buf = buf[:0]
		a := max(0, int((from.Unix()-s.t0)/s.stepSec))
		b := min(upto, int((to.Unix()-s.t0)/s.stepSec)+1)
		for j := a; j < b; j++ {
			if math.IsNaN(s.y[j]) || s.timeOf(j).Before(from) {
				continue
			}
			r := resid(j, shift)
			if math.IsNaN(center) || math.Abs(r-center) <= tol {
				buf = append(buf, r)
			}
		}
		return median(buf)
	}
	// Today is compared with the level established before midnight, not
	// with yesterday evening: after a holiday, yesterday is the odd one.
	// Only the day-type check (weekly profiles) and the opening step
	// (request rates) use it; it replays 42 hours, so skip it otherwise.
	ref := nan()
	if m.period >= 7*m.slotsPerDay() || (m.period > 1 && m.tr.kind == sli.KindRate) {
		ref = m.anchoredLevel(dayStart.Add(-time.Nanosecond), time.Time{}, time.Time{}, tolOf(m), func(from, to time.Time) float64 {
			return levelOver(from, to, 0, nan(), 0)
		})
	}
	// Day type: a weekday that behaves like a Sunday (a holiday), or the
	// other way round, is recognised from today's data and followed for the
	// rest of the day. A drop late in a normal day cannot flip it because
	// the whole day so far votes.
	if m.period >= 7*m.slotsPerDay() && !end.Before(dayStart) {
		if !math.IsNaN(ref) {
			scores := [7]float64{}
			for o := 0; o < 7; o++ {
				buf = buf[:0]
				for j := max(0, int((dayStart.Unix()-s.t0)/s.stepSec)); j < upto; j++ {
					if !math.IsNaN(s.y[j]) {
						buf = append(buf, math.Abs(resid(j, o)-ref))
					}
				}
				scores[o] = median(buf)
			}
			best := 0
			for o := 1; o < 7; o++ {
				if scores[o] < scores[best] {
					best = o
				}
			}
			g := m.k * math.Max(m.scale[dayStart.Hour()], m.floor)
			switch {
			case best != 0 && scores[0] > 0.5*g && scores[best] < 0.35*scores[0]:
				m.dayShift = best
			case prevShift != 0 && scores[0] > 0.5*g && scores[prevShift] < 0.7*scores[0]:
				// Hysteresis: a day type recognised earlier today is kept
				// while it still explains the day clearly better than the
				// calendar, so the band does not flip between refreshes.
				m.dayShift = prevShift
			}
		}
	}
	tol := tolOf(m)
	var acceptFrom, steppedDay time.Time
	if m.dayShift != 0 {
		acceptFrom = dayStart
	}
	if m.opensWithStep(s, upto, dayStart, ref, tol, func(from, to time.Time) float64 {
		return levelOver(from, to, m.dayShift, nan(), 0)
	}) {
		steppedDay = dayStart
	}
	long := m.anchoredLevel(end, acceptFrom, steppedDay, tol, func(from, to time.Time) float64 {
		return levelOver(from, to, m.dayShift, nan(), 0)
	})
	if math.IsNaN(long) {
		// No recent data: keep the level of the most recent day we have.
		long = levelOver(end.Add(-3*day), end, m.dayShift, nan(), 0)
	}
	if math.IsNaN(long) {
		long = 0
	}
	if m.period > 1 && m.period < 7*m.slotsPerDay() && end.Sub(dayStart) < 6*time.Hour {
		// A daily profile cannot know weekends: when today opened at a level
		// the band rejects, today's own level is the better guess. Only when
		// today sits there, not around the old level: a burst of a few
		// buckets after midnight (a backup, a batch job) moves the median
		// of a short day as much, and adopting it would page when the
		// series returns to normal.
		if today := levelOver(dayStart, end, 0, nan(), 0); !math.IsNaN(today) && math.Abs(today-long) > tol {
			var n, agree int
			for j := max(0, int((dayStart.Unix()-s.t0)/s.stepSec)); j < upto; j++ {
				if math.IsNaN(s.y[j]) || s.timeOf(j).Before(dayStart) {
					continue
				}
				n++
				if d := resid(j, 0) - long; math.Abs(d) > tol && (d > 0) == (today > long) {
					agree++
				}
			}
			if float64(agree) >= dayOpenAgreement*float64(n) {
				long = today
			}
		}
	}
	short := levelOver(end.Add(-2*time.Hour), end, m.dayShift, long, tol)
	if math.IsNaN(short) {
		short = long
	}
	// A two-hour median lags a planned ramp by an hour. Compensate with the
	// recent slope, bounded to a quarter of the band so a fast drift (an
	// incident) still leaves it.
	recent := levelOver(end.Add(-time.Hour), end, m.dayShift, long, tol)
	older := levelOver(end.Add(-4*time.Hour), end.Add(-3*time.Hour), m.dayShift, long, tol)
	// Only traffic-driven series (rates and latencies, log scale) get planned
	// ramps; for anything else the slope of a few hours is mostly noise.
	if m.tr.fn == trLog && !math.IsNaN(recent) && !math.IsNaN(older) {
		lag := (recent - older) / 3
		lag = math.Max(-0.25*tol, math.Min(0.25*tol, lag))
		short += lag
	}
	m.level = short
}

// dayOpenAgreement is the share of today's buckets that must lie beyond
// the band, on the same side, before a daily profile takes today's level
// at once.
const dayOpenAgreement = 0.75

// Level tracking horizons: the window the level is rebuilt from at every
// refresh, and how long a level outside the band must hold before it is
// accepted as the new normal (a migration, a permanent shift). Anything
// shorter is an incident and keeps alerting for its whole length.
const (
	levelWindow   = 42 * time.Hour
	acceptAfter   = 30 * time.Hour
	acceptDayOpen = 3 * time.Hour
)

// anchoredLevel replays the last levelWindow hour by hour: the level starts
// at the median of the hourly levels and follows hours that stay within tol
// of it (drift, planned ramps), while hours outside tol only count towards a
// candidate level, adopted once it has held for acceptAfter without
// interruption. hourly(from, to) is the median residual of that range.
//
// A run that starts at steppedDay (a day that opened with a step, see
// opensWithStep) is a new day level and is taken at once, like a
// recognised day type, but only for that run: a later change on the same
// day starts a run of its own.
func (m *profileModel) anchoredLevel(end, acceptFrom, steppedDay time.Time, tol float64, hourly func(from, to time.Time) float64) float64 {
	n := int(levelWindow / time.Hour)
	hs := make([]float64, n)
	vals := make([]float64, 0, n)
	// Clock hours, the last one partial: blocks that slid with every
	// refresh would let a borderline hour flip the level back and forth.
	first := end.Truncate(time.Hour).Add(-time.Duration(n-1) * time.Hour)
	startOf := func(i int) time.Time { return first.Add(time.Duration(i) * time.Hour) }
	for i := range hs {
		hs[i] = hourly(startOf(i), startOf(i+1).Add(-time.Nanosecond))
		if !math.IsNaN(hs[i]) {
			vals = append(vals, hs[i])
		}
	}
	if len(vals) == 0 {
		return nan()
	}
	level := median(vals)
	runStart, runRef := -1, 0.0
	var openedDay time.Time
	for i, h := range hs {
		if math.IsNaN(h) {
			continue
		}
		if math.Abs(h-level) <= tol {
			level, runStart = h, -1
			continue
		}
		if runStart < 0 || math.Abs(h-runRef) > tol {
			runStart, runRef = i, h
		}
		// Today's hours under a recognised day type (a holiday) are a known
		// regime: their level is taken at once. A day that opened at another
		// level (a holiday not yet recognised by its shape, a planned change
		// rolled out at midnight) is accepted after a few hours: day types
		// change at midnight, incidents start at any time.
		horizon := acceptAfter
		// The rest of a day that opened at another level settles the same
		// way: its level was never established in the first place.
		if rs := startOf(runStart); rs.Sub(rs.Truncate(day)) < 2*time.Hour || rs.Truncate(day).Equal(openedDay) {
			horizon = acceptDayOpen
		}
		if !acceptFrom.IsZero() && !startOf(i).Before(acceptFrom) {
			horizon = 0
		}
		if !steppedDay.IsZero() && startOf(runStart).Equal(steppedDay) {
			horizon = 0
			openedDay = steppedDay
		}
		if time.Duration(i-runStart)*time.Hour >= horizon {
			if horizon == acceptDayOpen {
				openedDay = startOf(runStart).Truncate(day)
			}
			level, runStart = h, -1
		}
	}
	return level
}

// maxDayStep bounds the day-level change (in log space, a factor of 2.5
// either way) that opensWithStep takes for a new day type: traffic at a
// tenth of normal from midnight on is an outage, not a holiday.
const maxDayStep = 0.92

// opensWithStep reports whether today (from dayStart) opened at a new
// traffic level: the last hour before midnight was at the established
// level ref, and today's first bucket and today so far sit together beyond
// the band on the same side. Traffic volume follows the calendar — holidays,
// launches and planned migrations switch at midnight, incidents start at any
// minute (one chance in 288 of landing in the first 5-minute bucket) — so
// such a step is a new day level rather than an incident. Only request
// rates qualify; a latency or error step at midnight is still an incident.
func (m *profileModel) opensWithStep(s *series, upto int, dayStart time.Time, ref, tol float64, level func(from, to time.Time) float64) bool {
	if m.tr.kind != sli.KindRate || m.period == 1 || math.IsNaN(ref) {
		return false
	}
	first := int((dayStart.Unix() - s.t0) / s.stepSec)
	if first < 1 || first >= upto || math.IsNaN(s.y[first]) {
		return false
	}
	before := level(dayStart.Add(-time.Hour), dayStart.Add(-time.Nanosecond))
	opening := level(dayStart, dayStart.Add(s.step-time.Nanosecond))
	today := level(dayStart, s.timeOf(upto-1))
	if math.IsNaN(before) || math.IsNaN(opening) || math.IsNaN(today) || math.Abs(before-ref) > tol {
		return false
	}
	d0, d := opening-ref, today-ref
	return math.Abs(d0) > tol && math.Abs(d) > tol && math.Abs(d) <= maxDayStep && (d0 > 0) == (d > 0)
}

// tolOf is the widest half-band of the model: level moves within it are drift.
func tolOf(m *profileModel) float64 { return m.k * math.Max(maxScale(m.scale), m.floor) }

func maxScale(s [24]float64) float64 {
	x := 0.0
	for _, v := range s {
		x = math.Max(x, v)
	}
	return x
}
