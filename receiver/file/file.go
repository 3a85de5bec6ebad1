// Package file appends one JSON line per notification to a file or to
// standard output: the console channel of the demo and a local audit trail.
package file

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	amtemplate "github.com/prometheus/alertmanager/template"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// Line is one written notification.
type Line struct {
	Time            time.Time         `json:"time"`
	Channel         string            `json:"channel"`
	ID              string            `json:"id"`
	GroupKey        string            `json:"groupKey"`
	Priority        string            `json:"priority"`
	Route           string            `json:"route"`
	Status          string            `json:"status"`
	Title           string            `json:"title"`
	Text            string            `json:"text"`
	TruncatedAlerts int               `json:"truncatedAlerts,omitempty"`
	Alerts          amtemplate.Alerts `json:"alerts"`
	Digest          int               `json:"digest,omitempty"`
	Labels          amtemplate.KV     `json:"groupLabels,omitempty"`
}

// Notifier writes lines to Path ("" or "-" is stdout).
type Notifier struct {
	name string
	path string
	out  io.Writer
	tmpl *tmpl.Templates
	now  func() time.Time
	mu   sync.Mutex
}

// New returns a notifier for the channel name; stdout is used for path "" and
// "-" (or w when not nil, for tests).
func New(name string, cfg *Config, t *tmpl.Templates, now func() time.Time, w io.Writer) *Notifier {
	path := cfg.Path
	if t == nil {
		t = tmpl.New(tmpl.Options{})
	}
	if now == nil {
		now = time.Now
	}
	if w == nil && (path == "" || path == "-") {
		w = os.Stdout
	}
	return &Notifier{name: name, path: path, out: w, tmpl: t, now: now}
}

// Notify writes one line per notification; a digest marks each line with its size.
func (n *Notifier) Notify(ctx context.Context, ns ...*notify.Notification) error {
	buf := make([]byte, 0, 1024*len(ns))
	for _, no := range ns {
		d := tmpl.NewData(n.tmpl.Language(), "", no)
		l := Line{
			Time: n.now().UTC(), Channel: n.name, ID: no.ID, GroupKey: no.GroupKey, Priority: string(no.Priority),
			Route: no.Route, Status: d.Status, Title: n.tmpl.Render(ctx, tmpl.Title, d), Text: n.tmpl.Render(ctx, tmpl.Text, d),
			TruncatedAlerts: no.TruncatedAlerts, Alerts: d.Alerts, Labels: d.GroupLabels,
		}
		if len(ns) > 1 {
			l.Digest = len(ns)
		}
		b, err := json.Marshal(l)
		if err != nil {
			return &notify.Error{Class: notify.Permanent, Err: fmt.Errorf("encode line: %w", err)}
		}
		buf = append(append(buf, b...), '\n')
	}
	return n.write(buf)
}

func (n *Notifier) write(b []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.out != nil {
		if _, err := n.out.Write(b); err != nil {
			return &notify.Error{Class: notify.Retry, Err: fmt.Errorf("write: %w", err)}
		}
		return nil
	}
	// Opened per write so log rotation (rename + new file) just works.
	f, err := os.OpenFile(n.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return &notify.Error{Class: notify.Retry, Err: fmt.Errorf("open %s: %w", n.path, err)}
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return &notify.Error{Class: notify.Retry, Err: fmt.Errorf("append to %s: %w", n.path, err)}
	}
	if err := f.Close(); err != nil {
		return &notify.Error{Class: notify.Retry, Err: fmt.Errorf("close %s: %w", n.path, err)}
	}
	return nil
}
