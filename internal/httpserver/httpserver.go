// Package httpserver wires the HTTP endpoints every Open-AutoGLM binary
// exposes: a landing page, /metrics, /-/healthy, /-/ready and /-/reload,
// served through exporter-toolkit so --web.config.file brings TLS and basic auth.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
)

// Options describes one binary's HTTP surface.
type Options struct {
	// Name is the binary name, e.g. "autoglm-exporter".
	Name        string
	Description string
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Registerer, when set, receives promhttp's own handler metrics.
	Registerer prometheus.Registerer
	// Ready reports whether the service can do its work; nil means always ready.
	Ready func() error
	// Reload re-reads configuration on POST /-/reload; nil disables the endpoint.
	Reload func() error
	// Links are extra landing-page links (for example an API).
	Links []web.LandingLinks
}

// NewMux returns a mux with the standard endpoints; callers add their own routes to it.
func NewMux(o Options) (*http.ServeMux, error) {
	mux := http.NewServeMux()
	handler := promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		// Native histograms need the protobuf format; promhttp negotiates it.
	})
	if o.Registerer != nil {
		handler = promhttp.InstrumentMetricHandler(o.Registerer, handler)
	}
	mux.Handle("/metrics", handler)
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = fmt.Fprintln(w, "Healthy.")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if o.Ready != nil {
			if err := o.Ready(); err != nil {
				http.Error(w, "Not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
		_, _ = fmt.Fprintln(w, "Ready.")
	})
	if o.Reload != nil {
		mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost && r.Method != http.MethodPut {
				w.Header().Set("Allow", "POST, PUT")
				http.Error(w, "use POST or PUT to reload", http.StatusMethodNotAllowed)
				return
			}
			if err := o.Reload(); err != nil {
				http.Error(w, "reload failed: "+err.Error(), http.StatusInternalServerError)
				return
			}
			_, _ = fmt.Fprintln(w, "Reloaded.")
		})
	}
	links := append([]web.LandingLinks{{Address: "/metrics", Text: "Metrics"}}, o.Links...)
	links = append(links,
		web.LandingLinks{Address: "/-/healthy", Text: "Health"},
		web.LandingLinks{Address: "/-/ready", Text: "Readiness"})
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        o.Name,
		Description: o.Description,
		Version:     version.Info(),
		Links:       links,
	})
	if err != nil {
		return nil, fmt.Errorf("build landing page: %w", err)
	}
	mux.Handle("/", landing)
	return mux, nil
}

// Serve runs srv until ctx is cancelled, then shuts it down gracefully.
// Whatever srv sets, it applies t: a request's headers must arrive within
// t.ReadHeader and its body within t.ReadBody, or the connection is closed;
// a keep-alive connection idle for t.Idle is closed; an error answer to a
// request whose body was not read (a 401 for missing credentials, a 413)
// is sent at once and closes the connection instead of waiting for the body.
func Serve(ctx context.Context, srv *http.Server, flags *web.FlagConfig, t Timeouts, logger *slog.Logger) error {
	harden(srv, t)
	return run(ctx, srv, func() error { return web.ListenAndServe(srv, flags, logger) })
}

// run serves until ctx ends, then shuts srv down gracefully.
func run(ctx context.Context, srv *http.Server, serve func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down http server: %w", err)
	}
	return nil
}
