// Package voice places text-to-speech phone calls for the last steps of an
// escalation: Aliyun Dyvms SingleCallByTts (ACS3-HMAC-SHA256) and Tencent
// Cloud VMS SendTtsVoice (TC3-HMAC-SHA256), signed with the SMS package's
// signers. A call the provider accepted is a delivery; whether someone
// answered arrives later (Aliyun: QueryCallDetailByCallId; Tencent: the
// call-status callback) and is reported as a Result.
package voice

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/oncall"
	"github.com/open-autoglm/autoglm-monitor/receiver/sms"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// Limits of the text read in a call.
const (
	// ParamChars bounds each variable. Neither provider publishes a per-variable
	// limit for TTS notifications; this is Aliyun's SMS notification limit,
	// a safe length to hear on the phone.
	ParamChars = 35
	// TencentContentChars bounds the whole text of a Tencent voice notification (350 characters).
	TencentContentChars = 350
	// DefaultPlayTimes is how often the text is read.
	DefaultPlayTimes = 2
)

// Call is a call the provider accepted.
type Call struct {
	Provider string
	ID       string
	// Phone is masked (138****0000).
	Phone string
	// Person is the on-call id called, "" for a configured number.
	Person string
	// Notifications are the notification ids the call was about, Groups their group keys.
	Notifications []string
	Groups        []string
	Placed        time.Time
}

// Result is what happened to a call.
type Result struct {
	CallID   string
	Answered bool
	// Status is the provider's code (Aliyun 200000…, Tencent result 0/1/2 or failure_code).
	Status      string
	Description string
	Duration    time.Duration
	Start, End  time.Time
}

// ErrPending means the provider has no result for the call yet.
var ErrPending = errors.New("call result not available yet")

// ErrNoQuery means the provider only reports results by callback.
var ErrNoQuery = errors.New("provider reports call results by callback only")

type caller interface {
	call(ctx context.Context, phone string, params []string, names []string) (string, error)
	query(ctx context.Context, c Call) (Result, error)
}

// Options are the runtime settings of a notifier.
type Options struct {
	Now func() time.Time
	// OnCall is told about every call the provider accepted (for audit and result tracking).
	OnCall func(Call)
	// Nonce makes Aliyun signature nonces (default: random).
	Nonce func() string
}

// runtime is what the provider clients share.
type runtime struct {
	Options
	Client  *http.Client
	Timeout time.Duration
}

// Notifier calls numbers.
type Notifier struct {
	provider string
	numbers  []string
	params   []Param
	tmpl     *tmpl.Templates
	o        runtime
	caller   caller
	done     *chanhttp.Sent
}

// New builds a notifier from a validated configuration.
func New(c *Config, t *tmpl.Templates, o Options) (*Notifier, error) {
	client, err := c.HTTP.Client("voice")
	if err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Nonce == nil {
		o.Nonce = randomNonce
	}
	if t == nil {
		t = tmpl.New(tmpl.Options{})
	}
	n := &Notifier{provider: c.Provider, numbers: c.PhoneNumbers, params: c.TemplateParams, tmpl: t,
		o: runtime{Options: o, Client: client, Timeout: c.HTTP.RequestTimeout()}, done: chanhttp.NewSent(4096)}
	if len(n.params) == 0 {
		n.params = sms.DefaultParams(c.Provider)
	}
	plays := c.PlayTimes
	if plays == 0 {
		plays = DefaultPlayTimes
	}
	switch c.Provider {
	case "aliyun":
		ep := c.Endpoint
		if ep == "" {
			ep = AliyunEndpoint
		}
		n.caller = &aliyun{endpoint: ep, keyID: c.AccessKeyID, keySecret: c.AccessKeySecret.Value(), ttsCode: c.TTSCode, show: c.CalledShowNumber, plays: plays, o: &n.o}
	case "tencent":
		ep, region := c.Endpoint, c.Region
		if ep == "" {
			ep = TencentEndpoint
		}
		if region == "" {
			region = "ap-guangzhou"
		}
		n.caller = &tencent{endpoint: ep, secretID: c.SecretID, secretKey: c.SecretKey.Value(), appID: c.VoiceSdkAppID, templateID: c.TemplateID, region: region, plays: plays, o: &n.o}
	default:
		return nil, fmt.Errorf("unknown voice provider %q", c.Provider)
	}
	return n, nil
}

type target struct {
	phone, person string
}

// targets are the people of an escalation step (their phones), else the configured numbers.
func (n *Notifier) targets(ctx context.Context) []target {
	if rs, ok := oncall.RecipientsFrom(ctx); ok {
		out := make([]target, 0, len(rs))
		for _, r := range rs {
			if r.Person.Phone != "" {
				out = append(out, target{r.Person.Phone, r.ID})
			}
		}
		return out
	}
	out := make([]target, 0, len(n.numbers))
	for _, p := range n.numbers {
		out = append(out, target{phone: p})
	}
	return out
}

// Notify calls every target that has not been called for these notifications yet.
func (n *Notifier) Notify(ctx context.Context, ns ...*notify.Notification) error {
	if len(ns) == 0 {
		return nil
	}
	ts := n.targets(ctx)
	if len(ts) == 0 {
		return &notify.Error{Class: notify.Permanent, Err: errors.New("nobody to call: the people on call have no phone number")}
	}
	d := tmpl.NewData(n.tmpl.Language(), "", ns...)
	values, names := n.render(ctx, d)
	ids := make([]string, 0, len(ns))
	groups := make([]string, 0, len(ns))
	for _, x := range ns {
		ids = append(ids, x.ID)
		groups = append(groups, x.GroupKey)
	}
	var failed []error
	for _, t := range ts {
		key := chanhttp.PartKey(ns, "call:"+t.phone)
		if n.done.Seen(key) {
			continue
		}
		id, err := n.caller.call(ctx, t.phone, values, names)
		if err != nil {
			failed = append(failed, annotate(err, t.phone))
			continue
		}
		n.done.Mark(key)
		if n.o.OnCall != nil {
			n.o.OnCall(Call{Provider: n.provider, ID: id, Phone: sms.MaskPhone(t.phone), Person: t.person, Notifications: ids, Groups: groups, Placed: n.o.Now()})
		}
	}
	return combine(failed)
}

// render produces the template variables, one line each, within the limits.
func (n *Notifier) render(ctx context.Context, d *tmpl.Data) ([]string, []string) {
	defaults := sms.DefaultParams(n.provider)
	values := make([]string, 0, len(n.params))
	names := make([]string, 0, len(n.params))
	total := 0
	for i, p := range n.params {
		v := n.tmpl.RenderText(ctx, "voice_param_"+p.Name, p.Value, d, defaults[min(i, len(defaults)-1)].Value)
		// A phone reads no markup or line breaks.
		v = strings.Join(strings.Fields(v), " ")
		if v == "" {
			v = "-"
		}
		v = tmpl.Truncate(v, ParamChars)
		if n.provider == "tencent" {
			v = tmpl.Truncate(v, max(1, TencentContentChars-total))
			total += len([]rune(v))
		}
		values = append(values, v)
		names = append(names, p.Name)
	}
	return values, names
}

// Query returns the result of a call (ErrPending until the provider has it,
// ErrNoQuery for providers that only call back).
func (n *Notifier) Query(ctx context.Context, c Call) (Result, error) {
	return n.caller.query(ctx, c)
}

func annotate(err error, phone string) error {
	var e *notify.Error
	if errors.As(err, &e) {
		return &notify.Error{Class: e.Class, Code: e.Code, RetryAfter: e.RetryAfter, Err: fmt.Errorf("%s: %w", sms.MaskPhone(phone), e.Err)}
	}
	return &notify.Error{Class: notify.Retry, Err: fmt.Errorf("%s: %w", sms.MaskPhone(phone), err)}
}

// combine reports the most actionable failure: retryable first (numbers
// already called are skipped next time), then configuration, then permanent.
func combine(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	rank := map[notify.Class]int{notify.Retry: 0, notify.Config: 1, notify.Permanent: 2}
	var best *notify.Error
	for _, err := range errs {
		var e *notify.Error
		if !errors.As(err, &e) {
			e = &notify.Error{Class: notify.Retry}
		}
		if best == nil || rank[e.Class] < rank[best.Class] || (e.Class == best.Class && e.RetryAfter > best.RetryAfter) {
			best = &notify.Error{Class: e.Class, Code: e.Code, RetryAfter: e.RetryAfter}
		}
	}
	best.Err = errors.Join(errs...)
	return best
}
