package lint

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// ParseRules parses and validates a Prometheus rule file the way Prometheus does.
func ParseRules(b []byte, name string) (*rulefmt.RuleGroups, error) {
	groups, errs := rulefmt.Parse(b, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: %v", name, errs)
	}
	return groups, nil
}

var alertName = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)

// Severities allowed by the mixin guidelines.
var Severities = map[string]bool{"critical": true, "warning": true, "info": true}

// CheckAlert applies the monitoring-mixin alert guidelines to one alerting
// rule: CamelCase name with the prefix, a known severity, a static summary, a
// templated description, a runbook_url under runbookBase and a dashboard_url.
func CheckAlert(r rulefmt.Rule, prefix, runbookBase string) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("alert %s: "+format, append([]any{r.Alert}, args...)...))
	}
	if !strings.HasPrefix(r.Alert, prefix) || !alertName.MatchString(r.Alert) || len(r.Alert) == len(prefix) {
		fail("name must be CamelCase and start with %s", prefix)
	}
	if !Severities[r.Labels["severity"]] {
		fail("severity %q must be one of critical, warning, info", r.Labels["severity"])
	}
	for k, v := range r.Labels {
		if strings.Contains(v, "{{") {
			fail("label %s is templated; templated labels change alert identity", k)
		}
	}
	summary := r.Annotations["summary"]
	switch {
	case summary == "":
		fail("summary annotation missing")
	case strings.Contains(summary, "{{") || strings.Contains(summary, "$value") || strings.Contains(summary, "$labels"):
		fail("summary must be static, got %q", summary)
	case strings.HasSuffix(summary, "."):
		fail("summary is a title and must not end with a period: %q", summary)
	}
	if d := r.Annotations["description"]; d == "" {
		fail("description annotation missing")
	} else if !strings.Contains(d, "{{") {
		fail("description should be templated with the labels or value of the alert")
	}
	if u := r.Annotations["runbook_url"]; !strings.HasPrefix(u, runbookBase+"#") {
		fail("runbook_url %q must point at a section of %s", u, runbookBase)
	}
	if r.Annotations["dashboard_url"] == "" {
		fail("dashboard_url annotation missing")
	}
	return errs
}

// RunbookAnchor is the markdown anchor of a runbook section titled with the alert name.
func RunbookAnchor(alert string) string { return strings.ToLower(alert) }
