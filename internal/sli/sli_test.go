package sli

import (
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

func TestRecordingRulesParseAndFollowNaming(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range RecordingRules() {
		t.Run(r.Record, func(t *testing.T) {
			if _, err := parser.NewParser(parser.Options{}).ParseExpr(r.Expr); err != nil {
				t.Fatalf("expression does not parse: %v\n%s", err, r.Expr)
			}
			if parts := strings.Split(r.Record, ":"); len(parts) != 3 || parts[0] == "" || parts[2] == "" {
				t.Fatalf("%s is not level:metric:operations", r.Record)
			}
			if seen[r.Record] {
				t.Fatalf("%s defined twice", r.Record)
			}
			seen[r.Record] = true
		})
	}
	for _, s := range SLIs() {
		if !seen[s.Record] || !seen[s.Traffic] {
			t.Errorf("SLI %s refers to an undefined recording rule", s.Name)
		}
	}
}

func TestEngineRulesParse(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	seen := map[string]bool{}
	for _, r := range EngineRecordingRules() {
		if _, err := p.ParseExpr(r.Expr); err != nil {
			t.Errorf("%s: %v\n%s", r.Record, err, r.Expr)
		}
		if seen[r.Record] {
			t.Errorf("%s recorded twice", r.Record)
		}
		seen[r.Record] = true
	}
}
