package helm

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	rconfig "github.com/open-autoglm/autoglm-monitor/receiver/config"
	"github.com/open-autoglm/autoglm-monitor/rulegen/rules"
)

var update = flag.Bool("update", false, "copy the mixin's rendered rules and the dashboards into the chart")

const chartDir = "autoglm-monitor"

// object is one rendered manifest, decoded into its Go type.
type object struct {
	source, kind, name string
	obj                any
}

// newObject returns the Go type of a manifest; every kind the chart may
// render is listed, so a new kind fails here until it is decoded too.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "v1 Secret":
		return &corev1.Secret{}, true
	case "apps/v1 DaemonSet":
		return &appsv1.DaemonSet{}, true
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, true
	case "apps/v1 StatefulSet":
		return &appsv1.StatefulSet{}, true
	case "rbac.authorization.k8s.io/v1 ClusterRole":
		return &rbacv1.ClusterRole{}, true
	case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}, true
	case "rbac.authorization.k8s.io/v1 Role":
		return &rbacv1.Role{}, true
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		return &rbacv1.RoleBinding{}, true
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, true
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &monitoringv1.PrometheusRule{}, true
	}
	return nil, false
}

// strictDecode is the API server's strict field validation: field names are
// case-sensitive (encoding/json would take hostPid for hostPID), and unknown
// or duplicate fields are errors.
func strictDecode(j []byte, obj any) error {
	strict, err := sigsjson.UnmarshalStrict(j, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return ch
}

// render runs Helm's engine (strict: a reference to a missing value fails)
// as `helm install autoglm -n monitoring` would on Kubernetes 1.31.
func render(t *testing.T, vals map[string]any) (map[string]string, error) {
	t.Helper()
	ch := loadChart(t)
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = chartutil.KubeVersion{Version: "v1.31.0", Major: "1", Minor: "31"}
	if !chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, caps.KubeVersion.String()) {
		t.Fatalf("chart does not accept Kubernetes %s", caps.KubeVersion)
	}
	values, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: "autoglm", Namespace: "monitoring", Revision: 1, IsInstall: true}, caps)
	if err != nil {
		return nil, err
	}
	return engine.Engine{Strict: true}.Render(ch, values)
}

// decode splits every rendered file into documents and decodes each one
// strictly: a field the Go type does not have (a typo, a wrong indentation)
// fails, as it would fail `kubectl apply --validate=strict`.
func decode(t *testing.T, files map[string]string) []object {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []object
	for _, n := range names {
		if strings.HasSuffix(n, "NOTES.txt") {
			if strings.TrimSpace(files[n]) == "" {
				t.Errorf("%s is empty", n)
			}
			continue
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(files[n], -1) {
			j, err := sigsyaml.YAMLToJSON([]byte(doc))
			if err != nil {
				t.Fatalf("%s document %d is not YAML: %v\n%s", n, i, err, doc)
			}
			if string(j) == "null" {
				continue
			}
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal(j, &meta); err != nil {
				t.Fatalf("%s document %d: %v", n, i, err)
			}
			obj, ok := newObject(meta.APIVersion, meta.Kind)
			if !ok {
				t.Fatalf("%s document %d: no Go type for %s %s", n, i, meta.APIVersion, meta.Kind)
			}
			if err := strictDecode(j, obj); err != nil {
				t.Fatalf("%s: %s %s does not decode strictly: %v\n%s", n, meta.Kind, meta.Metadata.Name, err, doc)
			}
			if meta.Metadata.Name == "" {
				t.Errorf("%s: %s without a name", n, meta.Kind)
			}
			out = append(out, object{source: n, kind: meta.Kind, name: meta.Metadata.Name, obj: obj})
		}
	}
	return out
}

func find[T any](t *testing.T, objs []object, name string) T {
	t.Helper()
	for _, o := range objs {
		if v, ok := o.obj.(T); ok && o.name == name {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T named %s", zero, name)
	return zero
}

func kinds(objs []object) map[string]int {
	m := map[string]int{}
	for _, o := range objs {
		m[o.kind]++
	}
	return m
}

// checkConfig parses the rendered shared configuration with the binaries'
// own strict loader. Secrets are files under /etc/autoglm/secrets/<Secret>/:
// each one referenced must be mounted into the pods of that section.
func checkConfig(t *testing.T, objs []object) *config.File {
	t.Helper()
	cm := find[*corev1.ConfigMap](t, objs, "autoglm-autoglm-monitor-config")
	body := cm.Data["autoglm.yml"]
	mounted := map[string]bool{}
	for _, o := range objs {
		var spec *corev1.PodSpec
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			spec = &v.Spec.Template.Spec
		case *appsv1.StatefulSet:
			spec = &v.Spec.Template.Spec
		case *appsv1.DaemonSet:
			spec = &v.Spec.Template.Spec
		default:
			continue
		}
		for _, c := range spec.Containers {
			for _, m := range c.VolumeMounts {
				mounted[m.MountPath] = true
			}
		}
	}
	dir := t.TempDir()
	for _, m := range regexp.MustCompile(`/etc/autoglm/secrets/([^/\s]+)/([^\s"']+)`).FindAllStringSubmatch(body, -1) {
		if !mounted["/etc/autoglm/secrets/"+m[1]] {
			t.Errorf("config reads %s but Secret %s is not mounted", m[0], m[1])
		}
		p := filepath.Join(dir, m[1], m[2])
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		content := "SECfromsecret"
		if strings.Contains(m[2], "url") {
			content = "https://robot.example/send?access_token=fromsecret"
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := config.Parse([]byte(strings.ReplaceAll(body, "/etc/autoglm/secrets/", dir+"/")), "autoglm.yml")
	if err != nil {
		t.Fatalf("rendered configuration does not load: %v\n%s", err, body)
	}
	receiverOf(t, f)
	return f
}

// receiverOf decodes the receiver section, which receiver/config owns.
func receiverOf(t *testing.T, f *config.File) *rconfig.Config {
	t.Helper()
	rc, err := rconfig.FromFile(f)
	if err != nil {
		t.Fatalf("rendered receiver configuration does not load: %v", err)
	}
	return rc
}

// checkCommon holds for every value set.
func checkCommon(t *testing.T, objs []object) {
	t.Helper()
	if n := kinds(objs)["Secret"]; n > 0 {
		t.Errorf("the chart rendered %d Secret(s): credentials come from existing Secrets only", n)
	}
	for _, o := range objs {
		if pr, ok := o.obj.(*monitoringv1.PrometheusRule); ok {
			b, err := sigsyaml.Marshal(pr.Spec)
			if err != nil {
				t.Fatal(err)
			}
			if err := rules.Validate(b); err != nil {
				t.Errorf("PrometheusRule %s: Prometheus would reject the rules: %v", o.name, err)
			}
		}
	}
}

func caps(c *corev1.Container) []string {
	var out []string
	if c.SecurityContext != nil && c.SecurityContext.Capabilities != nil {
		for _, cp := range c.SecurityContext.Capabilities.Add {
			out = append(out, string(cp))
		}
	}
	return out
}

func TestChartRendersAndDecodesStrictly(t *testing.T) {
	exporter := "autoglm-autoglm-monitor-exporter"
	rulegen := "autoglm-autoglm-monitor-rulegen"
	receiver := "autoglm-autoglm-monitor-receiver"
	for _, tc := range []struct {
		name  string
		vals  string
		check func(t *testing.T, objs []object, cfg *config.File)
	}{
		{"defaults", ``, func(t *testing.T, objs []object, cfg *config.File) {
			ds := find[*appsv1.DaemonSet](t, objs, exporter)
			pod := ds.Spec.Template.Spec
			c := &pod.Containers[0]
			if !pod.HostPID || !slices.Equal(caps(c), []string{"BPF", "PERFMON"}) {
				t.Errorf("exporter: hostPID %v, capabilities %v; want the host PID namespace and BPF, PERFMON only", pod.HostPID, caps(c))
			}
			if d := c.SecurityContext.Capabilities.Drop; !slices.Equal(d, []corev1.Capability{"ALL"}) {
				t.Errorf("exporter drops %v, want ALL", d)
			}
			paths := map[string]string{}
			for _, v := range pod.Volumes {
				if v.HostPath != nil {
					paths[v.Name] = v.HostPath.Path
				}
			}
			if paths["btf"] != "/sys/kernel/btf" || paths["tracefs"] != "/sys/kernel/tracing" || len(paths) != 2 {
				t.Errorf("exporter host paths %v, want BTF and tracefs only", paths)
			}
			if len(c.Env) != 1 || c.Env[0].Name != "NODE_NAME" || c.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
				t.Errorf("exporter env %+v, want NODE_NAME from the downward API", c.Env)
			}
			if !cfg.Exporter.Kubernetes.Enabled || cfg.Exporter.Source != config.SourceEBPF {
				t.Errorf("exporter config %+v", cfg.Exporter)
			}
			cr := find[*rbacv1.ClusterRole](t, objs, exporter)
			if len(cr.Rules) != 1 || !slices.Equal(cr.Rules[0].Resources, []string{"pods"}) || !slices.Equal(cr.Rules[0].Verbs, []string{"get", "list", "watch"}) {
				t.Errorf("exporter may %+v; want get/list/watch on pods only", cr.Rules)
			}
			role := find[*rbacv1.Role](t, objs, rulegen)
			for _, r := range role.Rules {
				if !slices.Equal(r.APIGroups, []string{"monitoring.coreos.com"}) || !slices.Equal(r.Resources, []string{"prometheusrules"}) {
					t.Errorf("rulegen may %+v; want prometheusrules only", r)
				}
			}
			if k := cfg.Rulegen.Output.Kubernetes; k.Kind != "prometheusrule" || k.Name != "autoglm-rulegen" || cfg.Rulegen.Output.RecordingRules {
				t.Errorf("rulegen output %+v (recording rules %v): the mixin's PrometheusRule has the recording rules", k, cfg.Rulegen.Output.RecordingRules)
			}
			sts := find[*appsv1.StatefulSet](t, objs, receiver)
			if rc := receiverOf(t, cfg); len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.Template.Spec.Containers[0].VolumeMounts[1].MountPath != rc.Storage.Path {
				t.Errorf("receiver store: claims %d, mounts %+v, config path %s", len(sts.Spec.VolumeClaimTemplates), sts.Spec.Template.Spec.Containers[0].VolumeMounts, rc.Storage.Path)
			}
			k := kinds(objs)
			dashboards := len(repositoryDashboards(t))
			if k["ServiceMonitor"] != 3 || k["PrometheusRule"] != 1 || k["ConfigMap"] != 1+dashboards {
				t.Errorf("kinds %v; want 3 ServiceMonitors, the mixin's PrometheusRule, the config and %d dashboards", k, dashboards)
			}
			sm := find[*monitoringv1.ServiceMonitor](t, objs, rulegen)
			if sm.Spec.Endpoints[0].HonorLabels != true {
				t.Error("rulegen's ServiceMonitor must honour labels (its gauges carry the exporter's job)")
			}
			dash := find[*corev1.ConfigMap](t, objs, "autoglm-autoglm-monitor-dashboard-overview")
			if dash.Labels["grafana_dashboard"] != "1" || !json.Valid([]byte(dash.Data["overview.json"])) {
				t.Errorf("dashboard ConfigMap: labels %v, valid JSON %v", dash.Labels, json.Valid([]byte(dash.Data["overview.json"])))
			}
		}},
		{"access-log mode", `
exporter:
  source: accesslog
  accessLog: {hostPath: /var/log/gateway, file: access.json, format: json, serviceName: llm-gateway}
`, func(t *testing.T, objs []object, cfg *config.File) {
			ds := find[*appsv1.DaemonSet](t, objs, exporter)
			pod := ds.Spec.Template.Spec
			c := &pod.Containers[0]
			if pod.HostPID || len(caps(c)) != 0 || *c.SecurityContext.RunAsNonRoot != true {
				t.Errorf("access-log exporter is privileged: hostPID %v, capabilities %v", pod.HostPID, caps(c))
			}
			if len(pod.Volumes) != 2 || pod.Volumes[1].HostPath == nil || pod.Volumes[1].HostPath.Path != "/var/log/gateway" {
				t.Errorf("volumes %+v, want the config and the log directory", pod.Volumes)
			}
			if a := cfg.Exporter.AccessLog; cfg.Exporter.Source != config.SourceAccessLog || a.Path != "/var/log/autoglm-access/access.json" || a.Format != "json" || a.AccessLogServiceName() != "llm-gateway" {
				t.Errorf("access log config %+v", a)
			}
			if kinds(objs)["ClusterRole"] != 0 {
				t.Error("access-log mode reads no pods: no ClusterRole")
			}
		}},
		{"rules ConfigMap, no prometheus-operator", `
rulegen: {output: configMap, outputName: autoglm-rules}
serviceMonitor: {enabled: false}
prometheusRule: {enabled: false}
`, func(t *testing.T, objs []object, cfg *config.File) {
			k := kinds(objs)
			if k["ServiceMonitor"]+k["PrometheusRule"] != 0 {
				t.Errorf("prometheus-operator objects rendered without its CRDs: %v", k)
			}
			role := find[*rbacv1.Role](t, objs, rulegen)
			if len(role.Rules) != 2 || !slices.Equal(role.Rules[0].Resources, []string{"configmaps"}) || !slices.Equal(role.Rules[0].ResourceNames, []string{"autoglm-rules"}) {
				t.Errorf("rulegen role %+v", role.Rules)
			}
			if o := cfg.Rulegen.Output; o.Kubernetes.Kind != "configmap" || o.Kubernetes.Name != "autoglm-rules" || !o.RecordingRules {
				t.Errorf("rulegen output %+v: without the mixin's PrometheusRule rulegen writes the recording rules", o)
			}
		}},
		{"existing secrets", `
config:
  rulegen:
    prometheus:
      url: https://prometheus.example:9090
      basic_auth: {username: rulegen, password_file: /etc/autoglm/secrets/prometheus-auth/password}
  receiver:
    channels:
      oncall:
        type: dingtalk
        url_file: /etc/autoglm/secrets/dingtalk-robot/url
        secret_file: /etc/autoglm/secrets/dingtalk-robot/secret
    routes:
      - {name: all, matchers: ['severity=~".+"'], channels: [oncall]}
rulegen: {existingSecrets: [prometheus-auth]}
receiver: {existingSecrets: [dingtalk-robot], replicas: 3}
`, func(t *testing.T, objs []object, cfg *config.File) {
			sts := find[*appsv1.StatefulSet](t, objs, receiver)
			found := false
			for _, v := range sts.Spec.Template.Spec.Volumes {
				found = found || v.Secret != nil && v.Secret.SecretName == "dingtalk-robot"
			}
			if !found || *sts.Spec.Replicas != 3 {
				t.Errorf("receiver volumes %+v", sts.Spec.Template.Spec.Volumes)
			}
			if _, ok := receiverOf(t, cfg).Channels["oncall"]; !ok {
				t.Error("the dingtalk channel is missing")
			}
		}},
		{"SYS_ADMIN and SYS_RESOURCE options", `
exporter: {capabilities: {sysAdmin: true, sysResource: true}}
`, func(t *testing.T, objs []object, _ *config.File) {
			c := &find[*appsv1.DaemonSet](t, objs, exporter).Spec.Template.Spec.Containers[0]
			if !slices.Equal(caps(c), []string{"BPF", "PERFMON", "SYS_RESOURCE", "SYS_ADMIN"}) {
				t.Errorf("capabilities %v", caps(c))
			}
		}},
		{"only the exporter", `
rulegen: {enabled: false}
receiver: {enabled: false}
grafana: {dashboards: {enabled: false}}
`, func(t *testing.T, objs []object, _ *config.File) {
			k := kinds(objs)
			if k["Deployment"]+k["StatefulSet"] != 0 || k["DaemonSet"] != 1 || k["ServiceMonitor"] != 1 || k["ConfigMap"] != 1 {
				t.Errorf("kinds %v", k)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals, err := chartutil.ReadValues([]byte(tc.vals))
			if err != nil {
				t.Fatal(err)
			}
			files, err := render(t, vals)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			objs := decode(t, files)
			checkCommon(t, objs)
			tc.check(t, objs, checkConfig(t, objs))
		})
	}
}

// A misspelled field, a mistyped value, or an unknown choice fails.
func TestChartRejectsMistakes(t *testing.T) {
	for _, tc := range []struct{ vals, want string }{
		{`exporter: {source: pcap}`, "exporter.source must be ebpf or accesslog"},
		{`rulegen: {output: file}`, "rulegen.output must be prometheusRule or configMap"},
	} {
		vals, err := chartutil.ReadValues([]byte(tc.vals))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := render(t, vals); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.vals, err, tc.want)
		}
	}
	// The strict decoder catches what the engine lets through: a field in the wrong place.
	bad := "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      hostPid: true\n"
	j, err := sigsyaml.YAMLToJSON([]byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	if err := strictDecode(j, &appsv1.DaemonSet{}); err == nil || !strings.Contains(err.Error(), "hostPid") {
		t.Errorf("misspelled hostPID decoded: %v", err)
	}
	// A chart whose rendered config the binaries would refuse fails too.
	vals, _ := chartutil.ReadValues([]byte("config: {exporter: {prots: [8000]}}"))
	files, err := render(t, vals)
	if err != nil {
		t.Fatal(err)
	}
	cm := find[*corev1.ConfigMap](t, decode(t, files), "autoglm-autoglm-monitor-config")
	if _, err := config.Parse([]byte(cm.Data["autoglm.yml"]), "autoglm.yml"); err == nil || !strings.Contains(err.Error(), "prots") {
		t.Errorf("unknown config key accepted: %v", err)
	}
}

// The chart carries copies of the mixin's rendered rules and of the
// dashboards (Helm reads files inside the chart only); they must not drift.
// repositoryDashboards lists the dashboards the chart must carry.
func repositoryDashboards(t *testing.T) []string {
	t.Helper()
	dashboards, err := filepath.Glob(filepath.Join("..", "..", "dashboards/json/*.json"))
	if err != nil || len(dashboards) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	return dashboards
}

func TestChartFilesMatchRepository(t *testing.T) {
	root := filepath.Join("..", "..")
	pairs := map[string]string{
		filepath.Join(root, "mixins/autoglm-mixin/prometheus_rules.yaml"):  "files/prometheus_rules.yaml",
		filepath.Join(root, "mixins/autoglm-mixin/prometheus_alerts.yaml"): "files/prometheus_alerts.yaml",
	}
	dashboards := repositoryDashboards(t)
	for _, d := range dashboards {
		pairs[d] = filepath.Join("files/dashboards", filepath.Base(d))
	}
	copies, _ := filepath.Glob(filepath.Join(chartDir, "files/dashboards/*.json"))
	if len(copies) != len(dashboards) && !*update {
		t.Errorf("chart has %d dashboards, the repository %d", len(copies), len(dashboards))
	}
	for src, dst := range pairs {
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst = filepath.Join(chartDir, dst)
		if *update {
			if err := os.WriteFile(dst, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(dst)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s: run go generate in deploy/helm", dst, src)
		}
	}
}
