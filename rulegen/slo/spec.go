// Package slo turns service level objectives — the native slos: section of
// the shared configuration and Sloth prometheus/v1 spec files — into SLI
// error-ratio recording rules, error-budget series and the SRE workbook's
// multi-window multi-burn-rate alerts. Both inputs become one Spec and go
// through one generator, so a Sloth spec and the native SLO it describes
// produce the same alerts.
package slo

import (
	"time"
)

// Spec is a set of SLOs of one source (a Sloth file or the slos: section).
type Spec struct {
	// Source names the file the SLOs came from, for errors and logs.
	Source string
	SLOs   []SLO
}

// SLO is one objective, in the shape Sloth's rules have: an error ratio
// over any window, an objective and a period.
type SLO struct {
	// ID is unique per rule set (sloth_id): "<service>-<name>".
	ID, Service, Name, Description string
	// Objective is the target share of good events in percent (99.9).
	Objective float64
	// Window is the SLO period.
	Window time.Duration
	// Labels go on every rule and alert of the SLO.
	Labels map[string]string
	// ErrorQuery and TotalQuery are PromQL with {{.window}} for the range;
	// RawErrorRatio replaces both when set (Sloth's sli.raw).
	ErrorQuery, TotalQuery, RawErrorRatio string
	// MinTraffic guards every alert: the total event rate over the alert's
	// short window must be at least this (events/s; 0 disables, as in Sloth).
	MinTraffic float64
	Alerting   Alerting
}

// Alerting names the SLO's alerts and adds labels and annotations.
type Alerting struct {
	Name                string
	Labels, Annotations map[string]string
	Page, Ticket        AlertKind
}

// AlertKind is the page or ticket alert of an SLO.
type AlertKind struct {
	Disable             bool
	Labels, Annotations map[string]string
}

// Severities of the burn-rate alerts (the sloth_severity label).
const (
	SeverityPage   = "page"
	SeverityTicket = "ticket"
)

// BurnWindow is one pair of windows of the multi-window multi-burn-rate
// scheme: the alert fires when the error ratio over both windows exceeds
// Factor(period) times the error budget.
type BurnWindow struct {
	Severity    string
	Short, Long time.Duration
	// BudgetPercent is the share of the period's budget that burning at the
	// factor for the long window consumes.
	BudgetPercent float64
}

// Factor is the burn rate that spends BudgetPercent of the budget of a
// period in the long window: 14.4 for 2 % in 1 h of 30 days. Periods other
// than 30 days scale it, as the SRE workbook does (28 days: 13.44).
func (w BurnWindow) Factor(period time.Duration) float64 {
	return w.BudgetPercent / 100 * float64(period) / float64(w.Long)
}

// Windows are the SRE workbook's (chapter 5, "Alerting on SLOs") windows:
// page at 2 % of the budget in 1 h (5 m short window) or 5 % in 6 h (30 m),
// ticket at 10 % in 1 d (2 h) or 10 % in 3 d (6 h).
func Windows() []BurnWindow {
	return []BurnWindow{
		{SeverityPage, 5 * time.Minute, time.Hour, 2},
		{SeverityPage, 30 * time.Minute, 6 * time.Hour, 5},
		{SeverityTicket, 2 * time.Hour, 24 * time.Hour, 10},
		{SeverityTicket, 6 * time.Hour, 3 * 24 * time.Hour, 10},
	}
}

// RatioWindows are the windows with an error-ratio recording rule (the
// period's own is added per SLO).
func RatioWindows() []time.Duration {
	return []time.Duration{5 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 24 * time.Hour, 3 * 24 * time.Hour}
}
