package voice

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// TencentAnswered reports whether a voiceprompt_callback result means the
// call was answered (0); 1 is not answered, 2 a failed call.
func TencentAnswered(result string) bool { return result == "0" }

type tencentCallback struct {
	Prompt *struct {
		Result        string `json:"result"`
		CallID        string `json:"callid"`
		AcceptTime    string `json:"accept_time"`
		StartCallTime string `json:"start_calltime"`
		EndCallTime   string `json:"end_calltime"`
	} `json:"voiceprompt_callback"`
	Failure *struct {
		CallID        string          `json:"callid"`
		FailureCode   json.RawMessage `json:"failure_code"`
		FailureReason string          `json:"failure_reason"`
	} `json:"voice_failure_callback"`
}

func unix(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.Unix(n, 0)
}

var tencentResults = map[string]string{"0": "answered", "1": "not answered", "2": "call failed"}

// ParseTencentCallback reads one call-status push of Tencent VMS: the
// voiceprompt_callback (result 0 answered, 1 not answered, 2 failed) or the
// voice_failure_callback (failure_code and reason, e.g. 5 无人接听).
func ParseTencentCallback(body []byte) (Result, error) {
	var cb tencentCallback
	if err := json.Unmarshal(body, &cb); err != nil {
		return Result{}, fmt.Errorf("callback is not JSON: %w", err)
	}
	switch {
	case cb.Prompt != nil && cb.Prompt.CallID != "":
		p := cb.Prompt
		r := Result{CallID: p.CallID, Answered: TencentAnswered(p.Result), Status: p.Result, Description: tencentResults[p.Result]}
		r.Start, r.End = unix(p.StartCallTime), unix(p.EndCallTime)
		if acc := unix(p.AcceptTime); !acc.IsZero() && !r.End.IsZero() && r.Answered {
			r.Duration = r.End.Sub(acc)
		}
		return r, nil
	case cb.Failure != nil && cb.Failure.CallID != "":
		f := cb.Failure
		return Result{CallID: f.CallID, Status: "failure_code=" + strings.Trim(string(f.FailureCode), `"`), Description: f.FailureReason}, nil
	}
	return Result{}, errors.New("callback carries neither voiceprompt_callback nor voice_failure_callback with a callid")
}

// TencentCallbackHandler serves POST /api/v1/voice/tencent/<token>: it checks
// the token (the callback URL is the only secret Tencent can present) and
// hands each result to onResult. It answers {"result":0,"errmsg":"OK"}.
func TencentCallbackHandler(token string, onResult func(Result)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		got := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		if token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			http.Error(w, "unknown callback", http.StatusNotFound)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		res, err := ParseTencentCallback(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		onResult(res)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"result":0,"errmsg":"OK"}`)
	})
}
