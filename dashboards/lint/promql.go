// Package lint checks dashboards and Prometheus rules the way the ecosystem's
// linters would (dashboard-linter, the mixin alert guidelines), parses every
// PromQL expression with Prometheus' own parser, and extracts the metric
// names they use so tests can compare them with what the binaries expose.
package lint

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Grafana's interval macros become durations nobody writes by hand, so the
// parsed expression still tells which macro a range came from.
const (
	RateInterval = 7777 * time.Second
	Range        = 8888 * time.Second
	Interval     = 6666 * time.Second
)

// varPrefix marks a matcher value that came from a dashboard variable.
const varPrefix = "__grafana_var_"

var (
	macros = strings.NewReplacer(
		"$__rate_interval", "7777s", "${__rate_interval}", "7777s",
		"$__range", "8888s", "${__range}", "8888s",
		"$__interval", "6666s", "${__interval}", "6666s",
	)
	variableRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)
)

// ExpandGrafana rewrites Grafana macros and $variables into valid PromQL.
func ExpandGrafana(expr string) string {
	return variableRef.ReplaceAllString(macros.Replace(expr), varPrefix+"$1")
}

// IsVariable reports whether a matcher value is (only) a dashboard variable reference.
func IsVariable(value string) bool {
	return strings.HasPrefix(value, varPrefix) && !strings.ContainsAny(value[len(varPrefix):], "|.*")
}

// Parse parses a PromQL expression after expanding Grafana macros and variables.
func Parse(expr string) (parser.Expr, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(ExpandGrafana(expr))
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, err)
	}
	return e, nil
}

// Selectors returns every vector selector of an expression.
func Selectors(e parser.Expr) []*parser.VectorSelector {
	var out []*parser.VectorSelector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out
}

// MetricName returns the metric a selector reads, "" when it selects by other labels only.
func MetricName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// Metrics returns the sorted, distinct metric names an expression reads.
func Metrics(e parser.Expr) []string {
	seen := map[string]bool{}
	for _, vs := range Selectors(e) {
		if n := MetricName(vs); n != "" {
			seen[n] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Matcher returns the matcher on label name, nil if the selector has none.
func Matcher(vs *parser.VectorSelector, name string) *labels.Matcher {
	for _, m := range vs.LabelMatchers {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// RangeCall is a call of a range function (rate, increase, ...) with its window.
type RangeCall struct {
	Func   string
	Window time.Duration
}

// RangeCalls returns every call whose argument is a range vector.
func RangeCalls(e parser.Expr) []RangeCall {
	var out []RangeCall
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		c, ok := n.(*parser.Call)
		if !ok {
			return nil
		}
		for _, a := range c.Args {
			if ms, ok := a.(*parser.MatrixSelector); ok {
				out = append(out, RangeCall{Func: c.Func.Name, Window: ms.Range})
			}
			if sq, ok := a.(*parser.SubqueryExpr); ok {
				out = append(out, RangeCall{Func: c.Func.Name, Window: sq.Range})
			}
		}
		return nil
	})
	return out
}
