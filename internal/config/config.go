// Package config loads the one YAML file shared by every Open-AutoGLM binary.
//
// Each part reads its own section (exporter, rulegen, receiver) plus the shared
// metrics and alert_rules sections. Decoding is strict: an unknown key or a bad
// value fails with the file, line and key, so a typo never silently changes
// what the monitor does. The receiver's section is decoded by receiver/config
// through Decode and Locate, so binaries that deliver no notifications do not
// link the receiver's dependencies.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// File is the whole configuration file.
type File struct {
	Metrics    Metrics    `yaml:"metrics"`
	AlertRules AlertRules `yaml:"alert_rules"`
	Exporter   Exporter   `yaml:"exporter"`
	Rulegen    Rulegen    `yaml:"rulegen"`
	// Receiver is kept as parsed YAML: receiver/config owns its keys and
	// decodes it strictly with Decode.
	Receiver yaml.Node `yaml:"receiver"`
	// SLOs are the service level objectives rulegen writes rules for (slo.go).
	SLOs []SLO `yaml:"slos"`

	// path is where the file was read from; relative *_file paths resolve against its directory.
	path string
	// raw and root are the file's bytes and document, for sections decoded
	// elsewhere and for locating their errors.
	raw  []byte
	root *yaml.Node
}

// Path returns the file the configuration was loaded from ("" when parsed from memory).
func (f *File) Path() string { return f.path }

// Metrics is the shared "metrics:" section.
type Metrics struct {
	// Interval is how often sources are collected and baselines sampled.
	Interval Duration `yaml:"interval"`
	// Endpoints are the routes that get their own http_route label value;
	// templates such as /v1/models/{model} are allowed. Everything else is "other".
	Endpoints []string `yaml:"endpoints"`
}

// AlertRules is the shared "alert_rules:" section.
type AlertRules struct {
	// QPSThreshold is the per-instance request rate above which an alert fires.
	QPSThreshold float64 `yaml:"qps_threshold"`
	// ErrorRate is the error ratio (0..1) above which a warning fires.
	ErrorRate float64 `yaml:"error_rate"`
	// Cooldown is how long an alert keeps firing after its condition clears.
	Cooldown Seconds `yaml:"cooldown"`
}

// Defaults mirror the example file of the product specification.
func defaults() File {
	return File{
		Metrics: Metrics{
			Interval:  Duration(10 * time.Second),
			Endpoints: []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/generate"},
		},
		AlertRules: AlertRules{QPSThreshold: 5000, ErrorRate: 0.05, Cooldown: Seconds(300 * time.Second)},
		Exporter:   defaultExporter(),
		Rulegen:    defaultRulegen(),
	}
}

// Load reads and validates the file at path. An empty path yields the defaults.
func Load(path string) (*File, error) {
	if path == "" {
		f := defaults()
		if err := f.validate(); err != nil {
			return nil, err
		}
		return &f, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	f, err := parse(b, path)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Parse decodes configuration from memory; name is used in error messages.
func Parse(b []byte, name string) (*File, error) { return parse(b, name) }

func parse(b []byte, name string) (*File, error) {
	f := defaults()
	// Lists given in the file replace the defaults rather than merging into them.
	f.Metrics.Endpoints = nil
	f.path = name
	f.raw = b
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, cleanYAMLError(err))
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", name, cleanYAMLError(err))
	}
	if f.Metrics.Endpoints == nil && lookup(&root, "metrics.endpoints") == nil {
		f.Metrics.Endpoints = defaults().Metrics.Endpoints
	}
	f.root = &root
	if err := f.validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

func (f *File) validate() error {
	var errs []error
	errs = append(errs, f.Metrics.validate()...)
	errs = append(errs, f.AlertRules.validate()...)
	errs = append(errs, f.Exporter.validate(f)...)
	errs = append(errs, f.Rulegen.validate(f)...)
	errs = append(errs, validateSLOs(f)...)
	return f.Locate(errs...)
}

// Decode decodes the whole file again, strictly, into out: a struct that
// names the section it owns and collects the other top-level keys in an
// inline map, so unknown keys inside that section fail with file and line
// as they do in Load. A file loaded from no path decodes to nothing.
func (f *File) Decode(out any) error {
	if len(f.raw) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(f.raw))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", f.path, cleanYAMLError(err))
	}
	return nil
}

// Locate joins validation errors, naming the file in each and the line of
// each FieldError's key (or of its nearest existing parent, for a missing
// key). Joined errors are flattened.
func (f *File) Locate(errs ...error) error {
	var out []error
	var add func(err error)
	add = func(err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				add(e)
			}
			return
		}
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.File = f.path
			if f.root != nil && fe.Line == 0 {
				for k := fe.Key; k != ""; k = parentKey(k) {
					if n := lookup(f.root, k); n != nil {
						fe.Line = n.Line
						break
					}
				}
			}
			out = append(out, fe)
			return
		}
		out = append(out, fmt.Errorf("%s: %w", f.path, err))
	}
	for _, err := range errs {
		add(err)
	}
	return errors.Join(out...)
}

func (m Metrics) validate() []error {
	var errs []error
	if m.Interval <= 0 {
		errs = append(errs, Errorf("metrics.interval", "must be a positive duration, got %s", m.Interval))
	}
	seen := make(map[string]bool, len(m.Endpoints))
	for i, e := range m.Endpoints {
		key := fmt.Sprintf("metrics.endpoints[%d]", i)
		if !strings.HasPrefix(e, "/") {
			errs = append(errs, Errorf(key, "route %q must start with /", e))
		}
		if seen[e] {
			errs = append(errs, Errorf(key, "route %q listed twice", e))
		}
		seen[e] = true
	}
	return errs
}

func (a AlertRules) validate() []error {
	var errs []error
	if a.QPSThreshold < 0 {
		errs = append(errs, Errorf("alert_rules.qps_threshold", "must be >= 0, got %g", a.QPSThreshold))
	}
	if a.ErrorRate < 0 || a.ErrorRate > 1 {
		errs = append(errs, Errorf("alert_rules.error_rate", "is a ratio and must be within [0, 1], got %g", a.ErrorRate))
	}
	if a.Cooldown < 0 {
		errs = append(errs, Errorf("alert_rules.cooldown", "must be >= 0, got %s", time.Duration(a.Cooldown)))
	}
	return errs
}

// FieldError is a validation failure located in the file.
type FieldError struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *FieldError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if loc != "" {
		loc += ": "
	}
	return fmt.Sprintf("%s%s: %s", loc, e.Key, e.Msg)
}

// Errorf returns a FieldError for key (a dotted path such as
// "receiver.routes[0].escalate_after"); the loader fills in file and line.
func Errorf(key, format string, args ...any) error {
	return &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// lookup finds the node of a dotted key path ("a.b[2].c") in a document.
func lookup(root *yaml.Node, path string) *yaml.Node {
	n := root
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, part := range splitPath(path) {
		if n == nil {
			return nil
		}
		if idx, ok := part.index(); ok {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return nil
			}
			n = n.Content[idx]
			continue
		}
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == string(part) {
				next = n.Content[i+1]
				break
			}
		}
		n = next
	}
	return n
}

// parentKey drops the last segment of a key path ("a.b[1]" → "a.b", "a.b" → "a").
func parentKey(key string) string {
	i := strings.LastIndexAny(key, ".[")
	if i < 0 {
		return ""
	}
	return key[:i]
}

type pathPart string

func (p pathPart) index() (int, bool) {
	s := string(p)
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") {
		return 0, false
	}
	i, err := strconv.Atoi(s[1 : len(s)-1])
	return i, err == nil
}

func splitPath(path string) []pathPart {
	var out []pathPart
	for _, seg := range strings.Split(path, ".") {
		for seg != "" {
			i := strings.IndexByte(seg, '[')
			if i < 0 {
				out = append(out, pathPart(seg))
				break
			}
			if i > 0 {
				out = append(out, pathPart(seg[:i]))
			}
			j := strings.IndexByte(seg, ']')
			if j < i {
				out = append(out, pathPart(seg[i:]))
				break
			}
			out = append(out, pathPart(seg[i:j+1]))
			seg = seg[j+1:]
		}
	}
	return out
}

// cleanYAMLError turns yaml.v3's "yaml: unmarshal errors:\n  line 3: ..." into one readable line.
func cleanYAMLError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = strings.TrimPrefix(msg, "yaml: ")
	lines := strings.Split(msg, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return errors.New(strings.Join(lines, "; "))
}
