// Package service wires the receiver together from the configuration: store,
// routes, channels, delivery engine and HTTP API, with reload and pruning.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/open-autoglm/autoglm-monitor/receiver/api"
	"github.com/open-autoglm/autoglm-monitor/receiver/channels"
	"github.com/open-autoglm/autoglm-monitor/receiver/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/engine"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/redact"
	"github.com/open-autoglm/autoglm-monitor/receiver/route"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
	"github.com/open-autoglm/autoglm-monitor/receiver/store/pgstore"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
	"github.com/open-autoglm/autoglm-monitor/receiver/voice"
)

// Options configure the service.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
	// Escalator replaces the engine's RouteEscalator.
	Escalator engine.Escalator
	// PruneInterval is how often retention is applied (default 1h).
	PruneInterval time.Duration
	// Transport, when set, replaces the network of the channels and of the
	// silences client (tests reach provider fakes in-process).
	Transport http.RoundTripper
}

// Service is a running receiver.
type Service struct {
	o      Options
	store  store.Store
	eng    *engine.Engine
	api    *api.API
	oncall *onCall

	mu        sync.Mutex
	path      string
	retention time.Duration
}

// New opens the store and builds routes, channels, engine and API from a
// validated receiver configuration.
func New(rc *config.Config, o Options) (*Service, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PruneInterval <= 0 {
		o.PruneInterval = time.Hour
	}
	st, err := openStore(rc, o.Now)
	if err != nil {
		return nil, err
	}
	s := &Service{o: o, store: st, path: rc.Storage.Path, retention: rc.Storage.AuditRetention.D()}
	fail := func(err error) (*Service, error) {
		return nil, errors.Join(err, st.Close())
	}
	var leaseEvery time.Duration
	if pg := rc.Storage.Postgres; pg != nil {
		// Renewed three times per lease: a replica that misses one keeps its channels.
		leaseEvery = pg.Lease.D() / 3
	}
	s.eng, err = engine.New(engine.Options{
		Store: st, Logger: o.Logger, Now: o.Now, Registerer: o.Registerer, Policy: policy(rc), Escalator: o.Escalator,
		LeaseEvery: leaseEvery,
		// Sends start after New returns, when s.oncall is set.
		Decorate: func(ctx context.Context, ch string, ds []*store.Delivery) context.Context {
			return s.oncall.decorate(ctx, ch, ds)
		},
	})
	if err != nil {
		return fail(err)
	}
	if s.oncall, err = newOnCall(s, rc); err != nil {
		return fail(err)
	}
	chs, red, apiCfg, err := s.build(rc)
	if err != nil {
		return fail(err)
	}
	s.eng.SetRedactor(red)
	s.eng.SetChannels(chs)
	s.api, err = api.New(api.Options{Store: st, Engine: s.eng, Logger: o.Logger, Now: o.Now, Registerer: o.Registerer, Observe: s.oncall.observe}, apiCfg)
	if err != nil {
		return fail(err)
	}
	return s, nil
}

// openStore opens the embedded bbolt store, or the shared PostgreSQL one.
func openStore(rc *config.Config, now func() time.Time) (store.Store, error) {
	so := store.Options{
		CommitDelay: rc.Storage.CommitDelay.D(), DedupWindow: rc.Storage.DedupWindow.D(),
		Retention: rc.Storage.AuditRetention.D(), Now: now,
	}
	pg := rc.Storage.Postgres
	if pg == nil {
		return store.Open(rc.Storage.Path, so)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := pgstore.Open(ctx, pgstore.Config{
		DSN: pg.DSN.Value(), Password: pg.Password.Value(), MaxConns: pg.MaxConns, Lease: pg.Lease.D(),
	}, so)
	if err != nil {
		// The store scrubbed the DSN and password; the redactor is a second net.
		return nil, errors.New(redact.New(rc.Secrets()...).String(err.Error()))
	}
	return st, nil
}

func policy(rc *config.Config) engine.Policy {
	return engine.Policy{
		InitialBackoff: rc.Retry.InitialBackoff.D(), MaxBackoff: rc.Retry.MaxBackoff.D(),
		Jitter: rc.Retry.Jitter, ExpireAfter: rc.Retry.ExpireAfter.D(),
	}
}

// build turns the configuration into channels, a redactor and the API settings.
func (s *Service) build(rc *config.Config) ([]notify.Integration, *redact.Redactor, *api.Config, error) {
	router, err := route.New(rc)
	if err != nil {
		return nil, nil, nil, err
	}
	red := redact.New(rc.Secrets()...)
	chs, err := channels.Build(rc, channels.Options{
		Logger: s.o.Logger, Now: s.o.Now,
		OnTemplateError: func(channel string, f tmpl.Failure) { s.templateFailed(red, channel, f) },
		OnCall:          func(channel string, q voice.Querier, c voice.Call) { s.oncall.placed(channel, q, c) },
		Transport:       s.o.Transport,
	})
	if err != nil {
		return nil, nil, nil, errors.New(red.String(err.Error()))
	}
	for i := range chs {
		chs[i].Target = red.String(chs[i].Target)
	}
	return chs, red, &api.Config{Router: router, MaxBodyBytes: rc.Webhook.MaxBodyBytes, AuthToken: rc.AuthToken()}, nil
}

// templateFailed records a custom template that failed; the built-in text was sent.
func (s *Service) templateFailed(red *redact.Redactor, channel string, f tmpl.Failure) {
	msg := red.String(f.Error())
	s.o.Logger.Warn("template failed, built-in used", "channel", channel, "template", f.Template, "source", f.Source, "err", msg)
	rec := &store.Record{Time: s.o.Now(), Outcome: store.OutcomeTemplating, Channel: channel, Error: msg}
	if _, err := s.store.Apply(nil, nil, []*store.Record{rec}); err != nil {
		s.o.Logger.Error("cannot audit template failure", "err", err)
	}
}

// Register adds POST /webhook, GET /api/v1/notifications, the action links
// (/api/v1/actions/), GET /api/v1/oncall and the Tencent call-status callback
// (/api/v1/voice/tencent/<token>) to mux.
func (s *Service) Register(mux *http.ServeMux) {
	s.api.Register(mux)
	s.oncall.api.Register(mux)
	mux.HandleFunc("/api/v1/voice/tencent/", s.oncall.tencentCallback)
}

// Protect wraps the server's handler so that, when receiver.webhook.auth_token
// is set, /webhook, /api/v1/notifications and /-/reload need it.
func (s *Service) Protect(h http.Handler) http.Handler { return s.api.Protect(h) }

// Ready reports whether the store is usable.
func (s *Service) Ready() error {
	if _, _, err := s.store.Audit(store.Query{Limit: 1}); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Reload applies a new configuration: routes, channels, limits, auth token.
// The storage path and retry policy of pending deliveries stay as they were.
func (s *Service) Reload(rc *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	chs, red, apiCfg, err := s.build(rc)
	if err != nil {
		return err
	}
	if rc.Storage.Path != s.path {
		s.o.Logger.Warn("receiver.storage.path changes need a restart; keeping the current store", "path", s.path)
	}
	if err := s.oncall.reload(rc); err != nil {
		return err
	}
	s.eng.SetRedactor(red)
	s.eng.SetPolicy(policy(rc))
	s.eng.SetChannels(chs)
	s.api.SetConfig(apiCfg)
	return nil
}

// Run delivers until ctx ends, then closes the store.
func (s *Service) Run(ctx context.Context) error {
	if err := s.eng.Start(ctx); err != nil {
		return errors.Join(err, s.store.Close())
	}
	var bg sync.WaitGroup
	bg.Go(func() { s.oncall.esc.Run(ctx) })
	bg.Go(func() { s.oncall.poller.Run(ctx) })
	t := time.NewTicker(s.o.PruneInterval)
	defer t.Stop()
	s.prune()
	for {
		select {
		case <-ctx.Done():
			s.eng.Wait()
			bg.Wait()
			return s.store.Close()
		case <-t.C:
			s.prune()
		}
	}
}

func (s *Service) prune() {
	if gone := s.oncall.esc.Prune(s.o.Now().Add(-s.retention)); len(gone) > 0 {
		ids := make([]string, 0, len(gone))
		for _, in := range gone {
			ids = append(ids, in.ID)
		}
		if err := s.store.PutIncidents(nil, ids, nil); err != nil {
			s.o.Logger.Error("cannot prune incidents", "err", err)
		}
	}
	n, err := s.store.Prune()
	if err != nil {
		s.o.Logger.Error("cannot prune store", "err", err)
		return
	}
	if n > 0 {
		s.o.Logger.Info("store pruned", "entries", n)
	}
}
