// Package wecom delivers notifications to a WeCom (企业微信) group robot
// webhook: markdown (≤ 4096 bytes) or text (≤ 2048 bytes) messages,
// mentioned_mobile_list, splitting and errcode classification.
package wecom

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// Content limits of the robot, in bytes of UTF-8.
const (
	MaxMarkdownBytes = 4096
	MaxTextBytes     = 2048
)

// RateLimit is the documented 20 messages per minute per robot.
const RateLimit = 20

// DefaultMaxParts is how many messages one notification may take before
// its alert list is cut with a note and a link.
const DefaultMaxParts = 5

// minSplit bounds re-splitting after a 40058.
const minSplit = 512

// Notifier sends to one robot.
type Notifier struct {
	cfg         *Config
	tmpl        *tmpl.Templates
	client      *http.Client
	externalURL string
	split       *chanhttp.Splitter
}

// New returns a notifier for a validated configuration.
func New(cfg *Config, t *tmpl.Templates, externalURL string) (*Notifier, error) {
	client, err := cfg.HTTP.Client("wecom")
	if err != nil {
		return nil, err
	}
	if t == nil {
		t = tmpl.New(tmpl.Options{})
	}
	return &Notifier{cfg: cfg, tmpl: t, client: client, externalURL: externalURL, split: chanhttp.NewSplitter("40058", minSplit)}, nil
}

type message struct {
	MsgType  string    `json:"msgtype"`
	Markdown *content  `json:"markdown,omitempty"`
	Text     *textBody `json:"text,omitempty"`
}

type content struct {
	Content string `json:"content"`
}

type textBody struct {
	Content             string   `json:"content"`
	MentionedMobileList []string `json:"mentioned_mobile_list,omitempty"`
}

// Notify sends ns as one message (a digest when several), split into parts
// when longer than the robot accepts.
func (n *Notifier) Notify(ctx context.Context, ns ...*notify.Notification) error {
	if len(ns) == 0 {
		return nil
	}
	// Alert text must not add links, <@id> or @all mentions to the robot's message.
	ns = tmpl.ForMarkdown(ns)
	d := tmpl.NewData(n.tmpl.Language(), n.externalURL, ns...)
	title := n.tmpl.Render(ctx, tmpl.Title, d)
	maxParts := n.cfg.Parts.Or(DefaultMaxParts)
	const partHeader = 16 // "(12/34)\n" and some slack
	text := n.cfg.MessageType == "text"
	limit := MaxMarkdownBytes
	if text {
		limit = MaxTextBytes
	}
	body := chanhttp.Fit(ns, maxParts, limit, partHeader, n.tmpl.CutNote(), func(ns []*notify.Notification, omitted int) string {
		d := tmpl.NewData(n.tmpl.Language(), n.externalURL, ns...)
		var b string
		if text {
			b = title + "\n" + n.tmpl.Render(ctx, tmpl.Text, d)
		} else {
			b = "## " + title + "\n" + n.tmpl.Render(ctx, tmpl.Markdown, d)
		}
		if omitted > 0 {
			b += "\n\n" + n.tmpl.OmittedNote(d, omitted, maxParts, !text)
		}
		return b
	})
	mention := !text && len(n.cfg.MentionedMobileList) > 0
	err := n.split.Send(ctx, ns, body, limit, partHeader, mention, func(ctx context.Context, i, total int, p string) error {
		if total > 1 {
			p = fmt.Sprintf("(%d/%d)\n%s", i+1, total, p)
		}
		m := message{MsgType: "markdown", Markdown: &content{Content: p}}
		if text {
			m = message{MsgType: "text", Text: &textBody{Content: p}}
			if i == total-1 {
				m.Text.MentionedMobileList = n.cfg.MentionedMobileList
			}
		}
		return n.send(ctx, m)
	})
	if err != nil || !mention {
		return err
	}
	// Markdown messages cannot mention by mobile; a short text does. It is one more robot message.
	return n.split.Once(ctx, ns, "mention", func(ctx context.Context) error {
		return n.send(ctx, message{MsgType: "text", Text: &textBody{Content: tmpl.Truncate(title, 200), MentionedMobileList: n.cfg.MentionedMobileList}})
	})
}

type answer struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

func (n *Notifier) send(ctx context.Context, m message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return &notify.Error{Class: notify.Permanent, Err: fmt.Errorf("encode message: %w", err)}
	}
	r, err := chanhttp.PostJSON(ctx, n.client, n.cfg.URL.Value(), body, n.cfg.HTTP.RequestTimeout())
	if err != nil {
		return err
	}
	if r.Status != http.StatusOK {
		return chanhttp.StatusError(n.cfg.URL.Value(), r)
	}
	var a answer
	if err := json.Unmarshal(r.Body, &a); err != nil {
		return &notify.Error{Class: notify.Retry, Err: fmt.Errorf("%s: unreadable answer %q", chanhttp.Redact(n.cfg.URL.Value()), chanhttp.Snippet(r.Body))}
	}
	return Classify(a.ErrCode, a.ErrMsg)
}

// Classify maps a robot errcode to a delivery outcome (nil for 0).
func Classify(code int, msg string) error {
	if code == 0 {
		return nil
	}
	c := strconv.Itoa(code)
	// WeCom echoes a hint URL in errmsg; it holds no secret but is noise.
	err := fmt.Errorf("wecom robot: %s", msg)
	switch code {
	case -1: // system busy
		return &notify.Error{Class: notify.Retry, Code: c, Err: err}
	case 45009, 45033: // API frequency / concurrency limit
		return &notify.Error{Class: notify.Retry, Code: c, RetryAfter: time.Minute, Err: err}
	case 40058: // content too long: the caller splits and resends
		return &notify.Error{Class: notify.Permanent, Code: c, Err: err}
	case 93000, 93004, 93008, 40014, 42001, 41001:
		// invalid webhook key, robot disabled, not in the group, bad or missing credential
		return &notify.Error{Class: notify.Config, Code: c, Err: err}
	}
	return &notify.Error{Class: notify.Permanent, Code: c, Err: err}
}
