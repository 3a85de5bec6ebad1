package llmsim

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Phase is one window of injected faults, relative to the server's start.
type Phase struct {
	Name     string        `yaml:"name"`
	Start    time.Duration `yaml:"start"`
	Duration time.Duration `yaml:"duration"`
	// ErrorRatio of requests in the window are answered with one of StatusCodes.
	ErrorRatio  float64 `yaml:"error_ratio"`
	StatusCodes []int   `yaml:"status_codes"`
	// AddedLatency delays the response headers (and so the first token).
	AddedLatency time.Duration `yaml:"added_latency"`
	// AbortRatio of successful streams are cut off (connection closed, no
	// [DONE]) halfway through, as when a model server crashes mid-answer.
	AbortRatio float64 `yaml:"abort_ratio"`
	// TTFTMultiplier and TokenMultiplier scale the sampled pacing; 0 means 1.
	TTFTMultiplier  float64 `yaml:"ttft_multiplier"`
	TokenMultiplier float64 `yaml:"token_multiplier"`
	// CapacityRatio shrinks the engine to this share of its sequence slots
	// and KV cache (a lost GPU, a noisy neighbour): requests queue and time
	// to first token grows with the queue. 0 means no change.
	CapacityRatio float64 `yaml:"capacity_ratio"`
}

// Schedule is an ordered list of fault phases. When Repeat is set the whole
// schedule starts over every Repeat, so a long demo sees the incident again.
type Schedule struct {
	Phases []Phase       `yaml:"phases"`
	Repeat time.Duration `yaml:"repeat"`
}

// Active returns the phases in effect at offset since the server started.
// Overlapping phases all apply (errors from the first one that has any).
func (s *Schedule) Active(offset time.Duration, dst []Phase) []Phase {
	dst = dst[:0]
	if s == nil || offset < 0 {
		return dst
	}
	if s.Repeat > 0 {
		offset %= s.Repeat
	}
	for _, p := range s.Phases {
		if offset >= p.Start && offset < p.Start+p.Duration {
			dst = append(dst, p)
		}
	}
	return dst
}

// Validate reports the first problem of every bad phase, naming it by index.
func (s *Schedule) Validate() error {
	var errs []error
	for i, p := range s.Phases {
		where := fmt.Sprintf("phases[%d]", i)
		if p.Name != "" {
			where += " (" + p.Name + ")"
		}
		switch {
		case p.Start < 0:
			errs = append(errs, fmt.Errorf("%s: start must be >= 0, got %s", where, p.Start))
		case p.Duration <= 0:
			errs = append(errs, fmt.Errorf("%s: duration must be > 0, got %s", where, p.Duration))
		case p.ErrorRatio < 0 || p.ErrorRatio > 1:
			errs = append(errs, fmt.Errorf("%s: error_ratio must be within [0, 1], got %g", where, p.ErrorRatio))
		case p.AbortRatio < 0 || p.AbortRatio > 1:
			errs = append(errs, fmt.Errorf("%s: abort_ratio must be within [0, 1], got %g", where, p.AbortRatio))
		case p.ErrorRatio > 0 && len(p.StatusCodes) == 0:
			errs = append(errs, fmt.Errorf("%s: error_ratio needs status_codes (e.g. [500, 503, 429])", where))
		case p.CapacityRatio < 0 || p.CapacityRatio > 1:
			errs = append(errs, fmt.Errorf("%s: capacity_ratio must be within (0, 1], got %g", where, p.CapacityRatio))
		case p.AddedLatency < 0 || p.TTFTMultiplier < 0 || p.TokenMultiplier < 0:
			errs = append(errs, fmt.Errorf("%s: added_latency and multipliers must not be negative", where))
		}
		for _, c := range p.StatusCodes {
			if c < 400 || c > 599 {
				errs = append(errs, fmt.Errorf("%s: status code %d is not an HTTP error (400-599)", where, c))
			}
		}
	}
	if s.Repeat < 0 {
		errs = append(errs, fmt.Errorf("repeat must be >= 0, got %s", s.Repeat))
	}
	return errors.Join(errs...)
}

// LoadSchedule reads a YAML schedule file; unknown keys are errors.
func LoadSchedule(path string) (*Schedule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read fault schedule: %w", err)
	}
	var s Schedule
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("parse fault schedule %s: %w", path, err)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("fault schedule %s: %w", path, err)
	}
	return &s, nil
}

// ParsePhase reads the compact flag form
// "start=60s,duration=30s,errors=0.3,codes=500/503/429,aborts=0.1,latency=200ms,ttft=3,token=1.5,capacity=0.1,name=burst".
func ParsePhase(s string) (Phase, error) {
	var p Phase
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return p, fmt.Errorf("fault phase %q: %q is not key=value", s, kv)
		}
		var err error
		switch k {
		case "name":
			p.Name = v
		case "start":
			p.Start, err = time.ParseDuration(v)
		case "duration":
			p.Duration, err = time.ParseDuration(v)
		case "errors":
			p.ErrorRatio, err = strconv.ParseFloat(v, 64)
		case "codes":
			for _, c := range strings.Split(v, "/") {
				n, cerr := strconv.Atoi(c)
				if cerr != nil {
					err = cerr
					break
				}
				p.StatusCodes = append(p.StatusCodes, n)
			}
		case "aborts":
			p.AbortRatio, err = strconv.ParseFloat(v, 64)
		case "latency":
			p.AddedLatency, err = time.ParseDuration(v)
		case "ttft":
			p.TTFTMultiplier, err = strconv.ParseFloat(v, 64)
		case "token":
			p.TokenMultiplier, err = strconv.ParseFloat(v, 64)
		case "capacity":
			p.CapacityRatio, err = strconv.ParseFloat(v, 64)
		default:
			return p, fmt.Errorf("fault phase %q: unknown key %q (want name, start, duration, errors, codes, aborts, latency, ttft, token, capacity)", s, k)
		}
		if err != nil {
			return p, fmt.Errorf("fault phase %q: bad %s: %w", s, k, err)
		}
	}
	sc := Schedule{Phases: []Phase{p}}
	if err := sc.Validate(); err != nil {
		return p, fmt.Errorf("fault phase %q: %w", s, err)
	}
	return p, nil
}

// DemoSchedule is the incident the quickstart shows: an error burst, then a
// latency regression, starting after a quiet warm-up.
func DemoSchedule(warmup time.Duration) *Schedule {
	return &Schedule{Phases: []Phase{
		{Name: "error-burst", Start: warmup, Duration: 90 * time.Second, ErrorRatio: 0.3, StatusCodes: []int{500, 503, 429}},
		{Name: "latency-regression", Start: warmup + 150*time.Second, Duration: 120 * time.Second,
			AddedLatency: 400 * time.Millisecond, TTFTMultiplier: 3, TokenMultiplier: 2},
	}}
}
