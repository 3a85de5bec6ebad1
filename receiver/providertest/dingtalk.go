package providertest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// DingTalkMessage is one accepted robot message.
type DingTalkMessage struct {
	MsgType  string `json:"msgtype"`
	Markdown *struct {
		Title string `json:"title"`
		Text  string `json:"text"`
	} `json:"markdown"`
	ActionCard *struct {
		Title       string `json:"title"`
		Text        string `json:"text"`
		SingleTitle string `json:"singleTitle"`
		SingleURL   string `json:"singleURL"`
		Btns        []struct {
			Title     string `json:"title"`
			ActionURL string `json:"actionURL"`
		} `json:"btns"`
	} `json:"actionCard"`
	Text *struct {
		Content string `json:"content"`
	} `json:"text"`
	At *struct {
		AtMobiles []string `json:"atMobiles"`
		AtUserIDs []string `json:"atUserIds"`
		IsAtAll   bool     `json:"isAtAll"`
	} `json:"at"`
}

// Content is the text of the message whatever its type.
func (m DingTalkMessage) Content() string {
	switch {
	case m.Markdown != nil:
		return m.Markdown.Text
	case m.ActionCard != nil:
		return m.ActionCard.Text
	case m.Text != nil:
		return m.Text.Content
	}
	return ""
}

// DingTalk fakes a custom robot at /robot/send.
type DingTalk struct {
	failures
	clock
	srv    *httptest.Server
	token  string
	secret string

	mu       sync.Mutex
	accepted []DingTalkMessage
	requests int
	win      window
	// MaxBytes is the text limit (20,000 like the real robot); tests may lower it.
	MaxBytes int
	// PerMinute is the rate limit (20 like the real robot).
	PerMinute int
}

// NewDingTalk starts a fake robot that accepts token and, when secret is not
// empty, requires a valid signature. It is closed with the test.
func NewDingTalk(t testing.TB, token, secret string) *DingTalk {
	d := &DingTalk{token: token, secret: secret, MaxBytes: 20000, PerMinute: 20}
	d.srv = httptest.NewServer(http.HandlerFunc(d.handle))
	t.Cleanup(d.srv.Close)
	return d
}

// URL is the robot webhook URL with the access_token.
func (d *DingTalk) URL() string { return d.srv.URL + "/robot/send?access_token=" + d.token }

// Messages returns the accepted messages in order.
func (d *DingTalk) Messages() []DingTalkMessage {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]DingTalkMessage(nil), d.accepted...)
}

// Requests counts every request, accepted or not.
func (d *DingTalk) Requests() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests
}

func dingAnswer(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"errcode":%d,"errmsg":%q}`, code, msg)
}

func (d *DingTalk) handle(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.requests++
	d.mu.Unlock()
	if d.serve(w) {
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/robot/send" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	if q.Get("access_token") != d.token {
		dingAnswer(w, 300005, "token is not exist")
		return
	}
	if d.secret != "" {
		ts, sign := q.Get("timestamp"), q.Get("sign")
		ms, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || sign == "" {
			dingAnswer(w, 310000, "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]")
			return
		}
		// The robot accepts timestamps within an hour of its clock.
		if diff := d.Now().Sub(time.UnixMilli(ms)); diff > time.Hour || diff < -time.Hour {
			dingAnswer(w, 310000, "invalid timestamp")
			return
		}
		mac := hmac.New(sha256.New, []byte(d.secret))
		mac.Write([]byte(ts + "\n" + d.secret))
		if !hmac.Equal([]byte(sign), []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))) {
			dingAnswer(w, 310000, "sign not match")
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<22))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var m DingTalkMessage
	if err := json.Unmarshal(body, &m); err != nil {
		dingAnswer(w, 40035, "缺少参数 json")
		return
	}
	switch {
	case m.MsgType == "markdown" && m.Markdown != nil, m.MsgType == "actionCard" && m.ActionCard != nil, m.MsgType == "text" && m.Text != nil:
	default:
		dingAnswer(w, 40035, "缺少参数 msgtype or content")
		return
	}
	if len(m.Content()) > d.MaxBytes {
		dingAnswer(w, 460101, "message too long, exceed 20000 bytes")
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.Now()
	if !d.win.allow(now, d.PerMinute) {
		dingAnswer(w, 130101, "send too fast, exceed 20 times per minute")
		return
	}
	d.win.add(now)
	d.accepted = append(d.accepted, m)
	dingAnswer(w, 0, "ok")
}
