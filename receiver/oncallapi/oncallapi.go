// Package oncallapi serves what people reach from a notification and what
// on-call tooling asks: the action links (claim a group, silence it) and who
// is on call now and next.
//
// An action link is a signed token (receiver/action). Opening it (GET) shows
// what it will do and asks for a name; only a POST acts, so chat apps and
// mail scanners that fetch links to preview them never claim or silence.
package oncallapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/open-autoglm/autoglm-monitor/receiver/action"
	"github.com/open-autoglm/autoglm-monitor/receiver/escalation"
	"github.com/open-autoglm/autoglm-monitor/receiver/oncall"
	"github.com/open-autoglm/autoglm-monitor/receiver/silence"
)

// Incidents is what the handlers need from the escalator.
type Incidents interface {
	Claim(g action.GroupID, by, channel string, announce []string) (*escalation.Incident, bool, error)
	Silenced(g action.GroupID, s escalation.Silenced) error
	Incident(g action.GroupID) (escalation.Incident, bool)
}

// Silencer creates Alertmanager silences.
type Silencer interface {
	Create(ctx context.Context, r silence.Request) (silence.Result, error)
}

// Config is swapped on reload.
type Config struct {
	Signer *action.Signer
	// Silencer is nil when no Alertmanager is configured; silence links then explain that.
	Silencer  Silencer
	Schedules map[string]*oncall.Schedule
	People    map[string]oncall.Person
	// Announce picks, from the channels a group was sent to, those that announce a claim.
	Announce func(channels []string) []string
}

// Options configure the handlers.
type Options struct {
	Incidents Incidents
	Logger    *slog.Logger
	Now       func() time.Time
}

// API serves /api/v1/actions/ and /api/v1/oncall.
type API struct {
	o   Options
	cfg atomic.Pointer[Config]
}

// New returns the handlers.
func New(o Options, c *Config) *API {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := &API{o: o}
	a.cfg.Store(c)
	return a
}

// SetConfig swaps the configuration (reload).
func (a *API) SetConfig(c *Config) { a.cfg.Store(c) }

// ActionsPrefix is the path action links point to; the token follows it.
const ActionsPrefix = "/api/v1/actions/"

// Register adds the endpoints to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc(ActionsPrefix, a.Action)
	mux.HandleFunc("/api/v1/oncall", a.OnCall)
}

// maxName bounds the name a person gives.
const maxName = 64

// cleanName keeps a printable, single-line name of at most maxName characters.
func cleanName(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return "", errors.New("the name must be printable text on one line")
	}
	if utf8.RuneCountInString(s) > maxName {
		return "", fmt.Errorf("the name is longer than %d characters", maxName)
	}
	return s, nil
}

type page struct {
	Status  int
	Title   string
	Message string
	// Form shows the confirmation form.
	Form     bool
	Action   string
	Name     string
	Incident *escalation.Incident
}

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{{ .Title }}</title></head>
<body style="font-family:sans-serif;max-width:36em;margin:2em auto;padding:0 1em">
<h2>{{ .Title }}</h2>
{{ with .Incident }}<p><b>[{{ .Priority }}] {{ .Name }}</b><br><small>{{ range $k, $v := .Labels }}{{ $k }}={{ $v }} {{ end }}</small></p>
{{ with .Claimed }}<p>认领 / Claimed: <b>{{ .By }}</b> · {{ .At.UTC.Format "2006-01-02 15:04:05 MST" }}{{ with .Channel }} · {{ . }}{{ end }}</p>{{ end }}{{ end }}
{{ with .Message }}<p>{{ . }}</p>{{ end }}
{{ if .Form }}<form method="post">
<label>你的名字 / Your name <input name="by" value="{{ .Name }}" maxlength="64" required autofocus></label>
<p><button type="submit" style="font-size:1.2em;padding:.4em 1.2em">{{ .Action }}</button></p>
</form>{{ end }}
</body></html>
`))

func (a *API) render(w http.ResponseWriter, r *http.Request, p page, data any) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(p.Status)
		_ = json.NewEncoder(w).Encode(data)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(p.Status)
	_ = pageTmpl.Execute(w, p)
}

type result struct {
	Status    string               `json:"status"`
	Action    string               `json:"action,omitempty"`
	Error     string               `json:"error,omitempty"`
	Claimed   bool                 `json:"claimed"`
	ClaimedBy *escalation.Claim    `json:"claimed_by,omitempty"`
	Silence   *escalation.Silenced `json:"silence,omitempty"`
	Group     string               `json:"group,omitempty"`
	Name      string               `json:"alertname,omitempty"`
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	a.render(w, r, page{Status: code, Title: "❌", Message: msg}, result{Status: "error", Error: msg})
}

func describe(c action.Claims) string {
	if c.Kind == action.Silence {
		return "静默 / Silence " + c.Silence.String()
	}
	return "认领 / Claim"
}

// Action serves GET (confirm) and POST (act) on an action link.
func (a *API) Action(w http.ResponseWriter, r *http.Request) {
	cfg := a.cfg.Load()
	if cfg == nil || cfg.Signer == nil {
		a.fail(w, r, http.StatusNotFound, "action links are not configured (receiver.actions)")
		return
	}
	token := strings.TrimPrefix(r.URL.Path, ActionsPrefix)
	c, err := cfg.Signer.Verify(token)
	switch {
	case errors.Is(err, action.ErrExpired):
		a.fail(w, r, http.StatusGone, "this link has expired; open the newest notification of the alert")
		return
	case err != nil:
		a.fail(w, r, http.StatusForbidden, "this link is not valid")
		return
	}
	in, ok := a.o.Incidents.Incident(c.Group)
	if !ok {
		a.fail(w, r, http.StatusNotFound, "the alert group of this link is no longer known")
		return
	}
	name := c.Recipient
	if p, ok := cfg.People[c.Recipient]; ok {
		name = p.Display(c.Recipient)
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		a.render(w, r, page{Status: http.StatusOK, Title: describe(c), Form: true, Action: describe(c), Name: name, Incident: &in},
			result{Status: "confirm", Action: c.Kind.String(), Group: in.ID, Name: in.Name, ClaimedBy: in.Claimed})
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		a.fail(w, r, http.StatusMethodNotAllowed, "use GET to open the link and POST to act")
		return
	}
	if err := r.ParseForm(); err != nil {
		a.fail(w, r, http.StatusBadRequest, "the form could not be read")
		return
	}
	by := name
	if v := r.PostForm.Get("by"); v != "" {
		by = v
	}
	if by, err = cleanName(by); err != nil || by == "" {
		msg := "say who you are: the by field is required"
		if err != nil {
			msg = err.Error()
		}
		a.fail(w, r, http.StatusBadRequest, msg)
		return
	}
	switch c.Kind {
	case action.Claim:
		a.claim(w, r, cfg, c, &in, by)
	case action.Silence:
		a.silence(w, r, cfg, c, &in, by)
	}
}

func (a *API) claim(w http.ResponseWriter, r *http.Request, cfg *Config, c action.Claims, in *escalation.Incident, by string) {
	var announce []string
	if cfg.Announce != nil {
		announce = cfg.Announce(in.Channels)
	}
	got, claimed, err := a.o.Incidents.Claim(c.Group, by, c.Channel, announce)
	if err != nil {
		a.o.Logger.Error("cannot record a claim", "alertname", in.Name, "err", err)
		a.fail(w, r, http.StatusServiceUnavailable, "the claim could not be stored; try again")
		return
	}
	msg := fmt.Sprintf("已认领，升级已停止 / Claimed by %s: escalation stopped.", got.Claimed.By)
	if !claimed {
		msg = fmt.Sprintf("已由 %s 认领 / Already claimed by %s.", got.Claimed.By, got.Claimed.By)
	}
	a.o.Logger.Info("alert group claimed", "alertname", in.Name, "by", got.Claimed.By, "channel", got.Claimed.Channel, "new", claimed)
	a.render(w, r, page{Status: http.StatusOK, Title: "✅ " + describe(c), Message: msg, Incident: got},
		result{Status: "success", Action: "claim", Claimed: claimed, ClaimedBy: got.Claimed, Group: got.ID, Name: got.Name})
}

func (a *API) silence(w http.ResponseWriter, r *http.Request, cfg *Config, c action.Claims, in *escalation.Incident, by string) {
	if cfg.Silencer == nil {
		a.fail(w, r, http.StatusNotImplemented, "silences need receiver.silences.alertmanagers")
		return
	}
	via := ""
	if c.Channel != "" {
		via = " via " + c.Channel
	}
	res, err := cfg.Silencer.Create(r.Context(), silence.Request{
		Labels: in.Labels, Duration: c.Silence, Now: a.o.Now(),
		CreatedBy: by + via, Comment: fmt.Sprintf("[%s] %s silenced for %s from the notification%s (autoglm-receiver)", in.Priority, in.Name, c.Silence, via),
	})
	if err != nil {
		a.o.Logger.Error("cannot create a silence", "alertname", in.Name, "err", err)
		a.fail(w, r, http.StatusBadGateway, "Alertmanager did not take the silence; try again or silence it in Alertmanager")
		return
	}
	s := escalation.Silenced{ID: res.ID, Until: res.EndsAt, By: by, Channel: c.Channel}
	if err := a.o.Incidents.Silenced(c.Group, s); err != nil {
		a.o.Logger.Error("cannot record a silence", "alertname", in.Name, "err", err)
	}
	// Someone who silences is handling it: the chain stops as for a claim.
	var announce []string
	if cfg.Announce != nil {
		announce = cfg.Announce(in.Channels)
	}
	got, _, err := a.o.Incidents.Claim(c.Group, by, c.Channel, announce)
	if err != nil {
		a.o.Logger.Error("cannot record a claim", "alertname", in.Name, "err", err)
		got = in
	}
	a.o.Logger.Info("alert group silenced", "alertname", in.Name, "by", by, "channel", c.Channel, "silence", res.ID, "until", res.EndsAt, "reused", res.Reused)
	msg := fmt.Sprintf("已静默至 / Silenced until %s (Alertmanager silence %s).", res.EndsAt.UTC().Format("2006-01-02 15:04 MST"), res.ID)
	a.render(w, r, page{Status: http.StatusOK, Title: "🔕 " + describe(c), Message: msg, Incident: got},
		result{Status: "success", Action: "silence", Silence: &s, ClaimedBy: got.Claimed, Group: got.ID, Name: got.Name})
}

type shiftJSON struct {
	Person string    `json:"person,omitempty"`
	Name   string    `json:"name,omitempty"`
	Layer  string    `json:"layer,omitempty"`
	From   time.Time `json:"from,omitzero"`
	Until  time.Time `json:"until,omitzero"`
}

type scheduleJSON struct {
	Name     string    `json:"name"`
	TimeZone string    `json:"time_zone"`
	Now      shiftJSON `json:"now"`
	Next     shiftJSON `json:"next"`
}

func (a *API) shift(cfg *Config, s oncall.Shift) shiftJSON {
	out := shiftJSON{Person: s.Person, Layer: s.Layer, From: s.Start, Until: s.End}
	if s.Person != "" {
		out.Name = cfg.People[s.Person].Display(s.Person)
	}
	return out
}

// OnCall answers who is on call now (or at ?at=RFC3339) and next, per
// schedule (?schedule=name for one).
func (a *API) OnCall(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, result{Status: "error", Error: "use GET"})
		return
	}
	cfg := a.cfg.Load()
	at := a.o.Now()
	if v := r.URL.Query().Get("at"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, result{Status: "error", Error: fmt.Sprintf("at=%q is not an RFC 3339 time", v)})
			return
		}
		at = t
	}
	var names []string
	for n := range cfg.Schedules {
		names = append(names, n)
	}
	sort.Strings(names)
	if want := r.URL.Query().Get("schedule"); want != "" {
		if _, ok := cfg.Schedules[want]; !ok {
			writeJSON(w, http.StatusNotFound, result{Status: "error", Error: fmt.Sprintf("no schedule %q", want)})
			return
		}
		names = []string{want}
	}
	out := make([]scheduleJSON, 0, len(names))
	for _, n := range names {
		s := cfg.Schedules[n]
		out = append(out, scheduleJSON{Name: n, TimeZone: s.Loc.String(), Now: a.shift(cfg, s.At(at)), Next: a.shift(cfg, s.Next(at))})
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "at": at, "schedules": out})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
