package tmpl

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// OmittedNote is the line a robot message ends with when its alert list
// was cut to fit maxParts messages: how many alerts are not listed and a
// link to Alertmanager's page with all of them.
func (t *Templates) OmittedNote(d *Data, omitted, maxParts int, markdown bool) string {
	words := dictionary[t.lang]
	note := fmt.Sprintf(words["omitted"], omitted, maxParts)
	link := AlertsLink(d)
	switch {
	case link == "":
		return note
	case markdown:
		return "> " + note + " [" + words["all_alerts"] + "](" + link + ")"
	default:
		return note + " " + words["all_alerts"] + ": " + link
	}
}

// CutNote ends a message whose text had to be cut.
func (t *Templates) CutNote() string { return dictionary[t.lang]["cut"] }

// AlertsLink is Alertmanager's alert list for the message: filtered by the
// group's labels and receiver for one group, the receiver's alerts for a
// digest, "" when the payload carried no external URL.
func AlertsLink(d *Data) string {
	if d == nil || d.Data == nil || d.ExternalURL == "" {
		return ""
	}
	plain := func(s string) string { return strings.ReplaceAll(s, zwsp, "") }
	q := url.Values{}
	if d.Receiver != "" {
		q.Set("receiver", plain(d.Receiver))
	}
	if !d.Digest && len(d.GroupLabels) > 0 {
		keys := make([]string, 0, len(d.GroupLabels))
		for k := range d.GroupLabels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		ms := make([]string, 0, len(keys))
		for _, k := range keys {
			ms = append(ms, fmt.Sprintf("%s=%q", k, plain(d.GroupLabels[k])))
		}
		q.Set("filter", "{"+strings.Join(ms, ",")+"}")
	}
	// Percent-encoded, the query holds nothing that ends a markdown link.
	return SafeURL(strings.TrimRight(d.ExternalURL, "/") + "/#/alerts?" + strings.ReplaceAll(q.Encode(), "+", "%20"))
}
