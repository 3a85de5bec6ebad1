package voice

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/sms"
)

const (
	tencentVersion = "2020-09-02"
	tencentService = "vms"
)

type tencent struct {
	endpoint, secretID, secretKey, appID, templateID, region string
	plays                                                    int
	o                                                        *runtime
}

// tencentNumber is a number in E.164 form; numbers without a country code are mainland China.
func tencentNumber(p string) string {
	if strings.HasPrefix(p, "+") {
		return p
	}
	return "+86" + p
}

type tencentRequest struct {
	TemplateID       string   `json:"TemplateId"`
	CalledNumber     string   `json:"CalledNumber"`
	VoiceSdkAppid    string   `json:"VoiceSdkAppid"`
	TemplateParamSet []string `json:"TemplateParamSet"`
	PlayTimes        int      `json:"PlayTimes"`
}

type tencentAnswer struct {
	Response struct {
		Error *struct {
			Code    string `json:"Code"`
			Message string `json:"Message"`
		} `json:"Error"`
		SendStatus *struct {
			CallID string `json:"CallId"`
		} `json:"SendStatus"`
		RequestID string `json:"RequestId"`
	} `json:"Response"`
}

func (tc *tencent) call(ctx context.Context, phone string, values, _ []string) (string, error) {
	body, err := json.Marshal(tencentRequest{
		TemplateID: tc.templateID, CalledNumber: tencentNumber(phone), VoiceSdkAppid: tc.appID,
		TemplateParamSet: values, PlayTimes: tc.plays,
	})
	if err != nil {
		return "", &notify.Error{Class: notify.Permanent, Err: fmt.Errorf("encode request: %w", err)}
	}
	req, err := sms.NewTencentRequest(tc.endpoint, tencentService, "SendTtsVoice", tencentVersion, tc.region, body, tc.secretID, tc.secretKey, tc.o.Now())
	if err != nil {
		return "", &notify.Error{Class: notify.Config, Err: err}
	}
	r, err := chanhttp.Do(ctx, tc.o.Client, req, tc.o.Timeout)
	if err != nil {
		return "", err
	}
	if r.Status/100 != 2 {
		return "", chanhttp.StatusError(tc.endpoint, r)
	}
	var ans tencentAnswer
	if err := json.Unmarshal(r.Body, &ans); err != nil {
		return "", &notify.Error{Class: notify.Retry, Err: fmt.Errorf("tencent voice: unreadable answer %q", chanhttp.Snippet(r.Body))}
	}
	if e := ans.Response.Error; e != nil {
		return "", ClassifyTencent(e.Code, e.Message)
	}
	if ans.Response.SendStatus == nil || ans.Response.SendStatus.CallID == "" {
		return "", &notify.Error{Class: notify.Retry, Err: fmt.Errorf("tencent voice: answer without a CallId")}
	}
	return ans.Response.SendStatus.CallID, nil
}

func (tc *tencent) query(context.Context, Call) (Result, error) { return Result{}, ErrNoQuery }

// ClassifyTencent maps a VMS error code to a delivery outcome.
func ClassifyTencent(code, msg string) error {
	if code == "" {
		return nil
	}
	err := fmt.Errorf("tencent voice: %s", msg)
	e := func(c notify.Class, after time.Duration) error {
		return &notify.Error{Class: c, Code: code, RetryAfter: after, Err: err}
	}
	switch code {
	case "LimitExceeded.DeliveryFrequencyLimit":
		return e(notify.Retry, time.Minute)
	case "FailedOperation.InsufficientBalanceInVoicePackage", "FailedOperation.PhonenumberUnappliedOrExpired",
		"FailedOperation.TemplateIncorrectOrUnapproved", "InvalidParameterValue.SdkAppidNotExist",
		"InternalError.SigVerificationFail", "InternalError.RestApiInterfaceNotExist":
		return e(notify.Config, 0)
	case "InvalidParameterValue.CalledNumberVerifyFail", "InvalidParameterValue.ContentLengthLimit",
		"FailedOperation.ContainSensitiveWord", "FailedOperation.InvalidParameters", "FailedOperation.InvalidJsonParameters",
		"FailedOperation.JsonParseFail", "FailedOperation.FailResolvePacket", "UnsupportedOperation":
		return e(notify.Permanent, 0)
	case "InternalError.AccessUpstreamTimeout", "InternalError.UpstreamError", "InternalError.RequestTimeException",
		"FailedOperation.ParametersOtherError":
		return e(notify.Retry, 0)
	}
	// Codes common to every Tencent Cloud API (AuthFailure.*, RequestLimitExceeded.*, ...).
	if pe, ok := sms.ClassifyTencent(code, msg).(*notify.Error); ok {
		return &notify.Error{Class: pe.Class, Code: code, RetryAfter: pe.RetryAfter, Err: err}
	}
	return e(notify.Permanent, 0)
}
