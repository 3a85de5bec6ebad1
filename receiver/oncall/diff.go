package oncall

import (
	"fmt"
	"reflect"
)

// Change is one difference between two on-call configurations, for the audit log.
type Change struct {
	// Schedule, chain or person the change is about ("schedule sre", "chain p1", "person ann").
	Subject string
	Detail  string
}

// Diff lists what changed from old to next: schedules, layers, overrides,
// chains and people added, removed or edited.
func Diff(old, next *Config) []Change {
	if old == nil {
		old = &Config{}
	}
	if next == nil {
		next = &Config{}
	}
	var out []Change
	for _, name := range unionKeys(old.Schedules, next.Schedules) {
		o, inOld := old.Schedules[name]
		n, inNext := next.Schedules[name]
		subject := "schedule " + name
		switch {
		case !inOld:
			out = append(out, Change{subject, fmt.Sprintf("added with %d layers", len(n.Layers))})
			continue
		case !inNext:
			out = append(out, Change{subject, "removed"})
			continue
		}
		if o.TimeZone != n.TimeZone {
			out = append(out, Change{subject, fmt.Sprintf("time zone %q → %q", o.TimeZone, n.TimeZone)})
		}
		if !reflect.DeepEqual(o.Layers, n.Layers) {
			for i := 0; i < max(len(o.Layers), len(n.Layers)); i++ {
				switch {
				case i >= len(o.Layers):
					out = append(out, Change{subject, fmt.Sprintf("layer %d added: %v from %s every %s", i+1, n.Layers[i].Members, n.Layers[i].Start, n.Layers[i].Rotation)})
				case i >= len(n.Layers):
					out = append(out, Change{subject, fmt.Sprintf("layer %d removed", i+1)})
				case !reflect.DeepEqual(o.Layers[i], n.Layers[i]):
					out = append(out, Change{subject, fmt.Sprintf("layer %d changed: %v from %s every %s", i+1, n.Layers[i].Members, n.Layers[i].Start, n.Layers[i].Rotation)})
				}
			}
		}
		had := map[OverrideConfig]bool{}
		for _, ov := range o.Overrides {
			had[ov] = true
		}
		has := map[OverrideConfig]bool{}
		for _, ov := range n.Overrides {
			has[ov] = true
			if !had[ov] {
				out = append(out, Change{subject, fmt.Sprintf("override added: %s from %s to %s", ov.Person, ov.From, ov.To)})
			}
		}
		for _, ov := range o.Overrides {
			if !has[ov] {
				out = append(out, Change{subject, fmt.Sprintf("override removed: %s from %s to %s", ov.Person, ov.From, ov.To)})
			}
		}
	}
	for _, name := range unionKeys(old.Chains, next.Chains) {
		o, inOld := old.Chains[name]
		n, inNext := next.Chains[name]
		switch {
		case !inOld:
			out = append(out, Change{"chain " + name, fmt.Sprintf("added with %d steps", len(n))})
		case !inNext:
			out = append(out, Change{"chain " + name, "removed"})
		case !reflect.DeepEqual(o, n):
			out = append(out, Change{"chain " + name, fmt.Sprintf("changed: %d steps", len(n))})
		}
	}
	for _, id := range unionKeys(old.People, next.People) {
		o, inOld := old.People[id]
		n, inNext := next.People[id]
		switch {
		case !inOld:
			out = append(out, Change{"person " + id, "added"})
		case !inNext:
			out = append(out, Change{"person " + id, "removed"})
		case o != n:
			// Contact details are personal: say that they changed, not what they are.
			out = append(out, Change{"person " + id, "contact details changed"})
		}
	}
	return out
}

func unionKeys[V any](a, b map[string]V) []string {
	m := make(map[string]bool, len(a)+len(b))
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return sortedKeys(m)
}
