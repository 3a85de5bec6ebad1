package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// engineDashboard shows whether the serving engines behind the API keep up:
// queue, batch, KV cache, preemptions and their own time to first token
// (vLLM, SGLang, TGI through the engine recording rules), the GPUs (DCGM),
// and which routes sent traffic to a saturated engine.
func engineDashboard() *dashboard.DashboardBuilder {
	b := newDashboard(UIDEngine, "AutoGLM / Engines and GPUs",
		"Saturation of the LLM serving engines (vLLM, SGLang, TGI) and their GPUs (DCGM), joined to the API routes by node and port.").
		WithVariable(variable{name: "job", label: "Engine job", query: "label_values(" + sli.EngineRunning + ", job)", multi: true}.builder()).
		WithVariable(variable{name: "instance", label: "Engine instance", query: "label_values(" + sli.EngineRunning + `{job=~"$job"}, instance)`, multi: true}.builder()).
		WithVariable(variable{name: "traffic_job", label: "Traffic job", query: "label_values(" + sli.RouteSaturated + ", job)", multi: true}.builder()).
		WithVariable(variable{name: "gpu_job", label: "DCGM job", query: "label_values(" + sli.GPUUtilization + ", job)", multi: true}.builder()).
		WithVariable(variable{name: "node", label: "Node", query: "label_values(" + sli.GPUUtilization + `{job=~"$gpu_job"}, ` + sli.LabelNode + ")", multi: true}.builder())
	eng := func(record string) string { return sel(record, mJob, mInstance) }
	legend := "{{" + sli.LabelEngine + "}} {{instance}}"
	node := func(record string) string { return sel(record, `job=~"$gpu_job"`, sli.LabelNode+`=~"$node"`) }
	routes := sel(sli.RouteSaturated, `job=~"$traffic_job"`)
	return b.
		WithRow(dashboard.NewRowBuilder("Saturation")).
		WithPanel(statPanel(panel{title: "Engines saturated", unit: "short",
			description: "Engine instances that are saturated now: requests waited for a slot throughout the last 5 minutes, the KV cache is at 90 % or more, or sequences are being preempted.",
			queries:     []query{q("sum("+eng(sli.EngineSaturated)+")", "saturated")}})).
		WithPanel(statPanel(panel{title: "Requests waiting", unit: "short",
			description: "Requests queued in the engines, waiting for a batch slot or for KV-cache room (vLLM num_requests_waiting, SGLang num_queue_reqs, TGI queue_size).",
			queries:     []query{q("sum("+eng(sli.EngineWaiting)+")", "waiting")}})).
		WithPanel(statPanel(panel{title: "Highest KV-cache usage", unit: "percentunit",
			description: "The fullest KV cache among the selected engines (vLLM kv_cache_usage_perc / gpu_cache_usage_perc, SGLang token_usage).",
			queries:     []query{q("max("+eng(sli.EngineKVCache)+")", "KV cache")}})).
		WithPanel(statPanel(panel{title: "Routes on a saturated engine", unit: "short",
			description: "API routes (as the exporter sees them) whose traffic goes to a saturated engine, joined by node and server port.",
			queries:     []query{q("sum("+routes+")", "routes")}})).
		WithPanel(timeSeries(panel{title: "Saturated engines by reason", unit: "short", width: 24,
			description: "1 while an engine is saturated. Compare with the time to first token of its routes on the overview dashboard.",
			queries:     []query{q(eng(sli.EngineSaturated), legend)}})).
		WithRow(dashboard.NewRowBuilder("Scheduler")).
		WithPanel(timeSeries(panel{title: "Requests waiting and running", unit: "short",
			description: "Queue (waiting) and batch (running) of each engine. A queue that stays above zero means the engine is at its sequence or KV-cache limit.",
			queries: []query{
				q(eng(sli.EngineWaiting), legend+" waiting"),
				q(eng(sli.EngineRunning), legend+" running"),
			}})).
		WithPanel(timeSeries(panel{title: "KV-cache usage", unit: "percentunit",
			description: "Share of the KV cache in use per engine; near 100 % new sequences wait and running ones are preempted.",
			queries:     []query{q(eng(sli.EngineKVCache), legend)}})).
		WithPanel(timeSeries(panel{title: "Preemptions per second", unit: "short",
			description: "Sequences evicted from the KV cache and recomputed later (vLLM num_preemptions_total); any sustained rate costs throughput and latency.",
			queries:     []query{q(eng(sli.EnginePreempts), legend)}})).
		WithPanel(timeSeries(panel{title: "Engine time to first token p95 and queue time p95", unit: "s",
			description: "The engines' own view: vLLM/SGLang time to first token and TGI queue time, 95th percentile over 5 minutes. The exporter measures the same from the network on the overview dashboard.",
			queries: []query{
				q(eng(sli.EngineTTFTP95), legend+" TTFT"),
				q(eng(sli.EngineQueueP95), legend+" queue"),
			}})).
		WithRow(dashboard.NewRowBuilder("GPUs (DCGM)")).
		WithPanel(timeSeries(panel{title: "GPU utilisation", unit: "percentunit",
			description: "Average GPU utilisation per node (DCGM_FI_DEV_GPU_UTIL).",
			queries:     []query{q(node(sli.GPUUtilization), "{{"+sli.LabelNode+"}}")}})).
		WithPanel(timeSeries(panel{title: "GPU framebuffer memory used", unit: "percentunit",
			description: "Share of framebuffer memory in use on the fullest GPU of each node (DCGM_FI_DEV_FB_USED / (USED + FREE)).",
			queries:     []query{q(node(sli.GPUFramebuffer), "{{"+sli.LabelNode+"}}")}})).
		WithRow(dashboard.NewRowBuilder("Routes")).
		WithPanel(timeSeries(panel{title: "Routes served by a saturated engine", unit: "short", width: 24,
			description: "1 while a route's traffic goes to a saturated engine (same node and server port as the exporter sees the requests).",
			queries:     []query{q(routes, "{{job}} {{"+sli.LabelRoute+"}}")}}))
}
