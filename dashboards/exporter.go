package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Names of the exporter's self metrics.
const (
	exporterEvents      = "autoglm_exporter_events_total"
	exporterEventsLost  = "autoglm_exporter_events_lost_total"
	exporterRingbuf     = "autoglm_exporter_ringbuf_fill_ratio"
	exporterConnections = "autoglm_exporter_tracked_connections"
	exporterParseErrors = "autoglm_exporter_parse_errors_total"

	kafkaProduced       = "autoglm_exporter_kafka_events_produced_total"
	kafkaDropped        = "autoglm_exporter_kafka_events_dropped_total"
	kafkaErrors         = "autoglm_exporter_kafka_errors_total"
	kafkaBuffer         = "autoglm_exporter_kafka_buffer_events"
	kafkaCapacity       = "autoglm_exporter_kafka_buffer_capacity_events"
	kafkaProducerBuffer = "autoglm_exporter_kafka_producer_buffered_events"
	kafkaLatency        = "autoglm_exporter_kafka_produce_latency_seconds"
	kafkaProducedBytes  = "autoglm_exporter_kafka_produced_bytes_total"
	kafkaBatchBytes     = "autoglm_exporter_kafka_batch_bytes_total"
)

func exporterHealth() *dashboard.DashboardBuilder {
	s := func(metric string, extra ...string) string {
		return sel(metric, append([]string{mJob, mInstance}, extra...)...)
	}
	return newDashboard(UIDExporter, "AutoGLM / Exporter health",
		"Health of autoglm-exporter (events, losses, ring buffer, connections, parse errors, the Kafka output) and the CPU and memory of the three services.").
		WithVariable(variable{name: "job", label: "Job", query: `label_values(process_start_time_seconds{job=~"autoglm-.*"}, job)`, multi: true}.builder()).
		WithVariable(variable{name: "instance", label: "Instance", query: `label_values(process_start_time_seconds{job=~"$job"}, instance)`, multi: true}.builder()).
		WithRow(dashboard.NewRowBuilder("Capture")).
		WithPanel(timeSeries(panel{title: "Events per second", unit: "ops",
			description: "Kernel socket events (eBPF) or log lines (access-log source) the exporter processed per second.",
			queries:     []query{q(sumRate("instance", s(exporterEvents)), "{{instance}}")}})).
		WithPanel(stacked(panel{title: "Lost events by reason", unit: "ops",
			description: "Events dropped per second by reason (ring buffer full, oversized, ...). Any loss means undercounted traffic.",
			queries:     []query{q(sumRate("instance, reason", s(exporterEventsLost)), "{{instance}} {{reason}}")}})).
		WithPanel(timeSeries(panel{title: "Ring buffer fill", unit: "percentunit",
			description: "How full the kernel-to-user ring buffer is; close to 100% the kernel starts dropping events.",
			queries:     []query{q("max by (instance) ("+s(exporterRingbuf)+")", "{{instance}}")}}).Min(0).Max(1)).
		WithPanel(timeSeries(panel{title: "Tracked connections", unit: "short",
			description: "TCP connections the exporter currently follows on the watched ports.",
			queries:     []query{q("sum by (instance) ("+s(exporterConnections)+")", "{{instance}}")}})).
		WithPanel(stacked(panel{title: "Parse errors by reason", unit: "ops", width: 24,
			description: "Payloads or log lines that could not be parsed, per second, by reason.",
			queries:     []query{q(sumRate("instance, reason", s(exporterParseErrors)), "{{instance}} {{reason}}")}})).
		WithRow(dashboard.NewRowBuilder("Kafka output")).
		WithPanel(timeSeries(panel{title: "Request events produced", unit: "ops",
			description: "Request events Kafka acknowledged per second (exporter.outputs.kafka). It follows the request rate unless events are dropped.",
			queries:     []query{q(sumRate("instance", s(kafkaProduced)), "{{instance}}")}})).
		WithPanel(stacked(panel{title: "Dropped request events by reason", unit: "ops",
			description: "Request events not delivered per second: buffer_full (Kafka slow or down), produce_failed (refused or past delivery_timeout), too_large, shutdown. Capture and metrics are not affected.",
			queries:     []query{q(sumRate("instance, reason", s(kafkaDropped)), "{{instance}} {{reason}}")}})).
		WithPanel(timeSeries(panel{title: "Kafka buffers fill", unit: "percentunit",
			description: "Events waiting between capture and producer, and events the producer holds unacknowledged, each as a share of buffer_events. At 100% new events are dropped.",
			queries: []query{
				q("max by (instance) ("+s(kafkaBuffer)+" / "+s(kafkaCapacity)+")", "{{instance}} buffer"),
				q("max by (instance) ("+s(kafkaProducerBuffer)+" / "+s(kafkaCapacity)+")", "{{instance}} producer"),
			}}).Min(0).Max(1)).
		WithPanel(timeSeries(panel{title: "Produce latency", unit: "s",
			description: "From handing an event to the producer to Kafka's acknowledgement, linger and retries included.",
			queries: []query{
				q(quantile(0.5, "instance", s(kafkaLatency+"_bucket")), "{{instance}} p50"),
				q(quantile(0.99, "instance", s(kafkaLatency+"_bucket")), "{{instance}} p99"),
			}})).
		WithPanel(stacked(panel{title: "Kafka errors by kind", unit: "ops",
			description: "Failed connections (connect, tls, auth) and failed events (topic, timeout, too_large, other) per second.",
			queries:     []query{q(sumRate("instance, kind", s(kafkaErrors)), "{{instance}} {{kind}}")}})).
		WithPanel(timeSeries(panel{title: "Bytes produced", unit: "Bps",
			description: "Event bytes acknowledged per second before compression, and the record batches' bytes after it.",
			queries: []query{
				q(sumRate("instance", s(kafkaProducedBytes)), "{{instance}} events"),
				q(sumRate("instance", s(kafkaBatchBytes)), "{{instance}} compressed batches"),
			}})).
		WithRow(dashboard.NewRowBuilder("Services")).
		WithPanel(timeSeries(panel{title: "CPU usage", unit: "percentunit",
			description: "CPU time per second of each service process (1 = one full core).",
			queries:     []query{q(sumRate("job, instance", s("process_cpu_seconds_total")), "{{job}} {{instance}}")}})).
		WithPanel(timeSeries(panel{title: "Resident memory", unit: "bytes",
			description: "Resident set size of each service process.",
			queries:     []query{q("max by (job, instance) ("+s("process_resident_memory_bytes")+")", "{{job}} {{instance}}")}})).
		WithPanel(timeSeries(panel{title: "Go heap in use", unit: "bytes",
			description: "Heap memory in use by the Go runtime of each service.",
			queries:     []query{q("max by (job, instance) ("+s("go_memstats_heap_inuse_bytes")+")", "{{job}} {{instance}}")}})).
		WithPanel(timeSeries(panel{title: "Goroutines", unit: "short",
			description: "Goroutines per service; steady growth points at a leak.",
			queries:     []query{q("max by (job, instance) ("+s("go_goroutines")+")", "{{job}} {{instance}}")}}))
}
