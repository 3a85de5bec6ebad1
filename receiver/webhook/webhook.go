// Package webhook forwards notifications to any HTTP endpoint as the
// Alertmanager webhook payload (version 4), with the receiver's priority and
// route added, so existing webhook consumers keep working.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	amwebhook "github.com/prometheus/alertmanager/notify/webhook"
	amtemplate "github.com/prometheus/alertmanager/template"

	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
)

// Message is one forwarded notification: Alertmanager's own v4 webhook
// payload type plus the receiver's fields.
type Message struct {
	amwebhook.Message
	ID       string `json:"notificationID"`
	Priority string `json:"priority"`
	Route    string `json:"route"`
}

// Digest carries several notifications in one request. Its top level is still
// a valid v4 payload (every alert, status firing when any group fires).
type Digest struct {
	Message
	Digest bool      `json:"digest"`
	Groups []Message `json:"groups"`
}

// NewMessage converts a notification.
func NewMessage(n *notify.Notification) Message {
	d := n.Data
	if d == nil {
		d = &amtemplate.Data{}
	}
	return Message{
		Message: amwebhook.Message{Data: d, Version: "4", GroupKey: n.GroupKey, TruncatedAlerts: uint64(max(n.TruncatedAlerts, 0))},
		ID:      n.ID, Priority: string(n.Priority), Route: n.Route,
	}
}

// Notifier posts to one URL.
type Notifier struct {
	cfg    *Config
	client *http.Client
}

// New returns a notifier for a validated configuration.
func New(cfg *Config) (*Notifier, error) {
	client, err := cfg.HTTP.Client("webhook")
	if err != nil {
		return nil, err
	}
	return &Notifier{cfg: cfg, client: client}, nil
}

// Body encodes ns as the request body.
func Body(ns ...*notify.Notification) ([]byte, error) {
	if len(ns) == 1 {
		return json.Marshal(NewMessage(ns[0]))
	}
	d := Digest{Digest: true}
	all := &amtemplate.Data{Status: "resolved", GroupLabels: amtemplate.KV{}, CommonLabels: amtemplate.KV{}, CommonAnnotations: amtemplate.KV{}}
	for _, n := range ns {
		m := NewMessage(n)
		d.Groups = append(d.Groups, m)
		all.Alerts = append(all.Alerts, m.Alerts...)
		if m.Status == "firing" {
			all.Status = "firing"
		}
		all.Receiver, all.ExternalURL = m.Receiver, m.ExternalURL
		d.TruncatedAlerts += m.TruncatedAlerts
	}
	d.Data, d.Version, d.GroupKey = all, "4", "digest"
	return json.Marshal(d)
}

// Notify posts ns (one payload, or a digest when several).
func (n *Notifier) Notify(ctx context.Context, ns ...*notify.Notification) error {
	if len(ns) == 0 {
		return nil
	}
	body, err := Body(ns...)
	if err != nil {
		return &notify.Error{Class: notify.Permanent, Err: fmt.Errorf("encode payload: %w", err)}
	}
	r, err := n.post(ctx, body)
	if err != nil {
		return err
	}
	if r.Status/100 != 2 {
		return chanhttp.StatusError(n.cfg.URL.Value(), r)
	}
	return nil
}

func (n *Notifier) post(ctx context.Context, body []byte) (*chanhttp.Response, error) {
	req, err := http.NewRequest(http.MethodPost, n.cfg.URL.Value(), bytes.NewReader(body))
	if err != nil {
		return nil, &notify.Error{Class: notify.Config, Err: fmt.Errorf("webhook URL %s is invalid", chanhttp.Redact(n.cfg.URL.Value()))}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "autoglm-receiver")
	for k, v := range n.cfg.Headers {
		req.Header.Set(k, v)
	}
	return chanhttp.Do(ctx, n.client, req, n.cfg.HTTP.RequestTimeout())
}
