// Package sli is the single source of truth for metric names and the
// recording rules built on them. The exporter, rulegen, the dashboards and
// the mixin (through a generated libsonnet file) all read names from here,
// so a rename is one edit and a test failure, not a silent empty panel.
package sli

import "fmt"

// Raw traffic metrics exposed by autoglm-exporter (OpenTelemetry semantic
// conventions written as Prometheus names).
const (
	HTTPDuration      = "http_server_request_duration_seconds"
	HTTPActive        = "http_server_active_requests"
	HTTPRequestSize   = "http_server_request_body_size_bytes"
	HTTPResponseSize  = "http_server_response_body_size_bytes"
	GenAIDuration     = "gen_ai_server_request_duration_seconds"
	GenAITTFT         = "gen_ai_server_time_to_first_token_seconds"
	GenAITPOT         = "gen_ai_server_time_per_output_token_seconds"
	GenAITokens       = "gen_ai_server_tokens_total"
	ClientRequests    = "autoglm_exporter_client_requests_total"
	GRPCResponses     = "autoglm_exporter_grpc_responses_total"
	RulegenBaseline   = "autoglm_rulegen_baseline"
	LabelMethod       = "http_request_method"
	LabelRoute        = "http_route"
	LabelStatus       = "http_response_status_code"
	LabelPort         = "server_port"
	LabelErrorType    = "error_type"
	LabelOperation    = "gen_ai_operation_name"
	LabelModel        = "gen_ai_request_model"
	LabelTokenType    = "gen_ai_token_type"
	LabelClient       = "client_address"
	LabelGRPCStatus   = "rpc_grpc_status_code"
	LabelServiceName  = "service_name"
	LabelNetNS        = "netns"
	LabelK8sNamespace = "k8s_namespace_name"
	LabelK8sPod       = "k8s_pod_name"
	LabelK8sContainer = "k8s_container_name"
	LabelSLI          = "sli"
	LabelBound        = "bound"
	OtherValue        = "other"
	ErrorSelector     = `error_type!=""`
	rateWindowDefault = "5m"
)

// Values of LabelTokenType. Cached input and reasoning output are parts of
// input and output (not additions); estimated output counts the
// content-bearing events of streams that reported no usage, and is never
// mixed into output, which is always the server's own count.
const (
	TokenInput           = "input"
	TokenOutput          = "output"
	TokenInputCached     = "input_cached"
	TokenOutputReasoning = "output_reasoning"
	TokenOutputEstimated = "output_estimated"
)

// WorkloadLabels name the server behind every traffic series: a service name
// and, for a server in a network namespace other than the host's, that
// namespace; in Kubernetes the pod's namespace, name and container
// (OpenTelemetry's k8s.* attributes in Prometheus form). Labels that do not
// apply are empty, which Prometheus stores as absent. Every recording rule
// keeps them, so alerts name the pod that fails.
func WorkloadLabels() []string {
	return []string{LabelServiceName, LabelNetNS, LabelK8sNamespace, LabelK8sPod, LabelK8sContainer}
}

// WorkloadTemplate names an alert's workload in a description, after the
// route: " (vllm, pod llm/vllm-0/server)", " (python3, netns blue)"; nothing
// for series without workload labels.
const WorkloadTemplate = `{{ with $labels.service_name }} ({{ . }}` +
	`{{ with $labels.netns }}, netns {{ . }}{{ end }}` +
	`{{ with $labels.k8s_pod_name }}, pod {{ $labels.k8s_namespace_name }}/{{ . }}` +
	`{{ with $labels.k8s_container_name }}/{{ . }}{{ end }}{{ end }}){{ end }}`

// Rule is one recording rule.
type Rule struct {
	Record string
	Expr   string
}

// Kind tells rulegen how to model an SLI.
type Kind string

const (
	KindRate    Kind = "rate"
	KindLatency Kind = "latency"
	KindRatio   Kind = "ratio"
)

// SLI is a recording rule that rulegen fits a baseline to.
type SLI struct {
	// Name is the value of the sli label on baseline series and alerts.
	Name string
	Kind Kind
	// Record is the recording rule holding the SLI.
	Record string
	// By are the labels the SLI is aggregated by.
	By []string
	// Traffic is the recording rule of the request rate behind the SLI, for minimum-traffic guards.
	Traffic string
}

// Levels of aggregation (the first part of a recording rule name).
var (
	byRoute      = level("job", LabelRoute)
	byRouteModel = level("job", LabelRoute, LabelModel)
	byInstance   = level("job", "instance")
)

// level is an aggregation level: job, the workload labels, then the rest.
func level(job string, rest ...string) []string {
	return append(append([]string{job}, WorkloadLabels()...), rest...)
}

// Recording rule names.
const (
	RouteRequestRate     = "job_route:http_server_requests:rate5m"
	RouteErrorRate       = "job_route:http_server_request_errors:rate5m"
	RouteErrorRatio      = "job_route:http_server_request_errors:ratio_rate5m"
	RouteErrorRatio1h    = "job_route:http_server_request_errors:ratio_rate1h"
	RouteRequestRate1h   = "job_route:http_server_requests:rate1h"
	RouteLatencyP50      = "job_route:http_server_request_duration_seconds:p50_rate5m"
	RouteLatencyP95      = "job_route:http_server_request_duration_seconds:p95_rate5m"
	RouteLatencyP99      = "job_route:http_server_request_duration_seconds:p99_rate5m"
	InstanceRequestRate  = "job_instance:http_server_requests:rate5m"
	ModelRequestRate     = "job_route_model:gen_ai_server_requests:rate5m"
	ModelTTFTP50         = "job_route_model:gen_ai_server_time_to_first_token_seconds:p50_rate5m"
	ModelTTFTP95         = "job_route_model:gen_ai_server_time_to_first_token_seconds:p95_rate5m"
	ModelTPOTP95         = "job_route_model:gen_ai_server_time_per_output_token_seconds:p95_rate5m"
	ModelDurationP95     = "job_route_model:gen_ai_server_request_duration_seconds:p95_rate5m"
	ModelOutputTokenRate = "job_route_model:gen_ai_server_output_tokens:rate5m"
	ModelInputTokenRate  = "job_route_model:gen_ai_server_input_tokens:rate5m"
)

func by(labels []string) string {
	s := ""
	for i, l := range labels {
		if i > 0 {
			s += ", "
		}
		s += l
	}
	return s
}

func rate(metric, selector, window string, labels []string) string {
	sel := ""
	if selector != "" {
		sel = "{" + selector + "}"
	}
	return fmt.Sprintf("sum by (%s) (rate(%s%s[%s]))", by(labels), metric, sel, window)
}

func quantile(q float64, metric string, labels []string) string {
	return fmt.Sprintf("histogram_quantile(%g, sum by (%s, le) (rate(%s_bucket[%s])))",
		q, by(labels), metric, rateWindowDefault)
}

// RecordingRules returns every recording rule, in evaluation order.
func RecordingRules() []Rule {
	count := HTTPDuration + "_count"
	return []Rule{
		{RouteRequestRate, rate(count, "", "5m", byRoute)},
		{RouteRequestRate1h, rate(count, "", "1h", byRoute)},
		{RouteErrorRate, rate(count, ErrorSelector, "5m", byRoute)},
		// "or total * 0" keeps a route without errors at 0 rather than absent;
		// dividing by "total > 0" leaves an idle route absent instead of NaN,
		// which would poison every avg_over_time a confirmation window takes.
		{RouteErrorRatio, fmt.Sprintf("(%s or %s * 0) / (%s > 0)", rate(count, ErrorSelector, "5m", byRoute), RouteRequestRate, RouteRequestRate)},
		{RouteErrorRatio1h, fmt.Sprintf("(%s or %s * 0) / (%s > 0)", rate(count, ErrorSelector, "1h", byRoute), RouteRequestRate1h, RouteRequestRate1h)},
		{RouteLatencyP50, quantile(0.5, HTTPDuration, byRoute)},
		{RouteLatencyP95, quantile(0.95, HTTPDuration, byRoute)},
		{RouteLatencyP99, quantile(0.99, HTTPDuration, byRoute)},
		{InstanceRequestRate, rate(count, "", "5m", byInstance)},
		{ModelRequestRate, rate(GenAIDuration+"_count", "", "5m", byRouteModel)},
		{ModelTTFTP50, quantile(0.5, GenAITTFT, byRouteModel)},
		{ModelTTFTP95, quantile(0.95, GenAITTFT, byRouteModel)},
		{ModelTPOTP95, quantile(0.95, GenAITPOT, byRouteModel)},
		{ModelDurationP95, quantile(0.95, GenAIDuration, byRouteModel)},
		{ModelOutputTokenRate, rate(GenAITokens, LabelTokenType+`="output"`, "5m", byRouteModel)},
		{ModelInputTokenRate, rate(GenAITokens, LabelTokenType+`="input"`, "5m", byRouteModel)},
	}
}

// SLIs returns the series rulegen fits baselines to.
func SLIs() []SLI {
	return []SLI{
		{Name: "request_rate", Kind: KindRate, Record: RouteRequestRate, By: byRoute, Traffic: RouteRequestRate},
		{Name: "error_ratio", Kind: KindRatio, Record: RouteErrorRatio, By: byRoute, Traffic: RouteRequestRate},
		{Name: "latency_p95", Kind: KindLatency, Record: RouteLatencyP95, By: byRoute, Traffic: RouteRequestRate},
		{Name: "latency_p99", Kind: KindLatency, Record: RouteLatencyP99, By: byRoute, Traffic: RouteRequestRate},
		{Name: "ttft_p95", Kind: KindLatency, Record: ModelTTFTP95, By: byRouteModel, Traffic: ModelRequestRate},
	}
}
