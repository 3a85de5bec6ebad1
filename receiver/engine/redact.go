package engine

import (
	"net/url"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
)

const secretMark = "<secret>"

// sensitiveParams are query parameters and fields that carry credentials.
var sensitiveParams = []string{
	"access_token", "accesstoken", "token", "key", "secret", "sign", "signature",
	"password", "passwd", "pwd", "api_key", "apikey", "access_key", "accesskeyid",
	"access_key_secret", "secret_key", "secretid", "secret_id", "auth", "authorization",
}

// paramRE finds name=value pairs of sensitive names in free text (URLs inside error messages).
var paramRE = regexp.MustCompile(`(?i)\b(` + strings.Join(sensitiveParams, "|") + `)=([^&\s"'<>]+)`)

// userinfoRE finds credentials embedded in URLs (scheme://user:pass@host).
var userinfoRE = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@"']+@`)

// Redactor removes secrets from text that goes to logs, audit records and errors.
type Redactor struct {
	secrets []string
}

// NewRedactor scrubs the given secret values (longest first, so a secret
// containing another is removed whole) in addition to the generic patterns.
func NewRedactor(secrets ...string) *Redactor {
	var s []string
	seen := map[string]bool{}
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
			s = strings.ReplaceAll(s, v, secretMark)
			if e := url.QueryEscape(v); e != v {
				s = strings.ReplaceAll(s, e, secretMark)
			}
		}
	}
	s = paramRE.ReplaceAllString(s, "${1}="+secretMark)
	return userinfoRE.ReplaceAllString(s, "${1}"+secretMark+"@")
}

// RedactURL shows scheme, host and path of a URL, with credential parameters and user info hidden.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return paramRE.ReplaceAllString(raw, "${1}="+secretMark)
	}
	if u.User != nil {
		u.User = url.User(secretMark)
	}
	q := u.Query()
	for k := range q {
		if isSensitive(k) {
			q.Set(k, secretMark)
		}
	}
	out := u.Scheme + "://" + u.Host + u.Path
	if len(q) > 0 {
		// Encode keeps the order stable; unescape the mark for readability.
		out += "?" + strings.ReplaceAll(q.Encode(), url.QueryEscape(secretMark), secretMark)
	}
	return out
}

func isSensitive(name string) bool {
	n := strings.ToLower(name)
	for _, p := range sensitiveParams {
		if n == p {
			return true
		}
	}
	return false
}

// Secrets returns every credential in a channel's configuration: Secret
// fields and sensitive query parameters of URL fields.
func Secrets(c config.Channel, f *config.File) []string {
	var out []string
	walk(reflect.ValueOf(c), func(tag string, v reflect.Value) {
		if strings.HasSuffix(tag, "_file") && v.Kind() == reflect.String && v.String() != "" {
			if s, err := f.ResolveSecret("secret", "", v.String()); err == nil {
				out = append(out, s.Value())
				out = append(out, urlSecrets(s.Value())...)
			}
			return
		}
		if v.Type() == reflect.TypeOf(config.Secret("")) {
			out = append(out, v.String())
			out = append(out, urlSecrets(v.String())...)
			return
		}
		if v.Kind() != reflect.String {
			return
		}
		s := v.String()
		if isSensitive(tag) {
			out = append(out, s)
		}
		out = append(out, urlSecrets(s)...)
	})
	return out
}

func urlSecrets(s string) []string {
	if !strings.Contains(s, "://") {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil
	}
	var out []string
	for k, vs := range u.Query() {
		if isSensitive(k) {
			out = append(out, vs...)
		}
	}
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			out = append(out, p)
		}
	}
	return out
}

func walk(v reflect.Value, fn func(tag string, v reflect.Value)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walk(v.Elem(), fn)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < v.NumField(); i++ {
			if !t.Field(i).IsExported() {
				continue
			}
			tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			f := v.Field(i)
			if f.Kind() == reflect.String {
				fn(tag, f)
				continue
			}
			walk(f, fn)
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			walk(v.Index(i), fn)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			if val := v.MapIndex(k); val.Kind() == reflect.String && k.Kind() == reflect.String {
				fn(k.String(), val)
				continue
			}
			walk(v.MapIndex(k), fn)
		}
	}
}
