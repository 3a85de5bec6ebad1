package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// Duration accepts Prometheus duration strings ("10s", "5m", "1d", "2w").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := model.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q: use a number with a unit such as 30s, 5m or 1h", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

func (d Duration) String() string { return model.Duration(d).String() }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Seconds accepts a bare number of seconds (as in "cooldown: 300") or a duration string.
type Seconds time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Seconds) UnmarshalYAML(n *yaml.Node) error {
	if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
		*s = Seconds(time.Duration(f * float64(time.Second)))
		return nil
	}
	v, err := model.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q: use seconds (300) or a duration such as 5m", n.Line, n.Value)
	}
	*s = Seconds(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (s Seconds) MarshalYAML() (any, error) { return time.Duration(s).Seconds(), nil }

// D returns the value as a time.Duration.
func (s Seconds) D() time.Duration { return time.Duration(s) }

// Secret is a string that never prints: String, fmt verbs, YAML and JSON
// output all show "<secret>". Use Value to read it.
type Secret string

const redacted = "<secret>"

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from leaking the value.
func (s Secret) GoString() string { return s.String() }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.String())), nil }

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// ResolveSecret returns inline if set, else the trimmed contents of file
// (relative to the config file's directory). Setting both is an error, and
// read errors name the key and path but never the content.
func (f *File) ResolveSecret(key string, inline Secret, file string) (Secret, error) {
	if inline != "" && file != "" {
		return "", Errorf(key, "set either %s or %s_file, not both", lastKey(key), lastKey(key))
	}
	if file == "" {
		return inline, nil
	}
	p := file
	if !filepath.IsAbs(p) && f != nil && f.path != "" {
		p = filepath.Join(filepath.Dir(f.path), p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", Errorf(key+"_file", "cannot read secret file %s: %v", p, unwrapPathError(err))
	}
	return Secret(strings.TrimSpace(string(b))), nil
}

func lastKey(key string) string {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[i+1:]
	}
	return key
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
