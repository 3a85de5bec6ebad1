// Package feishu delivers notifications to a Feishu (Lark) custom robot:
// interactive cards with the shared markdown templates, action buttons,
// @mentions by open_id, signature ("签名校验"), splitting below the 20 KB
// request limit, pacing under 5 requests a second, and code classification.
package feishu

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/open-autoglm/autoglm-monitor/receiver/action"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/oncall"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// Documented limits of a custom robot.
const (
	// MaxBytes bounds one request body (20 KB).
	MaxBytes = 20 * 1024
	// RateLimit is 100 messages a minute per robot (the engine's bucket).
	RateLimit = 100
	// PerSecond is the robot's other limit, paced inside the channel.
	PerSecond = 5
	// minSplit bounds re-splitting so it always ends.
	minSplit = 2048
	// maxActionGroups bounds the button rows of a digest card.
	maxActionGroups = 5
	// DefaultMaxParts is how many cards one notification may take before
	// its alert list is cut with a note and a link.
	DefaultMaxParts = 3
)

// Notifier sends to one robot.
type Notifier struct {
	url, secret string
	atOpenIDs   []string
	tmpl        *tmpl.Templates
	client      *http.Client
	timeout     time.Duration
	now         func() time.Time
	externalURL string
	pace        *rate.Limiter
	split       *chanhttp.Splitter
	maxBytes    int
	maxParts    int
}

// New builds a notifier from a validated configuration.
func New(c *Config, t *tmpl.Templates, now func() time.Time, externalURL string) (*Notifier, error) {
	client, err := c.HTTP.Client("feishu")
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	if t == nil {
		t = tmpl.New(tmpl.Options{})
	}
	return &Notifier{
		url: c.URL.Value(), secret: c.Secret.Value(), atOpenIDs: c.AtOpenIDs, tmpl: t, client: client,
		timeout: c.HTTP.RequestTimeout(), now: now, externalURL: externalURL,
		// Spaced a little wider than 1/5 s so network jitter never puts six in one second.
		pace: rate.NewLimiter(rate.Limit(PerSecond)*0.9, 1), split: chanhttp.NewSplitter("9499", minSplit), maxBytes: MaxBytes,
		maxParts: c.Parts.Or(DefaultMaxParts),
	}, nil
}

// Sign is base64(HMAC-SHA256(key = timestamp + "\n" + secret, message = empty)),
// the robot's documented signature.
func Sign(timestamp, secret string) string {
	h := hmac.New(sha256.New, []byte(timestamp+"\n"+secret))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

type message struct {
	Timestamp string `json:"timestamp,omitempty"`
	Sign      string `json:"sign,omitempty"`
	MsgType   string `json:"msg_type"`
	Card      *card  `json:"card"`
}

type card struct {
	Config   map[string]bool `json:"config"`
	Header   header          `json:"header"`
	Elements []any           `json:"elements"`
}

type header struct {
	Title    text   `json:"title"`
	Template string `json:"template"`
}

type text struct {
	Tag     string `json:"tag"`
	Content string `json:"content"`
}

type markdownElement struct {
	Tag     string `json:"tag"`
	Content string `json:"content"`
}

type actionElement struct {
	Tag     string   `json:"tag"`
	Actions []button `json:"actions"`
}

type button struct {
	Tag  string `json:"tag"`
	Text text   `json:"text"`
	Type string `json:"type"`
	URL  string `json:"url"`
}

type answer struct {
	Code    *int   `json:"code"`
	Msg     string `json:"msg"`
	Status  *int   `json:"StatusCode"`
	Message string `json:"StatusMessage"`
}

func colour(d *tmpl.Data) string {
	if d.Status == "resolved" {
		return "green"
	}
	switch d.Priority {
	case notify.P1:
		return "red"
	case notify.P2:
		return "orange"
	}
	return "blue"
}

// mentions are the open_ids to @: the escalation step's people when the
// delivery is one, else the channel's own list.
func (n *Notifier) mentions(ctx context.Context) string {
	ids := n.atOpenIDs
	if rs, ok := oncall.RecipientsFrom(ctx); ok {
		ids = nil
		for _, r := range rs {
			if r.Person.FeishuOpenID != "" {
				ids = append(ids, r.Person.FeishuOpenID)
			}
		}
	}
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "<at id=%s></at>", id)
	}
	return b.String()
}

func (n *Notifier) buttons(ctx context.Context, ns []*notify.Notification) []any {
	var rows []any
	for i, x := range ns {
		if i == maxActionGroups {
			break
		}
		links := action.LinksOf(ctx, x.GroupKey)
		if len(links) == 0 {
			continue
		}
		row := actionElement{Tag: "action"}
		for j, l := range links {
			kind := "default"
			if j == 0 {
				kind = "primary"
			}
			label := l.Label
			if len(ns) > 1 {
				label = tmpl.Truncate(tmpl.NewData(n.tmpl.Language(), "", x).Name(), 20) + " · " + label
			}
			row.Actions = append(row.Actions, button{Tag: "button", Text: text{Tag: "plain_text", Content: label}, Type: kind, URL: l.URL})
		}
		rows = append(rows, row)
	}
	return rows
}

// Notify sends ns as one card (a digest when several), split into several
// cards when the request would exceed the robot's size limit. Buttons and
// mentions go on the last card.
func (n *Notifier) Notify(ctx context.Context, ns ...*notify.Notification) error {
	if len(ns) == 0 {
		return nil
	}
	// Alert text must not add links, <at> mentions or tags to the card's markdown.
	ns = tmpl.ForMarkdown(ns)
	d := tmpl.NewData(n.tmpl.Language(), n.externalURL, ns...)
	// The card shows the actions as buttons, so the text does not repeat them as links.
	tctx := action.WithoutLinks(ctx)
	title := tmpl.TruncateBytes(n.tmpl.Render(tctx, tmpl.Title, d), 1000)
	mentions, buttons := n.mentions(ctx), n.buttons(ctx, ns)
	empty, err := encode(n.build(title, colour(d), "", buttons))
	if err != nil {
		return &notify.Error{Class: notify.Permanent, Err: fmt.Errorf("encode card: %w", err)}
	}
	body := chanhttp.Fit(ns, n.maxParts, contentBudget(n.maxBytes, len(empty), len(mentions)), 0, n.tmpl.CutNote(), func(ns []*notify.Notification, omitted int) string {
		d := tmpl.NewData(n.tmpl.Language(), n.externalURL, ns...)
		b := n.tmpl.Render(tctx, tmpl.Markdown, d)
		if omitted > 0 {
			b += "\n\n" + n.tmpl.OmittedNote(d, omitted, n.maxParts, true)
		}
		return b
	})
	return n.sendSplit(ctx, ns, title, colour(d), body, mentions, buttons, n.maxBytes)
}

// contentBudget is the markdown a card may carry within limit bytes.
// JSON escaping can grow text (quotes, newlines, control characters):
// budget the content at most, then check each encoded card.
func contentBudget(limit, empty, mentions int) int {
	return max((limit-empty-signOverhead-mentions-32)*9/10, minSplit/2)
}

func (n *Notifier) build(title, colour, content string, tail []any) message {
	els := []any{markdownElement{Tag: "markdown", Content: content}}
	els = append(els, tail...)
	return message{MsgType: "interactive", Card: &card{
		Config:   map[string]bool{"wide_screen_mode": true},
		Header:   header{Title: text{Tag: "plain_text", Content: title}, Template: colour},
		Elements: els,
	}}
}

func encode(m message) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// <at id=...> must reach the robot as written.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// signOverhead is what timestamp and sign add to a request body.
const signOverhead = len(`"timestamp":"1700000000","sign":"",`) + 44

// sendSplit sends body as one card or, above the limit, several; each card
// takes one token of the robot's rate limit and, when there are several, is
// recorded as accepted before the next goes out.
func (n *Notifier) sendSplit(ctx context.Context, ns []*notify.Notification, title, colour, body, mentions string, buttons []any, limit int) error {
	empty, err := encode(n.build(title, colour, "", buttons))
	if err != nil {
		return &notify.Error{Class: notify.Permanent, Err: fmt.Errorf("encode card: %w", err)}
	}
	l := n.split.Ledger(ctx)
	parts := chanhttp.Split(body, contentBudget(limit, len(empty), len(mentions)))
	for i, p := range parts {
		content := p
		if len(parts) > 1 {
			content = fmt.Sprintf("(%d/%d)\n%s", i+1, len(parts), p)
		}
		var tail []any
		if i == len(parts)-1 {
			if mentions != "" {
				content += "\n" + mentions
			}
			tail = buttons
		}
		key := chanhttp.PartKey(ns, content)
		if len(parts) > 1 && l.Sent(key) {
			continue
		}
		m := n.build(title, colour, content, tail)
		b, err := encode(m)
		if err != nil {
			return &notify.Error{Class: notify.Permanent, Err: fmt.Errorf("encode card: %w", err)}
		}
		if len(b)+signOverhead > limit {
			if limit/2 < minSplit {
				return &notify.Error{Class: notify.Permanent, Code: "9499", Err: fmt.Errorf("card of %d bytes does not fit the robot's %d-byte limit", len(b), MaxBytes)}
			}
			return n.sendSplit(ctx, ns, title, colour, strings.Join(parts[i:], ""), mentions, buttons, limit/2)
		}
		if err := l.Take(); err != nil {
			return err
		}
		err = n.send(ctx, m)
		var e *notify.Error
		if errors.As(err, &e) && e.Code == "9499" && limit/2 >= minSplit {
			// The robot measured differently: resend the rest in smaller cards.
			return n.sendSplit(ctx, ns, title, colour, strings.Join(parts[i:], ""), mentions, buttons, limit/2)
		}
		if err != nil {
			if len(parts) > 1 && e != nil {
				return &notify.Error{Class: e.Class, Code: e.Code, RetryAfter: e.RetryAfter, Err: fmt.Errorf("part %d/%d: %w", i+1, len(parts), e.Err)}
			}
			return err
		}
		if len(parts) > 1 {
			if err := l.Accepted(key); err != nil {
				return &notify.Error{Class: notify.Retry, Err: fmt.Errorf("record accepted card: %w", err)}
			}
		}
	}
	return nil
}

func (n *Notifier) send(ctx context.Context, m message) error {
	if n.secret != "" {
		m.Timestamp = strconv.FormatInt(n.now().Unix(), 10)
		m.Sign = Sign(m.Timestamp, n.secret)
	}
	body, err := encode(m)
	if err != nil {
		return &notify.Error{Class: notify.Permanent, Err: fmt.Errorf("encode card: %w", err)}
	}
	if err := n.pace.Wait(ctx); err != nil {
		return &notify.Error{Class: notify.Retry, Err: fmt.Errorf("feishu robot: waiting for the 5/s limit: %w", err)}
	}
	r, err := chanhttp.PostJSON(ctx, n.client, n.url, body, n.timeout)
	if err != nil {
		return n.scrub(err)
	}
	var a answer
	if jerr := json.Unmarshal(r.Body, &a); jerr != nil || (a.Code == nil && a.Status == nil) {
		if r.Status/100 != 2 {
			return n.scrub(chanhttp.StatusError(n.url, r))
		}
		return n.scrub(&notify.Error{Class: notify.Retry, Err: fmt.Errorf("%s: unreadable answer %q", chanhttp.Redact(n.url), chanhttp.Snippet(r.Body))})
	}
	code, msg := 0, a.Msg
	if a.Code != nil {
		code = *a.Code
	} else if a.Status != nil {
		code, msg = *a.Status, a.Message
	}
	if code == 0 && r.Status/100 != 2 {
		return n.scrub(chanhttp.StatusError(n.url, r))
	}
	return Classify(code, msg)
}

// scrub removes the robot token, which lives in the URL path where the
// shared redaction keeps it, from an error.
func (n *Notifier) scrub(err error) error {
	i := strings.LastIndex(n.url, "/hook/")
	if err == nil || i < 0 {
		return err
	}
	tok := n.url[i+len("/hook/"):]
	if tok == "" || !strings.Contains(err.Error(), tok) {
		return err
	}
	clean := errors.New(strings.ReplaceAll(err.Error(), tok, "<secret>"))
	var e *notify.Error
	if errors.As(err, &e) {
		return &notify.Error{Class: e.Class, Code: e.Code, RetryAfter: e.RetryAfter, Err: errors.New(strings.ReplaceAll(e.Err.Error(), tok, "<secret>"))}
	}
	return clean
}

// Classify maps a robot code to a delivery outcome (nil for 0).
func Classify(code int, msg string) error {
	if code == 0 {
		return nil
	}
	c := strconv.Itoa(code)
	err := fmt.Errorf("feishu robot: %s", msg)
	switch code {
	case 11232: // frequency limited: 100/min, 5/s per robot
		return &notify.Error{Class: notify.Retry, Code: c, RetryAfter: time.Minute, Err: err}
	case 9499: // bad request, e.g. the body is over 20 KB: the caller re-splits
		return &notify.Error{Class: notify.Permanent, Code: c, Err: err}
	case 19001, 19021, 19022, 19024:
		// invalid webhook token, signature or timestamp, IP not allowed, keyword missing
		return &notify.Error{Class: notify.Config, Code: c, Err: err}
	}
	if code < 0 { // system busy
		return &notify.Error{Class: notify.Retry, Code: c, Err: err}
	}
	return &notify.Error{Class: notify.Permanent, Code: c, Err: err}
}
