// Package deploy holds the quickstart's configuration files; its tests check
// every file docker-compose.yml uses with the tools that will read them, and
// that the native quickstart (internal/stack) runs the very same files.
package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/internal/stack"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
	rconfig "github.com/open-autoglm/autoglm-monitor/receiver/config"
)

func run(t *testing.T, dir, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestComposeConfigIsValid(t *testing.T) {
	repo := testenv.RepoRoot(t)
	compose := testenv.Tool(t, "docker-compose")
	run(t, repo, compose, "-f", "docker-compose.yml", "config", "-q")
}

type composeFile struct {
	Services map[string]struct {
		Image       string   `yaml:"image"`
		Volumes     []string `yaml:"volumes"`
		CapAdd      []string `yaml:"cap_add"`
		Pid         string   `yaml:"pid"`
		NetworkMode string   `yaml:"network_mode"`
		Command     []string `yaml:"command"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("parse docker-compose.yml: %v", err)
	}
	return c
}

// mounts maps host source (repo-relative, cleaned) to container targets.
func mounts(t *testing.T, c composeFile) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for name, svc := range c.Services {
		for _, v := range svc.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 {
				t.Errorf("service %s: volume %q has no target", name, v)
				continue
			}
			src := parts[0]
			if !strings.HasPrefix(src, ".") {
				if !strings.HasPrefix(src, "/") {
					if _, ok := c.Volumes[src]; !ok {
						t.Errorf("service %s: named volume %q is not declared under volumes:", name, src)
					}
				}
				continue
			}
			out[filepath.Clean(src)] = append(out[filepath.Clean(src)], name+":"+parts[1])
		}
	}
	return out
}

func TestComposeMountsExist(t *testing.T) {
	repo := testenv.RepoRoot(t)
	c := loadCompose(t)
	m := mounts(t, c)
	if len(m) == 0 {
		t.Fatal("docker-compose.yml mounts no file from the repository")
	}
	for src, targets := range m {
		p := filepath.Join(repo, src)
		if rel, err := filepath.Rel(repo, p); err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("%v mount %s, which is outside the repository: a user's clone has nothing beside it", targets, src)
			continue
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%v mount %s, which does not exist: %v", targets, src, err)
		}
	}
}

// The native quickstart must run exactly the files the compose file mounts.
func TestNativeStackUsesComposeFiles(t *testing.T) {
	m := mounts(t, loadCompose(t))
	srcs := stack.ConfigSources()
	if len(srcs) < 5 {
		t.Fatalf("stack.ConfigSources() lists %d files, want every configuration file", len(srcs))
	}
	for _, src := range srcs {
		if _, ok := m[filepath.Clean(src)]; !ok {
			t.Errorf("the native quickstart uses %s but docker-compose.yml does not mount it", src)
		}
	}
	// Grafana is compose-only, but its dashboards are ours.
	if _, ok := m["dashboards/json"]; !ok {
		t.Error("docker-compose.yml does not provision dashboards/json into Grafana")
	}
	if _, ok := m["deploy/grafana/provisioning"]; !ok {
		t.Error("docker-compose.yml does not mount deploy/grafana/provisioning")
	}
}

func TestComposeExporterPrivileges(t *testing.T) {
	c := loadCompose(t)
	ex, ok := c.Services["exporter"]
	if !ok {
		t.Fatal("no exporter service")
	}
	for _, cp := range []string{"BPF", "PERFMON"} {
		if !slices.Contains(ex.CapAdd, cp) {
			t.Errorf("exporter cap_add %v lacks %s", ex.CapAdd, cp)
		}
	}
	if ex.Pid != "host" {
		t.Errorf("exporter pid = %q, want host", ex.Pid)
	}
	var btf, tracefs bool
	for _, v := range ex.Volumes {
		btf = btf || strings.HasPrefix(v, "/sys/kernel/btf:")
		tracefs = tracefs || strings.HasPrefix(v, "/sys/kernel/tracing:")
	}
	if !btf || !tracefs {
		t.Errorf("exporter must mount /sys/kernel/btf and /sys/kernel/tracing, has %v", ex.Volumes)
	}
}

// promtool check config follows rule_files, so lay the files out the way
// the Prometheus container sees them.
func TestPrometheusConfigWithRules(t *testing.T) {
	repo := testenv.RepoRoot(t)
	promtool := testenv.Promtool(t)
	dir := t.TempDir()
	copyFile(t, filepath.Join(repo, "deploy/prometheus/prometheus.yml"), filepath.Join(dir, "prometheus.yml"))
	for _, f := range []string{"prometheus_rules.yaml", "prometheus_alerts.yaml"} {
		copyFile(t, filepath.Join(repo, "mixins/autoglm-mixin", f), filepath.Join(dir, "rules", f))
	}
	out := run(t, dir, promtool, "check", "config", "prometheus.yml")
	for _, f := range []string{"rules/prometheus_rules.yaml", "rules/prometheus_alerts.yaml"} {
		if !strings.Contains(out, f) {
			t.Errorf("promtool did not check %s through rule_files:\n%s", f, out)
		}
	}
	run(t, dir, promtool, "check", "rules", "rules/prometheus_rules.yaml", "rules/prometheus_alerts.yaml")
}

func TestAlertmanagerConfig(t *testing.T) {
	repo := testenv.RepoRoot(t)
	p := filepath.Join(repo, "deploy/alertmanager/alertmanager.yml")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the Alertmanager configuration the compose file mounts is missing: %v", err)
	}
	out := run(t, repo, testenv.Amtool(t), "check-config", p)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("amtool check-config:\n%s", out)
	}
}

func TestSharedConfigLoads(t *testing.T) {
	repo := testenv.RepoRoot(t)
	f, err := config.Load(filepath.Join(repo, "deploy/autoglm/autoglm.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Exporter.Source != config.SourceEBPF || !slices.Contains(f.Exporter.Ports, 8000) {
		t.Errorf("quickstart exporter watches %v with %s, want port 8000 with ebpf", f.Exporter.Ports, f.Exporter.Source)
	}
	rc, err := rconfig.FromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.Routes) == 0 {
		t.Error("quickstart receiver has no routes")
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A user's clone has nothing beside it: docker-compose resolves every path
// of the compose file inside a copy of the repository that stands alone in
// an empty directory, and each one exists there.
func TestComposeConfigInACloneWithNothingBeside(t *testing.T) {
	repo := testenv.RepoRoot(t)
	compose := testenv.Tool(t, "docker-compose")
	clone := filepath.Join(t.TempDir(), "clone")
	files := strings.Split(strings.TrimRight(run(t, repo, "git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"), "\x00"), "\x00")
	for _, f := range files {
		if _, err := os.Lstat(filepath.Join(repo, f)); err != nil {
			continue // deleted in the working tree
		}
		copyFile(t, filepath.Join(repo, f), filepath.Join(clone, f))
	}
	var resolved struct {
		Services map[string]struct {
			Build   struct{ Context string } `yaml:"build"`
			Volumes []string                 `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal([]byte(run(t, clone, compose, "-f", "docker-compose.yml", "config")), &resolved); err != nil {
		t.Fatalf("parse docker-compose config: %v", err)
	}
	// Host paths the exporter needs from the kernel, not from the repository.
	host := []string{"/sys/kernel/btf", "/sys/kernel/tracing", "/sys/fs/cgroup"}
	inside := func(svc, what, p string) {
		if rel, err := filepath.Rel(clone, p); err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("service %s: %s %s is outside the clone %s", svc, what, p, clone)
			return
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("service %s: %s %s does not exist in the clone: %v", svc, what, p, err)
		}
	}
	for name, svc := range resolved.Services {
		if svc.Build.Context != "" {
			inside(name, "build context", svc.Build.Context)
		}
		for _, v := range svc.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if !filepath.IsAbs(src) || slices.Contains(host, src) {
				continue // a named volume, or a kernel path
			}
			inside(name, "mount", src)
		}
	}
}

// An incident on several routes is one notification per alert and severity:
// every route of the tree groups by alert name and job, never by route, and
// a new kind of alert gets its own group.
func TestAlertmanagerGroupsTheRoutesOfAJob(t *testing.T) {
	// amtool check-config (TestAlertmanagerConfig) validates the file; only
	// the routing tree is read here.
	type route struct {
		Receiver string   `yaml:"receiver"`
		GroupBy  []string `yaml:"group_by"`
		Routes   []*route `yaml:"routes"`
	}
	var cfg struct {
		Route *route `yaml:"route"`
	}
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "deploy/alertmanager/alertmanager.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil || cfg.Route == nil {
		t.Fatalf("parse alertmanager.yml: %v", err)
	}
	var walk func(r *route, groupBy []string, path string)
	walk = func(r *route, groupBy []string, path string) {
		if len(r.GroupBy) > 0 {
			groupBy = r.GroupBy
		}
		for _, want := range []string{"alertname", "job"} {
			if !slices.Contains(groupBy, want) {
				t.Errorf("route %s groups by %v, without %s", path, groupBy, want)
			}
		}
		if slices.Contains(groupBy, "http_route") || slices.Contains(groupBy, "...") {
			t.Errorf("route %s groups by %v: one message per route", path, groupBy)
		}
		for i, c := range r.Routes {
			walk(c, groupBy, fmt.Sprintf("%s/%d(%s)", path, i, c.Receiver))
		}
	}
	walk(cfg.Route, nil, "root")
}
