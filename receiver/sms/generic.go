package sms

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

type generic struct {
	cfg    Config
	client *http.Client
	tmpl   *tmpl.Templates
}

// GatewayData is the dot of the generic gateway's URL, header and body
// templates: the message data plus the number and the rendered text.
type GatewayData struct {
	*tmpl.Data
	Phone   string
	Message string
	// Params are the rendered template_params by name.
	Params map[string]string
}

func (g *generic) send(ctx context.Context, phone string, m *message) error {
	d := &GatewayData{Data: m.Data, Phone: phone, Message: m.Text, Params: make(map[string]string, len(m.Params))}
	for i, v := range m.Params {
		d.Params[m.Names[i]] = v
	}
	target := g.tmpl.RenderText(ctx, "sms_url", g.cfg.Gateway.URL.Value(), d, "")
	body := g.tmpl.RenderText(ctx, "sms_body", g.cfg.Body, d, `{"phone":{{ printf "%q" .Phone }},"message":{{ printf "%q" .Message }}}`)
	method := strings.ToUpper(g.cfg.Method)
	if method == "" {
		method = http.MethodPost
	}
	var req *http.Request
	var err error
	if method == http.MethodGet {
		req, err = http.NewRequest(method, target, http.NoBody)
	} else {
		req, err = http.NewRequest(method, target, strings.NewReader(body))
	}
	if err != nil || req.URL.Host == "" {
		return &notify.Error{Class: notify.Config, Err: fmt.Errorf("sms gateway URL %s is invalid", chanhttp.Redact(target))}
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	for k, v := range g.cfg.Headers {
		req.Header.Set(k, g.tmpl.RenderText(ctx, "sms_header", v, d, ""))
	}
	r, err := chanhttp.Do(ctx, g.client, req, g.cfg.HTTP.RequestTimeout())
	if err != nil {
		return err
	}
	if r.Status/100 != 2 {
		return chanhttp.StatusError(target, r)
	}
	return nil
}
