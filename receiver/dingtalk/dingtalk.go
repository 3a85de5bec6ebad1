// Package dingtalk delivers notifications to a DingTalk custom robot
// (群自定义机器人) webhook: markdown or actionCard messages, @mentions,
// optional HMAC signing, splitting above the 20,000-byte limit and errcode
// classification.
package dingtalk

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/action"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/oncall"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// MaxBytes is the robot's limit on a message text; 460101 above it.
const MaxBytes = 20000

// minSplit bounds re-splitting after a 460101 so the loop always ends.
const minSplit = 2000

// RateLimit is the documented 20 messages per minute per robot.
const RateLimit = 20

// DefaultMaxParts is how many messages one notification may take (60 KB of
// markdown) before its alert list is cut with a note and a link.
const DefaultMaxParts = 3

// Notifier sends to one robot.
type Notifier struct {
	cfg         *Config
	tmpl        *tmpl.Templates
	client      *http.Client
	now         func() time.Time
	externalURL string
	maxBytes    int
	split       *chanhttp.Splitter
}

// New returns a notifier for a validated configuration; now defaults to time.Now.
func New(cfg *Config, t *tmpl.Templates, now func() time.Time, externalURL string) (*Notifier, error) {
	client, err := cfg.HTTP.Client("dingtalk")
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	if t == nil {
		t = tmpl.New(tmpl.Options{})
	}
	return &Notifier{cfg: cfg, tmpl: t, client: client, now: now, externalURL: externalURL, maxBytes: MaxBytes, split: chanhttp.NewSplitter("460101", minSplit)}, nil
}

type message struct {
	MsgType    string      `json:"msgtype"`
	Markdown   *markdown   `json:"markdown,omitempty"`
	ActionCard *actionCard `json:"actionCard,omitempty"`
	At         *at         `json:"at,omitempty"`
}

type markdown struct {
	Title string `json:"title"`
	Text  string `json:"text"`
}

type actionCard struct {
	Title          string   `json:"title"`
	Text           string   `json:"text"`
	SingleTitle    string   `json:"singleTitle,omitempty"`
	SingleURL      string   `json:"singleURL,omitempty"`
	BtnOrientation string   `json:"btnOrientation,omitempty"`
	Btns           []button `json:"btns,omitempty"`
}

type button struct {
	Title     string `json:"title"`
	ActionURL string `json:"actionURL"`
}

type at struct {
	AtMobiles []string `json:"atMobiles,omitempty"`
	AtUserIDs []string `json:"atUserIds,omitempty"`
	IsAtAll   bool     `json:"isAtAll,omitempty"`
}

type answer struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// Notify sends ns as one message (a digest when several), split into parts
// when longer than the robot accepts. When the message offers actions it is
// an ActionCard with one button per action on its last part; an ActionCard
// cannot mention anyone, so a short markdown with the mentions follows it.
func (n *Notifier) Notify(ctx context.Context, ns ...*notify.Notification) error {
	if len(ns) == 0 {
		return nil
	}
	// Alert text must not add links or @-mentions to the robot's markdown.
	ns = tmpl.ForMarkdown(ns)
	d := tmpl.NewData(n.tmpl.Language(), n.externalURL, ns...)
	var btns []button
	for _, x := range ns {
		for _, l := range action.LinksOf(ctx, x.GroupKey) {
			title := l.Label
			if len(ns) > 1 {
				title = tmpl.Truncate(tmpl.NewData(n.tmpl.Language(), "", x).Name(), 16) + " · " + l.Label
			}
			btns = append(btns, button{Title: title, ActionURL: l.URL})
		}
	}
	tctx := ctx
	if len(btns) > 0 {
		tctx = action.WithoutLinks(ctx)
	}
	title := n.tmpl.Render(tctx, tmpl.Title, d)
	mobiles, users := n.cfg.AtMobiles, n.cfg.AtUserIDs
	if rs, ok := oncall.RecipientsFrom(ctx); ok {
		// An escalation step mentions the people on call.
		mobiles, users = nil, nil
		for _, r := range rs {
			if r.Person.DingTalkUserID != "" {
				users = append(users, r.Person.DingTalkUserID)
			} else if r.Person.Phone != "" {
				mobiles = append(mobiles, strings.TrimPrefix(r.Person.Phone, "+86"))
			}
		}
	}
	// The robot only notifies a mentioned mobile when it also appears in the text.
	var mentions string
	for _, m := range mobiles {
		mentions += " @" + m
	}
	for _, u := range users {
		mentions += " @" + u
	}
	mention := func() *at {
		if len(mobiles) > 0 || len(users) > 0 || n.cfg.AtAll {
			return &at{AtMobiles: mobiles, AtUserIDs: users, IsAtAll: n.cfg.AtAll}
		}
		return nil
	}
	link := firstLink(d)
	const partHeader = 36 // "(12/34)\n\n", the "\n\n" before mentions and some slack
	overhead := len(mentions) + len(title) + partHeader
	maxParts := n.cfg.Parts.Or(DefaultMaxParts)
	body := chanhttp.Fit(ns, maxParts, n.maxBytes, overhead, n.tmpl.CutNote(), func(ns []*notify.Notification, omitted int) string {
		d := tmpl.NewData(n.tmpl.Language(), n.externalURL, ns...)
		b := n.tmpl.Render(tctx, tmpl.Markdown, d)
		if omitted > 0 {
			b += "\n\n" + n.tmpl.OmittedNote(d, omitted, maxParts, true)
		}
		return b
	})
	// The mentions that follow an ActionCard are a message of their own:
	// the card's parts are recorded so a retry sends only what is missing.
	follow := len(btns) > 0 && mention() != nil
	err := n.split.Send(ctx, ns, body, n.maxBytes, overhead, follow, func(ctx context.Context, i, total int, part string) error {
		text := part
		if total > 1 {
			text = fmt.Sprintf("(%d/%d)\n\n%s", i+1, total, part)
		}
		if mentions != "" {
			text += "\n\n" + strings.TrimSpace(mentions)
		}
		m := n.build(title, text, link)
		if len(btns) > 0 {
			m = message{MsgType: "actionCard", ActionCard: &actionCard{Title: title, Text: text}}
			if i == total-1 {
				m.ActionCard.Btns, m.ActionCard.BtnOrientation = btns, "1"
			} else if link != "" {
				m.ActionCard.SingleTitle, m.ActionCard.SingleURL = map[string]string{"zh": "查看详情", "en": "Details"}[n.tmpl.Language()], link
			}
			return n.send(ctx, m)
		}
		m.At = mention()
		return n.send(ctx, m)
	})
	if err != nil || !follow {
		return err
	}
	return n.split.Once(ctx, ns, "mentions", func(ctx context.Context) error {
		return n.send(ctx, message{MsgType: "markdown", Markdown: &markdown{Title: title, Text: tmpl.Truncate(title, 200) + "\n\n" + strings.TrimSpace(mentions)}, At: mention()})
	})
}

func (n *Notifier) build(title, text, link string) message {
	m := message{MsgType: "markdown", Markdown: &markdown{Title: title, Text: text}}
	if n.cfg.MessageType == "actioncard" {
		m = message{MsgType: "actionCard", ActionCard: &actionCard{Title: title, Text: text}}
		if link != "" {
			m.ActionCard.SingleTitle = map[string]string{"zh": "查看详情", "en": "Details"}[n.tmpl.Language()]
			m.ActionCard.SingleURL = link
		}
	}
	return m
}

func firstLink(d *tmpl.Data) string {
	for _, a := range d.Alerts {
		if a.GeneratorURL != "" {
			return a.GeneratorURL
		}
	}
	return d.ExternalURL
}

func (n *Notifier) send(ctx context.Context, m message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return &notify.Error{Class: notify.Permanent, Err: fmt.Errorf("encode message: %w", err)}
	}
	target, err := SignURL(n.cfg.URL.Value(), n.cfg.Secret.Value(), n.now())
	if err != nil {
		return &notify.Error{Class: notify.Config, Err: err}
	}
	r, err := chanhttp.PostJSON(ctx, n.client, target, body, n.cfg.HTTP.RequestTimeout())
	if err != nil {
		return err
	}
	if r.Status != http.StatusOK {
		return chanhttp.StatusError(target, r)
	}
	var a answer
	if err := json.Unmarshal(r.Body, &a); err != nil {
		return &notify.Error{Class: notify.Retry, Err: fmt.Errorf("%s: unreadable answer %q", chanhttp.Redact(target), chanhttp.Snippet(r.Body))}
	}
	return Classify(a.ErrCode, a.ErrMsg)
}

// Classify maps a robot errcode to a delivery outcome (nil for 0).
func Classify(code int, msg string) error {
	if code == 0 {
		return nil
	}
	c := strconv.Itoa(code)
	err := fmt.Errorf("dingtalk robot: %s", msg)
	switch code {
	case -1: // system busy
		return &notify.Error{Class: notify.Retry, Code: c, Err: err}
	case 130101, 410100: // sending too fast: at most 20 messages per minute
		return &notify.Error{Class: notify.Retry, Code: c, RetryAfter: time.Minute, Err: err}
	case 460101: // message too long: the caller splits and resends
		return &notify.Error{Class: notify.Permanent, Code: c, Err: err}
	case 300001, 300004, 300005, 310000, 400101, 400102, 400013, 400105:
		// bad or unknown token, keyword/signature/IP check failed, robot disabled, group gone
		return &notify.Error{Class: notify.Config, Code: c, Err: err}
	}
	return &notify.Error{Class: notify.Permanent, Code: c, Err: err}
}

// SignURL adds the timestamp and sign query parameters of a signed robot:
// sign = urlencode(base64(HMAC-SHA256(secret, timestamp+"\n"+secret))).
func SignURL(raw, secret string, now time.Time) (string, error) {
	if secret == "" {
		return raw, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("robot URL %s is invalid", chanhttp.Redact(raw))
	}
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	q := u.Query()
	q.Set("timestamp", ts)
	q.Set("sign", Sign(ts, secret))
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Sign is base64(HMAC-SHA256(secret, timestamp + "\n" + secret)), before URL encoding.
func Sign(timestampMillis, secret string) string {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(timestampMillis + "\n" + secret))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}
