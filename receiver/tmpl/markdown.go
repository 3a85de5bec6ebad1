package tmpl

import (
	"net/url"
	"strings"

	amtemplate "github.com/prometheus/alertmanager/template"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
)

// zwsp is an invisible zero-width space: inserted after a character, it
// keeps the text as people read it but stops robots' markdown from parsing
// a link, tag or mention there.
const zwsp = "\u200b"

// markdownEscaper breaks what alert text could inject into robot markdown:
// links and images ("](", "]:"), HTML tags, autolinks and WeCom's "<@id>"
// mentions ("<"), and @-mentions such as "@all" or "@13800000000" ("@").
var markdownEscaper = strings.NewReplacer(
	"](", "]"+zwsp+"(",
	"]:", "]"+zwsp+":",
	"<", "<"+zwsp,
	"@", "@"+zwsp,
	"\r", " ",
)

// EscapeMarkdown makes label or annotation text safe to place in DingTalk
// and WeCom markdown: it renders the same but cannot add links, tags or
// mentions.
func EscapeMarkdown(s string) string { return markdownEscaper.Replace(s) }

// SafeURL returns u if it is an absolute http(s) URL, with the characters
// that would end a markdown link target percent-encoded; anything else
// (javascript:, data:, relative or unparseable) becomes "".
func SafeURL(u string) string {
	p, err := url.Parse(strings.TrimSpace(u))
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return ""
	}
	return urlEscaper.Replace(p.String())
}

var urlEscaper = strings.NewReplacer("(", "%28", ")", "%29", " ", "%20", "<", "%3C", ">", "%3E", "[", "%5B", "]", "%5D")

// isURLKey reports whether an annotation holds a link the templates use as a link target.
func isURLKey(k string) bool {
	return strings.HasSuffix(k, "_url") || k == "dashboard"
}

func escapeKV(kv amtemplate.KV) amtemplate.KV {
	if kv == nil {
		return nil
	}
	out := make(amtemplate.KV, len(kv))
	for k, v := range kv {
		if isURLKey(k) {
			out[k] = SafeURL(v)
			continue
		}
		out[k] = EscapeMarkdown(v)
	}
	return out
}

// ForMarkdown returns copies of ns whose payload text (labels, annotations,
// receiver) is escaped for robot markdown and whose links are http(s) only.
// The originals are not changed.
func ForMarkdown(ns []*notify.Notification) []*notify.Notification {
	out := make([]*notify.Notification, len(ns))
	for i, n := range ns {
		c := *n
		if d := n.Data; d != nil {
			e := &amtemplate.Data{
				Receiver: EscapeMarkdown(d.Receiver), Status: d.Status, ExternalURL: SafeURL(d.ExternalURL),
				GroupLabels: escapeKV(d.GroupLabels), CommonLabels: escapeKV(d.CommonLabels),
				CommonAnnotations: escapeKV(d.CommonAnnotations), RouteLabels: escapeKV(d.RouteLabels),
				Alerts: make(amtemplate.Alerts, len(d.Alerts)),
			}
			for j, a := range d.Alerts {
				a.Labels, a.Annotations = escapeKV(a.Labels), escapeKV(a.Annotations)
				a.GeneratorURL = SafeURL(a.GeneratorURL)
				e.Alerts[j] = a
			}
			c.Data = e
		}
		out[i] = &c
	}
	return out
}
