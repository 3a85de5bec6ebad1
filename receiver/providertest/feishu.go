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
	"strings"
	"sync"
	"testing"
	"time"
)

// FeishuMessage is one accepted robot message (interactive cards and text).
type FeishuMessage struct {
	MsgType string `json:"msg_type"`
	Content *struct {
		Text string `json:"text"`
	} `json:"content"`
	Card *struct {
		Header struct {
			Title struct {
				Content string `json:"content"`
			} `json:"title"`
			Template string `json:"template"`
		} `json:"header"`
		Elements []map[string]any `json:"elements"`
	} `json:"card"`
	// Size is the request body size in bytes.
	Size int `json:"-"`
}

// Title of a card.
func (m FeishuMessage) Title() string {
	if m.Card == nil {
		return ""
	}
	return m.Card.Header.Title.Content
}

// Markdown is the concatenated markdown (and lark_md) text of a card, or the text of a text message.
func (m FeishuMessage) Markdown() string {
	if m.Content != nil {
		return m.Content.Text
	}
	if m.Card == nil {
		return ""
	}
	var b strings.Builder
	for _, e := range m.Card.Elements {
		switch e["tag"] {
		case "markdown":
			s, _ := e["content"].(string)
			b.WriteString(s)
		case "div":
			if t, ok := e["text"].(map[string]any); ok {
				s, _ := t["content"].(string)
				b.WriteString(s)
			}
		}
	}
	return b.String()
}

// FeishuButton is a button of a card.
type FeishuButton struct{ Text, URL, Type string }

// Buttons of a card, in order.
func (m FeishuMessage) Buttons() []FeishuButton {
	var out []FeishuButton
	if m.Card == nil {
		return nil
	}
	for _, e := range m.Card.Elements {
		if e["tag"] != "action" {
			continue
		}
		acts, _ := e["actions"].([]any)
		for _, a := range acts {
			am, _ := a.(map[string]any)
			t, _ := am["text"].(map[string]any)
			txt, _ := t["content"].(string)
			u, _ := am["url"].(string)
			typ, _ := am["type"].(string)
			out = append(out, FeishuButton{Text: txt, URL: u, Type: typ})
		}
	}
	return out
}

// Feishu fakes a Feishu / Lark custom robot at /open-apis/bot/v2/hook/<token>.
type Feishu struct {
	failures
	clock
	srv    *httptest.Server
	token  string
	secret string

	mu        sync.Mutex
	accepted  []FeishuMessage
	requests  int
	minute    window
	second    []time.Time
	MaxBytes  int
	PerMinute int
	PerSecond int
	// Keywords, when set, must appear in the message (the robot's keyword check, 19024).
	Keywords []string
}

// NewFeishu starts a fake robot for token; with a secret it requires signed
// requests whose timestamp is within an hour of its clock.
func NewFeishu(t testing.TB, token, secret string) *Feishu {
	f := &Feishu{token: token, secret: secret, MaxBytes: 20 * 1024, PerMinute: 100, PerSecond: 5}
	f.srv = httptest.NewServer(http.HandlerFunc(f.handle))
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the webhook URL.
func (f *Feishu) URL() string { return f.srv.URL + "/open-apis/bot/v2/hook/" + f.token }

// Messages returns the accepted messages.
func (f *Feishu) Messages() []FeishuMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FeishuMessage(nil), f.accepted...)
}

// Requests counts every request.
func (f *Feishu) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

func feishuAnswer(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"code":%d,"data":{},"msg":%q}`, code, msg)
}

func (f *Feishu) handle(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	f.mu.Unlock()
	if f.serve(w) {
		return
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/open-apis/bot/v2/hook/") {
		http.NotFound(w, r)
		return
	}
	if strings.TrimPrefix(r.URL.Path, "/open-apis/bot/v2/hook/") != f.token {
		feishuAnswer(w, 200, 19001, "param invalid: incoming webhook access token invalid")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<22))
	if err != nil {
		feishuAnswer(w, 400, 9499, "Bad Request")
		return
	}
	if len(body) > f.MaxBytes {
		feishuAnswer(w, 400, 9499, fmt.Sprintf("Bad Request: request body of %d bytes exceeds %d", len(body), f.MaxBytes))
		return
	}
	var raw struct {
		Timestamp string `json:"timestamp"`
		Sign      string `json:"sign"`
	}
	var m FeishuMessage
	if json.Unmarshal(body, &raw) != nil || json.Unmarshal(body, &m) != nil {
		feishuAnswer(w, 400, 9499, "Bad Request")
		return
	}
	if f.secret != "" {
		ts, err := strconv.ParseInt(raw.Timestamp, 10, 64)
		if err != nil || raw.Sign == "" {
			feishuAnswer(w, 200, 19021, "sign match fail or timestamp is not within one hour from current time")
			return
		}
		if d := f.Now().Sub(time.Unix(ts, 0)); d > time.Hour || d < -time.Hour {
			feishuAnswer(w, 200, 19021, "sign match fail or timestamp is not within one hour from current time")
			return
		}
		mac := hmac.New(sha256.New, []byte(raw.Timestamp+"\n"+f.secret))
		if !hmac.Equal([]byte(raw.Sign), []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))) {
			feishuAnswer(w, 200, 19021, "sign match fail or timestamp is not within one hour from current time")
			return
		}
	}
	switch {
	case m.MsgType == "interactive" && m.Card != nil && len(m.Card.Elements) > 0:
	case m.MsgType == "text" && m.Content != nil && m.Content.Text != "":
	default:
		feishuAnswer(w, 200, 19002, "params error, msg_type or content invalid")
		return
	}
	if len(f.Keywords) > 0 {
		found := false
		for _, k := range f.Keywords {
			found = found || strings.Contains(m.Title()+m.Markdown(), k)
		}
		if !found {
			feishuAnswer(w, 200, 19024, "Key Words Not Found")
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.Now()
	cut := now.Add(-time.Second)
	kept := f.second[:0]
	for _, t := range f.second {
		if t.After(cut) {
			kept = append(kept, t)
		}
	}
	f.second = kept
	if len(f.second) >= f.PerSecond || !f.minute.allow(now, f.PerMinute) {
		feishuAnswer(w, 200, 11232, "frequency limited psm[lark.oapi.app_platform_runtime]")
		return
	}
	f.second = append(f.second, now)
	f.minute.add(now)
	m.Size = len(body)
	f.accepted = append(f.accepted, m)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"StatusCode":0,"StatusMessage":"success","code":0,"data":{},"msg":"success"}`)
}
