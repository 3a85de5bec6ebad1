package config

import (
	"slices"
	"strings"
	"testing"
)

func TestExporterDefaults(t *testing.T) {
	f, err := Parse([]byte("metrics:\n  interval: 10s\n"), "c.yml")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	e := f.Exporter
	if e.Source != SourceEBPF {
		t.Errorf("source = %q, want ebpf", e.Source)
	}
	if !slices.Equal(e.Ports, []uint16{8000}) {
		t.Errorf("ports = %v, want [8000]", e.Ports)
	}
	if e.AccessLog.Format != "nginx" || e.ClientPrefixV4 != 24 || e.ClientPrefixV6 != 64 {
		t.Errorf("defaults = %+v", e)
	}
}

func TestExporterValidKeys(t *testing.T) {
	body := `
exporter:
  source: accesslog
  ports: [8080, 9000]
  cgroup_path: /sys/fs/cgroup/system.slice/vllm.service
  capture_bytes: 8192
  ring_buffer_bytes: 33554432
  max_connections: 1000
  top_models: 5
  top_clients: 10
  client_prefix_v4: 32
  client_prefix_v6: 128
  accesslog:
    path: /var/log/gw/access.log
    format: json
    from_start: true
    server_port: 443
    fields:
      method: req_method
      path: uri
      status: code
`
	f, err := Parse([]byte(body), "c.yml")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	e := f.Exporter
	if e.Source != SourceAccessLog || !slices.Equal(e.Ports, []uint16{8080, 9000}) {
		t.Errorf("source/ports = %q %v", e.Source, e.Ports)
	}
	if e.CaptureBytes != 8192 || e.RingBufferBytes != 32<<20 || e.MaxConnections != 1000 {
		t.Errorf("capture = %+v", e)
	}
	if e.TopModels != 5 || e.TopClients != 10 || e.ClientPrefixV4 != 32 || e.ClientPrefixV6 != 128 {
		t.Errorf("cardinality = %+v", e)
	}
	a := e.AccessLog
	if a.Path != "/var/log/gw/access.log" || a.Format != "json" || !a.FromStart || a.ServerPort != 443 {
		t.Errorf("accesslog = %+v", a)
	}
	if a.Fields["path"] != "uri" || a.Fields["status"] != "code" || len(a.Fields) != 3 {
		t.Errorf("fields = %v", a.Fields)
	}
}

func TestExporterWorkloadKeys(t *testing.T) {
	f, err := Parse([]byte(`
exporter:
  ports: [8000, 8001]
  services:
    - {name: chat-api, ports: [8000]}
    - {name: embedder, process: text-embeddings-router}
  kubernetes:
    enabled: true
    node_name: node-a
    kubeconfig: /etc/kubeconfig
  accesslog:
    service_name: gateway
`), "c.yml")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	e := f.Exporter
	want := []ExporterService{{Name: "chat-api", Ports: []uint16{8000}}, {Name: "embedder", Process: "text-embeddings-router"}}
	if !slices.EqualFunc(e.Services, want, func(a, b ExporterService) bool {
		return a.Name == b.Name && a.Process == b.Process && slices.Equal(a.Ports, b.Ports)
	}) {
		t.Errorf("services = %+v", e.Services)
	}
	if k := e.Kubernetes; !k.Enabled || k.NodeName != "node-a" || k.Kubeconfig != "/etc/kubeconfig" {
		t.Errorf("kubernetes = %+v", k)
	}
	if got := e.AccessLog.AccessLogServiceName(); got != "gateway" {
		t.Errorf("access log service name = %q", got)
	}
	for _, tc := range []struct{ format, path, want string }{
		{"nginx", "/var/log/nginx/access.log", "nginx"},
		{"envoy", "/dev/stdout", "envoy"},
		{"json", "/var/log/app/llm-gateway.jsonl", "llm-gateway"},
	} {
		if got := (ExporterAccessLog{Format: tc.format, Path: tc.path}).AccessLogServiceName(); got != tc.want {
			t.Errorf("default service name of %s %s = %q, want %q", tc.format, tc.path, got, tc.want)
		}
	}
}

func TestExporterBadValues(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"unknown source", "exporter:\n  source: pcap\n", []string{"c.yml:2", "exporter.source", `"pcap"`}},
		{"no ports for ebpf", "exporter:\n  ports: []\n", []string{"c.yml:2", "exporter.ports", "at least one"}},
		{"port zero", "exporter:\n  ports: [80, 0]\n", []string{"exporter.ports[1]", "got 0"}},
		{"port too large", "exporter:\n  ports: [70000]\n", []string{"c.yml", "line 2", "70000"}},
		{"duplicate port", "exporter:\n  ports:\n    - 80\n    - 80\n", []string{"c.yml:4", "exporter.ports[1]", "twice"}},
		{"capture too small", "exporter:\n  capture_bytes: 10\n", []string{"c.yml:2", "exporter.capture_bytes", "got 10"}},
		{"ring not power of two", "exporter:\n  ring_buffer_bytes: 100000\n", []string{"exporter.ring_buffer_bytes", "power of two"}},
		{"relative cgroup", "exporter:\n  cgroup_path: system.slice\n", []string{"exporter.cgroup_path", "absolute"}},
		{"zero connections", "exporter:\n  max_connections: 0\n", []string{"exporter.max_connections", "got 0"}},
		{"negative top models", "exporter:\n  top_models: -1\n", []string{"exporter.top_models", "got -1"}},
		{"top clients too large", "exporter:\n  top_clients: 100000\n", []string{"exporter.top_clients"}},
		{"v4 prefix", "exporter:\n  client_prefix_v4: 33\n", []string{"c.yml:2", "exporter.client_prefix_v4", "[0, 32]"}},
		{"v6 prefix", "exporter:\n  client_prefix_v6: 129\n", []string{"exporter.client_prefix_v6", "[0, 128]"}},
		{"bad format", "exporter:\n  accesslog:\n    format: apache\n", []string{"c.yml:3", "exporter.accesslog.format", "apache"}},
		{"accesslog without path", "exporter:\n  source: accesslog\n", []string{"exporter.accesslog.path", "must be set"}},
		{"fields need json", "exporter:\n  accesslog:\n    format: nginx\n    fields: {path: uri}\n", []string{"c.yml:4", "exporter.accesslog.fields", "json"}},
		{"unknown field", "exporter:\n  accesslog:\n    format: json\n    fields:\n      paht: uri\n", []string{"c.yml:5", "exporter.accesslog.fields.paht", "unknown field"}},
		{"empty field key", "exporter:\n  accesslog:\n    format: json\n    fields:\n      path: \"\"\n", []string{"exporter.accesslog.fields.path", "empty"}},
		{"unknown key", "exporter:\n  prots: [80]\n", []string{"c.yml", "line 2", "prots"}},
		{"service without name", "exporter:\n  services:\n    - ports: [8000]\n", []string{"c.yml:3", "exporter.services[0].name", "must be set"}},
		{"service matching everything", "exporter:\n  services:\n    - name: chat\n", []string{"c.yml:3", "exporter.services[0]", "ports, process"}},
		{"service port not observed", "exporter:\n  ports: [8000]\n  services:\n    - {name: chat, ports: [9000]}\n", []string{"c.yml:4", "exporter.services[0].ports[0]", "9000", "exporter.ports"}},
		{"service unknown key", "exporter:\n  services:\n    - {name: chat, port: 8000}\n", []string{"c.yml", "line 3", "port"}},
		{"kubernetes with access log", "exporter:\n  source: accesslog\n  accesslog: {path: /x.log}\n  kubernetes: {enabled: true}\n", []string{"c.yml:4", "exporter.kubernetes.enabled", "service_name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.body), "c.yml")
			if err == nil {
				t.Fatal("expected an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
