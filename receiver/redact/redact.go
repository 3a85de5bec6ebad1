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
	s = userinfoRE.ReplaceAllString(s, "${1}"+mark+"@")
	return Phones(s)
}

// Phones masks the mobile numbers in s (providers echo them in error
// bodies): runs of digits that are a Chinese mobile number, alone (11
// digits from 13 to 19) or with the 86 / 0086 country code, or any
// international number written with a leading "+" (8 to 15 digits).
func Phones(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		start := i
		if i > 0 && s[i-1] == '+' {
			start = i - 1
		}
		// A run glued to letters or underscores is an identifier, not a number.
		glued := (start > 0 && isWord(s[start-1])) || (j < len(s) && isWord(s[j]))
		if !glued && isPhone(s[start:j]) {
			if b.Len() == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[last:start])
			b.WriteString(MaskPhone(s[start:j]))
			last = j
		}
		i = j
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func isPhone(p string) bool {
	if strings.HasPrefix(p, "+") {
		return len(p)-1 >= 8 && len(p)-1 <= 15
	}
	for _, cc := range []string{"", "86", "0086"} {
		rest, ok := strings.CutPrefix(p, cc)
		if ok && len(rest) == 11 && rest[0] == '1' && rest[1] >= '3' {
			return true
		}
	}
	return false
}

// MaskPhone keeps the first three and last four digits of the national
// number (and any country code): 13800001234 → 138****1234.
func MaskPhone(p string) string {
	if len(p) <= 7 {
		return "****"
	}
	return p[:len(p)-8] + "****" + p[len(p)-4:]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isWord(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}
