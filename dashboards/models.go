package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

const tokensPerSecond = "suffix: tok/s"

func models() *dashboard.DashboardBuilder {
	b := newDashboard(UIDModels, "AutoGLM / Models",
		"Per-model GenAI view: request rate, time to first token, time per output token, decode speed and token usage.")
	b = trafficVariables(b)
	legend := "{{" + sli.LabelModel + "}} {{" + sli.LabelRoute + "}}"
	out := sli.LabelTokenType + `="output"`
	return b.
		WithRow(dashboard.NewRowBuilder("Requests")).
		WithPanel(timeSeries(panel{title: "Requests per second by model", unit: "reqps",
			description: "GenAI requests per second per model and route (5m recording rule).",
			queries:     []query{q(recModel(sli.ModelRequestRate), legend)}})).
		WithPanel(timeSeries(panel{title: "Request duration p95 by model", unit: "s",
			description: "95th percentile GenAI request duration (whole stream) per model and route.",
			queries:     []query{q(recModel(sli.ModelDurationP95), legend)}})).
		WithRow(dashboard.NewRowBuilder("Latency of generation")).
		WithPanel(timeSeries(panel{title: "Time to first token p50 / p95", unit: "s",
			description: "Time until the first token was streamed back, per model (recording rules). Users feel this as responsiveness.",
			queries: []query{
				q(recModel(sli.ModelTTFTP50), legend+" p50"),
				q(recModel(sli.ModelTTFTP95), legend+" p95"),
			}})).
		WithPanel(timeSeries(panel{title: "Time per output token p95", unit: "s",
			description: "95th percentile of the time between output tokens after the first one, per model.",
			queries:     []query{q(recModel(sli.ModelTPOTP95), legend)}})).
		WithPanel(timeSeries(panel{title: "Decode speed of slow streams", unit: tokensPerSecond,
			description: "Output tokens per second of a stream at the 95th percentile of time per output token: the speed the slowest 5% of streams get.",
			queries:     []query{q("1 / "+recModel(sli.ModelTPOTP95), legend)}})).
		WithPanel(timeSeries(panel{title: "Time to first token p95 by instance", unit: "s",
			description: "95th percentile time to first token per exporter instance, over the dashboard's rate interval.",
			queries:     []query{q(quantile(0.95, "instance", rawModel(sli.GenAITTFT+"_bucket")), "{{instance}}")}})).
		WithRow(dashboard.NewRowBuilder("Tokens")).
		WithPanel(timeSeries(panel{title: "Token throughput: input and output", unit: tokensPerSecond,
			description: "Prompt (input) and completion (output) tokens per second per model, when the responses report usage (recording rules).",
			queries: []query{
				q(recModel(sli.ModelInputTokenRate), legend+" input"),
				q(recModel(sli.ModelOutputTokenRate), legend+" output"),
			}})).
		WithPanel(timeSeries(panel{title: "Average output tokens per request", unit: "short",
			description: "Output tokens per finished GenAI request, per model; a change means different workloads or truncated streams.",
			queries: []query{q(sumRate(sli.LabelModel, rawModel(sli.GenAITokens, out))+" / "+
				sumRate(sli.LabelModel, rawModel(sli.GenAIDuration+"_count")), "{{"+sli.LabelModel+"}}")}})).
		WithPanel(stacked(panel{title: "Output tokens per second by instance", unit: tokensPerSecond, width: 24,
			description: "Completion tokens per second per exporter instance, over the dashboard's rate interval.",
			queries:     []query{q(sumRate("instance", rawModel(sli.GenAITokens, out)), "{{instance}}")}}))
}
