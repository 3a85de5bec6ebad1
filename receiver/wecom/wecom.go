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
	"strings"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/action"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/oncall"
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
	MsgType      string    `json:"msgtype"`
	Markdown     *content  `json:"markdown,omitempty"`
	Text         *textBody `json:"text,omitempty"`
	TemplateCard *card     `json:"template_card,omitempty"`
}

// card is a text_notice template card: the title, and the actions as jumps.
type card struct {
	CardType     string     `json:"card_type"`
	MainTitle    cardTitle  `json:"main_title"`
	SubTitleText string     `json:"sub_title_text,omitempty"`
	JumpList     []cardJump `json:"jump_list,omitempty"`
	CardAction   cardAction `json:"card_action"`
}

type cardTitle struct {
	Title string `json:"title"`
	Desc  string `json:"desc,omitempty"`
}

type cardJump struct {
	Type  int    `json:"type"`
	URL   string `json:"url"`
	Title string `json:"title"`
}

type cardAction struct {
	Type int    `json:"type"`
	URL  string `json:"url"`
}

// Text limits of a template card, in characters, kept short as the client shows them.
const (
	cardTitleChars = 26
	cardDescChars  = 30
	cardSubChars   = 112
	cardJumps      = 3
)

type content struct {
	Content string `json:"content"`
}

type textBody struct {
	Content             string   `json:"content"`
	MentionedMobileList []string `json:"mentioned_mobile_list,omitempty"`
}

// Notify sends ns as one message (a digest when several), split into parts
// when longer than the robot accepts. Actions follow as a template card with
// one jump per action (claim, silences); mentions as a short text.
func (n *Notifier) Notify(ctx context.Context, ns ...*notify.Notification) error {
	if len(ns) == 0 {
		return nil
	}
	// Alert text must not add links, <@id> or @all mentions to the robot's message.
	ns = tmpl.ForMarkdown(ns)
	d := tmpl.NewData(n.tmpl.Language(), n.externalURL, ns...)
	var links []action.Link
	if len(ns) == 1 {
		links = action.LinksOf(ctx, ns[0].GroupKey)
	}
	tctx := ctx
	if len(links) > 0 {
		tctx = action.WithoutLinks(ctx)
	}
	mobiles := n.cfg.MentionedMobileList
	if rs, ok := oncall.RecipientsFrom(ctx); ok {
		mobiles = nil
		for _, r := range rs {
			if r.Person.Phone != "" {
				mobiles = append(mobiles, strings.TrimPrefix(r.Person.Phone, "+86"))
			}
		}
	}
	title := n.tmpl.Render(tctx, tmpl.Title, d)
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
			b = title + "\n" + n.tmpl.Render(tctx, tmpl.Text, d)
		} else {
			b = "## " + title + "\n" + n.tmpl.Render(tctx, tmpl.Markdown, d)
		}
		if omitted > 0 {
			b += "\n\n" + n.tmpl.OmittedNote(d, omitted, maxParts, !text)
		}
		return b
	})
	// Markdown messages cannot mention by mobile; a short text after them does.
	mention := !text && len(mobiles) > 0
	// Messages after the parts (card, mentions) are robot messages of their
	// own: the parts are recorded so a retry sends only what is missing.
	more := mention || len(links) > 0
	err := n.split.Send(ctx, ns, body, limit, partHeader, more, func(ctx context.Context, i, total int, p string) error {
		if total > 1 {
			p = fmt.Sprintf("(%d/%d)\n%s", i+1, total, p)
		}
		m := message{MsgType: "markdown", Markdown: &content{Content: p}}
		if text {
			m = message{MsgType: "text", Text: &textBody{Content: p}}
			if i == total-1 {
				m.Text.MentionedMobileList = mobiles
			}
		}
		return n.send(ctx, m)
	})
	if err != nil {
		return err
	}
	if len(links) > 0 {
		err := n.split.Once(ctx, ns, "card", func(ctx context.Context) error {
			return n.sendCard(ctx, title, d, links)
		})
		if err != nil {
			return err
		}
	}
	if !mention {
		return nil
	}
	return n.split.Once(ctx, ns, "mention", func(ctx context.Context) error {
		return n.send(ctx, message{MsgType: "text", Text: &textBody{Content: tmpl.Truncate(title, 200), MentionedMobileList: mobiles}})
	})
}

// sendCard sends the actions of a single-group message as a template card.
func (n *Notifier) sendCard(ctx context.Context, title string, d *tmpl.Data, links []action.Link) error {
	c := &card{CardType: "text_notice", MainTitle: cardTitle{Title: tmpl.Truncate(d.Name(), cardTitleChars), Desc: tmpl.Truncate(string(d.Priority)+" "+d.Status, cardDescChars)},
		SubTitleText: tmpl.Truncate(title, cardSubChars), CardAction: cardAction{Type: 1, URL: links[0].URL}}
	for i, l := range links {
		if i == cardJumps {
			break
		}
		c.JumpList = append(c.JumpList, cardJump{Type: 1, URL: l.URL, Title: l.Label})
	}
	return n.send(ctx, message{MsgType: "template_card", TemplateCard: c})
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
