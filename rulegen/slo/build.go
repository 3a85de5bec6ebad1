package slo

import (
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/rulefmt"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/rulegen/rules"
)

// Load reads every SLO of a configuration: the slos: section and the
// Sloth specs listed in rulegen.sloth_specs.
func Load(f *config.File) ([]Spec, error) {
	specs := []Spec{FromConfig(f, f.Rulegen.MinTraffic)}
	var errs []error
	for _, p := range f.SlothSpecPaths() {
		s, err := LoadSloth(p, f.Rulegen.SlothWindow.D())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		specs = append(specs, s)
	}
	return specs, errors.Join(errs...)
}

// Build returns the rule file of the SLOs of specs, validated with
// Prometheus' own parsers (empty when there are no SLOs).
func Build(specs ...Spec) (rulefmt.RuleGroups, error) {
	groups, err := Groups(specs...)
	if err != nil {
		return rulefmt.RuleGroups{}, err
	}
	out := rulefmt.RuleGroups{Groups: groups}
	if len(groups) == 0 {
		return out, nil
	}
	b, err := rules.Render(out)
	if err != nil {
		return rulefmt.RuleGroups{}, err
	}
	if err := rules.Validate(b); err != nil {
		return rulefmt.RuleGroups{}, fmt.Errorf("generated SLO rules are invalid: %w", err)
	}
	return out, nil
}
