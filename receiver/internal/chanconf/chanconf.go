// Package chanconf checks channel configurations: it collects errors under
// the channel's key (so the loader can name file, line and key), resolves
// inline-or-file secrets, and checks URLs and phone numbers without ever
// echoing a value that may hold a token.
package chanconf

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
)

// Checker collects the errors of one channel under key ("receiver.channels.ops").
type Checker struct {
	key  string
	file *fileconfig.File
	errs []error
}

// New returns a checker for the channel at key in f (f may be nil for a
// configuration built in code; relative *_file paths then resolve against
// the working directory).
func New(key string, f *fileconfig.File) *Checker { return &Checker{key: key, file: f} }

// Key is the full key of sub ("" is the channel itself).
func (c *Checker) Key(sub string) string {
	if sub == "" {
		return c.key
	}
	return c.key + "." + sub
}

// Dir is the directory that relative paths of the configuration resolve against.
func (c *Checker) Dir() string {
	if c.file == nil || c.file.Path() == "" {
		return ""
	}
	return filepath.Dir(c.file.Path())
}

// Add records an error about sub.
func (c *Checker) Add(sub, format string, args ...any) {
	c.errs = append(c.errs, fileconfig.Errorf(c.Key(sub), format, args...))
}

// Wrap records err (for example from an embedded library's own validation) about sub.
func (c *Checker) Wrap(sub string, err error) {
	if err != nil {
		c.Add(sub, "%v", err)
	}
}

// Err is every recorded error and more, joined (nil when there is none).
func (c *Checker) Err(more ...error) error { return errors.Join(append(c.errs, more...)...) }

// Required records an error when v is empty.
func (c *Checker) Required(sub, v, what string) {
	if v == "" {
		c.Add(sub, "is required for %s", what)
	}
}

// Secret resolves the secret at sub: the inline value, or the trimmed
// content of the file named by file. The result replaces *inline, so
// constructors and redaction see the value. Both set, or an unreadable
// file, is an error that names the key and path, never the content.
func (c *Checker) Secret(sub string, inline *fileconfig.Secret, file string) {
	s, err := c.file.ResolveSecret(c.Key(sub), *inline, file)
	if err != nil {
		c.errs = append(c.errs, err)
		return
	}
	*inline = s
}

// RequiredSecret is Secret for a secret that must be set (inline or as a file).
func (c *Checker) RequiredSecret(sub string, inline *fileconfig.Secret, file, what string) {
	c.Secret(sub, inline, file)
	if file == "" && *inline == "" {
		c.Add(sub, "is required for %s (or %s_file)", what, sub)
	}
}

// OneOf records an error when v is not empty and not one of the allowed values.
func (c *Checker) OneOf(sub, v string, allowed ...string) {
	if v != "" && !slices.Contains(allowed, v) {
		c.Add(sub, "must be %s, got %q", OrList(allowed), v)
	}
}

// OrList is "a, b or c".
func OrList(vs []string) string {
	if len(vs) == 1 {
		return vs[0]
	}
	return strings.Join(vs[:len(vs)-1], ", ") + " or " + vs[len(vs)-1]
}

// URL checks an http(s) URL without echoing it (robot URLs carry tokens).
// wantQuery names a query parameter that must be present ("" for none). A
// templated URL ("{{") is checked when rendered.
func (c *Checker) URL(sub, raw string, required bool, wantQuery string) {
	if raw == "" {
		if required {
			c.Add(sub, "is required")
		}
		return
	}
	if strings.Contains(raw, "{{") {
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		c.Add(sub, "is not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		c.Add(sub, "must be an http or https URL, got scheme %q", u.Scheme)
	case u.Host == "":
		c.Add(sub, "has no host")
	case wantQuery != "" && u.Query().Get(wantQuery) == "":
		c.Add(sub, "must carry the %s query parameter (%s://%s%s?%s=...)", wantQuery, u.Scheme, u.Host, u.Path, wantQuery)
	}
}

var phoneRE = regexp.MustCompile(`^\+?[0-9]{5,20}$`)

// IsPhone reports whether p looks like a phone number (digits, optional leading +).
func IsPhone(p string) bool { return phoneRE.MatchString(p) }

// Phones checks a list of phone numbers; extra values (such as "@all") are also accepted.
func (c *Checker) Phones(sub string, phones []string, extra ...string) {
	for i, p := range phones {
		if !IsPhone(p) && !slices.Contains(extra, p) {
			what := "a phone number (digits, optional leading +)"
			if len(extra) > 0 {
				what = "a phone number nor " + OrList(extra)
				c.Add(fmt.Sprintf("%s[%d]", sub, i), "%q is neither %s", p, what)
				continue
			}
			c.Add(fmt.Sprintf("%s[%d]", sub, i), "%q is not %s", p, what)
		}
	}
}

// SortedKeys returns the keys of m in order, so errors come out the same way every time.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
