package config

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
)

// Receiver is the "receiver:" section. Its keys are documented in receiver/README.md.
type Receiver struct {
	Storage  ReceiverStorage    `yaml:"storage"`
	Webhook  ReceiverWebhook    `yaml:"webhook"`
	Channels map[string]Channel `yaml:"channels"`
	// Routes are tried in order; the first match wins unless it sets continue.
	Routes []Route `yaml:"routes"`
	// DefaultRoute takes notifications no route matched; its matchers must be empty.
	DefaultRoute *Route        `yaml:"default_route"`
	Retry        ReceiverRetry `yaml:"retry"`
	// Priorities maps a severity label value to P1, P2 or P3 (default: critical=P1, warning=P2, else P3).
	Priorities map[string]string `yaml:"priorities"`
	// ExternalURL is how people reach this receiver; channels use it for links in messages.
	ExternalURL string `yaml:"external_url"`
}

// ReceiverStorage configures the embedded durable store.
type ReceiverStorage struct {
	Path string `yaml:"path"`
	// AuditRetention is how long audit records and dead letters are kept.
	AuditRetention Duration `yaml:"audit_retention"`
	// DedupWindow is how long an identical notification is suppressed. Keep it
	// below Alertmanager's repeat_interval so reminders still go out.
	DedupWindow Duration `yaml:"dedup_window"`
	// CommitDelay makes a durable write wait this long for others to share its fsync
	// (0: writes queued during the previous commit are grouped anyway).
	CommitDelay Duration `yaml:"commit_delay"`
}

// ReceiverWebhook configures the incoming POST /webhook endpoint.
type ReceiverWebhook struct {
	// MaxBodyBytes is the largest accepted payload; larger ones get 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// AuthToken, when set, must be sent as "Authorization: Bearer <token>".
	// --web.config.file basic auth applies in addition.
	AuthToken     Secret `yaml:"auth_token"`
	AuthTokenFile string `yaml:"auth_token_file"`
}

// ReceiverRetry is the delivery retry and escalation policy.
type ReceiverRetry struct {
	InitialBackoff Duration `yaml:"initial_backoff"`
	MaxBackoff     Duration `yaml:"max_backoff"`
	// Jitter is the random spread applied to each backoff, as a fraction (0.2 = ±20%).
	Jitter float64 `yaml:"jitter"`
	// ExpireAfter is how long after receipt an undelivered notification becomes a dead letter.
	ExpireAfter Duration `yaml:"expire_after"`
	// EscalateAfterFailures escalates to a route's fallback channels after this
	// many failed attempts on one channel (0 disables the count trigger).
	EscalateAfterFailures int `yaml:"escalate_after_failures"`
}

// Route selects channels for notifications whose labels match.
type Route struct {
	// Name appears in logs, audit and metrics; defaults to "routes[i]" or "default".
	Name     string   `yaml:"name"`
	Matchers []string `yaml:"matchers"`
	Channels []string `yaml:"channels"`
	Fallback []string `yaml:"fallback"`
	// EscalateAfter sends through Fallback when Channels have not delivered in this time (0 = no time trigger).
	EscalateAfter Duration `yaml:"escalate_after"`
	// EscalateAfterFailures overrides receiver.retry.escalate_after_failures for this route.
	EscalateAfterFailures int  `yaml:"escalate_after_failures"`
	Continue              bool `yaml:"continue"`
}

// Priority values a severity may map to.
var validPriorities = map[string]bool{"P1": true, "P2": true, "P3": true}

func defaultReceiver() Receiver {
	return Receiver{
		Storage: ReceiverStorage{
			Path:           "data/receiver",
			AuditRetention: Duration(30 * 24 * time.Hour),
			DedupWindow:    Duration(time.Hour),
			CommitDelay:    0,
		},
		Webhook: ReceiverWebhook{MaxBodyBytes: 4 << 20},
		Retry: ReceiverRetry{
			InitialBackoff:        Duration(time.Second),
			MaxBackoff:            Duration(5 * time.Minute),
			Jitter:                0.2,
			ExpireAfter:           Duration(time.Hour),
			EscalateAfterFailures: 3,
		},
	}
}

// ParsedMatchers returns the route's matchers parsed with Alertmanager's syntax.
// Each list entry may hold one matcher or several separated by commas.
func (r Route) ParsedMatchers() (labels.Matchers, error) {
	var out labels.Matchers
	for _, s := range r.Matchers {
		ms, err := labels.ParseMatchers(s)
		if err != nil {
			return nil, err
		}
		if len(ms) == 0 {
			return nil, fmt.Errorf("empty matcher %q", s)
		}
		out = append(out, ms...)
	}
	return out, nil
}

// RouteName is the route's display name.
func (r Route) RouteName(i int) string {
	if r.Name != "" {
		return r.Name
	}
	if i < 0 {
		return "default"
	}
	return fmt.Sprintf("routes[%d]", i)
}

// PriorityOf maps a severity to P1, P2 or P3.
func (c Receiver) PriorityOf(severity string) string {
	if p, ok := c.Priorities[severity]; ok {
		return p
	}
	switch severity {
	case "critical":
		return "P1"
	case "warning":
		return "P2"
	}
	return "P3"
}

func (c Receiver) validate(f *File) []error {
	var errs []error
	names := make([]string, 0, len(c.Channels))
	for name := range c.Channels {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		errs = append(errs, c.Channels[name].validate(f, fmt.Sprintf("receiver.channels.%s", name))...)
	}
	if strings.TrimSpace(c.Storage.Path) == "" {
		errs = append(errs, Errorf("receiver.storage.path", "must not be empty"))
	}
	if c.Storage.AuditRetention <= 0 {
		errs = append(errs, Errorf("receiver.storage.audit_retention", "must be > 0, got %s", c.Storage.AuditRetention))
	}
	if c.Storage.DedupWindow <= 0 {
		errs = append(errs, Errorf("receiver.storage.dedup_window", "must be > 0, got %s", c.Storage.DedupWindow))
	}
	if c.Storage.CommitDelay < 0 || c.Storage.CommitDelay.D() > time.Second {
		errs = append(errs, Errorf("receiver.storage.commit_delay", "must be within [0, 1s], got %s", c.Storage.CommitDelay))
	}
	if c.Webhook.MaxBodyBytes <= 0 {
		errs = append(errs, Errorf("receiver.webhook.max_body_bytes", "must be > 0, got %d", c.Webhook.MaxBodyBytes))
	}
	if _, err := f.ResolveSecret("receiver.webhook.auth_token", c.Webhook.AuthToken, c.Webhook.AuthTokenFile); err != nil {
		errs = append(errs, err)
	}
	r := c.Retry
	if r.InitialBackoff <= 0 {
		errs = append(errs, Errorf("receiver.retry.initial_backoff", "must be > 0, got %s", r.InitialBackoff))
	}
	if r.MaxBackoff < r.InitialBackoff {
		errs = append(errs, Errorf("receiver.retry.max_backoff", "must be >= initial_backoff (%s), got %s", r.InitialBackoff, r.MaxBackoff))
	}
	if r.Jitter < 0 || r.Jitter >= 1 {
		errs = append(errs, Errorf("receiver.retry.jitter", "is a fraction and must be within [0, 1), got %g", r.Jitter))
	}
	if r.ExpireAfter <= 0 {
		errs = append(errs, Errorf("receiver.retry.expire_after", "must be > 0, got %s", r.ExpireAfter))
	}
	if r.EscalateAfterFailures < 0 {
		errs = append(errs, Errorf("receiver.retry.escalate_after_failures", "must be >= 0, got %d", r.EscalateAfterFailures))
	}
	sevs := make([]string, 0, len(c.Priorities))
	for s := range c.Priorities {
		sevs = append(sevs, s)
	}
	sort.Strings(sevs)
	for _, s := range sevs {
		if !validPriorities[c.Priorities[s]] {
			errs = append(errs, Errorf("receiver.priorities."+s, "must be P1, P2 or P3, got %q", c.Priorities[s]))
		}
	}
	if c.ExternalURL != "" {
		if p, err := url.Parse(c.ExternalURL); err != nil || p.Scheme == "" || p.Host == "" {
			errs = append(errs, Errorf("receiver.external_url", "must be an absolute http(s) URL, got %q", c.ExternalURL))
		}
	}
	for i, rt := range c.Routes {
		errs = append(errs, c.validateRoute(rt, fmt.Sprintf("receiver.routes[%d]", i), false)...)
	}
	if c.DefaultRoute != nil {
		errs = append(errs, c.validateRoute(*c.DefaultRoute, "receiver.default_route", true)...)
	}
	return errs
}

func (c Receiver) validateRoute(r Route, key string, isDefault bool) []error {
	var errs []error
	if isDefault && len(r.Matchers) > 0 {
		errs = append(errs, Errorf(key+".matchers", "the default route takes everything else and cannot have matchers"))
	}
	for j, s := range r.Matchers {
		ms, err := labels.ParseMatchers(s)
		if err == nil && len(ms) == 0 {
			err = fmt.Errorf("no matcher in %q", s)
		}
		if err != nil {
			errs = append(errs, Errorf(fmt.Sprintf("%s.matchers[%d]", key, j), "invalid matcher %q: %v (use Alertmanager syntax such as severity=\"critical\" or route=~\"/v1/.*\")", s, err))
		}
	}
	if len(r.Channels) == 0 {
		errs = append(errs, Errorf(key+".channels", "must list at least one channel"))
	}
	for _, list := range []struct {
		name string
		vals []string
	}{{"channels", r.Channels}, {"fallback", r.Fallback}} {
		seen := map[string]bool{}
		for j, ch := range list.vals {
			k := fmt.Sprintf("%s.%s[%d]", key, list.name, j)
			if _, ok := c.Channels[ch]; !ok {
				errs = append(errs, Errorf(k, "channel %q is not defined under receiver.channels", ch))
			}
			if seen[ch] {
				errs = append(errs, Errorf(k, "channel %q listed twice", ch))
			}
			seen[ch] = true
		}
	}
	if r.EscalateAfter < 0 {
		errs = append(errs, Errorf(key+".escalate_after", "must be >= 0, got %s", r.EscalateAfter))
	}
	if r.EscalateAfter > 0 && len(r.Fallback) == 0 {
		errs = append(errs, Errorf(key+".escalate_after", "is set but the route has no fallback channels to escalate to"))
	}
	if r.EscalateAfterFailures < 0 {
		errs = append(errs, Errorf(key+".escalate_after_failures", "must be >= 0, got %d", r.EscalateAfterFailures))
	}
	return errs
}
