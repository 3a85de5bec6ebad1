// Package tmpl renders notification texts with Go templates, Alertmanager's
// template data and functions, and built-in Chinese and English defaults.
//
// Overrides come from the channel configuration and from the route (passed
// in the context by the engine). A custom template that fails to parse or
// execute never costs a notification: the built-in template is used instead
// and the failure is handed to a Reporter so it can be audited.
package tmpl

import (
	"bytes"
	"context"
	"fmt"
	htmltemplate "html/template"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/template"
	"time"
	"unicode/utf8"

	amtemplate "github.com/prometheus/alertmanager/template"

	"github.com/open-autoglm/autoglm-monitor/receiver/action"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
)

// Template names. They are also the keys of a channel's or route's
// "templates" configuration.
const (
	Title        = "title"
	Markdown     = "markdown"
	Text         = "text"
	EmailSubject = "email_subject"
	EmailText    = "email_text"
	EmailHTML    = "email_html"
	SMS          = "sms"
)

// Names lists every template name.
var Names = []string{Title, Markdown, Text, EmailSubject, EmailText, EmailHTML, SMS}

// Failure is a custom template that could not be used.
type Failure struct {
	// Template is the template name (title, markdown, ...).
	Template string
	// Source is "route" or "channel": where the failing template came from.
	Source string
	Err    error
}

func (f Failure) Error() string {
	return fmt.Sprintf("%s template %q failed, built-in used: %v", f.Source, f.Template, f.Err)
}

// Reporter receives template failures.
type Reporter func(Failure)

type ctxKey int

const (
	routeTemplatesKey ctxKey = iota
	reporterKey
)

// WithRouteTemplates attaches a route's template overrides (name → template
// text) to ctx; they win over the channel's.
func WithRouteTemplates(ctx context.Context, overrides map[string]string) context.Context {
	return context.WithValue(ctx, routeTemplatesKey, overrides)
}

// WithReporter attaches a Reporter to ctx; it wins over the one given to New.
func WithReporter(ctx context.Context, r Reporter) context.Context {
	return context.WithValue(ctx, reporterKey, r)
}

// Data is the dot of every template: Alertmanager's data for the whole
// message plus what the receiver knows about it. For a digest, Groups holds
// one entry per coalesced notification and the top level aggregates them.
type Data struct {
	*amtemplate.Data
	Priority        notify.Priority
	Route           string
	TruncatedAlerts int
	Groups          []*Group
	Digest          bool
	Language        string
	// Note is the announcement of a single-group message ("ann claimed ...").
	Note string
	// Actions are the claim and silence links of a single-group message
	// (each group has its own in a digest); ClaimURL is the claim link.
	Actions  []action.Link
	ClaimURL string
}

// Group is one notification (Alertmanager group) inside a message.
type Group struct {
	*amtemplate.Data
	ID              string
	GroupKey        string
	Priority        notify.Priority
	Route           string
	TruncatedAlerts int
	Note            string
	Actions         []action.Link
}

// NewData builds template data for one notification or a digest of several.
func NewData(lang, externalURL string, ns ...*notify.Notification) *Data {
	d := &Data{Data: &amtemplate.Data{}, Language: lang, Digest: len(ns) > 1}
	d.GroupLabels, d.CommonLabels, d.CommonAnnotations, d.RouteLabels = amtemplate.KV{}, amtemplate.KV{}, amtemplate.KV{}, amtemplate.KV{}
	status := "resolved"
	for i, n := range ns {
		ad := n.Data
		if ad == nil {
			ad = &amtemplate.Data{}
		}
		g := &Group{Data: ad, ID: n.ID, GroupKey: n.GroupKey, Priority: n.Priority, Route: n.Route, TruncatedAlerts: n.TruncatedAlerts, Note: n.Note}
		d.Groups = append(d.Groups, g)
		d.Alerts = append(d.Alerts, ad.Alerts...)
		d.TruncatedAlerts += n.TruncatedAlerts
		if ad.Status == "firing" {
			status = "firing"
		}
		if d.Priority == "" || priorityRank(n.Priority) < priorityRank(d.Priority) {
			d.Priority = n.Priority
		}
		if i == 0 {
			d.Receiver, d.Route, d.Note = ad.Receiver, n.Route, n.Note
			d.GroupLabels, d.CommonLabels, d.CommonAnnotations = ad.GroupLabels, ad.CommonLabels, ad.CommonAnnotations
			d.ExternalURL = ad.ExternalURL
		}
	}
	if len(ns) > 1 {
		d.Note = ""
		// Labels common to one group are not common to the digest.
		d.GroupLabels, d.CommonLabels, d.CommonAnnotations = amtemplate.KV{}, amtemplate.KV{}, amtemplate.KV{}
	}
	if d.ExternalURL == "" {
		d.ExternalURL = externalURL
	}
	d.Status = status
	return d
}

func priorityRank(p notify.Priority) int {
	switch p {
	case notify.P1:
		return 1
	case notify.P2:
		return 2
	case notify.P3:
		return 3
	}
	return 4
}

// Options configure a channel's templates.
type Options struct {
	// Language of the built-in templates: "zh" (default) or "en".
	Language string
	// Overrides are the channel's templates (name → text).
	Overrides map[string]string
	// Reporter receives failures when the context carries none.
	Reporter Reporter
	// Location for times in messages; default Asia/Shanghai for zh, UTC for en.
	Location *time.Location
}

// Templates renders the texts of one channel.
type Templates struct {
	lang     string
	loc      *time.Location
	funcs    template.FuncMap
	builtin  map[string]string
	channel  map[string]string
	reporter Reporter
	// parsed caches templates by text; parsing dominates rendering otherwise.
	parsed sync.Map // cacheKey → *template.Template or *htmltemplate.Template
}

type cacheKey struct {
	html bool
	text string
}

// New prepares a channel's templates. Overrides are parsed when used, so a
// bad one is reported (and replaced) on every render rather than failing here.
func New(o Options) *Templates {
	lang := o.Language
	if lang != "en" {
		lang = "zh"
	}
	loc := o.Location
	if loc == nil {
		loc = time.UTC
		if lang == "zh" {
			loc = time.FixedZone("CST", 8*3600)
		}
	}
	t := &Templates{lang: lang, loc: loc, builtin: builtins[lang], channel: o.Overrides, reporter: o.Reporter}
	t.funcs = t.funcMap()
	return t
}

// Language returns the language of the built-in templates.
func (t *Templates) Language() string { return t.lang }

// Render executes template name for d, preferring the route's override, then
// the channel's, then the built-in one. It always returns a usable text.
func (t *Templates) Render(ctx context.Context, name string, d *Data) string {
	return t.render(ctx, name, d, false)
}

// RenderHTML is Render with html/template escaping (for email_html).
func (t *Templates) RenderHTML(ctx context.Context, name string, d *Data) string {
	return t.render(ctx, name, d, true)
}

// RenderText executes an arbitrary template text (e.g. a gateway body or an
// SMS variable); on failure it reports and returns fallback rendered instead.
// d is usually a *Data, or a struct embedding one (e.g. with the phone number).
func (t *Templates) RenderText(ctx context.Context, name, text string, d any, fallback string) string {
	if dd, ok := d.(*Data); ok {
		attach(ctx, dd)
	}
	out, err := t.exec(name, text, d, false)
	if err == nil {
		return out
	}
	t.report(ctx, Failure{Template: name, Source: "channel", Err: err})
	if fallback == "" {
		return ""
	}
	out, err = t.exec(name, fallback, d, false)
	if err != nil {
		dd, _ := d.(*Data)
		return lastResort(dd)
	}
	return out
}

// attach gives d the action links the delivery offers (from ctx), so
// every template can show them.
func attach(ctx context.Context, d *Data) {
	if d == nil {
		return
	}
	d.Actions, d.ClaimURL = nil, ""
	for _, g := range d.Groups {
		g.Actions = action.LinksOf(ctx, g.GroupKey)
	}
	if len(d.Groups) == 1 {
		d.Actions = d.Groups[0].Actions
		for _, l := range d.Actions {
			if l.Kind == action.Claim {
				d.ClaimURL = l.URL
			}
		}
	}
}

func (t *Templates) render(ctx context.Context, name string, d *Data, html bool) string {
	attach(ctx, d)
	if route, _ := ctx.Value(routeTemplatesKey).(map[string]string); route != nil {
		if text, ok := route[name]; ok {
			out, err := t.exec(name, text, d, html)
			if err == nil {
				return out
			}
			t.report(ctx, Failure{Template: name, Source: "route", Err: err})
		}
	}
	if text, ok := t.channel[name]; ok {
		out, err := t.exec(name, text, d, html)
		if err == nil {
			return out
		}
		t.report(ctx, Failure{Template: name, Source: "channel", Err: err})
	}
	out, err := t.exec(name, t.builtin[name], d, html)
	if err != nil {
		// Built-ins are tested; this only guards against a data shape we did not foresee.
		t.report(ctx, Failure{Template: name, Source: "builtin", Err: err})
		return lastResort(d)
	}
	return out
}

func (t *Templates) report(ctx context.Context, f Failure) {
	if r, _ := ctx.Value(reporterKey).(Reporter); r != nil {
		r(f)
		return
	}
	if t.reporter != nil {
		t.reporter(f)
	}
}

func (t *Templates) exec(name, text string, d any, html bool) (string, error) {
	var buf bytes.Buffer
	key := cacheKey{html: html, text: text}
	if html {
		var tp *htmltemplate.Template
		if v, ok := t.parsed.Load(key); ok {
			tp = v.(*htmltemplate.Template)
		} else {
			var err error
			tp, err = htmltemplate.New(name).Option("missingkey=zero").Funcs(htmltemplate.FuncMap(t.funcs)).Parse(text)
			if err != nil {
				return "", fmt.Errorf("parse: %w", err)
			}
			t.parsed.Store(key, tp)
		}
		if err := tp.Execute(&buf, d); err != nil {
			return "", fmt.Errorf("execute: %w", err)
		}
		return buf.String(), nil
	}
	var tp *template.Template
	if v, ok := t.parsed.Load(key); ok {
		tp = v.(*template.Template)
	} else {
		var err error
		tp, err = template.New(name).Option("missingkey=zero").Funcs(t.funcs).Parse(text)
		if err != nil {
			return "", fmt.Errorf("parse: %w", err)
		}
		t.parsed.Store(key, tp)
	}
	if err := tp.Execute(&buf, d); err != nil {
		return "", fmt.Errorf("execute: %w", err)
	}
	return strings.TrimSpace(buf.String()), nil
}

// lastResort names the alerts without any template so a message still goes out.
func lastResort(d *Data) string {
	if d == nil || d.Data == nil {
		return "alert"
	}
	names := make([]string, 0, len(d.Alerts))
	for _, a := range d.Alerts {
		names = append(names, a.Labels["alertname"])
	}
	return fmt.Sprintf("[%s] %s %s", strings.ToUpper(d.Status), d.Priority, strings.Join(names, ", "))
}

func (t *Templates) funcMap() template.FuncMap {
	m := make(template.FuncMap, len(amtemplate.DefaultFuncs)+8)
	for k, v := range amtemplate.DefaultFuncs {
		m[k] = v
	}
	words := dictionary[t.lang]
	m["truncate"] = func(n int, s string) string { return Truncate(s, n) }
	m["severityIcon"] = severityIcon
	m["statusText"] = func(status string) string {
		if w, ok := words[status]; ok {
			return w
		}
		return status
	}
	m["l10n"] = func(key string) string {
		if w, ok := words[key]; ok {
			return w
		}
		return key
	}
	m["labelsText"] = func(kv amtemplate.KV) string {
		pairs := make([]string, 0, len(kv))
		for _, k := range sortedKeys(kv) {
			pairs = append(pairs, k+"="+kv[k])
		}
		return strings.Join(pairs, ", ")
	}
	m["joinLines"] = func(ss []string) string { return strings.Join(ss, "\n") }
	// uniqueLabels is what sets one alert of a group apart: its labels
	// minus those every alert of the group shares.
	m["uniqueLabels"] = func(labels, common amtemplate.KV) amtemplate.KV {
		out := make(amtemplate.KV, len(labels))
		for k, v := range labels {
			if cv, ok := common[k]; !ok || cv != v {
				out[k] = v
			}
		}
		return out
	}
	// labelValues lists the distinct values of one label over alerts, sorted.
	m["labelValues"] = func(name string, alerts amtemplate.Alerts) []string {
		var out []string
		for _, a := range alerts {
			if v := a.Labels[name]; v != "" && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
		sort.Strings(out)
		return out
	}
	m["dashboardURL"] = func(a amtemplate.Alert) string {
		for _, k := range []string{"dashboard_url", "dashboard", "grafana_url"} {
			if v := a.Annotations[k]; v != "" {
				return v
			}
		}
		return ""
	}
	m["localTime"] = func(ts time.Time) string {
		if ts.IsZero() {
			return "-"
		}
		return ts.In(t.loc).Format("2006-01-02 15:04:05 MST")
	}
	return m
}

func sortedKeys(kv amtemplate.KV) []string {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func severityIcon(sev string) string {
	switch sev {
	case "critical":
		return "🔴"
	case "warning":
		return "🟠"
	case "info":
		return "🔵"
	}
	return "⚪"
}

// Truncate shortens s to at most n runes, ending with "…" when cut.
func Truncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n == 1 {
		return "…"
	}
	i, count := 0, 0
	for i = range s {
		if count == n-1 {
			break
		}
		count++
	}
	return s[:i] + "…"
}

// TruncateBytes shortens s to at most n bytes without splitting a rune.
func TruncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
