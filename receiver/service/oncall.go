package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	amwebhook "github.com/prometheus/alertmanager/notify/webhook"

	"github.com/open-autoglm/autoglm-monitor/receiver/action"
	"github.com/open-autoglm/autoglm-monitor/receiver/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/escalation"
	"github.com/open-autoglm/autoglm-monitor/receiver/oncall"
	"github.com/open-autoglm/autoglm-monitor/receiver/oncallapi"
	"github.com/open-autoglm/autoglm-monitor/receiver/route"
	"github.com/open-autoglm/autoglm-monitor/receiver/silence"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
	"github.com/open-autoglm/autoglm-monitor/receiver/voice"
)

// onCallConfigKey stores the last on-call configuration beside the
// incidents, so changes made while the receiver was down are audited too.
const onCallConfigKey = "config:oncall"

// onCall is the on-call part of the service: escalation chains, action
// links, silences, schedules and phone call results.
type onCall struct {
	s      *Service
	esc    *escalation.Escalator
	api    *oncallapi.API
	poller *voice.Poller

	mu        sync.Mutex
	rc        *config.Config
	signer    *action.Signer
	callbacks map[string]string // Tencent callback token → voice channel
	calls     map[string]callInfo
}

// runtime is what one configuration gives the on-call part.
type runtime struct {
	esc    escalation.Config
	api    *oncallapi.Config
	signer *action.Signer
	tokens map[string]string
}

func (o *onCall) compile(rc *config.Config) (*runtime, error) {
	rt := &runtime{tokens: map[string]string{}, esc: escalation.Config{Chains: map[string]oncall.Chain{}}}
	oc := rc.OnCall
	if oc == nil {
		oc = &oncall.Config{}
	}
	scheds, err := oc.CompileAll()
	if err != nil {
		return nil, err
	}
	for name := range oc.Chains {
		ch, _ := oc.Chain(name)
		rt.esc.Chains[name] = ch
	}
	rt.esc.Schedules, rt.esc.People = scheds, oc.People
	rt.api = &oncallapi.Config{Schedules: scheds, People: oc.People, Announce: func(chs []string) []string {
		var out []string
		for _, c := range chs {
			if ch := rc.Channels[c]; ch != nil && config.IsChat(ch.Type) {
				out = append(out, c)
			}
		}
		return out
	}}
	if rc.Actions != nil {
		if rt.signer, err = rc.Actions.NewSigner(o.s.o.Now); err != nil {
			return nil, err
		}
		rt.api.Signer = rt.signer
	}
	if rc.Silences.Enabled() {
		if o.s.o.Transport != nil {
			rc.Silences.HTTP.Transport = o.s.o.Transport
		}
		cl, err := silence.New(rc.Silences)
		if err != nil {
			return nil, err
		}
		rt.api.Silencer = cl
	}
	for name, ch := range rc.Channels {
		if ch.Voice != nil && ch.Voice.CallbackToken != "" {
			rt.tokens[ch.Voice.CallbackToken.Value()] = name
		}
	}
	return rt, nil
}

func newOnCall(s *Service, rc *config.Config) (*onCall, error) {
	o := &onCall{s: s, poller: &voice.Poller{}, calls: map[string]callInfo{}}
	rt, err := o.compile(rc)
	if err != nil {
		return nil, err
	}
	o.esc, err = escalation.New(escalation.Options{
		Store: incidentStore{o}, Pager: pager{o}, Now: s.o.Now,
		OnError: func(err error) { s.o.Logger.Error("escalation", "err", err) },
	}, rt.esc)
	if err != nil {
		return nil, err
	}
	o.api = oncallapi.New(oncallapi.Options{Incidents: o.esc, Logger: s.o.Logger, Now: s.o.Now}, rt.api)
	o.poller.OnResult = o.callResult
	o.poller.OnGiveUp = func(c voice.Call, err error) {
		o.audit(&store.Record{Outcome: store.OutcomeCallUnknown, Channel: c.Provider, Detail: fmt.Sprintf("call %s to %s: no result after 30m: %v", c.ID, c.Phone, err)})
	}
	o.install(rc, rt)
	if err := o.auditScheduleChanges(rc.OnCall); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *onCall) install(rc *config.Config, rt *runtime) {
	o.mu.Lock()
	o.rc, o.signer, o.callbacks = rc, rt.signer, rt.tokens
	o.mu.Unlock()
	o.esc.SetConfig(rt.esc)
	o.api.SetConfig(rt.api)
}

// reload installs a new configuration and audits what changed in schedules.
func (o *onCall) reload(rc *config.Config) error {
	rt, err := o.compile(rc)
	if err != nil {
		return err
	}
	o.install(rc, rt)
	return o.auditScheduleChanges(rc.OnCall)
}

func (o *onCall) auditScheduleChanges(next *oncall.Config) error {
	vals, err := o.s.store.Incidents()
	if err != nil {
		return err
	}
	var prev *oncall.Config
	if b, ok := vals[onCallConfigKey]; ok {
		prev = new(oncall.Config)
		if err := json.Unmarshal(b, prev); err != nil {
			prev = nil
		}
	}
	changes := oncall.Diff(prev, next)
	if len(changes) == 0 {
		return nil
	}
	b, err := json.Marshal(next)
	if err != nil {
		return err
	}
	now := o.s.o.Now()
	recs := make([]*store.Record, 0, len(changes))
	for _, c := range changes {
		recs = append(recs, &store.Record{Time: now, Outcome: store.OutcomeScheduleChanged, Detail: c.Subject + ": " + c.Detail})
		o.s.o.Logger.Info("on-call configuration changed", "subject", c.Subject, "change", c.Detail)
	}
	return o.s.store.PutIncidents(map[string][]byte{onCallConfigKey: b}, nil, recs)
}

func (o *onCall) config() (*config.Config, *action.Signer) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.rc, o.signer
}

func (o *onCall) audit(r *store.Record) {
	if r.Time.IsZero() {
		r.Time = o.s.o.Now()
	}
	if _, err := o.s.store.Apply(nil, nil, []*store.Record{r}); err != nil {
		o.s.o.Logger.Error("cannot audit", "outcome", r.Outcome, "err", err)
	}
}

// observe opens, updates and closes incidents as messages arrive (api.Options.Observe).
func (o *onCall) observe(msg *amwebhook.Message, plan route.Plan) error {
	rc, _ := o.config()
	if len(plan.Routes) == 0 || rc.Actions == nil {
		return nil
	}
	if plan.Chain == "" && !rc.Actions.ForPriority(string(plan.Priority)) {
		return nil
	}
	routeName := plan.ChainRoute
	if routeName == "" {
		routeName = plan.Routes[0]
	}
	channels := make([]string, 0, len(plan.Deliveries))
	for _, d := range plan.Deliveries {
		channels = append(channels, d.Channel)
	}
	return o.esc.Notify(msg.GroupKey, routeName, plan.Chain, channels, plan.Priority, msg.Data, o.s.o.Now())
}

// decorate gives a send its action links and the people a page is for (engine.Options.Decorate).
func (o *onCall) decorate(ctx context.Context, channel string, ds []*store.Delivery) context.Context {
	var rs []oncall.Recipient
	seen := map[string]bool{}
	paged := false
	for _, d := range ds {
		if d.Step > 0 {
			paged = true
		}
		for _, r := range d.Recipients {
			if !seen[r.ID] {
				seen[r.ID] = true
				rs = append(rs, r)
			}
		}
	}
	if !paged {
		// The route's message of a group whose chain starts on this channel mentions the step's people.
		for _, d := range ds {
			if d.Step != 0 || d.Note != "" {
				continue
			}
			if more, ok := o.esc.RouteRecipients(d.GroupKey, channel); ok {
				paged = true
				for _, r := range more {
					if !seen[r.ID] {
						seen[r.ID] = true
						rs = append(rs, r)
					}
				}
			}
		}
	}
	if paged {
		ctx = oncall.WithRecipients(ctx, rs)
	}
	rc, signer := o.config()
	if signer == nil || rc.Actions == nil {
		return ctx
	}
	byGroup := make(map[string]*store.Delivery, len(ds))
	for _, d := range ds {
		byGroup[d.GroupKey] = d
	}
	offer := action.Offer{Base: rc.ExternalURL, TTL: rc.Actions.LinkTTL(), Silences: rc.Actions.SilenceLengths(), Language: "zh"}
	if ch := rc.Channels[channel]; ch != nil {
		offer.Language = languageOf(ch)
	}
	return action.WithLinker(ctx, func(groupKey string) []action.Link {
		d := byGroup[groupKey]
		if d == nil || d.Note != "" || d.Data == nil || d.Data.Status != "firing" {
			return nil
		}
		if d.Step == 0 && !rc.Actions.ForPriority(string(d.Priority)) {
			return nil
		}
		if _, ok := o.esc.Incident(action.GroupOf(groupKey)); !ok {
			return nil
		}
		recipient := ""
		if len(d.Recipients) > 0 {
			recipient = d.Recipients[0].ID
		}
		links, err := signer.Links(offer, action.GroupOf(groupKey), channel, recipient)
		if err != nil {
			o.s.o.Logger.Error("cannot sign action links", "channel", channel, "err", err)
			return nil
		}
		return links
	})
}

// languageOf is the language of a channel's built-in templates.
func languageOf(ch *config.Channel) string {
	lang := ""
	switch {
	case ch.DingTalk != nil:
		lang = ch.DingTalk.Language
	case ch.WeCom != nil:
		lang = ch.WeCom.Language
	case ch.Feishu != nil:
		lang = ch.Feishu.Language
	case ch.Email != nil:
		lang = ch.Email.Language
	case ch.SMS != nil:
		lang = ch.SMS.Language
	case ch.Voice != nil:
		lang = ch.Voice.Language
	case ch.File != nil:
		lang = ch.File.Language
	}
	if lang != "en" {
		lang = "zh"
	}
	return lang
}

// placed records a phone call and follows its result.
func (o *onCall) placed(channel string, q voice.Querier, c voice.Call) {
	r := &store.Record{Time: c.Placed, Outcome: store.OutcomeCallPlaced, Channel: channel, By: c.Person,
		Detail: fmt.Sprintf("call %s to %s", c.ID, c.Phone)}
	if len(c.Groups) > 0 {
		r.GroupKey = c.Groups[0]
	}
	o.audit(r)
	o.mu.Lock()
	o.calls[c.ID] = callInfo{channel: channel, call: c}
	o.mu.Unlock()
	o.poller.Track(q, c)
}

type callInfo struct {
	channel string
	call    voice.Call
}

func (o *onCall) callResult(c voice.Call, res voice.Result) {
	o.mu.Lock()
	info, ok := o.calls[res.CallID]
	delete(o.calls, res.CallID)
	o.mu.Unlock()
	if ok {
		c = info.call
	}
	outcome := store.OutcomeCallUnanswered
	if res.Answered {
		outcome = store.OutcomeCallAnswered
	}
	r := &store.Record{Outcome: outcome, Channel: info.channel, By: c.Person, Code: res.Status,
		Detail: fmt.Sprintf("call %s to %s: %s", res.CallID, c.Phone, strings.TrimSpace(res.Description+" "+durationText(res.Duration)))}
	if len(c.Groups) > 0 {
		r.GroupKey = c.Groups[0]
	}
	o.audit(r)
	o.s.o.Logger.Info("call result", "channel", info.channel, "call", res.CallID, "answered", res.Answered, "status", res.Status)
}

func durationText(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return "(talked " + d.String() + ")"
}

// tencentCallback serves /api/v1/voice/tencent/<token>.
func (o *onCall) tencentCallback(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	o.mu.Lock()
	_, ok := o.callbacks[tok]
	o.mu.Unlock()
	if !ok {
		tok = "\x00" // never matches: the handler answers 404 in constant time
	}
	voice.TencentCallbackHandler(tok, func(res voice.Result) { o.callResult(voice.Call{ID: res.CallID}, res) }).ServeHTTP(w, r)
}

// incidentStore keeps incidents in the receiver's store.
type incidentStore struct{ o *onCall }

func (s incidentStore) Incidents() ([]*escalation.Incident, error) {
	vals, err := s.o.s.store.Incidents()
	if err != nil {
		return nil, err
	}
	out := make([]*escalation.Incident, 0, len(vals))
	for id, b := range vals {
		if strings.HasPrefix(id, "config:") {
			continue
		}
		in := new(escalation.Incident)
		if err := json.Unmarshal(b, in); err != nil {
			return nil, fmt.Errorf("incident %s: %w", id, err)
		}
		out = append(out, in)
	}
	return out, nil
}

var eventOutcomes = map[string]string{
	escalation.EventOpened: store.OutcomeIncidentOpened, escalation.EventStep: store.OutcomeEscalationStep,
	escalation.EventNobody: store.OutcomeNobodyOnCall, escalation.EventClaimed: store.OutcomeClaimed,
	escalation.EventSilenced: store.OutcomeSilenced, escalation.EventResolved: store.OutcomeIncidentResolved,
}

func (s incidentStore) SaveIncidents(incs []*escalation.Incident, events []escalation.Event) error {
	vals := make(map[string][]byte, len(incs))
	for _, in := range incs {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		vals[in.ID] = b
	}
	recs := make([]*store.Record, 0, len(events))
	for _, ev := range events {
		in := ev.Incident
		r := &store.Record{Time: ev.Time, Outcome: eventOutcomes[ev.Kind], GroupKey: in.GroupKey, Route: in.Route,
			Channel: ev.Channel, Priority: string(in.Priority), People: ev.People, Detail: ev.Detail}
		if in.Data != nil {
			r.Status, r.Alertnames, r.Receiver = in.Data.Status, store.Alertnames(in.Data.Alerts), in.Data.Receiver
		}
		if ev.Kind == escalation.EventClaimed || ev.Kind == escalation.EventSilenced {
			r.By = strings.Join(ev.People, ",")
		}
		recs = append(recs, r)
		if ev.Kind != escalation.EventStep {
			s.o.s.o.Logger.Info("on call", "event", r.Outcome, "alertname", in.Name, "channel", ev.Channel, "people", strings.Join(ev.People, ","), "detail", ev.Detail)
		}
	}
	return s.o.s.store.PutIncidents(vals, nil, recs)
}

// pager turns escalation pages into outbox deliveries.
type pager struct{ o *onCall }

func (p pager) Page(pages []escalation.Page) error {
	rc, _ := p.o.config()
	now := p.o.s.o.Now()
	ds := make([]*store.Delivery, 0, len(pages))
	for _, pg := range pages {
		step := pg.Step + 1
		if pg.Note != "" {
			step = 0 // an announcement is not a page: a claim does not cancel it
		}
		ds = append(ds, &store.Delivery{
			ID: pg.ID, Base: pg.ID, Channel: pg.Channel, Route: pg.Route, GroupKey: pg.GroupKey, Priority: pg.Priority,
			Data: pg.Data, Received: now, ExpireAt: now.Add(rc.Retry.ExpireAfter.D()), Step: step, Recipients: pg.Recipients, Note: pg.Note,
		})
	}
	accepted, err := p.o.s.store.AcceptPages(ds, nil)
	if err != nil {
		return err
	}
	p.o.s.eng.Enqueue(accepted)
	return nil
}

func (p pager) Cancel(groupKey string) int {
	return p.o.s.eng.Cancel(groupKey, "claimed: escalation stopped")
}
