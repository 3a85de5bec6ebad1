package voice

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/sms"
)

// Dyvms API facts.
const (
	aliyunVersion = "2017-05-25"
	// AliyunVoiceNotification is the ProdId of voice notifications in QueryCallDetailByCallId.
	AliyunVoiceNotification = "11000000300006"
)

type aliyun struct {
	endpoint, keyID, keySecret, ttsCode, show string
	plays                                     int
	o                                         *runtime
}

func randomNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// aliyunNumber is a number as Dyvms wants it: mainland numbers without +86,
// others with their country code and no +.
func aliyunNumber(p string) string {
	if strings.HasPrefix(p, "+86") {
		return p[3:]
	}
	return strings.TrimPrefix(p, "+")
}

type aliyunAnswer struct {
	Code      string `json:"Code"`
	Message   string `json:"Message"`
	CallID    string `json:"CallId"`
	RequestID string `json:"RequestId"`
	Data      string `json:"Data"`
}

func (a *aliyun) do(ctx context.Context, action string, q url.Values) (*aliyunAnswer, error) {
	req, err := sms.NewAliyunRequest(a.endpoint, action, aliyunVersion, q, a.keyID, a.keySecret, a.o.Now(), a.o.Nonce())
	if err != nil {
		return nil, &notify.Error{Class: notify.Config, Err: err}
	}
	r, err := chanhttp.Do(ctx, a.o.Client, req, a.o.Timeout)
	if err != nil {
		return nil, err
	}
	var ans aliyunAnswer
	if jerr := json.Unmarshal(r.Body, &ans); jerr != nil || ans.Code == "" {
		if r.Status/100 == 2 {
			return nil, &notify.Error{Class: notify.Retry, Err: fmt.Errorf("aliyun voice: unreadable answer %q", chanhttp.Snippet(r.Body))}
		}
		return nil, chanhttp.StatusError(a.endpoint, r)
	}
	return &ans, nil
}

func (a *aliyun) call(ctx context.Context, phone string, values, names []string) (string, error) {
	params := make(map[string]string, len(values))
	for i, v := range values {
		params[names[i]] = v
	}
	tp, err := json.Marshal(params)
	if err != nil {
		return "", &notify.Error{Class: notify.Permanent, Err: fmt.Errorf("encode TTS params: %w", err)}
	}
	q := url.Values{
		"CalledNumber": {aliyunNumber(phone)},
		"TtsCode":      {a.ttsCode},
		"TtsParam":     {string(tp)},
		"PlayTimes":    {strconv.Itoa(a.plays)},
	}
	if a.show != "" {
		q.Set("CalledShowNumber", a.show)
	}
	ans, err := a.do(ctx, "SingleCallByTts", q)
	if err != nil {
		return "", err
	}
	if err := ClassifyAliyun(ans.Code, ans.Message); err != nil {
		return "", err
	}
	if ans.CallID == "" {
		return "", &notify.Error{Class: notify.Retry, Err: fmt.Errorf("aliyun voice: accepted without a CallId")}
	}
	return ans.CallID, nil
}

// ClassifyAliyun maps a Dyvms Code to a delivery outcome (nil for OK). The
// platform's codes are those of its SMS API; per-number flow control for
// calls is 1 a minute, 5 an hour and 20 a day.
func ClassifyAliyun(code, msg string) error {
	if code == "isv.TTS_TEMPLATE_ILLEGAL" {
		return &notify.Error{Class: notify.Config, Code: code, Err: fmt.Errorf("aliyun voice: %s", msg)}
	}
	err := sms.ClassifyAliyun(code, msg)
	if e, ok := err.(*notify.Error); ok {
		return &notify.Error{Class: e.Class, Code: e.Code, RetryAfter: e.RetryAfter, Err: fmt.Errorf("aliyun voice: %s", msg)}
	}
	return err
}

// aliyunDetail is the JSON inside QueryCallDetailByCallId's Data string.
type aliyunDetail struct {
	CallID    string          `json:"callId"`
	State     string          `json:"state"`
	StateDesc string          `json:"stateDesc"`
	Duration  json.RawMessage `json:"duration"`
	StartDate string          `json:"startDate"`
	EndDate   string          `json:"endDate"`
}

// AliyunAnswered reports whether a call state means a person picked up:
// 200000 listened to the end, 200001 hung up early.
func AliyunAnswered(state string) bool { return state == "200000" || state == "200001" }

var shanghai = time.FixedZone("CST", 8*3600)

func (a *aliyun) query(ctx context.Context, c Call) (Result, error) {
	q := url.Values{
		"CallId":    {c.ID},
		"ProdId":    {AliyunVoiceNotification},
		"QueryDate": {strconv.FormatInt(c.Placed.UnixMilli(), 10)},
	}
	ans, err := a.do(ctx, "QueryCallDetailByCallId", q)
	if err != nil {
		return Result{}, err
	}
	if err := ClassifyAliyun(ans.Code, ans.Message); err != nil {
		return Result{}, err
	}
	if strings.TrimSpace(ans.Data) == "" {
		return Result{}, ErrPending
	}
	var d aliyunDetail
	if err := json.Unmarshal([]byte(ans.Data), &d); err != nil {
		return Result{}, fmt.Errorf("aliyun voice: unreadable call detail: %w", err)
	}
	if d.State == "" {
		return Result{}, ErrPending
	}
	secs, _ := strconv.Atoi(strings.Trim(string(d.Duration), `"`))
	res := Result{CallID: c.ID, Answered: AliyunAnswered(d.State), Status: d.State, Description: d.StateDesc, Duration: time.Duration(secs) * time.Second}
	res.Start, _ = time.ParseInLocation("2006-01-02 15:04:05", d.StartDate, shanghai)
	res.End, _ = time.ParseInLocation("2006-01-02 15:04:05", d.EndDate, shanghai)
	return res, nil
}
