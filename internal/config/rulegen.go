package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"time"

	promconfig "github.com/prometheus/common/config"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// Rulegen is the "rulegen:" section. Its keys are documented in rulegen/README.md.
type Rulegen struct {
	// Prometheus is the Prometheus-compatible query API history is read from.
	Prometheus RulegenQuery `yaml:"prometheus"`
	// History is how far back each fit looks.
	History Duration `yaml:"history"`
	// Step is the resolution of the history.
	Step Duration `yaml:"step"`
	// RefitInterval is how often baselines are fitted and rules rewritten.
	RefitInterval Duration `yaml:"refit_interval"`
	// Mode is how thresholds reach Prometheus: "series" (gauges on rulegen's
	// /metrics that the rules compare against) or "literal" (numbers baked into the rules).
	Mode string `yaml:"mode"`
	// K is the band half-width in robust standard deviations (higher: fewer, later alerts).
	K float64 `yaml:"k"`
	// MinTraffic is the request rate (req/s) below which no baseline alert fires.
	MinTraffic float64 `yaml:"min_traffic"`
	// For is how long a condition must hold before a baseline alert fires when
	// the model has no policy of its own (no history).
	For Duration `yaml:"for"`
	// ConfirmWindow is the long window of the multi-window confirmation.
	ConfirmWindow Duration `yaml:"confirm_window"`
	// MaxSeries bounds the series read per SLI and so the series generated.
	MaxSeries int `yaml:"max_series"`
	// ExporterJob is the scrape job of autoglm-exporter (for the exporter-down alert and inhibitions).
	ExporterJob string `yaml:"exporter_job"`
	// IncidentWindows are past incidents kept out of the training data.
	IncidentWindows []IncidentWindow `yaml:"incident_windows"`
	// SLIs enables SLIs and sets their static fallback limits, keyed by SLI name.
	SLIs map[string]RulegenSLI `yaml:"slis"`
	// Output says where rules go.
	Output RulegenOutput `yaml:"output"`
	// SlothSpecs are Sloth prometheus/v1 SLO spec files (relative to this file).
	SlothSpecs []string `yaml:"sloth_specs"`
	// SlothWindow is the SLO period of Sloth specs, which carry none (Sloth's --default-slo-period).
	SlothWindow Duration `yaml:"sloth_window"`
	// Forecast configures capacity forecasts of request rates.
	Forecast RulegenForecast `yaml:"forecast"`
}

// RulegenForecast configures the capacity forecasts.
type RulegenForecast struct {
	// Enabled defaults to true.
	Enabled *bool `yaml:"enabled"`
	// Lead is how far ahead AutoGLMCapacityForecast looks (default 6h, at most 24h).
	Lead Duration `yaml:"lead"`
}

// RulegenQuery is the query API rulegen reads history from.
type RulegenQuery struct {
	// URL is the API root (http://prometheus:9090, a Thanos querier, Mimir's
	// http://mimir/prometheus, VictoriaMetrics' http://vm:8428).
	URL string `yaml:"url"`
	// HTTP brings basic_auth, authorization, tls_config, proxy and headers. It
	// is a named field, not embedded: embedding would promote the library's
	// UnmarshalYAML to this struct and hide our own keys from strict decoding.
	HTTP promconfig.HTTPClientConfig `yaml:",inline"`
	// ChunkSize is the time span of one range query; it is shortened so one
	// series never exceeds 11,000 points per query.
	ChunkSize Duration `yaml:"chunk_size"`
	// Parallelism bounds the range queries in flight.
	Parallelism int `yaml:"parallelism"`
	// Timeout bounds one query.
	Timeout Duration `yaml:"timeout"`
	// Retries is how often a failed query is retried (with exponential backoff).
	Retries int `yaml:"retries"`
}

// IncidentWindow is a past incident excluded from training.
type IncidentWindow struct {
	Start time.Time `yaml:"start"`
	End   time.Time `yaml:"end"`
}

// RulegenSLI configures one SLI.
type RulegenSLI struct {
	// Enabled defaults to true.
	Enabled *bool `yaml:"enabled"`
	// StaticUpper and StaticLower are the limits used when no baseline is
	// available (no history, or the baseline series are stale).
	StaticUpper *float64 `yaml:"static_upper"`
	StaticLower *float64 `yaml:"static_lower"`
}

// RulegenOutput are the rule targets; any combination may be set.
type RulegenOutput struct {
	// RecordingRules includes the SLI recording rules; turn it off when the
	// mixin's copy of the same rules is already loaded.
	RecordingRules bool `yaml:"recording_rules"`
	// RuleDir receives *.rules.yml files (point Prometheus' rule_files at it).
	RuleDir string `yaml:"rule_dir"`
	// ReloadURL is POSTed after rules changed (http://prometheus:9090/-/reload).
	ReloadURL string `yaml:"reload_url"`
	// PrometheusRule writes a prometheus-operator PrometheusRule object.
	PrometheusRule PrometheusRuleOutput `yaml:"prometheusrule"`
	// MimirRuler pushes rule groups to a Mimir/Cortex ruler.
	MimirRuler MimirRulerOutput `yaml:"mimir_ruler"`
	// Kubernetes applies the rules through the API server.
	Kubernetes KubernetesRulesOutput `yaml:"kubernetes"`
}

// KubernetesRulesOutput writes the rules as a PrometheusRule or a ConfigMap
// with server-side apply.
type KubernetesRulesOutput struct {
	// Kind is "prometheusrule" or "configmap"; empty turns this output off.
	Kind string `yaml:"kind"`
	// Name of the object; default autoglm-rulegen.
	Name string `yaml:"name"`
	// Namespace of the object; default the pod's own namespace.
	Namespace string `yaml:"namespace"`
	// Labels make the object found (e.g. the prometheus-operator's ruleSelector).
	Labels map[string]string `yaml:"labels"`
	// Kubeconfig reaches the API server from outside a pod; default the pod's service account.
	Kubeconfig string `yaml:"kubeconfig"`
}

// PrometheusRuleOutput is a PrometheusRule YAML file.
type PrometheusRuleOutput struct {
	Path      string            `yaml:"path"`
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

// MimirRulerOutput is a Mimir/Cortex ruler API.
type MimirRulerOutput struct {
	URL       string `yaml:"url"`
	Tenant    string `yaml:"tenant"`
	Namespace string `yaml:"namespace"`
	// HTTP brings auth and TLS for the ruler (a named field, see RulegenQuery.HTTP).
	HTTP promconfig.HTTPClientConfig `yaml:",inline"`
}

// Enabled reports whether the SLI named name is enabled.
func (c Rulegen) Enabled(name string) bool {
	s, ok := c.SLIs[name]
	if !ok || s.Enabled == nil {
		return true
	}
	return *s.Enabled
}

// Rulegen modes.
const (
	ModeSeries  = "series"
	ModeLiteral = "literal"
)

// MaxPointsPerQuery is the per-series point limit of Prometheus' range query API.
const MaxPointsPerQuery = 11000

func defaultRulegen() Rulegen {
	return Rulegen{
		Prometheus: RulegenQuery{
			URL:         "http://127.0.0.1:9090",
			HTTP:        promconfig.DefaultHTTPClientConfig,
			ChunkSize:   Duration(24 * time.Hour),
			Parallelism: 4,
			Timeout:     Duration(2 * time.Minute),
			Retries:     3,
		},
		History:       Duration(6 * 7 * 24 * time.Hour),
		Step:          Duration(time.Minute),
		RefitInterval: Duration(time.Hour),
		Mode:          ModeSeries,
		K:             4,
		MinTraffic:    0.1,
		For:           Duration(5 * time.Minute),
		ConfirmWindow: Duration(time.Hour),
		MaxSeries:     1000,
		ExporterJob:   "autoglm-exporter",
		SlothWindow:   DefaultSLOWindow,
		Forecast:      RulegenForecast{Lead: Duration(6 * time.Hour)},
		Output: RulegenOutput{
			RecordingRules: true,
			MimirRuler:     MimirRulerOutput{HTTP: promconfig.DefaultHTTPClientConfig},
		},
	}
}

func validURL(key, raw string, required bool) error {
	if raw == "" {
		if required {
			return Errorf(key, "must be set")
		}
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Errorf(key, "must be an http(s) URL with a host, got %q", raw)
	}
	if u.User != nil {
		return Errorf(key, "must not carry credentials; use basic_auth or authorization instead")
	}
	return nil
}

func (c Rulegen) validate(f *File) []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(validURL("rulegen.prometheus.url", c.Prometheus.URL, true))
	if err := c.Prometheus.HTTP.Validate(); err != nil {
		add(Errorf("rulegen.prometheus", "invalid HTTP client settings: %v", err))
	}
	if c.Step <= 0 {
		add(Errorf("rulegen.step", "must be a positive duration, got %s", c.Step))
	}
	if c.History <= 0 {
		add(Errorf("rulegen.history", "must be a positive duration, got %s", c.History))
	} else if c.Step > 0 && c.History < c.Step {
		add(Errorf("rulegen.history", "must be at least one step (%s), got %s", c.Step, c.History))
	}
	if c.RefitInterval < Duration(time.Minute) {
		add(Errorf("rulegen.refit_interval", "must be at least 1m, got %s", c.RefitInterval))
	}
	if c.Prometheus.ChunkSize <= 0 {
		add(Errorf("rulegen.prometheus.chunk_size", "must be a positive duration, got %s", c.Prometheus.ChunkSize))
	} else if c.Step > 0 && c.Prometheus.ChunkSize < c.Step {
		add(Errorf("rulegen.prometheus.chunk_size", "must be at least one step (%s), got %s", c.Step, c.Prometheus.ChunkSize))
	}
	if c.Prometheus.Parallelism < 1 || c.Prometheus.Parallelism > 64 {
		add(Errorf("rulegen.prometheus.parallelism", "must be within [1, 64], got %d", c.Prometheus.Parallelism))
	}
	if c.Prometheus.Timeout <= 0 {
		add(Errorf("rulegen.prometheus.timeout", "must be a positive duration, got %s", c.Prometheus.Timeout))
	}
	if c.Prometheus.Retries < 0 || c.Prometheus.Retries > 20 {
		add(Errorf("rulegen.prometheus.retries", "must be within [0, 20], got %d", c.Prometheus.Retries))
	}
	if c.Mode != ModeSeries && c.Mode != ModeLiteral {
		add(Errorf("rulegen.mode", "must be %q or %q, got %q", ModeSeries, ModeLiteral, c.Mode))
	}
	if !(c.K > 0 && c.K <= 10) {
		add(Errorf("rulegen.k", "must be within (0, 10], got %g", c.K))
	}
	if c.MinTraffic < 0 {
		add(Errorf("rulegen.min_traffic", "must be >= 0 requests per second, got %g", c.MinTraffic))
	}
	if c.For < 0 {
		add(Errorf("rulegen.for", "must be >= 0, got %s", c.For))
	}
	if c.ConfirmWindow < Duration(time.Minute) {
		add(Errorf("rulegen.confirm_window", "must be at least 1m, got %s", c.ConfirmWindow))
	}
	if c.MaxSeries < 1 || c.MaxSeries > 100000 {
		add(Errorf("rulegen.max_series", "must be within [1, 100000], got %d", c.MaxSeries))
	}
	if c.ExporterJob == "" {
		add(Errorf("rulegen.exporter_job", "must be set"))
	}
	for i, w := range c.IncidentWindows {
		key := fmt.Sprintf("rulegen.incident_windows[%d]", i)
		if w.Start.IsZero() || w.End.IsZero() {
			add(Errorf(key, "needs both start and end (RFC 3339 timestamps)"))
			continue
		}
		if !w.End.After(w.Start) {
			add(Errorf(key+".end", "must be after start (%s), got %s", w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339)))
		}
	}
	known := make(map[string]sli.SLI)
	for _, s := range sli.SLIs() {
		known[s.Name] = s
	}
	names := make([]string, 0, len(c.SLIs))
	for name := range c.SLIs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := c.SLIs[name]
		key := "rulegen.slis." + name
		def, ok := known[name]
		if !ok {
			add(Errorf(key, "unknown SLI %q (known: %s)", name, knownSLINames()))
			continue
		}
		if s.StaticUpper != nil && *s.StaticUpper < 0 {
			add(Errorf(key+".static_upper", "must be >= 0, got %g", *s.StaticUpper))
		}
		if s.StaticLower != nil && *s.StaticLower < 0 {
			add(Errorf(key+".static_lower", "must be >= 0, got %g", *s.StaticLower))
		}
		if def.Kind == sli.KindRatio && s.StaticUpper != nil && *s.StaticUpper > 1 {
			add(Errorf(key+".static_upper", "is a ratio and must be within [0, 1], got %g", *s.StaticUpper))
		}
		if s.StaticUpper != nil && s.StaticLower != nil && *s.StaticLower >= *s.StaticUpper {
			add(Errorf(key+".static_lower", "must be below static_upper (%g), got %g", *s.StaticUpper, *s.StaticLower))
		}
	}
	errs = append(errs, c.Output.validate(f)...)
	for i, p := range c.SlothSpecs {
		if p == "" {
			add(Errorf(fmt.Sprintf("rulegen.sloth_specs[%d]", i), "must be a file path"))
		}
	}
	if c.SlothWindow < Duration(7*24*time.Hour) || c.SlothWindow > Duration(90*24*time.Hour) {
		add(Errorf("rulegen.sloth_window", "must be within [7d, 90d], got %s", c.SlothWindow))
	}
	if c.Forecast.Lead < Duration(time.Hour) || c.Forecast.Lead > Duration(24*time.Hour) {
		add(Errorf("rulegen.forecast.lead", "must be within [1h, 24h] (forecasts reach 24h ahead), got %s", c.Forecast.Lead))
	}
	return errs
}

func knownSLINames() string {
	out := ""
	for i, s := range sli.SLIs() {
		if i > 0 {
			out += ", "
		}
		out += s.Name
	}
	return out
}

func (o RulegenOutput) validate(_ *File) []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(validURL("rulegen.output.reload_url", o.ReloadURL, false))
	if o.ReloadURL != "" && o.RuleDir == "" {
		add(Errorf("rulegen.output.reload_url", "needs rulegen.output.rule_dir: only rule files written there are reloaded"))
	}
	if o.RuleDir != "" && !filepath.IsAbs(o.RuleDir) && filepath.Clean(o.RuleDir) == ".." {
		add(Errorf("rulegen.output.rule_dir", "must be a directory of its own, got %q", o.RuleDir))
	}
	pr := o.PrometheusRule
	if pr.Path != "" {
		if pr.Namespace == "" {
			add(Errorf("rulegen.output.prometheusrule.namespace", "must be set when prometheusrule.path is set"))
		}
		if pr.Name != "" && !dnsLabel(pr.Name) {
			add(Errorf("rulegen.output.prometheusrule.name", "must be a DNS-1123 name, got %q", pr.Name))
		}
	} else if pr.Namespace != "" || pr.Name != "" || len(pr.Labels) > 0 {
		add(Errorf("rulegen.output.prometheusrule.path", "must be set when other prometheusrule keys are"))
	}
	mr := o.MimirRuler
	if mr.URL != "" {
		add(validURL("rulegen.output.mimir_ruler.url", mr.URL, true))
		if mr.Namespace == "" {
			add(Errorf("rulegen.output.mimir_ruler.namespace", "must be set when mimir_ruler.url is set"))
		}
		if err := mr.HTTP.Validate(); err != nil {
			add(Errorf("rulegen.output.mimir_ruler", "invalid HTTP client settings: %v", err))
		}
	} else if mr.Tenant != "" || mr.Namespace != "" {
		add(Errorf("rulegen.output.mimir_ruler.url", "must be set when other mimir_ruler keys are"))
	}
	k := o.Kubernetes
	switch k.Kind {
	case "prometheusrule", "configmap":
		if k.Name != "" && !dnsLabel(k.Name) {
			add(Errorf("rulegen.output.kubernetes.name", "must be a DNS-1123 name, got %q", k.Name))
		}
		if k.Namespace != "" && !dnsLabel(k.Namespace) {
			add(Errorf("rulegen.output.kubernetes.namespace", "must be a DNS-1123 name, got %q", k.Namespace))
		}
	case "":
		if k.Name != "" || k.Namespace != "" || len(k.Labels) > 0 || k.Kubeconfig != "" {
			add(Errorf("rulegen.output.kubernetes.kind", "must be set when other kubernetes keys are"))
		}
	default:
		add(Errorf("rulegen.output.kubernetes.kind", "must be prometheusrule or configmap, got %q", k.Kind))
	}
	return errs
}

func dnsLabel(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case (r == '-' || r == '.') && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// ForecastEnabled reports whether capacity forecasts are on (default true).
func (c Rulegen) ForecastEnabled() bool {
	return c.Forecast.Enabled == nil || *c.Forecast.Enabled
}

// SlothSpecPaths resolves sloth_specs against the config file's directory.
func (f *File) SlothSpecPaths() []string {
	out := make([]string, 0, len(f.Rulegen.SlothSpecs))
	for _, p := range f.Rulegen.SlothSpecs {
		if !filepath.IsAbs(p) && f.path != "" {
			p = filepath.Join(filepath.Dir(f.path), p)
		}
		out = append(out, p)
	}
	return out
}
