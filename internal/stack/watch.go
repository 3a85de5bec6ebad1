package stack

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// Delivery is one "notification delivered" line of the receiver's log.
type Delivery struct {
	Channel, Alertname, Route string
	// Time is when the receiver logged the delivery (zero if unparsable).
	Time time.Time
	Line string
}

// Deliveries reads the receiver's log and returns the deliveries it reports so far.
func (s *Stack) Deliveries() ([]Delivery, error) {
	f, err := os.Open(s.path("autoglm-receiver.log"))
	if err != nil {
		return nil, fmt.Errorf("open receiver log: %w", err)
	}
	defer f.Close()
	return parseDeliveries(f)
}

func parseDeliveries(r io.Reader) ([]Delivery, error) {
	var out []Delivery
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "notification delivered") {
			continue
		}
		kv := logfmt(line)
		at, _ := time.Parse(time.RFC3339Nano, kv["time"])
		out = append(out, Delivery{Channel: kv["channel"], Alertname: kv["alertname"], Route: kv["route"], Time: at, Line: line})
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read receiver log: %w", err)
	}
	return out, nil
}

// logfmt splits key=value pairs, honouring double quotes.
func logfmt(line string) map[string]string {
	kv := map[string]string{}
	for len(line) > 0 {
		line = strings.TrimLeft(line, " ")
		eq := strings.IndexByte(line, '=')
		if eq < 0 {
			break
		}
		key := line[:eq]
		if sp := strings.LastIndexByte(key, ' '); sp >= 0 {
			key = key[sp+1:]
		}
		rest := line[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := 1
			for end < len(rest) && (rest[end] != '"' || rest[end-1] == '\\') {
				end++
			}
			val = strings.ReplaceAll(rest[1:min(end, len(rest))], `\"`, `"`)
			line = rest[min(end+1, len(rest)):]
		} else {
			sp := strings.IndexByte(rest, ' ')
			if sp < 0 {
				sp = len(rest)
			}
			val, line = rest[:sp], rest[sp:]
		}
		kv[key] = val
	}
	return kv
}

// Watch prints live traffic figures, firing alerts, deliveries and whether
// each scheduled fault reached a person, until ctx ends or a supervised
// process ends unexpectedly, whose failure it returns. It calls onDelivered
// once, at the first delivered notification.
func (s *Stack) Watch(ctx context.Context, every time.Duration, onDelivered func(Delivery)) error {
	seenAlerts := map[string]bool{}
	seenDeliveries := 0
	faults := &faultWatch{sched: s.faults, start: s.faultsStart, done: map[[2]int]bool{}}
	// Deliveries are looked for often so the first one is reported at once;
	// traffic and alerts every `every`.
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	var lastReport time.Time
	for {
		if time.Since(lastReport) >= every {
			lastReport = time.Now()
			s.report(ctx, seenAlerts)
		}
		if ds, err := s.Deliveries(); err == nil {
			for _, d := range ds[min(seenDeliveries, len(ds)):] {
				s.opts.Say("notification delivered  channel=%s alertname=%s route=%s", d.Channel, d.Alertname, d.Route)
				if seenDeliveries == 0 && onDelivered != nil {
					onDelivered(d)
				}
				seenDeliveries++
			}
			for _, r := range faults.check(time.Now(), ds) {
				s.opts.Say("%s", r)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.procs.failed:
			return s.procs.err()
		case <-tick.C:
		}
	}
}

func (s *Stack) report(ctx context.Context, seen map[string]bool) {
	// One-minute windows: the recording rules' 5m windows lag a young stack.
	qps, _ := s.Scalar(ctx, "sum(rate("+sli.HTTPDuration+"_count[1m]))")
	p95, _ := s.Scalar(ctx, "histogram_quantile(0.95, sum by (le) (rate("+sli.HTTPDuration+"_bucket[1m])))")
	errs, _ := s.Scalar(ctx, "sum(rate("+sli.HTTPDuration+"_count{error_type!=\"\"}[1m])) / sum(rate("+sli.HTTPDuration+"_count[1m]))")
	s.opts.Say("traffic: %.1f req/s, p95 latency %.2fs, errors %.1f%% (last minute)", qps, p95, 100*errs)
	vec, err := s.Query(ctx, `ALERTS{alertstate="firing"}`)
	if err != nil {
		return
	}
	var names []string
	for _, smp := range vec {
		key := smp.Metric.String()
		if seen[key] {
			continue
		}
		seen[key] = true
		names = append(names, fmt.Sprintf("%s{severity=%q,http_route=%q}", smp.Metric["alertname"], smp.Metric["severity"], smp.Metric["http_route"]))
	}
	sort.Strings(names)
	for _, n := range names {
		s.opts.Say("alert firing: %s", n)
	}
}
