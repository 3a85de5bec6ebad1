// Package silence creates Alertmanager silences through Alertmanager's v2
// API, with Alertmanager's own generated client and models (the ones amtool
// uses). A silence covers one alert group: an equality matcher per group
// label. An identical silence that is still active and lasts at least as
// long is reused, so a link followed twice silences once.
package silence

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"sort"
	"time"

	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	amclient "github.com/prometheus/alertmanager/api/v2/client"
	amsilence "github.com/prometheus/alertmanager/api/v2/client/silence"
	"github.com/prometheus/alertmanager/api/v2/models"

	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanconf"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
)

// Config is the receiver.silences section.
type Config struct {
	// Alertmanagers are the base URLs of the Alertmanagers (one cluster:
	// silences gossip, so the first that answers takes it).
	Alertmanagers []string `yaml:"alertmanagers"`
	// HTTP is the request timeout and Prometheus' http_config (basic auth,
	// bearer credentials, TLS, proxy) for talking to Alertmanager.
	HTTP chanhttp.Settings `yaml:",inline"`
}

// Enabled reports whether silences can be created.
func (c *Config) Enabled() bool { return c != nil && len(c.Alertmanagers) > 0 }

// Validate checks the section; key is its dotted path.
func (c *Config) Validate(key string, f *fileconfig.File) error {
	if c == nil {
		return nil
	}
	chk := chanconf.New(key, f)
	if len(c.Alertmanagers) == 0 {
		chk.Add("alertmanagers", "must list at least one Alertmanager, such as http://alertmanager:9093")
	}
	for i, raw := range c.Alertmanagers {
		k := fmt.Sprintf("alertmanagers[%d]", i)
		u, err := url.Parse(raw)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			chk.Add(k, "must be an http(s) URL of an Alertmanager, such as http://alertmanager:9093")
		case u.User != nil || u.RawQuery != "":
			chk.Add(k, "must not carry credentials or a query; use http_config")
		}
	}
	c.HTTP.Validate(chk)
	return chk.Err()
}

// Secrets are the credentials of the HTTP configuration, for the redactor.
func (c *Config) Secrets() []string { return c.HTTP.Secrets() }

// Client creates silences.
type Client struct {
	apis    []*amclient.AlertmanagerAPI
	targets []string
	timeout time.Duration
}

// New builds a client from a validated section.
func New(c *Config) (*Client, error) {
	hc, err := c.HTTP.Client("autoglm-receiver")
	if err != nil {
		return nil, fmt.Errorf("silences http_config: %w", err)
	}
	return NewWithHTTPClient(c.Alertmanagers, hc, c.HTTP.RequestTimeout())
}

// NewWithHTTPClient builds a client over hc for the given Alertmanager base URLs.
func NewWithHTTPClient(alertmanagers []string, hc *http.Client, timeout time.Duration) (*Client, error) {
	if len(alertmanagers) == 0 {
		return nil, errors.New("no Alertmanager to create silences in")
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	cl := &Client{timeout: timeout}
	for _, raw := range alertmanagers {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("alertmanager URL %s is invalid", chanhttp.Redact(raw))
		}
		tr := httptransport.NewWithClient(u.Host, path.Join("/", u.Path, amclient.DefaultBasePath), []string{u.Scheme}, hc)
		cl.apis = append(cl.apis, amclient.New(tr, strfmt.Default))
		cl.targets = append(cl.targets, chanhttp.Redact(raw))
	}
	return cl, nil
}

// Request is a silence to create.
type Request struct {
	// Labels identify the group (each becomes an equality matcher). Must not be empty.
	Labels    map[string]string
	Duration  time.Duration
	CreatedBy string
	Comment   string
	Now       time.Time
}

// Result says which silence now covers the group.
type Result struct {
	ID           string
	Alertmanager string
	EndsAt       time.Time
	// Reused is true when an identical active silence already lasted long enough.
	Reused bool
}

// Matchers are the silence's matchers for a group's labels, sorted by name.
func Matchers(labels map[string]string) models.Matchers {
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	sort.Strings(names)
	ms := make(models.Matchers, 0, len(names))
	for _, n := range names {
		name, value, f, t := n, labels[n], false, true
		ms = append(ms, &models.Matcher{Name: &name, Value: &value, IsRegex: &f, IsEqual: &t})
	}
	return ms
}

func sameMatchers(a, b models.Matchers) bool {
	if len(a) != len(b) {
		return false
	}
	key := func(ms models.Matchers) []string {
		out := make([]string, 0, len(ms))
		for _, m := range ms {
			eq := m.IsEqual == nil || *m.IsEqual
			out = append(out, fmt.Sprintf("%s\x00%s\x00%t\x00%t", *m.Name, *m.Value, *m.IsRegex, eq))
		}
		sort.Strings(out)
		return out
	}
	ka, kb := key(a), key(b)
	for i := range ka {
		if ka[i] != kb[i] {
			return false
		}
	}
	return true
}

// ErrNoLabels refuses a silence that would match every alert.
var ErrNoLabels = errors.New("the group has no labels to silence by; refusing a silence that would match every alert")

// Create silences the group in the first Alertmanager that answers.
func (c *Client) Create(ctx context.Context, r Request) (Result, error) {
	if len(r.Labels) == 0 {
		return Result{}, ErrNoLabels
	}
	if r.Duration <= 0 {
		return Result{}, fmt.Errorf("silence duration %s must be positive", r.Duration)
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	ms := Matchers(r.Labels)
	ends := r.Now.Add(r.Duration)
	var errs []error
	for i, api := range c.apis {
		res, err := c.create(ctx, api, ms, r, ends)
		if err == nil {
			res.Alertmanager = c.targets[i]
			return res, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.targets[i], err))
	}
	return Result{}, errors.Join(errs...)
}

func (c *Client) create(ctx context.Context, api *amclient.AlertmanagerAPI, ms models.Matchers, r Request, ends time.Time) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// Filters narrow the list on the server; matchers are compared exactly here.
	filter := make([]string, 0, len(ms))
	for _, m := range ms {
		filter = append(filter, fmt.Sprintf("%s=%q", *m.Name, *m.Value))
	}
	got, err := api.Silence.GetSilences(amsilence.NewGetSilencesParamsWithContext(ctx).WithFilter(filter))
	if err != nil {
		return Result{}, fmt.Errorf("list silences: %w", unwrap(err))
	}
	for _, s := range got.Payload {
		if s.Status == nil || s.Status.State == nil || *s.Status.State != models.SilenceStatusStateActive || s.EndsAt == nil || s.ID == nil {
			continue
		}
		// One minute of slack: a second click a few seconds later is the same intent.
		if sameMatchers(s.Matchers, ms) && !time.Time(*s.EndsAt).Before(ends.Add(-time.Minute)) {
			return Result{ID: *s.ID, EndsAt: time.Time(*s.EndsAt), Reused: true}, nil
		}
	}
	starts, end := strfmt.DateTime(r.Now), strfmt.DateTime(ends)
	createdBy, comment := r.CreatedBy, r.Comment
	ps := &models.PostableSilence{Silence: models.Silence{
		Matchers: ms, StartsAt: &starts, EndsAt: &end, CreatedBy: &createdBy, Comment: &comment,
	}}
	if err := ps.Validate(strfmt.Default); err != nil {
		return Result{}, fmt.Errorf("silence is invalid: %w", err)
	}
	ok, err := api.Silence.PostSilences(amsilence.NewPostSilencesParamsWithContext(ctx).WithSilence(ps))
	if err != nil {
		return Result{}, fmt.Errorf("create silence: %w", unwrap(err))
	}
	return Result{ID: ok.Payload.SilenceID, EndsAt: ends}, nil
}

// unwrap drops the request URL that net/http puts in transport errors.
func unwrap(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
