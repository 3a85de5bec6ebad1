package sms

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
)

type aliyun struct {
	cfg    Config
	client *http.Client
	now    func() time.Time
	nonce  func() string
}

type aliyunAnswer struct {
	Code      string `json:"Code"`
	Message   string `json:"Message"`
	BizID     string `json:"BizId"`
	RequestID string `json:"RequestId"`
}

func (a *aliyun) send(ctx context.Context, phone string, m *message) error {
	params := make(map[string]string, len(m.Params))
	for i, v := range m.Params {
		params[m.Names[i]] = v
	}
	tp, err := json.Marshal(params)
	if err != nil {
		return &notify.Error{Class: notify.Permanent, Err: fmt.Errorf("encode template params: %w", err)}
	}
	q := url.Values{
		"PhoneNumbers":  {phone},
		"SignName":      {a.cfg.SignName},
		"TemplateCode":  {a.cfg.TemplateCode},
		"TemplateParam": {string(tp)},
	}
	req, err := NewAliyunRequest(a.cfg.Endpoint, "SendSms", "2017-05-25", q, a.cfg.AccessKeyID, a.cfg.AccessKeySecret.Value(), a.now(), a.nonce())
	if err != nil {
		return &notify.Error{Class: notify.Config, Err: err}
	}
	r, err := chanhttp.Do(ctx, a.client, req, a.cfg.HTTP.RequestTimeout())
	if err != nil {
		return err
	}
	var ans aliyunAnswer
	if jerr := json.Unmarshal(r.Body, &ans); jerr != nil || ans.Code == "" {
		if r.Status/100 == 2 {
			return &notify.Error{Class: notify.Retry, Err: fmt.Errorf("aliyun sms: unreadable answer %q", chanhttp.Snippet(r.Body))}
		}
		return chanhttp.StatusError(a.cfg.Endpoint, r)
	}
	return ClassifyAliyun(ans.Code, ans.Message)
}

// NewAliyunRequest builds a signed RPC-style request (parameters in the
// query, empty body) for an Alibaba Cloud API.
func NewAliyunRequest(endpoint, action, version string, q url.Values, keyID, keySecret string, now time.Time, nonce string) (*http.Request, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("aliyun endpoint %s is invalid", chanhttp.Redact(endpoint))
	}
	cq := CanonicalQuery(q)
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	h := map[string]string{
		"host":                  u.Host,
		"x-acs-action":          action,
		"x-acs-version":         version,
		"x-acs-date":            now.UTC().Format("2006-01-02T15:04:05Z"),
		"x-acs-signature-nonce": nonce,
		"x-acs-content-sha256":  sha256Hex(nil),
	}
	s := SignACS3(http.MethodPost, path, cq, h, nil, keyID, keySecret)
	req, err := http.NewRequest(http.MethodPost, u.Scheme+"://"+u.Host+path+"?"+cq, http.NoBody)
	if err != nil {
		return nil, fmt.Errorf("aliyun endpoint %s is invalid", chanhttp.Redact(endpoint))
	}
	for k, v := range h {
		if k != "host" {
			req.Header.Set(k, v)
		}
	}
	req.Header.Set("Authorization", s.Authorization)
	return req, nil
}

// ClassifyAliyun maps a Dysmsapi Code to a delivery outcome (nil for OK).
func ClassifyAliyun(code, msg string) error {
	if code == "OK" {
		return nil
	}
	err := fmt.Errorf("aliyun sms: %s", msg)
	e := func(c notify.Class, after time.Duration) error {
		return &notify.Error{Class: c, Code: code, RetryAfter: after, Err: err}
	}
	switch code {
	case "isv.BUSINESS_LIMIT_CONTROL":
		// Per-number frequency control; the message says which window
		// ("触发分钟级流控Permits:1", "小时级", "天级").
		switch {
		case strings.Contains(msg, "分钟") || strings.Contains(strings.ToLower(msg), "minute"):
			return e(notify.Retry, time.Minute)
		case strings.Contains(msg, "小时") || strings.Contains(strings.ToLower(msg), "hour"):
			return e(notify.Retry, time.Hour)
		case strings.Contains(msg, "天") || strings.Contains(strings.ToLower(msg), "day"):
			return e(notify.Permanent, 0)
		}
		return e(notify.Retry, time.Hour)
	case "isv.DAY_LIMIT_CONTROL", "isv.MOBILE_NUMBER_ILLEGAL", "isv.MOBILE_COUNT_OVER_LIMIT",
		"isv.TEMPLATE_MISSING_PARAMETERS", "isv.TEMPLATE_PARAMS_ILLEGAL", "isv.PARAM_LENGTH_LIMIT",
		"isv.INVALID_JSON_PARAM", "isv.BLACK_KEY_CONTROL_LIMIT", "isv.PARAM_NOT_SUPPORT_URL",
		"isv.INVALID_PARAMETERS", "isv.EXTEND_CODE_ERROR", "isv.DOMESTIC_NUMBER_NOT_SUPPORTED":
		return e(notify.Permanent, 0)
	case "isv.SMS_SIGNATURE_ILLEGAL", "isv.SMS_SIGN_ILLEGAL", "isv.SMS_TEMPLATE_ILLEGAL",
		"isv.AMOUNT_NOT_ENOUGH", "isv.OUT_OF_SERVICE", "isv.PRODUCT_UN_SUBSCRIPT", "isv.PRODUCT_UNSUBSCRIBE",
		"isv.ACCOUNT_NOT_EXISTS", "isv.ACCOUNT_ABNORMAL", "isv.SMS_SIGNATURE_SCENE_ILLEGAL",
		"SignatureDoesNotMatch", "IncompleteSignature", "InvalidAccessKeyId.NotFound",
		"InvalidAccessKeyId.Inactive", "Forbidden.RAM", "Forbidden.AccessKeyDisabled", "isp.RAM_PERMISSION_DENY",
		"MissingAccessKeyId", "InvalidApi.NotFound", "InvalidVersion":
		return e(notify.Config, 0)
	case "isp.SYSTEM_ERROR", "isp.GATEWAY_ERROR", "Throttling", "Throttling.User", "Throttling.Api",
		"ServiceUnavailable", "InternalError", "SignatureNonceUsed", "InvalidTimeStamp.Expired":
		return e(notify.Retry, 0)
	}
	if strings.HasPrefix(code, "Throttling") || strings.HasPrefix(code, "isp.") {
		return e(notify.Retry, 0)
	}
	return e(notify.Permanent, 0)
}
