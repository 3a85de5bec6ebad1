package tmpl

import (
	"slices"
	"strings"
	"text/template"

	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
)

// Config is the template part of every channel's configuration.
type Config struct {
	// Language of the built-in templates: zh (default) or en.
	Language string `yaml:"language"`
	// Templates override built-in templates by name (see Names).
	Templates map[string]string `yaml:"templates"`
}

// Validate checks the language and parses every override with the same
// functions rendering uses; errors are keyed under key.
func (c Config) Validate(key string) []error {
	var errs []error
	switch c.Language {
	case "", "zh", "en":
	default:
		errs = append(errs, fileconfig.Errorf(key+".language", "must be zh or en, got %q", c.Language))
	}
	names := make([]string, 0, len(c.Templates))
	for n := range c.Templates {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		k := key + ".templates." + name
		if !slices.Contains(Names, name) {
			errs = append(errs, fileconfig.Errorf(k, "unknown template %q; known: %s", name, strings.Join(Names, ", ")))
			continue
		}
		if err := Check(name, c.Templates[name]); err != nil {
			errs = append(errs, fileconfig.Errorf(k, "does not parse: %v", err))
		}
	}
	return errs
}

// Check parses text as a template with the receiver's functions. The error
// names the position but never echoes template text, which may hold a token.
func Check(name, text string) error {
	_, err := template.New(name).Option("missingkey=zero").Funcs(New(Options{}).funcs).Parse(text)
	if err == nil {
		return nil
	}
	return parseErrorPosition(err)
}

type positionError string

func (e positionError) Error() string { return string(e) }

// parseErrorPosition keeps "template: name:1: unexpected ..." and drops the
// quoted template text some parse errors append.
func parseErrorPosition(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, " in "); i > 0 {
		msg = msg[:i]
	}
	return positionError(msg)
}

// New returns the channel's templates; report receives custom templates that failed.
func (c Config) New(report Reporter) *Templates {
	return New(Options{Language: c.Language, Overrides: c.Templates, Reporter: report})
}
