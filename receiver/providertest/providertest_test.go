package providertest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/dingtalk"
	"github.com/open-autoglm/autoglm-monitor/receiver/providertest"
	"github.com/open-autoglm/autoglm-monitor/receiver/sms"
)

func do(t *testing.T, req *http.Request) map[string]any {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer %q: %v", b, err)
	}
	return m
}

func TestDingTalkRejectsBadSignatures(t *testing.T) {
	fake := providertest.NewDingTalk(t, "tok", "SECx")
	body := `{"msgtype":"markdown","markdown":{"title":"t","text":"x"}}`
	post := func(u string) float64 {
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
		return do(t, req)["errcode"].(float64)
	}
	if c := post(fake.URL()); c != 310000 {
		t.Errorf("unsigned: %v", c)
	}
	stale, _ := dingtalk.SignURL(fake.URL(), "SECx", time.Now().Add(-2*time.Hour))
	if c := post(stale); c != 310000 {
		t.Errorf("stale timestamp: %v", c)
	}
	good, _ := dingtalk.SignURL(fake.URL(), "SECx", time.Now())
	if c := post(good); c != 0 {
		t.Errorf("good: %v", c)
	}
	u, _ := url.Parse(good)
	q := u.Query()
	q.Set("timestamp", strconv.FormatInt(time.Now().UnixMilli()+1, 10))
	u.RawQuery = q.Encode()
	if c := post(u.String()); c != 310000 {
		t.Errorf("timestamp changed after signing: %v", c)
	}
	if n := len(fake.Messages()); n != 1 {
		t.Errorf("accepted %d", n)
	}
}

func TestAliyunRejectsReplayAndTampering(t *testing.T) {
	fake := providertest.NewAliyun(t, "id", "secret", "S", "T")
	q := url.Values{"PhoneNumbers": {"13800000000"}, "SignName": {"S"}, "TemplateCode": {"T"}, "TemplateParam": {`{"a":"b"}`}}
	req, err := sms.NewAliyunRequest(fake.URL(), "SendSms", "2017-05-25", q, "id", "secret", time.Now(), "nonce-1")
	if err != nil {
		t.Fatal(err)
	}
	replay := req.Clone(req.Context())
	if c := do(t, req)["Code"]; c != "OK" {
		t.Fatalf("first: %v", c)
	}
	if c := do(t, replay)["Code"]; c != "SignatureNonceUsed" {
		t.Errorf("replay: %v", c)
	}
	req, _ = sms.NewAliyunRequest(fake.URL(), "SendSms", "2017-05-25", q, "id", "secret", time.Now(), "nonce-2")
	req.URL.RawQuery = strings.Replace(req.URL.RawQuery, "13800000000", "13900000000", 1)
	if c := do(t, req)["Code"]; c != "SignatureDoesNotMatch" {
		t.Errorf("tampered: %v", c)
	}
	req, _ = sms.NewAliyunRequest(fake.URL(), "SendSms", "2017-05-25", q, "id", "secret", time.Now().Add(-time.Hour), "nonce-3")
	if c := do(t, req)["Code"]; c != "InvalidTimeStamp.Expired" {
		t.Errorf("old date: %v", c)
	}
	fake.FailAlways(providertest.Failure{Status: 503, Body: `{"Code":"ServiceUnavailable","Message":"down"}`})
	req, _ = sms.NewAliyunRequest(fake.URL(), "SendSms", "2017-05-25", q, "id", "secret", time.Now(), "nonce-4")
	if c := do(t, req)["Code"]; c != "ServiceUnavailable" {
		t.Errorf("injected: %v", c)
	}
	if n := len(fake.Messages()); n != 1 {
		t.Errorf("accepted %d", n)
	}
}

func TestTencentRejectsTamperedBody(t *testing.T) {
	fake := providertest.NewTencent(t, "AKID", "key", "1400", "S", "1")
	body := `{"PhoneNumberSet":["+8613800000000"],"SmsSdkAppId":"1400","SignName":"S","TemplateId":"1","TemplateParamSet":["x"]}`
	req, err := sms.NewTencentRequest(fake.URL(), "sms", "SendSms", "2021-01-11", "ap-guangzhou", []byte(body), "AKID", "key", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	resp := do(t, req)["Response"].(map[string]any)
	if st := resp["SendStatusSet"].([]any)[0].(map[string]any)["Code"]; st != "Ok" {
		t.Fatalf("good: %v", resp)
	}
	req, _ = sms.NewTencentRequest(fake.URL(), "sms", "SendSms", "2021-01-11", "ap-guangzhou", []byte(body), "AKID", "key", time.Now())
	req.Body = io.NopCloser(strings.NewReader(strings.Replace(body, `"x"`, `"y"`, 1)))
	resp = do(t, req)["Response"].(map[string]any)
	if code := resp["Error"].(map[string]any)["Code"]; code != "AuthFailure.SignatureFailure" {
		t.Errorf("tampered: %v", resp)
	}
	if n := len(fake.Messages()); n != 1 {
		t.Errorf("accepted %d", n)
	}
}
