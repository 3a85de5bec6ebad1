// Package redact removes secrets from text that goes to logs, audit records
// and error answers: every configured secret value (each channel lists its
// own) plus credential-looking URL parameters and user info.
package redact

import (
	"net/url"
	"regexp"
	"sort"
	"strings"
)

const mark = "<secret>"

// paramRE finds name=value pairs of credential names in free text (URLs inside error messages).
var paramRE = regexp.MustCompile(`(?i)\b(access_token|accesstoken|token|key|secret|sign|signature|password|passwd|pwd|api_key|apikey|access_key|accesskeyid|access_key_secret|secret_key|secretid|secret_id|auth|authorization)=([^&\s"'<>]+)`)

// userinfoRE finds credentials embedded in URLs (scheme://user:pass@host).
var userinfoRE = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@"']+@`)

// Redactor scrubs known secret values and credential patterns.
type Redactor struct {
	secrets []string
}

// New scrubs the given secret values (longest first, so a secret containing
// another is removed whole) in addition to the generic patterns.
func New(secrets ...string) *Redactor {
	s := make([]string, 0, len(secrets))
	seen := make(map[string]bool, len(secrets))
	for _, v := range secrets {
		// Very short values would blank out ordinary words; the patterns still catch them in URLs.
		if len(v) < 4 || seen[v] {
			continue
		}
		seen[v] = true
		s = append(s, v)
	}
	sort.Slice(s, func(i, j int) bool { return len(s[i]) > len(s[j]) })
	return &Redactor{secrets: s}
}

// String returns s with every known secret and credential-looking parameter replaced.
func (r *Redactor) String(s string) string {
	if r != nil {
		for _, v := range r.secrets {
			s = strings.ReplaceAll(s, v, mark)
			if e := url.QueryEscape(v); e != v {
				s = strings.ReplaceAll(s, e, mark)
			}
		}
	}
	s = paramRE.ReplaceAllString(s, "${1}="+mark)
	return userinfoRE.ReplaceAllString(s, "${1}"+mark+"@")
}
