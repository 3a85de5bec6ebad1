package providertest

import (
	"bytes"
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
	"unicode/utf8"
)

// VoiceCall is one call a fake accepted.
type VoiceCall struct {
	CallID    string
	Phone     string
	Template  string
	Params    map[string]string // by name (Aliyun) or "1", "2", ... (Tencent)
	PlayTimes int
	Placed    time.Time
}

// CallOutcome is how a called person reacts in a fake.
type CallOutcome struct {
	// Aliyun: state code (200000 listened, 200003 not answered, ...) and description.
	// Tencent: result (0 answered, 1 not answered, 2 failed), or a failure code > 0.
	Code        string
	Description string
	// Talk is how long the call lasted once answered.
	Talk time.Duration
}

type voiceCalls struct {
	vmu      sync.Mutex
	calls    []VoiceCall
	requests int
	limits   numberLimits
	outcomes map[string]CallOutcome
	seq      int
}

// Calls returns the accepted calls in order.
func (v *voiceCalls) Calls() []VoiceCall {
	v.vmu.Lock()
	defer v.vmu.Unlock()
	return append([]VoiceCall(nil), v.calls...)
}

// Requests counts every request.
func (v *voiceCalls) Requests() int {
	v.vmu.Lock()
	defer v.vmu.Unlock()
	return v.requests
}

// SetOutcome decides what happens when phone is called (default: answered).
func (v *voiceCalls) SetOutcome(phone string, o CallOutcome) {
	v.vmu.Lock()
	defer v.vmu.Unlock()
	if v.outcomes == nil {
		v.outcomes = map[string]CallOutcome{}
	}
	v.outcomes[phone] = o
}

func (v *voiceCalls) outcome(phone string, def CallOutcome) CallOutcome {
	if o, ok := v.outcomes[phone]; ok {
		return o
	}
	return def
}

// AliyunVoice fakes Dyvms (2017-05-25): SingleCallByTts and
// QueryCallDetailByCallId, with V3 signatures, the per-number flow control
// of 1 call a minute, 5 an hour and 20 a day, and parameter ranges.
type AliyunVoice struct {
	failures
	clock
	voiceCalls
	srv                        *httptest.Server
	keyID, keySecret, ttsCode  string
	nonces                     map[string]bool
	PerMinute, PerHour, PerDay int
	// ReportAfter is how long after a call its detail becomes queryable.
	ReportAfter time.Duration
}

// NewAliyunVoice starts a fake that accepts keyID/keySecret and the TTS template ttsCode.
func NewAliyunVoice(t testing.TB, keyID, keySecret, ttsCode string) *AliyunVoice {
	a := &AliyunVoice{keyID: keyID, keySecret: keySecret, ttsCode: ttsCode, nonces: map[string]bool{}, PerMinute: 1, PerHour: 5, PerDay: 20}
	a.srv = httptest.NewServer(http.HandlerFunc(a.handle))
	t.Cleanup(a.srv.Close)
	return a
}

// URL is the endpoint to configure.
func (a *AliyunVoice) URL() string { return a.srv.URL }

func (a *AliyunVoice) handle(w http.ResponseWriter, r *http.Request) {
	a.vmu.Lock()
	a.requests++
	a.vmu.Unlock()
	if a.serve(w) {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	a.vmu.Lock()
	defer a.vmu.Unlock()
	now := a.Now()
	if status, code, msg := verifyACS3(r, body, now, a.keyID, a.keySecret, a.nonces,
		map[string]string{"SingleCallByTts": "2017-05-25", "QueryCallDetailByCallId": "2017-05-25"}); code != "" {
		aliyunAnswer(w, status, code, msg)
		return
	}
	q := r.URL.Query()
	if r.Header.Get("x-acs-action") == "QueryCallDetailByCallId" {
		a.detail(w, q, now)
		return
	}
	phone := q.Get("CalledNumber")
	if phone == "" || strings.Trim(phone, "0123456789") != "" {
		aliyunAnswer(w, 200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
		return
	}
	if q.Get("TtsCode") != a.ttsCode {
		aliyunAnswer(w, 200, "isv.TTS_TEMPLATE_ILLEGAL", "TTS模板不合法")
		return
	}
	plays := 3
	if s := q.Get("PlayTimes"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 3 {
			aliyunAnswer(w, 200, "isv.INVALID_PARAMETERS", "PlayTimes must be within 1..3")
			return
		}
		plays = n
	}
	for name, bounds := range map[string][2]int{"Volume": {0, 100}, "Speed": {-500, 500}} {
		if s := q.Get(name); s != "" {
			if n, err := strconv.Atoi(s); err != nil || n < bounds[0] || n > bounds[1] {
				aliyunAnswer(w, 200, "isv.INVALID_PARAMETERS", name+" out of range")
				return
			}
		}
	}
	params := map[string]string{}
	if tp := q.Get("TtsParam"); tp != "" {
		if err := json.Unmarshal([]byte(tp), &params); err != nil {
			aliyunAnswer(w, 200, "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
			return
		}
	}
	if aliyunFlowControl(w, &a.limits, phone, now, [3]int{a.PerMinute, a.PerHour, a.PerDay}) {
		return
	}
	a.limits.add(phone, now)
	a.seq++
	id := fmt.Sprintf("1160%08d^1028%06d", a.seq, a.seq)
	a.calls = append(a.calls, VoiceCall{CallID: id, Phone: phone, Template: a.ttsCode, Params: params, PlayTimes: plays, Placed: now})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"Code": "OK", "Message": "OK", "RequestId": "D9CB3933-9FE3-4870-BA8E-2BEE91B69D23", "CallId": id})
}

func (a *AliyunVoice) detail(w http.ResponseWriter, q map[string][]string, now time.Time) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	answer := func(data string) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"Code": "OK", "Message": "OK", "RequestId": "C3B1B5C2-0B6E-4E5C-9B0A-5B1A3E6C2E11", "Data": data})
	}
	if get("ProdId") != "11000000300006" {
		// Details are kept per product: another product id finds nothing.
		answer("")
		return
	}
	ms, err := strconv.ParseInt(get("QueryDate"), 10, 64)
	if err != nil {
		aliyunAnswer(w, 200, "isv.INVALID_PARAMETERS", "QueryDate must be Unix milliseconds")
		return
	}
	for _, c := range a.calls {
		if c.CallID != get("CallId") {
			continue
		}
		// The date must fall on the day of the call, and the detail appears some time after it.
		if d := c.Placed.Sub(time.UnixMilli(ms)); d < 0 || d > 24*time.Hour || now.Before(c.Placed.Add(a.ReportAfter)) {
			answer("")
			return
		}
		o := a.outcome(c.Phone, CallOutcome{Code: "200000", Description: "用户听完语音", Talk: 20 * time.Second})
		cst := time.FixedZone("CST", 8*3600)
		dur := 0
		if o.Code == "200000" || o.Code == "200001" {
			dur = int(o.Talk / time.Second)
		}
		detail, _ := json.Marshal(map[string]any{
			"callId": c.CallID, "state": o.Code, "stateDesc": o.Description, "duration": dur, "callee": c.Phone,
			"startDate": c.Placed.In(cst).Format("2006-01-02 15:04:05"), "endDate": c.Placed.Add(o.Talk).In(cst).Format("2006-01-02 15:04:05"),
		})
		answer(string(detail))
		return
	}
	answer("")
}

// TencentVoice fakes VMS SendTtsVoice (2020-09-02) with TC3 signatures and,
// when CallbackURL is set, posts the call-status callback after each call.
type TencentVoice struct {
	failures
	clock
	voiceCalls
	srv                                    *httptest.Server
	secretID, secretKey, appID, templateID string
	// PerHour limits calls per number (LimitExceeded.DeliveryFrequencyLimit; 0 = off).
	PerHour int
	// CallbackURL receives voiceprompt_callback / voice_failure_callback pushes.
	CallbackURL string
	cbWG        sync.WaitGroup
}

// NewTencentVoice starts a fake for the given credentials, app and template.
func NewTencentVoice(t testing.TB, secretID, secretKey, voiceSdkAppID, templateID string) *TencentVoice {
	tv := &TencentVoice{secretID: secretID, secretKey: secretKey, appID: voiceSdkAppID, templateID: templateID}
	tv.srv = httptest.NewServer(http.HandlerFunc(tv.handle))
	t.Cleanup(func() { tv.srv.Close(); tv.cbWG.Wait() })
	return tv
}

// URL is the endpoint to configure.
func (tv *TencentVoice) URL() string { return tv.srv.URL }

// WaitCallbacks waits until every callback posted so far was answered.
func (tv *TencentVoice) WaitCallbacks() { tv.cbWG.Wait() }

func (tv *TencentVoice) handle(w http.ResponseWriter, r *http.Request) {
	tv.vmu.Lock()
	tv.requests++
	tv.vmu.Unlock()
	if tv.serve(w) {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	tv.vmu.Lock()
	defer tv.vmu.Unlock()
	now := tv.Now()
	if code, msg := verifyTC3(r, body, now, tv.secretID, tv.secretKey, "vms", "SendTtsVoice", "2020-09-02"); code != "" {
		tencentError(w, code, msg)
		return
	}
	var req struct {
		TemplateId       string
		CalledNumber     string
		VoiceSdkAppid    string
		TemplateParamSet []string
		PlayTimes        *int
		SessionContext   string
	}
	if err := json.Unmarshal(body, &req); err != nil {
		tencentError(w, "FailedOperation.JsonParseFail", "解析请求包体时候失败")
		return
	}
	plays := 2
	if req.PlayTimes != nil {
		plays = *req.PlayTimes
	}
	total := 0
	for _, p := range req.TemplateParamSet {
		total += utf8.RuneCountInString(p)
	}
	switch {
	case req.VoiceSdkAppid != tv.appID:
		tencentError(w, "InvalidParameterValue.SdkAppidNotExist", "SDK AppID 不存在")
		return
	case req.TemplateId != tv.templateID:
		tencentError(w, "FailedOperation.TemplateIncorrectOrUnapproved", "模版未审核或请求的内容与审核通过的模版内容不匹配")
		return
	case !strings.HasPrefix(req.CalledNumber, "+") || strings.Trim(req.CalledNumber[1:], "0123456789") != "" || len(req.CalledNumber) < 6:
		tencentError(w, "InvalidParameterValue.CalledNumberVerifyFail", "被叫手机号码格式校验失败")
		return
	case plays < 1 || plays > 3:
		tencentError(w, "FailedOperation.InvalidParameters", "PlayTimes 最多3次")
		return
	case total > 350:
		tencentError(w, "InvalidParameterValue.ContentLengthLimit", "语音消息的内容长度不超过350字")
		return
	}
	if tv.limits.check(req.CalledNumber, now, [3]time.Duration{time.Hour}, [3]int{tv.PerHour}) >= 0 {
		tencentError(w, "LimitExceeded.DeliveryFrequencyLimit", "下发语音消息时命中频率限制策略")
		return
	}
	tv.limits.add(req.CalledNumber, now)
	tv.seq++
	id := fmt.Sprintf("12582bce-403c-11eb-96b8-%012d", tv.seq)
	params := map[string]string{}
	for i, p := range req.TemplateParamSet {
		params[strconv.Itoa(i+1)] = p
	}
	tv.calls = append(tv.calls, VoiceCall{CallID: id, Phone: req.CalledNumber, Template: req.TemplateId, Params: params, PlayTimes: plays, Placed: now})
	if tv.CallbackURL != "" {
		tv.callback(id, req.CalledNumber, now, tv.outcome(req.CalledNumber, CallOutcome{Code: "0", Talk: 15 * time.Second}))
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"Response": map[string]any{
		"SendStatus": map[string]string{"CallId": id, "SessionContext": req.SessionContext}, "RequestId": "91260bb8-cf91-4f3e-a81f-9198114a2279"}})
}

// callback posts the status push the way VMS does, once, in the background.
func (tv *TencentVoice) callback(id, phone string, placed time.Time, o CallOutcome) {
	mobile := strings.TrimPrefix(phone, "+86")
	var payload any
	if n, err := strconv.Atoi(o.Code); err == nil && n > 2 {
		payload = map[string]any{"voice_failure_callback": map[string]any{
			"call_from": "", "callid": id, "f_string": "", "failure_code": n, "failure_reason": o.Description, "mobile": mobile, "nationcode": "86"}}
	} else {
		ts := func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
		accept := placed.Add(5 * time.Second)
		end := accept.Add(o.Talk)
		if o.Code != "0" {
			accept, end = time.Time{}, placed.Add(30*time.Second)
		}
		acc := "0"
		if !accept.IsZero() {
			acc = ts(accept)
		}
		payload = map[string]any{"voiceprompt_callback": map[string]string{
			"result": o.Code, "accept_time": acc, "call_from": "", "callid": id, "end_calltime": ts(end), "fee": "1",
			"mobile": mobile, "nationcode": "86", "start_calltime": ts(placed)}}
	}
	body, _ := json.Marshal(payload)
	url := tv.CallbackURL
	tv.cbWG.Add(1)
	go func() {
		defer tv.cbWG.Done()
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Post(url, "application/json", bytes.NewReader(body))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
	}()
}
