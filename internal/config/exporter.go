package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Exporter is the "exporter:" section. Its keys are documented in exporter/README.md.
type Exporter struct {
	// Source is where traffic is observed: "ebpf" (default) or "accesslog".
	Source string `yaml:"source"`
	// Ports are the local server ports whose traffic is measured.
	Ports []uint16 `yaml:"ports"`
	// CgroupPath optionally restricts eBPF capture to processes of one cgroup (v2 path).
	CgroupPath string `yaml:"cgroup_path"`
	// CaptureBytes bounds how many bytes of each read/write are copied out of
	// the kernel; the request body's "model" must appear within them.
	CaptureBytes int `yaml:"capture_bytes"`
	// RingBufferBytes is the size of the eBPF ring buffer (a power of two, multiple of the page size).
	RingBufferBytes int `yaml:"ring_buffer_bytes"`
	// MaxConnections bounds the connections the HTTP parser tracks; the oldest are evicted.
	MaxConnections int `yaml:"max_connections"`
	// TopModels is how many model names get their own label value; the rest are "other".
	TopModels int `yaml:"top_models"`
	// TopClients is how many client prefixes get their own label value; the rest are "other".
	TopClients int `yaml:"top_clients"`
	// ClientPrefixV4 and ClientPrefixV6 aggregate client addresses into networks of this length.
	ClientPrefixV4 int `yaml:"client_prefix_v4"`
	ClientPrefixV6 int `yaml:"client_prefix_v6"`
	// AccessLog configures the access-log source.
	AccessLog ExporterAccessLog `yaml:"accesslog"`
	// Services name the observed servers (service_name label); the first
	// matching entry wins, else the process name is used.
	Services []ExporterService `yaml:"services"`
	// Kubernetes resolves servers to pods through the API server.
	Kubernetes ExporterKubernetes `yaml:"kubernetes"`
	// Outputs send request events elsewhere besides the metrics.
	Outputs ExporterOutputs `yaml:"outputs"`
}

// ExporterService is one entry of "exporter.services:".
type ExporterService struct {
	// Name is the service_name of matching servers.
	Name string `yaml:"name"`
	// Ports match the local port a connection arrived on (any when empty).
	Ports []uint16 `yaml:"ports"`
	// Process matches the process name (comm) or executable base name (any when empty).
	Process string `yaml:"process"`
}

// ExporterKubernetes is the "exporter.kubernetes:" section.
type ExporterKubernetes struct {
	// Enabled labels series with the pod's namespace, name and container.
	Enabled bool `yaml:"enabled"`
	// NodeName is this node; default the NODE_NAME environment variable.
	NodeName string `yaml:"node_name"`
	// Kubeconfig reaches the API server from outside a pod; default the pod's service account.
	Kubeconfig string `yaml:"kubeconfig"`
}

// ExporterAccessLog is the "exporter.accesslog:" section.
type ExporterAccessLog struct {
	// Path of the access log to follow.
	Path string `yaml:"path"`
	// Format is nginx, envoy or json.
	Format string `yaml:"format"`
	// Fields maps our field names to JSON keys (json format only).
	Fields map[string]string `yaml:"fields"`
	// FromStart reads the existing file from the beginning instead of only new lines.
	FromStart bool `yaml:"from_start"`
	// ServerPort is the server_port label of requests read from the log.
	ServerPort uint16 `yaml:"server_port"`
	// ServiceName is the service_name label of requests read from the log;
	// default the format for nginx and envoy, the file's base name for json.
	ServiceName string `yaml:"service_name"`
}

// Exporter source names.
const (
	SourceEBPF      = "ebpf"
	SourceAccessLog = "accesslog"
)

// Access log formats.
var accessLogFormats = []string{"nginx", "envoy", "json"}

// AccessLogFields are the names a JSON access log can map with exporter.accesslog.fields.
var AccessLogFields = []string{
	"time", "method", "path", "status", "duration", "request_bytes", "response_bytes",
	"client", "model", "input_tokens", "output_tokens", "ttft", "server_port",
}

func defaultExporter() Exporter {
	return Exporter{
		Source:          SourceEBPF,
		Ports:           []uint16{8000},
		CaptureBytes:    4096,
		RingBufferBytes: 16 << 20,
		MaxConnections:  65536,
		TopModels:       20,
		TopClients:      50,
		ClientPrefixV4:  24,
		ClientPrefixV6:  64,
		AccessLog:       ExporterAccessLog{Format: "nginx"},
	}
}

// Limits that keep the exporter's memory bounded whatever the file says.
const (
	minCaptureBytes = 64
	maxCaptureBytes = 16 << 10
	maxRingBuffer   = 1 << 30
	minRingBuffer   = 4096
	maxConnections  = 1 << 22
	maxTopN         = 1000
	maxPorts        = 64
)

func (c Exporter) validate(f *File) []error {
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, Errorf(key, format, args...)) }
	switch c.Source {
	case SourceEBPF, SourceAccessLog:
	default:
		add("exporter.source", "must be %q or %q, got %q", SourceEBPF, SourceAccessLog, c.Source)
	}
	if c.Source == SourceEBPF && len(c.Ports) == 0 {
		add("exporter.ports", "must list at least one server port to observe with the ebpf source")
	}
	if len(c.Ports) > maxPorts {
		add("exporter.ports", "at most %d ports can be observed, got %d", maxPorts, len(c.Ports))
	}
	for i, p := range c.Ports {
		key := fmt.Sprintf("exporter.ports[%d]", i)
		if p == 0 {
			add(key, "port must be within 1..65535, got 0")
		}
		if slices.Index(c.Ports, p) < i {
			add(key, "port %d listed twice", p)
		}
	}
	if c.CaptureBytes < minCaptureBytes || c.CaptureBytes > maxCaptureBytes {
		add("exporter.capture_bytes", "must be within [%d, %d], got %d", minCaptureBytes, maxCaptureBytes, c.CaptureBytes)
	}
	rb := c.RingBufferBytes
	if rb < minRingBuffer || rb > maxRingBuffer || rb&(rb-1) != 0 {
		add("exporter.ring_buffer_bytes", "must be a power of two within [%d, %d], got %d", minRingBuffer, maxRingBuffer, rb)
	}
	if c.CgroupPath != "" && !filepath.IsAbs(c.CgroupPath) {
		add("exporter.cgroup_path", "must be an absolute path such as /sys/fs/cgroup/system.slice/vllm.service, got %q", c.CgroupPath)
	}
	if c.MaxConnections < 1 || c.MaxConnections > maxConnections {
		add("exporter.max_connections", "must be within [1, %d], got %d", maxConnections, c.MaxConnections)
	}
	if c.TopModels < 0 || c.TopModels > maxTopN {
		add("exporter.top_models", "must be within [0, %d], got %d", maxTopN, c.TopModels)
	}
	if c.TopClients < 0 || c.TopClients > maxTopN {
		add("exporter.top_clients", "must be within [0, %d], got %d", maxTopN, c.TopClients)
	}
	if c.ClientPrefixV4 < 0 || c.ClientPrefixV4 > 32 {
		add("exporter.client_prefix_v4", "must be within [0, 32], got %d", c.ClientPrefixV4)
	}
	if c.ClientPrefixV6 < 0 || c.ClientPrefixV6 > 128 {
		add("exporter.client_prefix_v6", "must be within [0, 128], got %d", c.ClientPrefixV6)
	}
	errs = append(errs, c.AccessLog.validate(c.Source)...)
	for i, svc := range c.Services {
		key := fmt.Sprintf("exporter.services[%d]", i)
		if svc.Name == "" {
			add(key+".name", "must be set: it is the service_name of the matching servers")
		}
		if len(svc.Ports) == 0 && svc.Process == "" {
			add(key, "must match on ports, process or both")
		}
		for j, p := range svc.Ports {
			if !slices.Contains(c.Ports, p) {
				add(fmt.Sprintf("%s.ports[%d]", key, j), "port %d is not observed: list it in exporter.ports too", p)
			}
		}
	}
	if c.Kubernetes.Enabled && c.Source != SourceEBPF {
		add("exporter.kubernetes.enabled", "pods are found from the processes eBPF sees; with the %s source name the log with exporter.accesslog.service_name", c.Source)
	}
	if c.Outputs.Kafka != nil {
		errs = append(errs, c.Outputs.Kafka.validate(f, &c)...)
	}
	return errs
}

// AccessLogServiceName is the service_name of requests read from the log.
func (a ExporterAccessLog) AccessLogServiceName() string {
	switch {
	case a.ServiceName != "":
		return a.ServiceName
	case a.Format == "json":
		base := filepath.Base(a.Path)
		return strings.TrimSuffix(base, filepath.Ext(base))
	}
	return a.Format
}

func (a ExporterAccessLog) validate(source string) []error {
	var errs []error
	if !slices.Contains(accessLogFormats, a.Format) {
		errs = append(errs, Errorf("exporter.accesslog.format", "must be one of %v, got %q", accessLogFormats, a.Format))
	}
	if source == SourceAccessLog && a.Path == "" {
		errs = append(errs, Errorf("exporter.accesslog.path", "must be set when exporter.source is %q", SourceAccessLog))
	}
	if len(a.Fields) > 0 && a.Format != "json" {
		errs = append(errs, Errorf("exporter.accesslog.fields", "only applies to the json format, not %q", a.Format))
	}
	keys := make([]string, 0, len(a.Fields))
	for k := range a.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(AccessLogFields, k) {
			errs = append(errs, Errorf("exporter.accesslog.fields."+k, "unknown field %q, known fields are %v", k, AccessLogFields))
		} else if a.Fields[k] == "" {
			errs = append(errs, Errorf("exporter.accesslog.fields."+k, "JSON key must not be empty"))
		}
	}
	return errs
}
