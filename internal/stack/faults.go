package stack

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/llmsim"
)

// FaultDeadline is how soon after a scheduled fault begins a person must
// have been told about it (the specification's P1 promise, held for every
// fault the quickstart announces).
const FaultDeadline = 5 * time.Minute

// Alerts that tell a person about a fault of each kind.
var (
	errorAlerts   = regexp.MustCompile(`Error`)
	latencyAlerts = regexp.MustCompile(`Latency|TTFT|TimeToFirstToken|EngineSaturated`)
)

// faultAlerts returns which alert names report a fault phase.
func faultAlerts(p llmsim.Phase) *regexp.Regexp {
	errs := p.ErrorRatio > 0 || p.AbortRatio > 0
	// A shrunk engine queues requests: time to first token climbs and the
	// engine saturates.
	shrunk := p.CapacityRatio > 0 && p.CapacityRatio < 1
	slow := p.AddedLatency > 0 || p.TTFTMultiplier > 1 || p.TokenMultiplier > 1 || shrunk
	switch {
	case errs && slow:
		return regexp.MustCompile(errorAlerts.String() + "|" + latencyAlerts.String())
	case errs:
		return errorAlerts
	case slow:
		return latencyAlerts
	}
	return nil
}

// DescribeFault says what a phase does, for the demo's narration.
func DescribeFault(p llmsim.Phase) string {
	var what []string
	if p.ErrorRatio > 0 {
		codes := make([]string, len(p.StatusCodes))
		for i, c := range p.StatusCodes {
			codes[i] = strconv.Itoa(c)
		}
		what = append(what, fmt.Sprintf("%.0f%% errors (%s)", 100*p.ErrorRatio, strings.Join(codes, "/")))
	}
	if p.AbortRatio > 0 {
		what = append(what, fmt.Sprintf("%.0f%% of streams cut off", 100*p.AbortRatio))
	}
	if p.AddedLatency > 0 {
		what = append(what, "+"+p.AddedLatency.String()+" before the first byte")
	}
	if p.TTFTMultiplier > 1 {
		what = append(what, fmt.Sprintf("%gx time to first token", p.TTFTMultiplier))
	}
	if p.TokenMultiplier > 1 {
		what = append(what, fmt.Sprintf("%gx time per token", p.TokenMultiplier))
	}
	if p.CapacityRatio > 0 && p.CapacityRatio < 1 {
		what = append(what, fmt.Sprintf("engine shrunk to %g%% of its capacity", 100*p.CapacityRatio))
	}
	name := p.Name
	if name == "" {
		name = "fault"
	}
	return fmt.Sprintf("%s at %s for %s: %s", name, p.Start, p.Duration, strings.Join(what, ", "))
}

// FaultReport says whether one occurrence of a scheduled fault reached a person.
type FaultReport struct {
	Phase llmsim.Phase
	// Began is when the occurrence started.
	Began time.Time
	// Delivery is the first notification about it (nil: none yet).
	Delivery *Delivery
	// Missed is set once FaultDeadline passed without a notification.
	Missed bool
}

func (r FaultReport) String() string {
	if r.Delivery != nil {
		return fmt.Sprintf("%s reached a person %s after it began (%s on %s)", nameOf(r.Phase), r.Delivery.Time.Sub(r.Began).Round(time.Second), r.Delivery.Alertname, r.Delivery.Channel)
	}
	return fmt.Sprintf("WARNING: %s began %s ago and no notification about it has reached a person within %s", nameOf(r.Phase), time.Since(r.Began).Round(time.Second), FaultDeadline)
}

// faultWatch follows each occurrence of the scheduled faults until a person
// was told about it, or FaultDeadline passed.
type faultWatch struct {
	sched *llmsim.Schedule
	// start is when the simulator's fault clock began.
	start time.Time
	// done holds the occurrences already decided, by phase index and round.
	done map[[2]int]bool
}

// check returns the occurrences decided since the last call.
func (w *faultWatch) check(now time.Time, ds []Delivery) []FaultReport {
	if w.sched == nil {
		return nil
	}
	elapsed := now.Sub(w.start)
	rounds := 1
	if w.sched.Repeat > 0 {
		rounds = int(elapsed/w.sched.Repeat) + 1
	}
	var out []FaultReport
	for r := range rounds {
		for i, p := range w.sched.Phases {
			key := [2]int{i, r}
			re := faultAlerts(p)
			began := w.start.Add(time.Duration(r)*w.sched.Repeat + p.Start)
			if w.done[key] || re == nil || now.Before(began) {
				continue
			}
			rep := FaultReport{Phase: p, Began: began}
			for _, d := range ds {
				if !d.Time.Before(began) && re.MatchString(d.Alertname) {
					rep.Delivery = &d
					break
				}
			}
			rep.Missed = rep.Delivery == nil && now.Sub(began) > FaultDeadline
			if rep.Delivery != nil || rep.Missed {
				w.done[key] = true
				out = append(out, rep)
			}
		}
	}
	return out
}

// FaultsReached waits until every scheduled fault that began by the time it
// is called has reached a person or missed its deadline, and returns them.
func (s *Stack) FaultsReached(ctx context.Context) ([]FaultReport, error) {
	w := &faultWatch{sched: s.faults, start: s.faultsStart, done: map[[2]int]bool{}}
	pending := 0
	now := time.Now()
	for _, p := range s.faults.Phases {
		if faultAlerts(p) != nil && !now.Before(s.faultsStart.Add(p.Start)) {
			pending++
		}
	}
	var out []FaultReport
	for len(out) < pending {
		ds, err := s.Deliveries()
		if err != nil {
			return out, err
		}
		out = append(out, w.check(time.Now(), ds)...)
		if len(out) >= pending {
			break
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-s.procs.failed:
			return out, s.procs.err()
		case <-time.After(2 * time.Second):
		}
	}
	return out, nil
}

func nameOf(p llmsim.Phase) string {
	if p.Name == "" {
		return "the fault at " + p.Start.String()
	}
	return p.Name
}
