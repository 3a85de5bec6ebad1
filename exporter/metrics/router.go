package metrics

import (
	"strings"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// Router maps request paths to the configured route templates. A template
// segment in braces ("/v1/models/{model}") matches any one non-empty segment;
// a path that matches no template is "other", which bounds the label.
type Router struct {
	exact     map[string]string
	templates [][]string
}

// NewRouter builds a Router from endpoint templates.
func NewRouter(endpoints []string) *Router {
	r := &Router{exact: make(map[string]string, len(endpoints))}
	for _, e := range endpoints {
		norm := trimSlash(e)
		if !strings.Contains(norm, "{") {
			r.exact[norm] = e
			continue
		}
		r.templates = append(r.templates, append(strings.Split(norm, "/"), e))
	}
	return r
}

// Route returns the template path matches, or "other".
func (r *Router) Route(path string) string {
	path = trimSlash(path)
	if route, ok := r.exact[path]; ok {
		return route
	}
	for _, t := range r.templates {
		if match(t[:len(t)-1], path) {
			return t[len(t)-1]
		}
	}
	return sli.OtherValue
}

func match(segs []string, path string) bool {
	for i, s := range segs {
		var seg string
		var ok bool
		seg, path, ok = strings.Cut(path, "/")
		if !ok && i != len(segs)-1 {
			return false
		}
		if ok && i == len(segs)-1 {
			return false
		}
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			if seg == "" {
				return false
			}
			continue
		}
		if seg != s {
			return false
		}
	}
	return true
}

func trimSlash(p string) string {
	if len(p) > 1 && p[len(p)-1] == '/' {
		return p[:len(p)-1]
	}
	return p
}
