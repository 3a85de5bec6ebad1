package providertest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// SMS is one accepted text message.
type SMS struct {
	Phone    string
	SignName string
	Template string
	// Params by name (Aliyun) or "1", "2", ... (Tencent).
	Params map[string]string
}

// numberLimits counts accepted messages per phone number in three windows.
type numberLimits struct {
	sent map[string][]time.Time
}

// check returns which window (0 = first, 1 = second, 2 = third) is
// exhausted for phone at now, or -1.
func (l *numberLimits) check(phone string, now time.Time, windows [3]time.Duration, limits [3]int) int {
	ts := l.sent[phone]
	for i, w := range windows {
		if limits[i] <= 0 {
			continue
		}
		n := 0
		for _, t := range ts {
			if now.Sub(t) < w {
				n++
			}
		}
		if n >= limits[i] {
			return i
		}
	}
	return -1
}

func (l *numberLimits) add(phone string, now time.Time) {
	if l.sent == nil {
		l.sent = map[string][]time.Time{}
	}
	l.sent[phone] = append(l.sent[phone], now)
}

func hexSHA256(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func hmac256(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// canonical builds "name:value\n" lines for the signed header names, taking
// values from the request as received.
func canonical(r *http.Request, signed []string, lowerValues bool) string {
	var b strings.Builder
	for _, n := range signed {
		v := r.Header.Get(n)
		if n == "host" {
			v = r.Host
		}
		v = strings.TrimSpace(v)
		if lowerValues {
			v = strings.ToLower(v)
		}
		b.WriteString(n + ":" + v + "\n")
	}
	return b.String()
}

// Aliyun fakes Dysmsapi SendSms (version 2017-05-25) with V3 signatures.
type Aliyun struct {
	failures
	clock
	srv                           *httptest.Server
	keyID, keySecret, sign, tcode string

	mu       sync.Mutex
	accepted []SMS
	requests int
	nonces   map[string]bool
	limits   numberLimits
	// Per-number frequency control (isv.BUSINESS_LIMIT_CONTROL); 0 disables a window.
	// The documented default for notification texts is 50 a day per number.
	PerMinute, PerHour, PerDay int
	// MaxParamChars is the per-variable limit (isv.PARAM_LENGTH_LIMIT above it).
	MaxParamChars int
}

// NewAliyun starts a fake that accepts keyID/keySecret, signName and templateCode.
func NewAliyun(t testing.TB, keyID, keySecret, signName, templateCode string) *Aliyun {
	a := &Aliyun{keyID: keyID, keySecret: keySecret, sign: signName, tcode: templateCode, nonces: map[string]bool{}, PerDay: 50, MaxParamChars: 35}
	a.srv = httptest.NewServer(http.HandlerFunc(a.handle))
	t.Cleanup(a.srv.Close)
	return a
}

// URL is the endpoint to configure.
func (a *Aliyun) URL() string { return a.srv.URL }

// Messages returns accepted messages in order.
func (a *Aliyun) Messages() []SMS {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]SMS(nil), a.accepted...)
}

// Requests counts every request.
func (a *Aliyun) Requests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests
}

func aliyunAnswer(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"Code": code, "Message": msg, "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990", "BizId": "900619746936498440^0"})
}

func aliyunEncode(s string) string {
	e := url.QueryEscape(s)
	e = strings.ReplaceAll(e, "+", "%20")
	e = strings.ReplaceAll(e, "*", "%2A")
	return strings.ReplaceAll(e, "%7E", "~")
}

func (a *Aliyun) verify(r *http.Request, body []byte) (int, string, string) {
	return verifyACS3(r, body, a.Now(), a.keyID, a.keySecret, a.nonces, map[string]string{"SendSms": "2017-05-25"})
}

// verifyACS3 checks an Alibaba Cloud V3 signature the way the gateway does:
// action and version, body hash, 15-minute date window, nonce replay, access
// key and signature. nonces remembers the nonces seen (the caller holds its lock).
func verifyACS3(r *http.Request, body []byte, now time.Time, keyID, keySecret string, nonces map[string]bool, actions map[string]string) (int, string, string) {
	if v, ok := actions[r.Header.Get("x-acs-action")]; !ok || r.Header.Get("x-acs-version") != v {
		return 404, "InvalidApi.NotFound", "Specified api is not found, please check your url and method."
	}
	if r.Header.Get("x-acs-content-sha256") != hexSHA256(body) {
		return 400, "ContentSHA256NotMatch", "x-acs-content-sha256 does not match the body"
	}
	date, err := time.Parse("2006-01-02T15:04:05Z", r.Header.Get("x-acs-date"))
	if err != nil || now.Sub(date) > 15*time.Minute || date.Sub(now) > 15*time.Minute {
		return 400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
	}
	nonce := r.Header.Get("x-acs-signature-nonce")
	if nonce == "" || nonces[nonce] {
		return 400, "SignatureNonceUsed", "Specified signature nonce was used already."
	}
	auth := r.Header.Get("Authorization")
	const prefix = "ACS3-HMAC-SHA256 "
	if !strings.HasPrefix(auth, prefix) {
		return 400, "IncompleteSignature", "The request signature does not conform to Aliyun standards."
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(strings.TrimPrefix(auth, prefix), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		fields[k] = v
	}
	if fields["Credential"] != keyID {
		return 404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	if !sort.StringsAreSorted(signed) {
		return 400, "IncompleteSignature", "SignedHeaders must be sorted"
	}
	for _, must := range []string{"host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce", "x-acs-version"} {
		found := false
		for _, s := range signed {
			found = found || s == must
		}
		if !found {
			return 400, "IncompleteSignature", "header " + must + " is not signed"
		}
	}
	q := r.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, aliyunEncode(k)+"="+aliyunEncode(q.Get(k)))
	}
	cr := strings.Join([]string{r.Method, r.URL.EscapedPath(), strings.Join(parts, "&"), canonical(r, signed, false), strings.Join(signed, ";"), hexSHA256(body)}, "\n")
	want := hex.EncodeToString(hmac256([]byte(keySecret), "ACS3-HMAC-SHA256\n"+hexSHA256([]byte(cr))))
	if !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return 400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation."
	}
	nonces[nonce] = true
	return 0, "", ""
}

func (a *Aliyun) handle(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests++
	a.mu.Unlock()
	if a.serve(w) {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	a.mu.Lock()
	defer a.mu.Unlock()
	if status, code, msg := a.verify(r, body); code != "" {
		aliyunAnswer(w, status, code, msg)
		return
	}
	q := r.URL.Query()
	switch {
	case q.Get("SignName") != a.sign:
		aliyunAnswer(w, 200, "isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
		return
	case q.Get("TemplateCode") != a.tcode:
		aliyunAnswer(w, 200, "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
		return
	}
	params := map[string]string{}
	if err := json.Unmarshal([]byte(q.Get("TemplateParam")), &params); err != nil {
		aliyunAnswer(w, 200, "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
		return
	}
	for k, v := range params {
		if n := utf8.RuneCountInString(v); n > a.MaxParamChars || n == 0 {
			aliyunAnswer(w, 200, "isv.PARAM_LENGTH_LIMIT", fmt.Sprintf("参数超出长度限制: %s", k))
			return
		}
	}
	phones := strings.Split(q.Get("PhoneNumbers"), ",")
	now := a.Now()
	for _, p := range phones {
		if p == "" || strings.Trim(p, "+0123456789") != "" {
			aliyunAnswer(w, 200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
			return
		}
		if aliyunFlowControl(w, &a.limits, p, now, [3]int{a.PerMinute, a.PerHour, a.PerDay}) {
			return
		}
	}
	for _, p := range phones {
		a.limits.add(p, now)
		a.accepted = append(a.accepted, SMS{Phone: p, SignName: q.Get("SignName"), Template: q.Get("TemplateCode"), Params: params})
	}
	aliyunAnswer(w, 200, "OK", "OK")
}

// aliyunFlowControl answers isv.BUSINESS_LIMIT_CONTROL, naming the window
// as the platform does, when phone has used up a minute, hour or day limit.
func aliyunFlowControl(w http.ResponseWriter, l *numberLimits, phone string, now time.Time, limits [3]int) bool {
	i := l.check(phone, now, [3]time.Duration{time.Minute, time.Hour, 24 * time.Hour}, limits)
	if i < 0 {
		return false
	}
	window := [3]string{"分钟级", "小时级", "天级"}[i]
	aliyunAnswer(w, 200, "isv.BUSINESS_LIMIT_CONTROL", "触发"+window+"流控Permits:"+strconv.Itoa(limits[i]))
	return true
}

// Tencent fakes Tencent Cloud SMS SendSms (2021-01-11) with TC3 signatures.
type Tencent struct {
	failures
	clock
	srv                                   *httptest.Server
	secretID, secretKey, appID, sign, tid string

	mu       sync.Mutex
	accepted []SMS
	requests int
	limits   numberLimits
	// Per-number frequency limits; 0 disables. The console's defaults are 1
	// per 30 seconds, 5 per hour and 10 per day for the same content.
	PerThirtySeconds, PerHour, PerDay int
	// MaxParamChars is the per-variable limit.
	MaxParamChars int
}

// NewTencent starts a fake that accepts the given credentials, SDK app id,
// sign name and template id.
func NewTencent(t testing.TB, secretID, secretKey, sdkAppID, signName, templateID string) *Tencent {
	tc := &Tencent{secretID: secretID, secretKey: secretKey, appID: sdkAppID, sign: signName, tid: templateID, MaxParamChars: 26}
	tc.srv = httptest.NewServer(http.HandlerFunc(tc.handle))
	t.Cleanup(tc.srv.Close)
	return tc
}

// URL is the endpoint to configure.
func (tc *Tencent) URL() string { return tc.srv.URL }

// Messages returns accepted messages in order.
func (tc *Tencent) Messages() []SMS {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return append([]SMS(nil), tc.accepted...)
}

// Requests counts every request.
func (tc *Tencent) Requests() int {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.requests
}

func tencentError(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"Response": map[string]any{
		"Error": map[string]string{"Code": code, "Message": msg}, "RequestId": "ed93f3cb-f35e-473f-b9f3-0d451b8b79c6",
	}})
}

func (tc *Tencent) verify(r *http.Request, body []byte) (string, string) {
	return verifyTC3(r, body, tc.Now(), tc.secretID, tc.secretKey, "sms", "SendSms", "2021-01-11")
}

// verifyTC3 checks a Tencent Cloud API 3.0 signature the way the gateway
// does: action and version, 5-minute timestamp window, SecretId, credential
// scope of service, signed headers and signature.
func verifyTC3(r *http.Request, body []byte, now time.Time, secretID, secretKey, service, action, version string) (string, string) {
	if r.Header.Get("X-TC-Action") != action {
		return "InvalidAction", "action not found"
	}
	if r.Header.Get("X-TC-Version") != version {
		return "NoSuchVersion", "version not found"
	}
	ts, err := strconv.ParseInt(r.Header.Get("X-TC-Timestamp"), 10, 64)
	if err != nil {
		return "MissingParameter", "X-TC-Timestamp"
	}
	if d := now.Sub(time.Unix(ts, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return "AuthFailure.SignatureExpire", "signature expired"
	}
	auth := r.Header.Get("Authorization")
	const prefix = "TC3-HMAC-SHA256 "
	if !strings.HasPrefix(auth, prefix) {
		return "AuthFailure.InvalidAuthorization", "Authorization does not conform"
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(strings.TrimPrefix(auth, prefix), ", ") {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	cred := strings.Split(fields["Credential"], "/")
	if len(cred) != 4 || cred[3] != "tc3_request" {
		return "AuthFailure.InvalidAuthorization", "bad Credential"
	}
	if cred[0] != secretID {
		return "AuthFailure.SecretIdNotFound", "The SecretId is not found"
	}
	date := time.Unix(ts, 0).UTC().Format("2006-01-02")
	if cred[1] != date || cred[2] != service {
		return "AuthFailure.SignatureFailure", "credential scope mismatch"
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	hasCT, hasHost := false, false
	for _, s := range signed {
		hasCT, hasHost = hasCT || s == "content-type", hasHost || s == "host"
	}
	if !hasCT || !hasHost || !sort.StringsAreSorted(signed) {
		return "AuthFailure.SignatureFailure", "content-type and host must be signed, sorted"
	}
	cr := strings.Join([]string{r.Method, "/", r.URL.RawQuery, canonical(r, signed, true), strings.Join(signed, ";"), hexSHA256(body)}, "\n")
	sts := "TC3-HMAC-SHA256\n" + strconv.FormatInt(ts, 10) + "\n" + date + "/" + service + "/tc3_request\n" + hexSHA256([]byte(cr))
	k := hmac256(hmac256(hmac256([]byte("TC3"+secretKey), date), service), "tc3_request")
	if !hmac.Equal([]byte(hex.EncodeToString(hmac256(k, sts))), []byte(fields["Signature"])) {
		return "AuthFailure.SignatureFailure", "The provided credentials could not be validated."
	}
	return "", ""
}

func (tc *Tencent) handle(w http.ResponseWriter, r *http.Request) {
	tc.mu.Lock()
	tc.requests++
	tc.mu.Unlock()
	if tc.serve(w) {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if code, msg := tc.verify(r, body); code != "" {
		tencentError(w, code, msg)
		return
	}
	var req struct {
		PhoneNumberSet   []string
		SmsSdkAppId      string
		SignName         string
		TemplateId       string
		TemplateParamSet []string
	}
	if err := json.Unmarshal(body, &req); err != nil {
		tencentError(w, "FailedOperation.FailResolvePacket", "bad json")
		return
	}
	switch {
	case req.SmsSdkAppId != tc.appID:
		tencentError(w, "InvalidParameterValue.SdkAppIdNotExist", "SdkAppId not exist")
		return
	case req.SignName != tc.sign:
		tencentError(w, "FailedOperation.SignatureIncorrectOrUnapproved", "signature incorrect or unapproved")
		return
	case req.TemplateId != tc.tid:
		tencentError(w, "FailedOperation.TemplateIncorrectOrUnapproved", "template incorrect or unapproved")
		return
	}
	params := map[string]string{}
	for i, p := range req.TemplateParamSet {
		if utf8.RuneCountInString(p) > tc.MaxParamChars {
			tencentError(w, "InvalidParameterValue.TemplateParameterLengthLimit", "single template parameter exceeds the length limit")
			return
		}
		params[strconv.Itoa(i+1)] = p
	}
	now := tc.Now()
	status := make([]map[string]any, 0, len(req.PhoneNumberSet))
	for _, p := range req.PhoneNumberSet {
		st := map[string]any{"PhoneNumber": p, "SerialNo": "2028:f825e6b16e23f73f4123", "Fee": 1, "SessionContext": "", "IsoCode": "CN", "Code": "Ok", "Message": "send success"}
		switch tc.limits.check(p, now, [3]time.Duration{30 * time.Second, time.Hour, 24 * time.Hour}, [3]int{tc.PerThirtySeconds, tc.PerHour, tc.PerDay}) {
		case 0:
			st["Code"], st["Message"] = "LimitExceeded.PhoneNumberThirtySecondLimit", "the number of SMS messages sent from a single mobile number within 30 seconds exceeds the upper limit"
		case 1:
			st["Code"], st["Message"] = "LimitExceeded.PhoneNumberOneHourLimit", "the number of SMS messages sent from a single mobile number within 1 hour exceeds the upper limit"
		case 2:
			st["Code"], st["Message"] = "LimitExceeded.PhoneNumberDailyLimit", "the number of SMS messages sent from a single mobile number every day exceeds the upper limit"
		default:
			tc.limits.add(p, now)
			tc.accepted = append(tc.accepted, SMS{Phone: p, SignName: req.SignName, Template: req.TemplateId, Params: params})
		}
		status = append(status, st)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"Response": map[string]any{"SendStatusSet": status, "RequestId": "a0aabda6-cf91-4f3e-a81f-9198114a2279"}})
}
