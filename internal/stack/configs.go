package stack

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	rconfig "github.com/open-autoglm/autoglm-monitor/receiver/config"
)

type configFile struct {
	src, dst string
	repl     []string
}

// configFiles are the repository's files the stack runs, and where they go in the working directory.
var configFiles = []configFile{
	{src: "deploy/autoglm/autoglm.yml", dst: "autoglm.yml"},
	{src: "deploy/autoglm/llmsim-faults.yml", dst: "llmsim-faults.yml"},
	{src: "deploy/prometheus/prometheus.yml", dst: "prometheus/prometheus.yml"},
	{src: "deploy/alertmanager/alertmanager.yml", dst: "alertmanager.yml"},
	{src: "mixins/autoglm-mixin/prometheus_rules.yaml", dst: "prometheus/rules/prometheus_rules.yaml"},
	{src: "mixins/autoglm-mixin/prometheus_alerts.yaml", dst: "prometheus/rules/prometheus_alerts.yaml"},
}

// ConfigSources lists the repository files (relative paths) the native
// stack runs; docker-compose.yml must mount the same ones.
func ConfigSources() []string {
	out := make([]string, 0, len(configFiles))
	for _, f := range configFiles {
		out = append(out, f.src)
	}
	return out
}

// writeConfigs copies the quickstart's configuration files from deploy/ into
// the working directory, changing only ports and paths, so the native demo
// runs the very files docker-compose.yml mounts.
func (s *Stack) writeConfigs() error {
	o := s.opts
	def := DefaultPorts()
	portRepl := []string{
		addr(def.Prometheus), addr(o.Ports.Prometheus),
		addr(def.Alertmanager), addr(o.Ports.Alertmanager),
		addr(def.Receiver), addr(o.Ports.Receiver),
		addr(def.Rulegen), addr(o.Ports.Rulegen),
		addr(def.Exporter), addr(o.Ports.Exporter),
		addr(def.LLMSim), addr(o.Ports.LLMSim),
		addr(def.LLMSimMetrics), addr(o.Ports.LLMSimMetrics),
		addr(def.SMTP), addr(o.Ports.SMTP),
	}
	for _, dir := range []string{"prometheus/rules", "prometheus/rulegen", "prometheus/data", "receiver", "alertmanager-data"} {
		if err := os.MkdirAll(s.path(dir), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	shared := append(append([]string{}, portRepl...),
		"source: ebpf", "source: "+s.Source,
		"ports: ["+strconv.Itoa(def.LLMSim)+"]", "ports: ["+strconv.Itoa(o.Ports.LLMSim)+"]",
		"port: "+strconv.Itoa(def.SMTP), "port: "+strconv.Itoa(o.Ports.SMTP),
		"/var/log/autoglm", o.Work,
		"/var/lib/autoglm-rulegen/rules", s.path("prometheus", "rulegen"),
		"/var/lib/autoglm-receiver", s.path("receiver"),
	)
	promRepl := append(append([]string{}, portRepl...),
		`server_port: "`+strconv.Itoa(def.LLMSim)+`"`, `server_port: "`+strconv.Itoa(o.Ports.LLMSim)+`"`)
	repl := map[string][]string{"autoglm.yml": shared, "prometheus/prometheus.yml": promRepl, "alertmanager.yml": portRepl}
	for _, f := range configFiles {
		f.repl = repl[f.dst]
		if f.dst == "llmsim-faults.yml" {
			f.src = o.FaultsFile
		}
		src := f.src
		if !filepath.IsAbs(src) {
			src = filepath.Join(o.Repo, src)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("read %s: %w", f.src, err)
		}
		text := []byte(strings.NewReplacer(f.repl...).Replace(string(b)))
		if o.Rewrite != nil {
			text = o.Rewrite(f.dst, text)
		}
		if err := os.WriteFile(s.path(f.dst), text, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", f.dst, err)
		}
	}
	if _, err := rconfig.Load(s.path("autoglm.yml")); err != nil {
		return fmt.Errorf("quickstart configuration is invalid after setting ports and paths: %w", err)
	}
	return nil
}

// llmsimLogArgs makes the simulator write the access log the exporter tails
// when eBPF is not available.
func (s *Stack) llmsimLogArgs() []string {
	if s.Source != "accesslog" {
		return nil
	}
	return []string{"--access-log=" + s.path("llmsim-access.log")}
}
