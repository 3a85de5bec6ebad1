package api

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	amwebhook "github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/open-autoglm/autoglm-monitor/receiver/route"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

// Config is the part of the configuration the API reads; it is swapped on reload.
type Config struct {
	Router       *route.Router
	MaxBodyBytes int64
	// AuthToken, when not empty, is required as a bearer token by every
	// endpoint Protect guards.
	AuthToken string
}

// Protected are the endpoints that need the bearer token when one is set:
// they take notifications, reveal them (group keys, alert names, error
// texts) or change the running configuration.
var Protected = []string{"/webhook", "/api/v1/notifications", "/-/reload"}

// Enqueuer hands accepted deliveries to the delivery engine.
type Enqueuer interface {
	Enqueue([]*store.Delivery)
}

// Options configure the API.
type Options struct {
	Store      *store.Store
	Engine     Enqueuer
	Logger     *slog.Logger
	Now        func() time.Time
	Registerer prometheus.Registerer
	// Observe, when set, sees every stored message with its plan (re-sent ones
	// too) before the answer, so on-call state follows the groups; an error
	// makes the answer 503 and Alertmanager sends the message again.
	Observe func(msg *amwebhook.Message, plan route.Plan) error
}

// API serves the receiver's HTTP endpoints.
type API struct {
	o        Options
	cfg      atomic.Pointer[Config]
	alerts   *prometheus.CounterVec
	requests *prometheus.CounterVec
	// Payload values become label values only within these bounds.
	alertnames, severities *boundedLabel
}

// New creates the API with its metrics registered on o.Registerer.
func New(o Options, c *Config) (*API, error) {
	if o.Store == nil || o.Engine == nil {
		return nil, errors.New("api needs a store and an engine")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := &API{
		o: o,
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autoglm_receiver_alerts_received_total",
			Help: "Alerts received in webhook payloads (identical re-sent notifications excluded).",
		}, []string{"alertname", "severity", "status"}),
		alertnames: newBoundedLabel(MaxAlertnames),
		// The usual severities plus a few more; anything else is "other".
		severities: newBoundedLabel(8, "", "critical", "warning", "info", "none"),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autoglm_receiver_webhook_requests_total",
			Help: "Webhook requests by HTTP status code.",
		}, []string{"code"}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{a.alerts, a.requests} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	a.SetConfig(c)
	return a, nil
}

// SetConfig swaps the configuration (reload).
func (a *API) SetConfig(c *Config) { a.cfg.Store(c) }

// Protect wraps the server's handler: requests to a Protected endpoint
// without the right bearer token get 401 before anything reads their body.
func (a *API) Protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slices.Contains(Protected, r.URL.Path) && !a.authorized(r) {
			if r.ContentLength != 0 {
				// Without this, the server would try to read the unread body before
				// answering; a client that never sends it would hold the request open.
				w.Header().Set("Connection", "close")
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="autoglm-receiver"`)
			a.fail(w, http.StatusUnauthorized, "", "missing or invalid bearer token")
			if r.URL.Path == "/webhook" {
				a.requests.WithLabelValues("401").Inc()
			}
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *API) authorized(r *http.Request) bool {
	token := a.cfg.Load().AuthToken
	if token == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// Register adds the API routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("/webhook", a.Webhook)
	mux.HandleFunc("/api/v1/notifications", a.Notifications)
}

type errorBody struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Field  string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Webhook accepts one Alertmanager notification. It answers 200 only after
// the deliveries are durably stored; delivery happens afterwards.
func (a *API) Webhook(w http.ResponseWriter, r *http.Request) {
	code := a.webhook(w, r)
	a.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

func (a *API) fail(w http.ResponseWriter, code int, field, msg string) int {
	writeJSON(w, code, errorBody{Status: "error", Error: msg, Field: field})
	return code
}

func (a *API) webhook(w http.ResponseWriter, r *http.Request) int {
	cfg := a.cfg.Load()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return a.fail(w, http.StatusMethodNotAllowed, "", "use POST")
	}
	if r.ContentLength > cfg.MaxBodyBytes {
		return a.fail(w, http.StatusRequestEntityTooLarge, "", "payload of "+strconv.FormatInt(r.ContentLength, 10)+" bytes exceeds receiver.webhook.max_body_bytes ("+strconv.FormatInt(cfg.MaxBodyBytes, 10)+")")
	}
	body := http.MaxBytesReader(w, r.Body, cfg.MaxBodyBytes)
	msg, err := Decode(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return a.fail(w, http.StatusRequestEntityTooLarge, "", "payload exceeds receiver.webhook.max_body_bytes ("+strconv.FormatInt(cfg.MaxBodyBytes, 10)+")")
		}
		var de *DecodeError
		if errors.As(err, &de) {
			return a.fail(w, http.StatusBadRequest, de.Field, "invalid Alertmanager webhook payload: "+de.Error())
		}
		return a.fail(w, http.StatusBadRequest, "", "cannot read payload: "+err.Error())
	}
	plan := cfg.Router.Plan(msg, a.o.Now())
	rec, ds := plan.Record, plan.Deliveries
	accepted, dups, err := a.o.Store.Accept(rec, ds)
	if err != nil {
		a.o.Logger.Error("cannot store webhook payload", "group_key", msg.GroupKey, "err", err)
		w.Header().Set("Retry-After", "5")
		return a.fail(w, http.StatusServiceUnavailable, "", "store cannot take the payload now; retry later")
	}
	var observeErr error
	if a.o.Observe != nil {
		// Before the deliveries go out, so they find their group's on-call state.
		observeErr = a.o.Observe(msg, plan)
	}
	a.o.Engine.Enqueue(accepted)
	if observeErr != nil {
		a.o.Logger.Error("cannot record the on-call state of a message", "group_key", msg.GroupKey, "err", observeErr)
		w.Header().Set("Retry-After", "5")
		return a.fail(w, http.StatusServiceUnavailable, "", "store cannot take the payload now; retry later")
	}
	if len(accepted) > 0 || len(ds) == 0 {
		for _, al := range msg.Alerts {
			// Status was validated by Decode (firing or resolved).
			a.alerts.WithLabelValues(a.alertnames.value(al.Labels["alertname"]), a.severities.value(al.Labels["severity"]), al.Status).Inc()
		}
	}
	if len(plan.Routes) == 0 {
		a.o.Logger.Warn("no route matched and no default route configured", "group_key", msg.GroupKey, "alertname", strings.Join(rec.Alertnames, ","))
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status": "success", "accepted": len(accepted), "duplicates": dups, "routes": plan.Routes,
	})
	return http.StatusOK
}

// Notifications lists audit records, newest first.
// Query parameters: from, to (RFC 3339 or Unix seconds), alertname, channel,
// status (an outcome such as delivered or retry), limit (1..1000), cursor.
func (a *API) Notifications(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		a.fail(w, http.StatusMethodNotAllowed, "", "use GET")
		return
	}
	v := r.URL.Query()
	q := store.Query{Alertname: v.Get("alertname"), Channel: v.Get("channel"), Outcome: v.Get("status"), Cursor: v.Get("cursor"), Limit: 100}
	var err error
	if q.From, err = parseTime(v.Get("from")); err != nil {
		a.fail(w, http.StatusBadRequest, "from", "from: "+err.Error())
		return
	}
	if q.To, err = parseTime(v.Get("to")); err != nil {
		a.fail(w, http.StatusBadRequest, "to", "to: "+err.Error())
		return
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		a.fail(w, http.StatusBadRequest, "to", "to: must not be before from")
		return
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			a.fail(w, http.StatusBadRequest, "limit", "must be an integer within [1, 1000], got "+strconv.Quote(s))
			return
		}
		q.Limit = n
	}
	recs, next, err := a.o.Store.Audit(q)
	if errors.Is(err, store.ErrBadCursor) {
		a.fail(w, http.StatusBadRequest, "cursor", "invalid cursor: use next_cursor from a previous answer")
		return
	}
	if err != nil {
		a.o.Logger.Error("audit query failed", "err", err)
		a.fail(w, http.StatusServiceUnavailable, "", "audit log unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": recs, "next_cursor": next})
}

// Times the audit log can hold: its keys are Unix nanoseconds in 64 bits.
var (
	minTime = time.Unix(0, 0)
	maxTime = time.Unix(0, math.MaxInt64)
)

// parseTime reads RFC 3339 or Unix seconds within [1970, 2262]: NaN, ±Inf
// and values outside the range are errors rather than silently matching
// everything or nothing.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	var t time.Time
	if f, err := strconv.ParseFloat(s, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > float64(maxTime.Unix()) {
			return time.Time{}, errors.New("time " + strconv.Quote(s) + " is out of range: Unix seconds must be a finite number within [0, " + strconv.FormatInt(maxTime.Unix(), 10) + "]")
		}
		sec, frac := math.Modf(f)
		t = time.Unix(int64(sec), int64(frac*1e9))
	} else if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
		return time.Time{}, errors.New("invalid time " + strconv.Quote(s) + ": use RFC 3339 or Unix seconds")
	}
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, errors.New("time " + strconv.Quote(s) + " is out of range: must be within [" + minTime.UTC().Format(time.RFC3339) + ", " + maxTime.UTC().Format(time.RFC3339) + "]")
	}
	return t, nil
}
