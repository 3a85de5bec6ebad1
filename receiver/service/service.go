// Package service wires the receiver together from the configuration: store,
// routes, channels, delivery engine and HTTP API, with reload and pruning.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/api"
	"github.com/open-autoglm/autoglm-monitor/receiver/channels"
	"github.com/open-autoglm/autoglm-monitor/receiver/engine"
	"github.com/open-autoglm/autoglm-monitor/receiver/route"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// Options configure the service.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
	HTTPClient *http.Client
	// PruneInterval is how often retention is applied (default 1h).
	PruneInterval time.Duration
}

// Service is a running receiver.
type Service struct {
	o     Options
	store *store.Store
	eng   *engine.Engine
	api   *api.API

	mu   sync.Mutex
	path string
}

// New opens the store and builds routes, channels, engine and API from cfg.
func New(cfg *config.File, o Options) (*Service, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.PruneInterval <= 0 {
		o.PruneInterval = time.Hour
	}
	rc := cfg.Receiver
	st, err := store.Open(rc.Storage.Path, store.Options{
		CommitDelay: rc.Storage.CommitDelay.D(), DedupWindow: rc.Storage.DedupWindow.D(),
		Retention: rc.Storage.AuditRetention.D(), Now: o.Now,
	})
	if err != nil {
		return nil, err
	}
	s := &Service{o: o, store: st, path: rc.Storage.Path}
	fail := func(err error) (*Service, error) {
		return nil, errors.Join(err, st.Close())
	}
	s.eng, err = engine.New(engine.Options{
		Store: st, Logger: o.Logger, Now: o.Now, Registerer: o.Registerer, Policy: policy(rc),
	})
	if err != nil {
		return fail(err)
	}
	chs, red, apiCfg, err := s.build(cfg)
	if err != nil {
		return fail(err)
	}
	s.eng.SetRedactor(red)
	s.eng.SetChannels(chs)
	s.api, err = api.New(api.Options{Store: st, Engine: s.eng, Logger: o.Logger, Now: o.Now, Registerer: o.Registerer}, apiCfg)
	if err != nil {
		return fail(err)
	}
	return s, nil
}

func policy(rc config.Receiver) engine.Policy {
	return engine.Policy{
		InitialBackoff: rc.Retry.InitialBackoff.D(), MaxBackoff: rc.Retry.MaxBackoff.D(),
		Jitter: rc.Retry.Jitter, ExpireAfter: rc.Retry.ExpireAfter.D(),
	}
}

// build turns the configuration into channels, a redactor and the API settings.
func (s *Service) build(cfg *config.File) ([]engine.Channel, *engine.Redactor, *api.Config, error) {
	rc := cfg.Receiver
	router, err := route.New(rc)
	if err != nil {
		return nil, nil, nil, err
	}
	token, err := cfg.ResolveSecret("receiver.webhook.auth_token", rc.Webhook.AuthToken, rc.Webhook.AuthTokenFile)
	if err != nil {
		return nil, nil, nil, err
	}
	names := make([]string, 0, len(rc.Channels))
	for n := range rc.Channels {
		names = append(names, n)
	}
	sort.Strings(names)
	var secrets []string
	if token.Value() != "" {
		secrets = append(secrets, token.Value())
	}
	for _, n := range names {
		secrets = append(secrets, engine.Secrets(rc.Channels[n], cfg)...)
	}
	red := engine.NewRedactor(secrets...)
	opts := channels.Options{
		Logger: s.o.Logger, HTTPClient: s.o.HTTPClient, Now: s.o.Now, ExternalURL: rc.ExternalURL,
		OnTemplateError: func(channel string, f tmpl.Failure) { s.templateFailed(red, channel, f) },
	}
	chs := make([]engine.Channel, 0, len(names))
	for _, n := range names {
		c := rc.Channels[n]
		ch, err := channels.Build(n, c, cfg, opts)
		if err != nil {
			return nil, nil, nil, errors.New(red.String(err.Error()))
		}
		chs = append(chs, engine.Channel{Name: n, Notifier: ch, PerMinute: channels.RateLimit(c), Target: red.String(channels.Target(c))})
	}
	return chs, red, &api.Config{
		Router: router, MaxBodyBytes: rc.Webhook.MaxBodyBytes, AuthToken: token.Value(), ExpireAfter: rc.Retry.ExpireAfter.D(),
	}, nil
}

// templateFailed records a custom template that failed; the built-in text was sent.
func (s *Service) templateFailed(red *engine.Redactor, channel string, f tmpl.Failure) {
	msg := red.String(f.Error())
	s.o.Logger.Warn("template failed, built-in used", "channel", channel, "template", f.Template, "source", f.Source, "err", msg)
	rec := &store.Record{Time: s.o.Now(), Outcome: store.OutcomeTemplating, Channel: channel, Error: msg}
	if _, err := s.store.Apply(nil, nil, []*store.Record{rec}); err != nil {
		s.o.Logger.Error("cannot audit template failure", "err", err)
	}
}

// Register adds POST /webhook and GET /api/v1/notifications to mux.
func (s *Service) Register(mux *http.ServeMux) { s.api.Register(mux) }

// Ready reports whether the store is usable.
func (s *Service) Ready() error {
	if _, _, err := s.store.Audit(store.Query{Limit: 1}); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Reload applies a new configuration: routes, channels, limits, auth token.
// The storage path and retry policy of pending deliveries stay as they were.
func (s *Service) Reload(cfg *config.File) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	chs, red, apiCfg, err := s.build(cfg)
	if err != nil {
		return err
	}
	if cfg.Receiver.Storage.Path != s.path {
		s.o.Logger.Warn("receiver.storage.path changes need a restart; keeping the current store", "path", s.path)
	}
	s.eng.SetRedactor(red)
	s.eng.SetPolicy(policy(cfg.Receiver))
	s.eng.SetChannels(chs)
	s.api.SetConfig(apiCfg)
	return nil
}

// Run delivers until ctx ends, then closes the store.
func (s *Service) Run(ctx context.Context) error {
	if err := s.eng.Start(ctx); err != nil {
		return errors.Join(err, s.store.Close())
	}
	t := time.NewTicker(s.o.PruneInterval)
	defer t.Stop()
	s.prune()
	for {
		select {
		case <-ctx.Done():
			s.eng.Wait()
			return s.store.Close()
		case <-t.C:
			s.prune()
		}
	}
}

func (s *Service) prune() {
	n, err := s.store.Prune()
	if err != nil {
		s.o.Logger.Error("cannot prune store", "err", err)
		return
	}
	if n > 0 {
		s.o.Logger.Info("store pruned", "entries", n)
	}
}
