// Package sms delivers notifications as text messages through Aliyun
// Dysmsapi SendSms (ACS3-HMAC-SHA256), Tencent Cloud SendSms 2021-01-11
// (TC3-HMAC-SHA256) or a generic HTTP gateway.
//
// Each phone number is tracked separately: when some numbers got the message
// and others hit a per-number limit, a retry of the same notification only
// goes to the numbers still missing it (remembered in memory).
package sms

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/oncall"
	"github.com/open-autoglm/autoglm-monitor/receiver/redact"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// Template-variable limits, in characters (runes).
const (
	// AliyunParamChars: notification templates accept 1–35 characters per variable.
	AliyunParamChars = 35
	// TencentParamChars: per-variable limit for enterprise-verified accounts.
	TencentParamChars = 26
	// GenericMessageChars bounds the text given to a generic gateway.
	GenericMessageChars = 500
)

// Default endpoints.
const (
	AliyunEndpoint  = "https://dysmsapi.aliyuncs.com"
	TencentEndpoint = "https://sms.tencentcloudapi.com"
)

// DefaultParams are used when the channel configures none.
func DefaultParams(provider string) []Param {
	return []Param{
		{Name: "status", Value: `{{ statusText .Status }}`},
		{Name: "alertname", Value: `{{ .Name }}{{ if gt (len .Alerts) 1 }}({{ len .Alerts }}){{ end }}`},
		{Name: "severity", Value: `{{ with .CommonLabels.severity }}{{ . }}{{ else }}{{ .Priority }}{{ end }}`},
		{Name: "summary", Value: `{{ with .CommonAnnotations.summary }}{{ . }}{{ else }}{{ with .Alerts }}{{ (index . 0).Annotations.summary }}{{ end }}{{ end }}`},
	}
}

type sender interface {
	// send delivers text/params to one phone number.
	send(ctx context.Context, phone string, m *message) error
}

type message struct {
	Params []string // rendered, truncated, in Config.TemplateParams order
	Names  []string
	Text   string
	Data   *tmpl.Data
}

// Notifier sends to the channel's phone numbers.
type Notifier struct {
	cfg    Config
	tmpl   *tmpl.Templates
	sender sender
	limit  int

	mu   sync.Mutex
	sent map[string]map[string]bool // message key → numbers that got it
	keys []string                   // insertion order, to bound sent
}

const rememberMessages = 4096

// New builds a notifier for a validated configuration; now defaults to time.Now.
func New(c *Config, t *tmpl.Templates, now func() time.Time) (*Notifier, error) {
	cfg := *c
	client, err := cfg.HTTP.Client("sms")
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	if t == nil {
		t = tmpl.New(tmpl.Options{})
	}
	if len(cfg.TemplateParams) == 0 {
		cfg.TemplateParams = DefaultParams(cfg.Provider)
	}
	n := &Notifier{cfg: cfg, tmpl: t, sent: map[string]map[string]bool{}}
	switch cfg.Provider {
	case "aliyun":
		if cfg.Endpoint == "" {
			cfg.Endpoint = AliyunEndpoint
		}
		n.sender = &aliyun{cfg: cfg, client: client, now: now, nonce: randomNonce}
		n.limit = AliyunParamChars
	case "tencent":
		if cfg.Endpoint == "" {
			cfg.Endpoint = TencentEndpoint
		}
		if cfg.Region == "" {
			cfg.Region = "ap-guangzhou"
		}
		n.sender = &tencent{cfg: cfg, client: client, now: now}
		n.limit = TencentParamChars
	case "generic":
		n.sender = &generic{cfg: cfg, client: client, tmpl: t}
		n.limit = GenericMessageChars
	default:
		return nil, fmt.Errorf("unknown SMS provider %q", cfg.Provider)
	}
	n.cfg = cfg
	return n, nil
}

func randomNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Notify sends one text (a digest when several notifications) to every
// configured number that has not received it yet.
func (n *Notifier) Notify(ctx context.Context, ns ...*notify.Notification) error {
	if len(ns) == 0 {
		return nil
	}
	d := tmpl.NewData(n.tmpl.Language(), "", ns...)
	m := &message{Data: d, Text: tmpl.Truncate(n.tmpl.Render(ctx, tmpl.SMS, d), GenericMessageChars)}
	for i, p := range n.cfg.TemplateParams {
		v := n.tmpl.RenderText(ctx, "sms_param_"+p.Name, p.Value, d, DefaultParams("")[min(i, 3)].Value)
		// Line breaks and empty values are rejected by the providers.
		v = strings.Join(strings.Fields(v), " ")
		if v == "" {
			v = "-"
		}
		m.Params = append(m.Params, tmpl.Truncate(v, n.limit))
		m.Names = append(m.Names, p.Name)
	}
	key := messageKey(ns)
	// Each number is one provider message; with the engine's ledger, one a
	// provider accepted is recorded before the next goes out, so a crash
	// repeats at most the one in flight.
	l := notify.LedgerFrom(ctx)
	var failed []error
	phones := n.cfg.PhoneNumbers
	if rs, ok := oncall.RecipientsFrom(ctx); ok {
		// An escalation step texts the people on call.
		phones = nil
		for _, r := range rs {
			if r.Person.Phone != "" {
				phones = append(phones, r.Person.Phone)
			}
		}
		if len(phones) == 0 {
			return &notify.Error{Class: notify.Permanent, Err: errors.New("nobody to text: the people on call have no phone number")}
		}
	}
	for _, phone := range phones {
		part := phoneKey(key, phone)
		if n.already(key, phone) || (l != nil && l.Sent(part)) {
			continue
		}
		if l != nil {
			if err := l.Take(); err != nil {
				return err
			}
		}
		if err := n.sender.send(ctx, phone, m); err != nil {
			failed = append(failed, annotate(err, phone))
			continue
		}
		n.remember(key, phone)
		if l != nil {
			if err := l.Accepted(part); err != nil {
				return &notify.Error{Class: notify.Retry, Err: fmt.Errorf("record accepted SMS: %w", err)}
			}
		}
	}
	return combine(failed)
}

// phoneKey names one number's message in the ledger without the number.
func phoneKey(key, phone string) string {
	h := sha256.Sum256([]byte(key + "\x00" + phone))
	return "sms:" + hex.EncodeToString(h[:12])
}

func messageKey(ns []*notify.Notification) string {
	ids := make([]string, 0, len(ns))
	for _, n := range ns {
		ids = append(ids, n.ID)
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

func (n *Notifier) already(key, phone string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sent[key][phone]
}

func (n *Notifier) remember(key, phone string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	set, ok := n.sent[key]
	if !ok {
		set = map[string]bool{}
		n.sent[key] = set
		n.keys = append(n.keys, key)
		if len(n.keys) > rememberMessages {
			delete(n.sent, n.keys[0])
			n.keys = n.keys[1:]
		}
	}
	set[phone] = true
}

// MaskPhone keeps the first three and last four digits.
func MaskPhone(p string) string { return redact.MaskPhone(p) }

func annotate(err error, phone string) error {
	var e *notify.Error
	if errors.As(err, &e) {
		return &notify.Error{Class: e.Class, Code: e.Code, RetryAfter: e.RetryAfter, Err: fmt.Errorf("%s: %w", MaskPhone(phone), e.Err)}
	}
	return &notify.Error{Class: notify.Retry, Err: fmt.Errorf("%s: %w", MaskPhone(phone), err)}
}

// combine reports the most actionable failure: any retryable failure makes
// the whole retryable (the numbers that got it are skipped next time), then
// configuration errors, then permanent ones.
func combine(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	best := &notify.Error{Class: notify.Permanent}
	rank := map[notify.Class]int{notify.Retry: 0, notify.Config: 1, notify.Permanent: 2}
	for i, err := range errs {
		var e *notify.Error
		if !errors.As(err, &e) {
			e = &notify.Error{Class: notify.Retry, Err: err}
		}
		if i == 0 || rank[e.Class] < rank[best.Class] {
			best = &notify.Error{Class: e.Class, Code: e.Code, RetryAfter: e.RetryAfter}
		}
		if e.Class == best.Class && e.RetryAfter > best.RetryAfter {
			best.RetryAfter = e.RetryAfter
		}
	}
	best.Err = errors.Join(errs...)
	return best
}
