// Package cli holds the command-line conventions shared by the binaries:
// kingpin flags with dotted names, promslog logging flags, --version, and the
// standard web flags of exporter-toolkit.
package cli

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/open-autoglm/autoglm-monitor/internal/httpserver"
)

// App is a kingpin application with the common flags already declared.
type App struct {
	*kingpin.Application
	Web *web.FlagConfig
	// Timeouts bound slow and idle clients of the binary's HTTP server.
	Timeouts   *httpserver.Timeouts
	ConfigFile *string
	logConfig  *promslog.Config
}

// New declares --config.file, --web.* (with the read and idle timeouts), --log.level, --log.format and --version.
func New(name, help, defaultListen string) *App {
	app := kingpin.New(name, help)
	a := &App{Application: app, logConfig: &promslog.Config{}}
	a.ConfigFile = app.Flag("config.file", "Path to the shared Open-AutoGLM configuration file.").
		Default("").String()
	a.Web = kingpinflag.AddFlags(app, defaultListen)
	a.Timeouts = httpserver.AddFlags(app)
	promslogflag.AddFlags(app, a.logConfig)
	app.Version(version.Print(name))
	app.HelpFlag.Short('h')
	return a
}

// Logger builds the logger once flags are parsed.
func (a *App) Logger() *slog.Logger { return promslog.New(a.logConfig) }

// SignalContext is cancelled on SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
