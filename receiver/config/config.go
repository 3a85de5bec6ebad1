// Package config is the receiver's section of the shared configuration file:
// storage, webhook, retry, routes and the channels, each channel's keys
// owned by its own package (dingtalk.Config, wecom.Config, ...).
//
// The section is decoded strictly from the same file as every other part
// (internal/config): unknown keys and bad values fail with file, line and key,
// and secrets may come from *_file fields, read at load and on every reload.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/alertmanager/pkg/labels"
	yaml "go.yaml.in/yaml/v3"

	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/action"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanconf"
	"github.com/open-autoglm/autoglm-monitor/receiver/oncall"
	"github.com/open-autoglm/autoglm-monitor/receiver/silence"
)

// Config is the "receiver:" section. Its keys are documented in receiver/README.md.
type Config struct {
	Storage  Storage             `yaml:"storage"`
	Webhook  Webhook             `yaml:"webhook"`
	Channels map[string]*Channel `yaml:"channels"`
	// Routes are tried in order; the first match wins unless it sets continue.
	Routes []Route `yaml:"routes"`
	// DefaultRoute takes notifications no route matched; its matchers must be empty.
	DefaultRoute *Route `yaml:"default_route"`
	Retry        Retry  `yaml:"retry"`
	// Priorities maps a severity label value to P1, P2 or P3 (default: critical=P1, warning=P2, else P3).
	Priorities map[string]string `yaml:"priorities"`
	// ExternalURL is how people reach this receiver; channels use it for links in messages.
	ExternalURL string `yaml:"external_url"`
	// Actions signs the claim and silence links of P1/P2 messages.
	Actions *action.Config `yaml:"actions"`
	// Silences is where silences created from messages go.
	Silences *silence.Config `yaml:"silences"`
	// OnCall holds people, schedules and escalation chains.
	OnCall *oncall.Config `yaml:"oncall"`

	// File is the configuration file the section came from.
	File *fileconfig.File `yaml:"-"`
}

// Storage configures the durable store: the embedded bbolt file under Path
// (one replica), or a PostgreSQL database that several replicas share.
// Exactly one of them must be set; a relative Path is relative to the
// configuration file's directory.
type Storage struct {
	Path     string    `yaml:"path"`
	Postgres *Postgres `yaml:"postgres"`
	// AuditRetention is how long audit records and dead letters are kept.
	AuditRetention fileconfig.Duration `yaml:"audit_retention"`
	// DedupWindow is how long an identical notification is suppressed. Keep it
	// below Alertmanager's repeat_interval so reminders still go out.
	DedupWindow fileconfig.Duration `yaml:"dedup_window"`
	// CommitDelay makes a durable write wait this long for others to share its fsync
	// (0: writes queued during the previous commit are grouped anyway).
	CommitDelay fileconfig.Duration `yaml:"commit_delay"`
}

// Postgres is a shared outbox in PostgreSQL: any number of replicas use it
// at once, each channel delivered by the replica that holds its lease.
type Postgres struct {
	// DSN is a libpq connection URL or keyword string; it may hold the
	// password, so it is a secret (or comes from DSNFile).
	DSN     fileconfig.Secret `yaml:"dsn"`
	DSNFile string            `yaml:"dsn_file"`
	// PasswordFile holds the password when the DSN has none.
	PasswordFile string `yaml:"password_file"`
	// Lease is how long a replica may deliver a channel without renewing its
	// claim; a killed replica's channels are taken over after at most this
	// plus a third of it.
	Lease fileconfig.Duration `yaml:"lease"`
	// MaxConns bounds the connection pool of one replica.
	MaxConns int `yaml:"max_conns"`

	// Password is read from PasswordFile at load.
	Password fileconfig.Secret `yaml:"-"`
}

// DefaultLease of a channel claim in the shared store.
const DefaultLease = 15 * time.Second

// Webhook configures the incoming endpoints.
type Webhook struct {
	// MaxBodyBytes is the largest accepted payload; larger ones get 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// AuthToken, when set, must be sent as "Authorization: Bearer <token>" to
	// POST /webhook, GET /api/v1/notifications and POST /-/reload.
	// --web.config.file basic auth applies in addition.
	AuthToken     fileconfig.Secret `yaml:"auth_token"`
	AuthTokenFile string            `yaml:"auth_token_file"`
}

// Retry is the delivery retry and escalation policy.
type Retry struct {
	InitialBackoff fileconfig.Duration `yaml:"initial_backoff"`
	MaxBackoff     fileconfig.Duration `yaml:"max_backoff"`
	// Jitter is the random spread applied to each backoff, as a fraction (0.2 = ±20%).
	Jitter float64 `yaml:"jitter"`
	// ExpireAfter is how long after receipt an undelivered notification becomes a dead letter.
	ExpireAfter fileconfig.Duration `yaml:"expire_after"`
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
	EscalateAfter fileconfig.Duration `yaml:"escalate_after"`
	// EscalateAfterFailures overrides receiver.retry.escalate_after_failures for this route.
	EscalateAfterFailures int  `yaml:"escalate_after_failures"`
	Continue              bool `yaml:"continue"`
	// Chain is the escalation chain (under receiver.oncall.chains) that pages
	// people while the group fires and nobody claims it.
	Chain string `yaml:"chain"`
}

// Default is the section before the file's keys are applied.
func Default() Config {
	return Config{
		Storage: Storage{
			AuditRetention: fileconfig.Duration(30 * 24 * time.Hour),
			DedupWindow:    fileconfig.Duration(time.Hour),
		},
		Webhook: Webhook{MaxBodyBytes: 4 << 20},
		Retry: Retry{
			InitialBackoff:        fileconfig.Duration(time.Second),
			MaxBackoff:            fileconfig.Duration(5 * time.Minute),
			Jitter:                0.2,
			ExpireAfter:           fileconfig.Duration(time.Hour),
			EscalateAfterFailures: 3,
		},
	}
}

// Load reads the file at path: the shared sections through internal/config,
// then the receiver section.
func Load(path string) (*Config, error) {
	f, err := fileconfig.Load(path)
	if err != nil {
		return nil, err
	}
	return FromFile(f)
}

// Parse decodes a whole configuration file from memory; name is used in errors.
func Parse(b []byte, name string) (*Config, error) {
	f, err := fileconfig.Parse(b, name)
	if err != nil {
		return nil, err
	}
	return FromFile(f)
}

// FromFile decodes and validates the receiver section of a loaded file.
func FromFile(f *fileconfig.File) (*Config, error) {
	c := Default()
	doc := struct {
		Receiver *Config        `yaml:"receiver"`
		Other    map[string]any `yaml:",inline"`
	}{Receiver: &c}
	if err := f.Decode(&doc); err != nil {
		return nil, err
	}
	c.File = f
	if err := f.Locate(c.validate()...); err != nil {
		return nil, err
	}
	return &c, nil
}

// AuthToken is the bearer token the HTTP endpoints require ("" when auth is off).
// Validation resolved auth_token_file into it.
func (c *Config) AuthToken() string { return c.Webhook.AuthToken.Value() }

// Secrets lists every credential of the section (the auth token and each
// channel's own), for redaction.
func (c *Config) Secrets() []string {
	out := []string{c.AuthToken()}
	if pg := c.Storage.Postgres; pg != nil {
		out = append(out, pg.DSN.Value(), pg.Password.Value())
		out = append(out, dsnSecrets(pg.DSN.Value())...)
	}
	for _, name := range chanconf.SortedKeys(c.Channels) {
		if s := c.Channels[name].Spec(); s != nil {
			out = append(out, s.Secrets()...)
		}
	}
	if c.Actions != nil {
		out = append(out, c.Actions.Secrets()...)
	}
	if c.Silences != nil {
		out = append(out, c.Silences.Secrets()...)
	}
	return out
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
			return nil, fmt.Errorf("no matcher in %q", s)
		}
		out = append(out, ms...)
	}
	return out, nil
}

// RouteName is the route's display name; i < 0 is the default route.
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
func (c *Config) PriorityOf(severity string) string {
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

func (c *Config) validate() []error {
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, fileconfig.Errorf(key, format, args...)) }
	for _, name := range chanconf.SortedKeys(c.Channels) {
		if c.Channels[name] == nil {
			add("receiver.channels."+name, "is empty: set at least its type")
			continue
		}
		if err := c.Channels[name].Validate("receiver.channels."+name, c.File); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, c.validateStorage()...)
	if len(c.Channels) == 0 {
		add("receiver.channels", "no channel is configured: the receiver would answer every notification 200 and deliver none; define at least one (see receiver/CHANNELS.md)")
	}
	if len(c.Routes) == 0 && c.DefaultRoute == nil {
		add("receiver.routes", "no route and no default_route: every notification would be answered 200 and dropped as unrouted; add a route or a default_route")
	}
	if c.Storage.AuditRetention <= 0 {
		add("receiver.storage.audit_retention", "must be > 0, got %s", c.Storage.AuditRetention)
	}
	if c.Storage.DedupWindow <= 0 {
		add("receiver.storage.dedup_window", "must be > 0, got %s", c.Storage.DedupWindow)
	}
	if c.Storage.CommitDelay < 0 || c.Storage.CommitDelay.D() > time.Second {
		add("receiver.storage.commit_delay", "must be within [0, 1s], got %s", c.Storage.CommitDelay)
	}
	if c.Webhook.MaxBodyBytes <= 0 {
		add("receiver.webhook.max_body_bytes", "must be > 0, got %d", c.Webhook.MaxBodyBytes)
	}
	errs = append(errs, c.validateAuth()...)
	r := c.Retry
	if r.InitialBackoff <= 0 {
		add("receiver.retry.initial_backoff", "must be > 0, got %s", r.InitialBackoff)
	}
	if r.MaxBackoff < r.InitialBackoff {
		add("receiver.retry.max_backoff", "must be >= initial_backoff (%s), got %s", r.InitialBackoff, r.MaxBackoff)
	}
	if r.Jitter < 0 || r.Jitter >= 1 {
		add("receiver.retry.jitter", "is a fraction and must be within [0, 1), got %g", r.Jitter)
	}
	if r.ExpireAfter <= 0 {
		add("receiver.retry.expire_after", "must be > 0, got %s", r.ExpireAfter)
	}
	if r.EscalateAfterFailures < 0 {
		add("receiver.retry.escalate_after_failures", "must be >= 0, got %d", r.EscalateAfterFailures)
	}
	for _, s := range chanconf.SortedKeys(c.Priorities) {
		switch c.Priorities[s] {
		case "P1", "P2", "P3":
		default:
			add("receiver.priorities."+s, "must be P1, P2 or P3, got %q", c.Priorities[s])
		}
	}
	if c.ExternalURL != "" {
		if p, err := url.Parse(c.ExternalURL); err != nil || p.Scheme == "" || p.Host == "" {
			add("receiver.external_url", "must be an absolute http(s) URL, got %q", c.ExternalURL)
		}
	}
	for i, rt := range c.Routes {
		errs = append(errs, c.validateRoute(rt, fmt.Sprintf("receiver.routes[%d]", i), false)...)
	}
	if c.DefaultRoute != nil {
		errs = append(errs, c.validateRoute(*c.DefaultRoute, "receiver.default_route", true)...)
	}
	return append(errs, c.validateOnCall()...)
}

// validateOnCall checks actions, silences and the on-call section, and how
// routes and chains refer to them.
func (c *Config) validateOnCall() []error {
	var errs []error
	if c.Actions != nil {
		errs = append(errs, c.Actions.Validate("receiver.actions", c.File)...)
		if c.ExternalURL == "" {
			errs = append(errs, fileconfig.Errorf("receiver.external_url", "is required with receiver.actions: action links point to it"))
		}
	}
	if c.Silences != nil {
		if err := c.Silences.Validate("receiver.silences", c.File); err != nil {
			errs = append(errs, err)
		}
	}
	if c.OnCall != nil {
		errs = append(errs, c.OnCall.Validate("receiver.oncall")...)
		errs = append(errs, c.OnCall.ValidateChannels("receiver.oncall", func(n string) bool { return c.Channels[n] != nil })...)
	}
	check := func(r Route, key string) {
		if r.Chain == "" {
			return
		}
		defined := false
		if c.OnCall != nil {
			_, defined = c.OnCall.Chains[r.Chain]
		}
		if !defined {
			errs = append(errs, fileconfig.Errorf(key+".chain", "chain %q is not defined under receiver.oncall.chains", r.Chain))
		}
		if c.Actions == nil {
			errs = append(errs, fileconfig.Errorf(key+".chain", "needs receiver.actions: a chain stops when someone claims the group from a message"))
		}
	}
	for i, r := range c.Routes {
		check(r, fmt.Sprintf("receiver.routes[%d]", i))
	}
	if c.DefaultRoute != nil {
		check(*c.DefaultRoute, "receiver.default_route")
	}
	return errs
}

// validateStorage requires an explicit store: a default relative to the
// working directory would put accepted alerts wherever the binary happened
// to start.
func (c *Config) validateStorage() []error {
	st := &c.Storage
	path := strings.TrimSpace(st.Path)
	switch {
	case path == "" && st.Postgres == nil:
		return []error{fileconfig.Errorf("receiver.storage.path", "is required: the directory of the embedded store (for example /var/lib/autoglm-receiver), or set receiver.storage.postgres.dsn to share a PostgreSQL outbox between replicas")}
	case path != "" && st.Postgres != nil:
		return []error{fileconfig.Errorf("receiver.storage.postgres", "set either receiver.storage.path (embedded store) or receiver.storage.postgres (shared store), not both")}
	case path != "":
		if !filepath.IsAbs(path) && c.File != nil && c.File.Path() != "" {
			path = filepath.Join(filepath.Dir(c.File.Path()), path)
		}
		st.Path = filepath.Clean(path)
		return nil
	}
	const key = "receiver.storage.postgres"
	pg := st.Postgres
	var errs []error
	dsn, err := c.File.ResolveSecret(key+".dsn", pg.DSN, pg.DSNFile)
	if err != nil {
		return []error{err}
	}
	pg.DSN = dsn
	if dsn == "" {
		errs = append(errs, fileconfig.Errorf(key+".dsn", "is required: a PostgreSQL URL such as postgres://autoglm@db.example.com:5432/autoglm (password from password_file)"))
	} else if _, err := pgconn.ParseConfig(dsn.Value()); err != nil {
		// pgconn's message may quote the DSN; name the problem without it.
		errs = append(errs, fileconfig.Errorf(key+".dsn", "is not a valid PostgreSQL connection string (a URL postgres://user@host:port/database or libpq key=value pairs)"))
	}
	if pg.PasswordFile != "" {
		pw, err := c.File.ResolveSecret(key+".password", "", pg.PasswordFile)
		if err != nil {
			errs = append(errs, err)
		} else if pw == "" {
			errs = append(errs, fileconfig.Errorf(key+".password_file", "the password file %s is empty", pg.PasswordFile))
		}
		pg.Password = pw
	}
	if pg.Lease == 0 {
		pg.Lease = fileconfig.Duration(DefaultLease)
	}
	if pg.Lease.D() < 3*time.Second || pg.Lease.D() > 10*time.Minute {
		errs = append(errs, fileconfig.Errorf(key+".lease", "must be within [3s, 10m], got %s", pg.Lease))
	}
	if pg.MaxConns < 0 || pg.MaxConns > 1000 {
		errs = append(errs, fileconfig.Errorf(key+".max_conns", "must be within [0, 1000] (0: 4 per CPU), got %d", pg.MaxConns))
	}
	return errs
}

// dsnSecrets are the password inside a URL or key=value DSN.
func dsnSecrets(dsn string) []string {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil || cfg.Password == "" {
		return nil
	}
	return []string{cfg.Password, url.QueryEscape(cfg.Password), url.PathEscape(cfg.Password)}
}

// validateAuth fails closed: a token file that cannot be read or holds
// nothing must not turn authentication off.
func (c *Config) validateAuth() []error {
	const key = "receiver.webhook.auth_token"
	w := &c.Webhook
	tok, err := c.File.ResolveSecret(key, w.AuthToken, w.AuthTokenFile)
	if err != nil {
		return []error{err}
	}
	if w.AuthTokenFile != "" && tok == "" {
		return []error{fileconfig.Errorf(key+"_file", "the token file %s is empty; an empty token would turn authentication off", w.AuthTokenFile)}
	}
	if strings.ContainsAny(tok.Value(), " \t\r\n") {
		return []error{fileconfig.Errorf(key, "must not contain whitespace (it is sent as one bearer token)")}
	}
	w.AuthToken = tok
	return nil
}

func (c *Config) validateRoute(r Route, key string, isDefault bool) []error {
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, fileconfig.Errorf(key, format, args...)) }
	if isDefault && len(r.Matchers) > 0 {
		add(key+".matchers", "the default route takes everything else and cannot have matchers")
	}
	for j, s := range r.Matchers {
		ms, err := labels.ParseMatchers(s)
		if err == nil && len(ms) == 0 {
			err = fmt.Errorf("no matcher in %q", s)
		}
		if err != nil {
			add(fmt.Sprintf("%s.matchers[%d]", key, j), "invalid matcher %q: %v (use Alertmanager syntax such as severity=\"critical\" or route=~\"/v1/.*\")", s, err)
		}
	}
	if len(r.Channels) == 0 {
		add(key+".channels", "must list at least one channel")
	}
	for _, list := range []struct {
		name string
		vals []string
	}{{"channels", r.Channels}, {"fallback", r.Fallback}} {
		seen := map[string]bool{}
		for j, ch := range list.vals {
			k := fmt.Sprintf("%s.%s[%d]", key, list.name, j)
			if _, ok := c.Channels[ch]; !ok {
				add(k, "channel %q is not defined under receiver.channels", ch)
			}
			if seen[ch] {
				add(k, "channel %q listed twice", ch)
			}
			seen[ch] = true
		}
	}
	if r.EscalateAfter < 0 {
		add(key+".escalate_after", "must be >= 0, got %s", r.EscalateAfter)
	}
	if r.EscalateAfter > 0 && len(r.Fallback) == 0 {
		add(key+".escalate_after", "is set but the route has no fallback channels to escalate to")
	}
	if r.EscalateAfterFailures < 0 {
		add(key+".escalate_after_failures", "must be >= 0, got %d", r.EscalateAfterFailures)
	}
	return errs
}

// errNoType is reported for a channel without type.
var errNoType = errors.New("is required: one of " + chanconf.OrList(ChannelTypes))

// CheckWebConfig rejects a bearer token together with basic auth from
// --web.config.file: both travel in the Authorization header, so no request
// could carry both and every webhook would be refused.
func (c *Config) CheckWebConfig(path string) error {
	if path == "" || c.AuthToken() == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read web config: %w", err)
	}
	var web struct {
		BasicAuthUsers map[string]string `yaml:"basic_auth_users"`
	}
	if err := yaml.Unmarshal(b, &web); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(web.BasicAuthUsers) > 0 {
		return fmt.Errorf("%s sets basic_auth_users and receiver.webhook.auth_token is set too: both use the Authorization header, so no request could pass; use one of them", path)
	}
	return nil
}
