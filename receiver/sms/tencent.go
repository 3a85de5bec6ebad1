package sms

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
)

type tencent struct {
	cfg    Config
	client *http.Client
	now    func() time.Time
}

type tencentRequest struct {
	PhoneNumberSet   []string `json:"PhoneNumberSet"`
	SmsSdkAppID      string   `json:"SmsSdkAppId"`
	SignName         string   `json:"SignName,omitempty"`
	TemplateID       string   `json:"TemplateId"`
	TemplateParamSet []string `json:"TemplateParamSet"`
}

type tencentAnswer struct {
	Response struct {
		Error *struct {
			Code    string `json:"Code"`
			Message string `json:"Message"`
		} `json:"Error"`
		SendStatusSet []struct {
			SerialNo    string `json:"SerialNo"`
			PhoneNumber string `json:"PhoneNumber"`
			Code        string `json:"Code"`
			Message     string `json:"Message"`
		} `json:"SendStatusSet"`
		RequestID string `json:"RequestId"`
	} `json:"Response"`
}

// tencentService is the credential-scope service of SMS, whatever the endpoint host.
const tencentService = "sms"

func (tc *tencent) send(ctx context.Context, phone string, m *message) error {
	body, err := json.Marshal(tencentRequest{
		PhoneNumberSet: []string{phone}, SmsSdkAppID: tc.cfg.SMSSdkAppID, SignName: tc.cfg.SignName,
		TemplateID: tc.cfg.TemplateID, TemplateParamSet: m.Params,
	})
	if err != nil {
		return &notify.Error{Class: notify.Permanent, Err: fmt.Errorf("encode request: %w", err)}
	}
	req, err := NewTencentRequest(tc.cfg.Endpoint, tencentService, "SendSms", "2021-01-11", tc.cfg.Region, body, tc.cfg.SecretID, tc.cfg.SecretKey.Value(), tc.now())
	if err != nil {
		return &notify.Error{Class: notify.Config, Err: err}
	}
	r, err := chanhttp.Do(ctx, tc.client, req, tc.cfg.HTTP.RequestTimeout())
	if err != nil {
		return err
	}
	if r.Status/100 != 2 {
		return chanhttp.StatusError(tc.cfg.Endpoint, r)
	}
	var ans tencentAnswer
	if err := json.Unmarshal(r.Body, &ans); err != nil {
		return &notify.Error{Class: notify.Retry, Err: fmt.Errorf("tencent sms: unreadable answer %q", chanhttp.Snippet(r.Body))}
	}
	if e := ans.Response.Error; e != nil {
		return ClassifyTencent(e.Code, e.Message)
	}
	for _, s := range ans.Response.SendStatusSet {
		if err := ClassifyTencent(s.Code, s.Message); err != nil {
			return err
		}
	}
	if len(ans.Response.SendStatusSet) == 0 {
		return &notify.Error{Class: notify.Retry, Err: fmt.Errorf("tencent sms: answer without a send status")}
	}
	return nil
}

// NewTencentRequest builds a signed Tencent Cloud API 3.0 JSON POST request.
func NewTencentRequest(endpoint, service, action, version, region string, body []byte, secretID, secretKey string, now time.Time) (*http.Request, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("tencent endpoint %s is invalid", chanhttp.Redact(endpoint))
	}
	const ct = "application/json; charset=utf-8"
	s := SignTC3(http.MethodPost, "/", "", map[string]string{"content-type": ct, "host": u.Host, "x-tc-action": action}, body, service, now, secretID, secretKey)
	req, err := http.NewRequest(http.MethodPost, u.Scheme+"://"+u.Host+"/", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("tencent endpoint %s is invalid", chanhttp.Redact(endpoint))
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("X-TC-Action", action)
	req.Header.Set("X-TC-Version", version)
	req.Header.Set("X-TC-Timestamp", strconv.FormatInt(now.Unix(), 10))
	if region != "" {
		req.Header.Set("X-TC-Region", region)
	}
	req.Header.Set("Authorization", s.Authorization)
	return req, nil
}

// ClassifyTencent maps a Tencent Cloud SMS code to a delivery outcome (nil for Ok).
func ClassifyTencent(code, msg string) error {
	if code == "Ok" || code == "" {
		return nil
	}
	err := fmt.Errorf("tencent sms: %s", msg)
	e := func(c notify.Class, after time.Duration) error {
		return &notify.Error{Class: c, Code: code, RetryAfter: after, Err: err}
	}
	switch code {
	case "LimitExceeded.PhoneNumberThirtySecondLimit":
		return e(notify.Retry, 30*time.Second)
	case "LimitExceeded.PhoneNumberOneHourLimit":
		return e(notify.Retry, time.Hour)
	case "LimitExceeded.DeliveryFrequencyLimit":
		return e(notify.Retry, time.Minute)
	case "LimitExceeded.PhoneNumberDailyLimit", "LimitExceeded.PhoneNumberSameContentDailyLimit",
		"LimitExceeded.DailyLimit", "LimitExceeded.PhoneNumberCountLimit",
		"InvalidParameterValue.IncorrectPhoneNumber", "FailedOperation.PhoneNumberInBlacklist",
		"InvalidParameterValue.TemplateParameterLengthLimit", "InvalidParameterValue.TemplateParameterFormatError",
		"InvalidParameterValue.ContentLengthLimit", "FailedOperation.ContainSensitiveWord",
		"FailedOperation.PhoneNumberParseFail", "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber":
		return e(notify.Permanent, 0)
	case "AuthFailure.SignatureExpire":
		// Clock skew over five minutes; a later attempt with a fresh timestamp may pass.
		return e(notify.Retry, 0)
	case "FailedOperation.SignatureIncorrectOrUnapproved", "FailedOperation.TemplateIncorrectOrUnapproved",
		"FailedOperation.InsufficientBalanceInSmsPackage", "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
		"FailedOperation.MissingSignature", "FailedOperation.MissingTemplateToModify",
		"InvalidParameterValue.SdkAppIdNotExist", "InvalidParameterValue.TemplateWithDirtyWords",
		"InternalError.SigVerificationFail":
		return e(notify.Config, 0)
	}
	switch {
	case strings.HasPrefix(code, "AuthFailure"), strings.HasPrefix(code, "UnauthorizedOperation"):
		return e(notify.Config, 0)
	case strings.HasPrefix(code, "RequestLimitExceeded"):
		return e(notify.Retry, time.Second)
	case strings.HasPrefix(code, "InternalError"), code == "FailedOperation", code == "ResourceUnavailable":
		return e(notify.Retry, 0)
	}
	return e(notify.Permanent, 0)
}
