package stack

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
)

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
	files := []struct {
		src, dst string
		repl     []string
	}{
		{"deploy/autoglm/autoglm.yml", "autoglm.yml", shared},
		{"deploy/autoglm/llmsim-faults.yml", "llmsim-faults.yml", nil},
		{"deploy/prometheus/prometheus.yml", "prometheus/prometheus.yml", portRepl},
		{"deploy/alertmanager/alertmanager.yml", "alertmanager.yml", portRepl},
		{"mixins/autoglm-mixin/prometheus_rules.yaml", "prometheus/rules/prometheus_rules.yaml", nil},
		{"mixins/autoglm-mixin/prometheus_alerts.yaml", "prometheus/rules/prometheus_alerts.yaml", nil},
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(o.Repo, f.src))
		if err != nil {
			return fmt.Errorf("read %s: %w", f.src, err)
		}
		text := strings.NewReplacer(f.repl...).Replace(string(b))
		if err := os.WriteFile(s.path(f.dst), []byte(text), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", f.dst, err)
		}
	}
	if _, err := config.Load(s.path("autoglm.yml")); err != nil {
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
