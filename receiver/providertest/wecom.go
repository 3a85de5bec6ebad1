package providertest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// WeComMessage is one accepted robot message.
type WeComMessage struct {
	MsgType  string `json:"msgtype"`
	Markdown *struct {
		Content string `json:"content"`
	} `json:"markdown"`
	Text *struct {
		Content             string   `json:"content"`
		MentionedList       []string `json:"mentioned_list"`
		MentionedMobileList []string `json:"mentioned_mobile_list"`
	} `json:"text"`
	TemplateCard *WeComCard `json:"template_card"`
}

// WeComCard is a text_notice template card.
type WeComCard struct {
	CardType  string `json:"card_type"`
	MainTitle struct {
		Title string `json:"title"`
		Desc  string `json:"desc"`
	} `json:"main_title"`
	SubTitleText string `json:"sub_title_text"`
	JumpList     []struct {
		Type  int    `json:"type"`
		URL   string `json:"url"`
		Title string `json:"title"`
	} `json:"jump_list"`
	CardAction *struct {
		Type int    `json:"type"`
		URL  string `json:"url"`
	} `json:"card_action"`
}

// Content is the text of the message whatever its type.
func (m WeComMessage) Content() string {
	if m.Markdown != nil {
		return m.Markdown.Content
	}
	if m.Text != nil {
		return m.Text.Content
	}
	if m.TemplateCard != nil {
		return m.TemplateCard.MainTitle.Title
	}
	return ""
}

// WeCom fakes a group robot at /cgi-bin/webhook/send.
type WeCom struct {
	failures
	clock
	srv *httptest.Server
	key string

	mu        sync.Mutex
	accepted  []WeComMessage
	requests  int
	win       window
	PerMinute int
}

// NewWeCom starts a fake robot that accepts key. It is closed with the test.
func NewWeCom(t testing.TB, key string) *WeCom {
	w := &WeCom{key: key, PerMinute: 20}
	w.srv = httptest.NewServer(http.HandlerFunc(w.handle))
	t.Cleanup(w.srv.Close)
	return w
}

// URL is the robot webhook URL with the key.
func (w *WeCom) URL() string { return w.srv.URL + "/cgi-bin/webhook/send?key=" + w.key }

// Messages returns the accepted messages in order.
func (w *WeCom) Messages() []WeComMessage {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]WeComMessage(nil), w.accepted...)
}

// Requests counts every request, accepted or not.
func (w *WeCom) Requests() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.requests
}

func wecomAnswer(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"errcode":%d,"errmsg":%q}`, code, msg)
}

func (w *WeCom) handle(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	w.requests++
	w.mu.Unlock()
	if w.serve(rw) {
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/cgi-bin/webhook/send" {
		http.NotFound(rw, r)
		return
	}
	if r.URL.Query().Get("key") != w.key {
		wecomAnswer(rw, 93000, "invalid webhook url, hint: [1700000000_1_abc]")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<22))
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	var m WeComMessage
	if err := json.Unmarshal(body, &m); err != nil {
		wecomAnswer(rw, 40016, "invalid json")
		return
	}
	switch {
	case m.MsgType == "markdown" && m.Markdown != nil:
		if len(m.Markdown.Content) > 4096 {
			wecomAnswer(rw, 40058, "markdown.content exceed max length 4096")
			return
		}
	case m.MsgType == "text" && m.Text != nil:
		if len(m.Text.Content) > 2048 {
			wecomAnswer(rw, 40058, "text.content exceed max length 2048")
			return
		}
	case m.MsgType == "template_card" && m.TemplateCard != nil:
		c := m.TemplateCard
		// A text_notice card needs its type, a title and the card's own click action; it holds at most 3 jumps.
		if c.CardType != "text_notice" || c.CardAction == nil || c.CardAction.URL == "" || len(c.JumpList) > 3 {
			wecomAnswer(rw, 40008, "invalid template_card")
			return
		}
	default:
		wecomAnswer(rw, 40008, "invalid message type")
		return
	}
	if m.Content() == "" {
		wecomAnswer(rw, 44004, "empty content")
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.Now()
	if !w.win.allow(now, w.PerMinute) {
		wecomAnswer(rw, 45009, "api freq out of limit")
		return
	}
	w.win.add(now)
	w.accepted = append(w.accepted, m)
	wecomAnswer(rw, 0, "ok")
}
