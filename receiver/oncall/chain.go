package oncall

import (
	"fmt"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
)

// StepConfig is one step of an escalation chain as written in the file:
// after this long without a claim, notify the people of these schedules
// (and these people) through these channels.
type StepConfig struct {
	After     config.Duration `yaml:"after"`
	Channels  []string        `yaml:"channels"`
	Schedules []string        `yaml:"schedules"`
	People    []string        `yaml:"people"`
}

// Step is a compiled chain step.
type Step struct {
	After     time.Duration
	Channels  []string
	Schedules []string
	People    []string
}

// Chain is a compiled escalation chain: steps in order of After.
type Chain struct {
	Name  string
	Steps []Step
}

// Recipient is a person paged by a step, with where the name came from.
type Recipient struct {
	ID     string
	Person Person
	// Schedule is the schedule that put the person on call ("" when named directly).
	Schedule string
}

func (c *Config) validateChain(steps []StepConfig, key string) []error {
	var errs []error
	add := func(k, format string, args ...any) { errs = append(errs, config.Errorf(key+k, format, args...)) }
	if len(steps) == 0 {
		add("", "needs at least one step")
	}
	var prev config.Duration
	for i, s := range steps {
		sk := fmt.Sprintf("[%d]", i)
		if s.After < 0 {
			add(sk+".after", "must be >= 0, got %s", s.After)
		}
		if i > 0 && s.After < prev {
			add(sk+".after", "steps must be in order: %s comes after %s", s.After, prev)
		}
		prev = s.After
		if len(s.Channels) == 0 {
			add(sk+".channels", "must list at least one channel")
		}
		if len(s.Schedules) == 0 && len(s.People) == 0 {
			add(sk, "names nobody: set schedules or people")
		}
		for j, n := range s.Schedules {
			if _, ok := c.Schedules[n]; !ok {
				add(fmt.Sprintf("%s.schedules[%d]", sk, j), "schedule %q is not defined under receiver.oncall.schedules", n)
			}
		}
		for j, n := range s.People {
			if _, ok := c.People[n]; !ok {
				add(fmt.Sprintf("%s.people[%d]", sk, j), "%q is not defined under receiver.oncall.people", n)
			}
		}
	}
	return errs
}

// ValidateChannels checks that every channel a chain step names exists.
func (c *Config) ValidateChannels(key string, exists func(string) bool) []error {
	var errs []error
	for _, name := range sortedKeys(c.Chains) {
		for i, s := range c.Chains[name] {
			for j, ch := range s.Channels {
				if !exists(ch) {
					errs = append(errs, config.Errorf(fmt.Sprintf("%s.chains.%s[%d].channels[%d]", key, name, i, j), "channel %q is not defined under receiver.channels", ch))
				}
			}
		}
	}
	return errs
}

// Chain returns the compiled chain name (false when not defined).
func (c *Config) Chain(name string) (Chain, bool) {
	steps, ok := c.Chains[name]
	if !ok {
		return Chain{}, false
	}
	ch := Chain{Name: name, Steps: make([]Step, len(steps))}
	for i, s := range steps {
		ch.Steps[i] = Step{After: s.After.D(), Channels: s.Channels, Schedules: s.Schedules, People: s.People}
	}
	return ch, true
}

// Due returns the index of the first step not yet taken (done steps were
// taken) that is due at now for a notification received at start, or -1.
func (ch Chain) Due(start, now time.Time, done int) int {
	if done < len(ch.Steps) && !now.Before(start.Add(ch.Steps[done].After)) {
		return done
	}
	return -1
}

// NextAt is when step done becomes due (zero when the chain is finished).
func (ch Chain) NextAt(start time.Time, done int) time.Time {
	if done >= len(ch.Steps) {
		return time.Time{}
	}
	return start.Add(ch.Steps[done].After)
}

// Recipients resolves who step i pages at instant at: the people on call in
// its schedules, then the people it names, each once.
func (ch Chain) Recipients(i int, at time.Time, schedules map[string]*Schedule, people map[string]Person) []Recipient {
	s := ch.Steps[i]
	var out []Recipient
	seen := map[string]bool{}
	for _, name := range s.Schedules {
		sc := schedules[name]
		if sc == nil {
			continue
		}
		id, _ := sc.who(at)
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, Recipient{ID: id, Person: people[id], Schedule: name})
	}
	for _, id := range s.People {
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, Recipient{ID: id, Person: people[id]})
	}
	return out
}
