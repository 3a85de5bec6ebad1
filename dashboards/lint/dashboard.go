package lint

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
)

// Dashboard is the part of a Grafana dashboard model the rules look at. It is
// decoded from the JSON independently of the generator, so the checks judge
// what users import.
type Dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Editable   *bool   `json:"editable"`
	Panels     []Panel `json:"panels"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Panel is a dashboard panel or row.
type Panel struct {
	ID          *int          `json:"id"`
	Type        string        `json:"type"`
	Title       string        `json:"title"`
	Description string        `json:"description"`
	Datasource  *DatasourceRf `json:"datasource"`
	Targets     []Target      `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Panels []Panel `json:"panels"`
}

// DatasourceRf references a datasource.
type DatasourceRf struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Target is one query of a panel.
type Target struct {
	Expr       string        `json:"expr"`
	RefID      string        `json:"refId"`
	Datasource *DatasourceRf `json:"datasource"`
}

// Variable is a templating variable.
type Variable struct {
	Type       string        `json:"type"`
	Name       string        `json:"name"`
	Query      any           `json:"query"`
	Datasource *DatasourceRf `json:"datasource"`
}

// ParseDashboard decodes dashboard JSON.
func ParseDashboard(b []byte) (*Dashboard, error) {
	var d Dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode dashboard: %w", err)
	}
	return &d, nil
}

// Leaves returns every non-row panel, rows' nested panels included.
func (d *Dashboard) Leaves() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			out = append(out, p)
		}
	}
	walk(d.Panels)
	return out
}

// Exprs returns every PromQL expression of the dashboard keyed "panel title/refId",
// variable queries included.
func (d *Dashboard) Exprs() map[string]string {
	out := map[string]string{}
	for _, p := range d.Leaves() {
		for _, t := range p.Targets {
			out[p.Title+"/"+t.RefID] = t.Expr
		}
	}
	for _, v := range d.Templating.List {
		if s, ok := v.Query.(string); ok && v.Type == "query" {
			if inner, ok := labelValuesSelector(s); ok {
				out["variable "+v.Name] = inner
			}
		}
	}
	return out
}

var labelValues = regexp.MustCompile(`^label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\)$`)

// labelValuesSelector extracts the series selector of a label_values() variable query.
func labelValuesSelector(q string) (string, bool) {
	m := labelValues.FindStringSubmatch(strings.TrimSpace(q))
	if m == nil {
		return "", false
	}
	return m[1], true
}

var uidPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,40}$`)

// CheckDashboard applies the dashboard-linter rules we rely on; it returns
// one error per violation, naming the panel.
func CheckDashboard(d *Dashboard) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if !uidPattern.MatchString(d.UID) {
		fail("uid %q must be 1-40 characters of [a-zA-Z0-9_-]", d.UID)
	}
	if d.Title == "" {
		fail("dashboard has no title")
	}
	if d.Editable == nil || *d.Editable {
		fail("dashboard must not be editable")
	}

	vars := map[string]Variable{}
	datasources := 0
	for _, v := range d.Templating.List {
		vars[v.Name] = v
		if v.Type == "datasource" {
			datasources++
			if v.Name != "datasource" || v.Query != "prometheus" {
				fail("datasource variable must be named datasource and select prometheus, got %q/%v", v.Name, v.Query)
			}
		}
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			fail("variable %s must use the ${datasource} variable", v.Name)
		}
	}
	if datasources != 1 {
		fail("want exactly one datasource variable, got %d", datasources)
	}
	for _, name := range []string{"job", "instance"} {
		// SLO dashboards select SLO services (slo_service), not scrape targets.
		if _, ok := vars[name]; !ok && vars["slo_service"].Name == "" {
			fail("missing %s variable", name)
		}
	}

	titles := map[string]bool{}
	ids := map[int]bool{}
	var all []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, p := range all {
		if p.ID == nil {
			fail("panel %q has no id", p.Title)
		} else if ids[*p.ID] {
			fail("panel id %d used twice", *p.ID)
		} else {
			ids[*p.ID] = true
		}
	}
	for _, p := range d.Leaves() {
		if p.Title == "" {
			fail("a %s panel has no title", p.Type)
		}
		if titles[p.Title] {
			fail("panel title %q used twice", p.Title)
		}
		titles[p.Title] = true
		if p.Description == "" {
			fail("panel %q has no description", p.Title)
		}
		if p.FieldConfig.Defaults.Unit == "" {
			fail("panel %q has no unit", p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			fail("panel %q must use the ${datasource} variable", p.Title)
		}
		if len(p.Targets) == 0 {
			fail("panel %q has no queries", p.Title)
		}
		for _, t := range p.Targets {
			if t.Datasource == nil || t.Datasource.UID != "${datasource}" {
				fail("panel %q query %s must use the ${datasource} variable", p.Title, t.RefID)
			}
			for _, err := range CheckDashboardExpr(t.Expr, vars) {
				fail("panel %q query %s: %v", p.Title, t.RefID, err)
			}
		}
	}
	return errs
}

// CheckDashboardExpr checks one dashboard query: it parses, rate windows use
// $__rate_interval, every selector is filtered by a job variable and, unless
// it reads a recording rule that aggregated instances away, by an instance variable.
func CheckDashboardExpr(expr string, vars map[string]Variable) []error {
	var errs []error
	e, err := Parse(expr)
	if err != nil {
		return []error{err}
	}
	for _, c := range RangeCalls(e) {
		switch {
		case c.Window == RateInterval:
		case c.Window == Range && c.Func != "rate" && c.Func != "irate":
			// Totals over the whole time range (top-5 tables) are what $__range is for.
		default:
			errs = append(errs, fmt.Errorf("%s() must use [$__rate_interval], got %s", c.Func, c.Window))
		}
	}
	for _, ref := range variableRef.FindAllStringSubmatch(expr, -1) {
		if strings.HasPrefix(ref[1], "__") {
			continue
		}
		if _, ok := vars[ref[1]]; !ok {
			errs = append(errs, fmt.Errorf("uses undefined variable $%s", ref[1]))
		}
	}
	for _, vs := range Selectors(e) {
		name := MetricName(vs)
		// SLO series belong to a service, not to a scrape job: a service
		// variable narrows them instead.
		if m := Matcher(vs, "job"); (m == nil || !IsVariable(m.Value)) && !filteredByService(vs) {
			errs = append(errs, fmt.Errorf("selector %s is not filtered by a job variable", vs))
		}
		if !keepsInstance(name) {
			continue
		}
		if m := Matcher(vs, "instance"); m == nil || !IsVariable(m.Value) {
			errs = append(errs, fmt.Errorf("selector %s is not filtered by an instance variable", vs))
		}
	}
	return errs
}

func filteredByService(vs *parser.VectorSelector) bool {
	m := Matcher(vs, "sloth_service")
	return m != nil && IsVariable(m.Value)
}

// keepsInstance reports whether series of metric carry the scraped instance:
// raw metrics do; recording rules do when their level names instance; ALERTS
// carries the labels of the alert, not of a target.
func keepsInstance(metric string) bool {
	if metric == "ALERTS" || metric == "ALERTS_FOR_STATE" {
		return false
	}
	level, _, found := strings.Cut(metric, ":")
	if !found {
		return true
	}
	for _, l := range strings.Split(level, "_") {
		if l == "instance" {
			return true
		}
	}
	return false
}
