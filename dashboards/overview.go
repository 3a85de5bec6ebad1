package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// trafficVariables are the job/namespace/workload/instance/route/model filters
// over exporter series. Namespace and workload are the Kubernetes namespace
// and the service name (a Deployment, StatefulSet or configured service);
// "All" also matches series without them.
func trafficVariables(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	count := sli.HTTPDuration + "_count"
	return b.
		WithVariable(variable{name: "job", label: "Job", query: "label_values(" + count + ", job)", multi: true}.builder()).
		WithVariable(variable{name: "namespace", label: "Namespace", query: "label_values(" + count + `{job=~"$job"}, ` + sli.LabelK8sNamespace + ")", multi: true}.builder()).
		WithVariable(variable{name: "service", label: "Workload", query: "label_values(" + count + `{job=~"$job", ` + mNamespace + `}, ` + sli.LabelServiceName + ")", multi: true}.builder()).
		WithVariable(variable{name: "instance", label: "Instance", query: "label_values(" + count + `{job=~"$job"}, instance)`, multi: true}.builder()).
		WithVariable(variable{name: "route", label: "Route", query: "label_values(" + count + `{job=~"$job"}, ` + sli.LabelRoute + ")", multi: true}.builder()).
		WithVariable(variable{name: "model", label: "Model", query: "label_values(" + sli.GenAIDuration + `_count{job=~"$job"}, ` + sli.LabelModel + ")", multi: true}.builder())
}

// podLabels group series by server: the pod in Kubernetes, the service and network namespace elsewhere.
const podLabels = sli.LabelK8sNamespace + ", " + sli.LabelK8sPod + ", " + sli.LabelServiceName + ", " + sli.LabelNetNS

func overview() *dashboard.DashboardBuilder {
	count := sli.HTTPDuration + "_count"
	b := newDashboard(UIDOverview, "AutoGLM / LLM API overview",
		"Request rate, latency, time to first token, errors, sizes and clients of the LLM APIs seen by autoglm-exporter.")
	b = trafficVariables(b)
	reqs := "sum(" + rec(sli.RouteRequestRate) + ")"
	return b.
		WithRow(dashboard.NewRowBuilder("Summary")).
		WithPanel(statPanel(panel{title: "Requests per second", unit: "reqps",
			description: "Requests per second over the selected jobs and routes (5m recording rule).",
			queries:     []query{q(reqs, "requests/s")}})).
		WithPanel(statPanel(panel{title: "Error ratio", unit: "percentunit",
			description: "Share of requests that ended in an error (non-empty error_type: 5xx, 4xx that the server caused, resets, timeouts).",
			queries:     []query{q("sum("+rec(sli.RouteErrorRate)+") / "+reqs, "errors")}})).
		WithPanel(statPanel(panel{title: "Worst route p95 latency", unit: "s",
			description: "Highest 95th percentile request duration among the selected routes; for streams this is the whole stream.",
			queries:     []query{q("max("+rec(sli.RouteLatencyP95)+")", "p95")}})).
		WithPanel(statPanel(panel{title: "Active requests", unit: "short",
			description: "Requests in flight right now (open streams included).",
			queries:     []query{q("sum("+raw(sli.HTTPActive)+")", "active")}})).
		WithRow(dashboard.NewRowBuilder("Traffic")).
		WithPanel(timeSeries(panel{title: "Requests per second by route", unit: "reqps",
			description: "Finished requests per second, per route, on the selected instances.",
			queries:     []query{q(sumRate(sli.LabelRoute, raw(count)), "{{"+sli.LabelRoute+"}}")}})).
		WithPanel(timeSeries(panel{title: "Requests per second by workload", unit: "reqps",
			description: "Finished requests per second per workload: Kubernetes namespace and service name, or the configured service name (and network namespace) outside Kubernetes.",
			queries: []query{q(sumRate(sli.LabelK8sNamespace+", "+sli.LabelServiceName+", "+sli.LabelNetNS, raw(count)),
				"{{"+sli.LabelK8sNamespace+"}} {{"+sli.LabelServiceName+"}} {{"+sli.LabelNetNS+"}}")}})).
		WithPanel(timeSeries(panel{title: "Error ratio by pod", unit: "percentunit",
			description: "Share of failed requests per pod (or per server outside Kubernetes), all routes together: one failing pod stands out even when the workload as a whole looks healthy.",
			queries: []query{q(sumRate(podLabels, raw(count, sli.ErrorSelector))+" / "+sumRate(podLabels, raw(count)),
				"{{"+sli.LabelK8sNamespace+"}}/{{"+sli.LabelK8sPod+"}} {{"+sli.LabelServiceName+"}} {{"+sli.LabelNetNS+"}}")}})).
		WithPanel(timeSeries(panel{title: "Requests per second by instance", unit: "reqps",
			description: "Finished requests per second per exporter instance; compare with the per-instance QPS limit of the alert rules.",
			queries:     []query{q(sumRate("instance", raw(count)), "{{instance}}")}})).
		WithRow(dashboard.NewRowBuilder("Latency")).
		WithPanel(timeSeries(panel{title: "Request duration p50 / p95 / p99 by route", unit: "s",
			description: "Request duration percentiles per route from the recording rules (5m windows). For streaming responses the duration covers the whole stream.",
			queries: []query{
				q(rec(sli.RouteLatencyP50), "{{"+sli.LabelRoute+"}} p50"),
				q(rec(sli.RouteLatencyP95), "{{"+sli.LabelRoute+"}} p95"),
				q(rec(sli.RouteLatencyP99), "{{"+sli.LabelRoute+"}} p99"),
			}})).
		WithPanel(timeSeries(panel{title: "Time to first token p50 / p95", unit: "s",
			description: "Time from the request to the first streamed token, per route and model (recording rules).",
			queries: []query{
				q(recModel(sli.ModelTTFTP50), "{{"+sli.LabelModel+"}} {{"+sli.LabelRoute+"}} p50"),
				q(recModel(sli.ModelTTFTP95), "{{"+sli.LabelModel+"}} {{"+sli.LabelRoute+"}} p95"),
			}})).
		WithPanel(timeSeries(panel{title: "Routes served by a saturated engine", unit: "short",
			description: "1 while a route's traffic goes to a saturated serving engine (requests queueing, KV cache full or preemptions; see the Engines dashboard): a time to first token rising with it is the engine's capacity, not the network.",
			queries:     []query{q(rec(sli.RouteSaturated), "{{"+sli.LabelRoute+"}}")}})).
		WithPanel(timeSeries(panel{title: "Stream duration p95 by model", unit: "s",
			description: "95th percentile of the GenAI request duration (first byte of the request to the last token) per route and model.",
			queries:     []query{q(recModel(sli.ModelDurationP95), "{{"+sli.LabelModel+"}} {{"+sli.LabelRoute+"}}")}})).
		WithPanel(timeSeries(panel{title: "Request duration p95 by instance", unit: "s",
			description: "95th percentile request duration per exporter instance, computed over the dashboard's rate interval.",
			queries:     []query{q(quantile(0.95, "instance", raw(sli.HTTPDuration+"_bucket")), "{{instance}}")}})).
		WithRow(dashboard.NewRowBuilder("Errors")).
		WithPanel(stacked(panel{title: "Responses by status code", unit: "reqps",
			description: "Responses per second by HTTP status code.",
			queries:     []query{q(sumRate(sli.LabelStatus, raw(count)), "{{"+sli.LabelStatus+"}}")}})).
		WithPanel(timeSeries(panel{title: "Error ratio by route", unit: "percentunit",
			description: "Share of failed requests per route (5m recording rule); the warning threshold of the alert rules is 5% by default.",
			queries:     []query{q(rec(sli.RouteErrorRatio), "{{"+sli.LabelRoute+"}}")}})).
		WithPanel(stacked(panel{title: "Errors by type", unit: "reqps",
			description: "Failed requests per second by error_type (status code class, connection reset, timeout, ...).",
			queries:     []query{q(sumRate(sli.LabelErrorType, raw(count, sli.ErrorSelector)), "{{"+sli.LabelErrorType+"}}")}})).
		WithPanel(timeSeries(panel{title: "Active requests by route", unit: "short",
			description: "Requests in flight per route; a growing number with a flat request rate means slower responses.",
			queries:     []query{q("sum by ("+sli.LabelRoute+") ("+raw(sli.HTTPActive)+")", "{{"+sli.LabelRoute+"}}")}})).
		WithRow(dashboard.NewRowBuilder("Sizes and clients")).
		WithPanel(timeSeries(panel{title: "Request body size p95", unit: "bytes",
			description: "95th percentile request body size per route (prompt size).",
			queries:     []query{q(quantile(0.95, sli.LabelRoute, raw(sli.HTTPRequestSize+"_bucket")), "{{"+sli.LabelRoute+"}}")}})).
		WithPanel(timeSeries(panel{title: "Response body size p95", unit: "bytes",
			description: "95th percentile response body size per route (completion size, streams included).",
			queries:     []query{q(quantile(0.95, sli.LabelRoute, raw(sli.HTTPResponseSize+"_bucket")), "{{"+sli.LabelRoute+"}}")}})).
		WithPanel(bars(panel{title: "Top client addresses", unit: "reqps", width: 24, height: 10,
			description: "The ten busiest client addresses by request rate; the exporter keeps the top N addresses and folds the rest into \"other\".",
			queries: []query{q("topk(10, "+sumRate(sli.LabelClient, sel(sli.ClientRequests, mJob, mInstance))+")",
				"{{"+sli.LabelClient+"}}")}}))
}
