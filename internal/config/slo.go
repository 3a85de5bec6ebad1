package config

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// SLO is one service level objective of the "slos:" section. rulegen turns
// it into SLI error-ratio recording rules, error-budget series and
// multi-window multi-burn-rate alerts (rulegen/slo).
type SLO struct {
	// Name identifies the SLO (sloth_slo label); unique, [a-zA-Z0-9_-].
	Name string `yaml:"name"`
	// Service groups SLOs (sloth_service label); default "autoglm".
	Service string `yaml:"service"`
	// SLI is availability, latency or ttft.
	SLI string `yaml:"sli"`
	// Route is the http_route the SLO is about.
	Route string `yaml:"route"`
	// Model narrows it to one gen_ai_request_model (GenAI metrics).
	Model string `yaml:"model"`
	// Threshold is the latency or TTFT limit; it must be a bucket boundary.
	Threshold Threshold `yaml:"threshold"`
	// Objective is the target share of good events in percent (99.5).
	Objective float64 `yaml:"objective"`
	// Window is the SLO period (default 30d).
	Window Duration `yaml:"window"`
	// Matchers narrow the series further (`job="llm-gateway"`).
	Matchers []string `yaml:"matchers"`
	// Labels are added to every rule and alert of the SLO.
	Labels map[string]string `yaml:"labels"`
	// Description is copied into the alerts' annotations.
	Description string `yaml:"description"`
	// Page and Ticket turn the two alert severities off (default on).
	Page   *bool `yaml:"page"`
	Ticket *bool `yaml:"ticket"`
}

// Threshold is a duration that may have a fraction ("2.5s", "350ms"), as
// histogram bucket bounds do.
type Threshold time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (t *Threshold) UnmarshalYAML(n *yaml.Node) error {
	if v, err := time.ParseDuration(n.Value); err == nil {
		*t = Threshold(v)
		return nil
	}
	v, err := model.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q: use a number with a unit such as 2.5s or 350ms", n.Line, n.Value)
	}
	*t = Threshold(v)
	return nil
}

func (t Threshold) String() string { return time.Duration(t).String() }

// SLI kinds of the slos: section.
const (
	SLOAvailability = "availability"
	SLOLatency      = "latency"
	SLOTTFT         = "ttft"
)

// DefaultSLOWindow is the SRE workbook's SLO period (and Sloth's default).
const DefaultSLOWindow = Duration(30 * 24 * time.Hour)

var sloName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]*$`)

// Buckets returns the histogram bounds a latency or TTFT SLO is measured with.
func (s SLO) Buckets() []float64 {
	if s.SLI == SLOTTFT {
		return sli.TTFTBuckets
	}
	return sli.DurationBuckets
}

// PageEnabled and TicketEnabled report whether the alert severities are on.
func (s SLO) PageEnabled() bool   { return s.Page == nil || *s.Page }
func (s SLO) TicketEnabled() bool { return s.Ticket == nil || *s.Ticket }

// Le returns the bucket bound equal to the threshold (ok false when none is).
func (s SLO) Le() (float64, bool) {
	t := time.Duration(s.Threshold).Seconds()
	for _, b := range s.Buckets() {
		if math.Abs(b-t) <= 1e-9*math.Max(1, b) {
			return b, true
		}
	}
	return 0, false
}

func formatBuckets(bs []float64) string {
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = (time.Duration(b * float64(time.Second))).String()
	}
	return strings.Join(parts, ", ")
}

func validateSLOs(f *File) []error {
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, Errorf(key, format, args...)) }
	seen := map[string]int{}
	routes := map[string]bool{sli.OtherValue: true}
	for _, e := range f.Metrics.Endpoints {
		routes[e] = true
	}
	for i := range f.SLOs {
		s := &f.SLOs[i]
		key := fmt.Sprintf("slos[%d]", i)
		if s.Service == "" {
			s.Service = "autoglm"
		}
		if s.Window == 0 {
			s.Window = DefaultSLOWindow
		}
		switch {
		case s.Name == "":
			add(key+".name", "must be set")
		case !sloName.MatchString(s.Name):
			add(key+".name", "must match %s, got %q", sloName, s.Name)
		default:
			id := s.Service + "/" + s.Name
			if j, dup := seen[id]; dup {
				add(key+".name", "%q of service %q is already defined by slos[%d]", s.Name, s.Service, j)
			}
			seen[id] = i
		}
		if !sloName.MatchString(s.Service) {
			add(key+".service", "must match %s, got %q", sloName, s.Service)
		}
		switch s.SLI {
		case SLOAvailability:
			if s.Threshold != 0 {
				add(key+".threshold", "availability has no threshold (it counts requests without a 5xx or transport error)")
			}
		case SLOLatency, SLOTTFT:
			if s.Threshold <= 0 {
				add(key+".threshold", "must be set for a %s SLO (one of the histogram's bucket bounds: %s)", s.SLI, formatBuckets(s.Buckets()))
			} else if _, ok := s.Le(); !ok {
				add(key+".threshold", "%s is not a bucket bound of the %s histogram, so the share under it cannot be measured exactly; use one of %s",
					s.Threshold, s.SLI, formatBuckets(s.Buckets()))
			}
		case "":
			add(key+".sli", "must be set: availability, latency or ttft")
		default:
			add(key+".sli", "must be availability, latency or ttft, got %q", s.SLI)
		}
		if s.Route == "" {
			add(key+".route", "must be set (one of metrics.endpoints or %q)", sli.OtherValue)
		} else if !routes[s.Route] {
			add(key+".route", "%q is not in metrics.endpoints, so no series carries it", s.Route)
		}
		switch {
		case s.Objective == 0:
			add(key+".objective", "must be set, in percent (99.5 means 99.5 %% of events are good)")
		case s.Objective > 0 && s.Objective < 1:
			add(key+".objective", "is a percentage: %g means %g %%; write %s for %g %%", s.Objective, s.Objective,
				strconv.FormatFloat(s.Objective*100, 'f', -1, 64), s.Objective*100)
		case !(s.Objective > 0 && s.Objective < 100):
			add(key+".objective", "must be within (0, 100) percent, got %g", s.Objective)
		}
		if s.Window < Duration(7*24*time.Hour) || s.Window > Duration(90*24*time.Hour) {
			add(key+".window", "must be within [7d, 90d] (the slowest burn-rate alert looks at 3 days), got %s", s.Window)
		}
		for j, m := range s.Matchers {
			if _, err := parser.NewParser(parser.Options{}).ParseMetricSelector("{" + m + "}"); err != nil {
				add(fmt.Sprintf("%s.matchers[%d]", key, j), "is not a label matcher such as job=\"llm-gateway\": %v", err)
			}
		}
		names := make([]string, 0, len(s.Labels))
		for k := range s.Labels {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if !regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`).MatchString(k) || strings.HasPrefix(k, "__") {
				add(key+".labels."+k, "is not a valid label name")
			}
			if strings.HasPrefix(k, "sloth_") {
				add(key+".labels."+k, "sloth_* labels are set by rulegen")
			}
		}
	}
	return errs
}
