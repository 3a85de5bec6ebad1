package sli

import (
	"fmt"
	"strings"
)

// Metrics of the serving engines behind the API (their own /metrics) and
// of NVIDIA's DCGM exporter. vLLM has renamed its KV-cache gauge between
// engine versions, so both names are read.
const (
	VLLMWaiting      = "vllm:num_requests_waiting"
	VLLMRunning      = "vllm:num_requests_running"
	VLLMKVCache      = "vllm:kv_cache_usage_perc"
	VLLMGPUCache     = "vllm:gpu_cache_usage_perc"
	VLLMPreemptions  = "vllm:num_preemptions_total"
	VLLMTTFT         = "vllm:time_to_first_token_seconds"
	SGLangWaiting    = "sglang:num_queue_reqs"
	SGLangRunning    = "sglang:num_running_reqs"
	SGLangTokenUsage = "sglang:token_usage"
	SGLangTTFT       = "sglang:time_to_first_token_seconds"
	TGIQueue         = "tgi_queue_size"
	TGIBatch         = "tgi_batch_current_size"
	TGIQueueDuration = "tgi_request_queue_duration"
	DCGMGPUUtil      = "DCGM_FI_DEV_GPU_UTIL"
	DCGMFBUsed       = "DCGM_FI_DEV_FB_USED"
	DCGMFBFree       = "DCGM_FI_DEV_FB_FREE"

	// LabelNode and LabelEngine identify an engine: its host (or the node
	// name a Kubernetes relabeling sets) and, with server_port, the API port
	// the exporter sees its traffic on.
	LabelNode   = "node"
	LabelEngine = "engine"
)

// Engine recording rules: one series per engine instance (labels job,
// instance, node, server_port, engine), whatever the engine.
const (
	EngineWaiting    = "instance:engine_requests_waiting:sum"
	EngineRunning    = "instance:engine_requests_running:sum"
	EngineKVCache    = "instance:engine_kv_cache_usage:ratio"
	EnginePreempts   = "instance:engine_preemptions:rate5m"
	EngineTTFTP95    = "instance:engine_time_to_first_token_seconds:p95_rate5m"
	EngineQueueP95   = "instance:engine_queue_time_seconds:p95_rate5m"
	EngineSaturated  = "instance:engine_saturated:bool"
	GPUUtilization   = "node:gpu_utilization:avg"
	GPUFramebuffer   = "node:gpu_framebuffer_usage:ratio"
	RouteSaturated   = "job_route:engine_saturated:max"
	engineWindow     = "5m"
	saturatedKVRatio = 0.9
)

// EngineBy are the labels of the engine recording rules.
var EngineBy = []string{"job", "instance", LabelNode, LabelPort, LabelEngine}

// withHost gives an engine's series the node and server_port labels of
// its target unless a relabeling set them: node is the host of instance,
// server_port its port (vLLM, SGLang and TGI serve /metrics on their API
// port). inner builds the expression around a selector of metric with the
// given extra matchers.
func withHost(metric string, inner func(sel string) string) string {
	sel := func(node, port string) string {
		return fmt.Sprintf("%s{%s%s, %s%s}", metric, LabelNode, node, LabelPort, port)
	}
	setNode := func(e string) string {
		return fmt.Sprintf(`label_replace(%s, "%s", "$1", "instance", "(.+):[0-9]+")`, e, LabelNode)
	}
	setPort := func(e string) string {
		return fmt.Sprintf(`label_replace(%s, "%s", "$1", "instance", ".+:([0-9]+)")`, e, LabelPort)
	}
	return "(" + strings.Join([]string{
		inner(sel(`!=""`, `!=""`)),
		setNode(inner(sel(`=""`, `!=""`))),
		setPort(inner(sel(`!=""`, `=""`))),
		setPort(setNode(inner(sel(`=""`, `=""`)))),
	}, " or ") + ")"
}

func plain(sel string) string { return sel }

func engineLabel(e, name string) string {
	return fmt.Sprintf(`label_replace(%s, "%s", "%s", "", "")`, e, LabelEngine, name)
}

// engineAgg aggregates per-engine expressions (one per engine kind, "" to
// skip) into one series per engine instance.
func engineAgg(agg string, parts map[string]string) string {
	var alts []string
	for _, name := range []string{"vllm", "sglang", "tgi"} {
		if e := parts[name]; e != "" {
			alts = append(alts, engineLabel(e, name))
		}
	}
	return fmt.Sprintf("%s by (%s) (%s)", agg, strings.Join(EngineBy, ", "), strings.Join(alts, " or "))
}

func rate5m(sel string) string { return "rate(" + sel + "[" + engineWindow + "])" }

// EngineRecordingRules normalise vLLM, SGLang, TGI and DCGM metrics into
// one set of series per engine instance and per node, and join them to the
// routes the exporter sees (by node and server_port), in evaluation order.
func EngineRecordingRules() []Rule {
	by := strings.Join(EngineBy, ", ")
	p95 := func(metrics map[string]string) string {
		var alts []string
		for _, name := range []string{"vllm", "sglang", "tgi"} {
			if m := metrics[name]; m != "" {
				alts = append(alts, engineLabel(withHost(m+"_bucket", rate5m), name))
			}
		}
		return fmt.Sprintf("histogram_quantile(0.95, sum by (%s, le) (%s))", by, strings.Join(alts, " or "))
	}
	// A route's traffic per node and port, for the join: 1 where it served requests.
	traffic := fmt.Sprintf(`sum by (job, %s, %s, %s) (label_replace(rate(%s_count[%s]), "%s", "$1", "instance", "(.+):[0-9]+")) > bool 0`,
		LabelRoute, LabelNode, LabelPort, HTTPDuration, engineWindow, LabelNode)
	reason := func(e, r string) string { return fmt.Sprintf(`label_replace(%s, "reason", "%s", "", "")`, e, r) }
	return []Rule{
		{EngineWaiting, engineAgg("sum", map[string]string{
			"vllm": withHost(VLLMWaiting, plain), "sglang": withHost(SGLangWaiting, plain), "tgi": withHost(TGIQueue, plain)})},
		{EngineRunning, engineAgg("sum", map[string]string{
			"vllm": withHost(VLLMRunning, plain), "sglang": withHost(SGLangRunning, plain), "tgi": withHost(TGIBatch, plain)})},
		// vLLM V1 and V0 names; both are 0..1 despite "perc".
		{EngineKVCache, engineAgg("max", map[string]string{
			"vllm":   "(" + withHost(VLLMKVCache, plain) + " or " + withHost(VLLMGPUCache, plain) + ")",
			"sglang": withHost(SGLangTokenUsage, plain)})},
		{EnginePreempts, engineAgg("sum", map[string]string{"vllm": withHost(VLLMPreemptions, rate5m)})},
		{EngineTTFTP95, p95(map[string]string{"vllm": VLLMTTFT, "sglang": SGLangTTFT})},
		{EngineQueueP95, p95(map[string]string{"tgi": TGIQueueDuration})},
		// Saturated: at least one request waited on average over the last
		// five minutes, the KV cache is nearly full, or sequences are being
		// preempted.
		{EngineSaturated, fmt.Sprintf("max by (%s) (\n  %s\n  or %s\n  or %s\n)", by,
			reason(fmt.Sprintf("avg_over_time(%s[%s]) >= bool 1", EngineWaiting, engineWindow), "queue"),
			reason(fmt.Sprintf("%s >= bool %g", EngineKVCache, saturatedKVRatio), "kv_cache"),
			reason(fmt.Sprintf("%s > bool 0", EnginePreempts), "preemption"))},
		// DCGM: utilisation in percent, framebuffer in MiB, per GPU.
		{GPUUtilization, fmt.Sprintf("avg by (job, %s) (%s) / 100", LabelNode, withHost(DCGMGPUUtil, plain))},
		{GPUFramebuffer, fmt.Sprintf("max by (job, %s) (%s / (%s + %s))", LabelNode,
			withHost(DCGMFBUsed, plain), withHost(DCGMFBUsed, plain), withHost(DCGMFBFree, plain))},
		// Per route: 1 when an engine it sends traffic to is saturated.
		{RouteSaturated, fmt.Sprintf("max by (job, %s) (\n  max by (%s, %s) (%s)\n  * on (%s, %s) group_right ()\n  (%s)\n)",
			LabelRoute, LabelNode, LabelPort, EngineSaturated, LabelNode, LabelPort, traffic)},
	}
}

// SaturationNote is appended to the descriptions of time-to-first-token
// alerts (the mixin's and rulegen's): it looks up RouteSaturated for the
// alert's job and route when the notification is rendered, so the message
// says whether the engine behind the route was saturated at the time.
func SaturationNote() string {
	return `{{ with printf "max(` + RouteSaturated + `{job=%q, ` + LabelRoute + `=%q})" $labels.job $labels.` + LabelRoute + ` | query }}` +
		`{{ if eq (. | first | value) 1.0 }} The engine serving this route is saturated (requests wait for a slot, the KV cache is full or sequences are preempted): add capacity or shed load.` +
		`{{ else }} The engines serving this route are not saturated: look at prompt lengths, the model and the network.{{ end }}` +
		`{{ else }} No engine metrics are joined to this route.{{ end }}`
}
