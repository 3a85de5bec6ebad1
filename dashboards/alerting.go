package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Names of the receiver's metrics.
const (
	receiverAlerts        = "autoglm_receiver_alerts_received_total"
	receiverNotifications = "autoglm_receiver_notifications_total"
	receiverDelivery      = "autoglm_receiver_delivery_duration_seconds"
	receiverQueueDepth    = "autoglm_receiver_queue_depth"
	receiverOldest        = "autoglm_receiver_oldest_pending_seconds"
	receiverDeadLetters   = "autoglm_receiver_dead_letters_total"
	receiverBuildInfo     = "autoglm_receiver_build_info"
)

func alerting() *dashboard.DashboardBuilder {
	r := func(metric string, extra ...string) string {
		return sel(metric, append([]string{mJob, mInstance}, extra...)...)
	}
	perMinute := func(by, selector string) string { return sumRate(by, selector) + " * 60" }
	return newDashboard(UIDAlerting, "AutoGLM / Alerting and audit",
		"Alerts received by autoglm-receiver, the notifications it sent per channel, delivery latency, backlog and dead letters.").
		WithVariable(variable{name: "job", label: "Receiver job", query: "label_values(" + receiverBuildInfo + ", job)", multi: true}.builder()).
		WithVariable(variable{name: "instance", label: "Instance", query: "label_values(" + receiverBuildInfo + `{job=~"$job"}, instance)`, multi: true}.builder()).
		WithRow(dashboard.NewRowBuilder("Alerts")).
		WithPanel(stacked(panel{title: "Alerts received per minute by alert name", unit: "cpm",
			description: "Firing and resolved alerts the receiver accepted from Alertmanager, per minute, by alert name.",
			queries:     []query{q(perMinute("alertname", r(receiverAlerts)), "{{alertname}}")}})).
		WithPanel(stacked(panel{title: "Alerts received per minute by severity", unit: "cpm",
			description: "Alerts accepted per minute by severity and status (firing or resolved).",
			queries:     []query{q(perMinute("severity, status", r(receiverAlerts)), "{{severity}} {{status}}")}})).
		WithPanel(bars(panel{title: "Top 5 alert types", unit: "short",
			description: "The five alert names received most often over the dashboard's time range.",
			queries:     []query{q("topk(5, sum by (alertname) (increase("+r(receiverAlerts)+"[$__range])))", "{{alertname}}")}})).
		WithPanel(pie(panel{title: "Alerts by severity in range", unit: "short",
			description: "Share of received alerts by severity over the dashboard's time range.",
			queries:     []query{q("sum by (severity) (increase("+r(receiverAlerts)+"[$__range]))", "{{severity}}")}})).
		WithRow(dashboard.NewRowBuilder("Notifications")).
		WithPanel(stacked(panel{title: "Notifications per minute by channel and outcome", unit: "cpm",
			description: "Delivery attempts per minute by channel (dingtalk, wecom, email, sms, webhook) and outcome.",
			queries:     []query{q(perMinute("channel, outcome", r(receiverNotifications)), "{{channel}} {{outcome}}")}})).
		WithPanel(timeSeries(panel{title: "Delivery latency p50 / p95 by channel", unit: "s",
			description: "Time from accepting an alert to the provider confirming the message, per channel. P1 alerts must reach a person within 5 minutes.",
			queries: []query{
				q(quantile(0.5, "channel", r(receiverDelivery+"_bucket")), "{{channel}} p50"),
				q(quantile(0.95, "channel", r(receiverDelivery+"_bucket")), "{{channel}} p95"),
			}})).
		WithPanel(timeSeries(panel{title: "Share of delivery attempts delivered", unit: "percentunit", width: 24,
			description: "Delivery attempts the provider accepted, per channel, over all attempts of that channel (retries count as attempts).",
			queries: []query{q(sumRate("channel", r(receiverNotifications, `outcome="delivered"`))+" / "+
				sumRate("channel", r(receiverNotifications)), "{{channel}}")}}).Min(0).Max(1)).
		WithRow(dashboard.NewRowBuilder("Backlog")).
		WithPanel(timeSeries(panel{title: "Queue depth", unit: "short", width: 8,
			description: "Notifications waiting in the durable outbox (pending and retrying).",
			queries:     []query{q("sum by (instance) ("+r(receiverQueueDepth)+")", "{{instance}}")}})).
		WithPanel(timeSeries(panel{title: "Oldest pending notification", unit: "s", width: 8,
			description: "Age of the oldest notification not yet delivered; above 5 minutes a P1 page is late.",
			queries:     []query{q("max by (instance) ("+r(receiverOldest)+")", "{{instance}}")}})).
		WithPanel(stacked(panel{title: "Dead letters by channel", unit: "short", width: 8,
			description: "Notifications given up on per rate interval (permanent errors or retries exhausted), by channel. Each is in the audit log.",
			queries:     []query{q("sum by (channel) (increase("+r(receiverDeadLetters)+"[$__rate_interval]))", "{{channel}}")}}))
}
