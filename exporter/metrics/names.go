package metrics

import "github.com/open-autoglm/autoglm-monitor/exporter/traffic"

// These give other outputs (request events) the same values the metrics'
// labels carry, so an event and a series of the same request agree.

// Method is the http_request_method value: a standard method or "_OTHER".
func Method(m string) string { return method(m) }

// Operation is the gen_ai_operation_name of a request, "" when it is not an LLM API call.
func Operation(r *traffic.Request) string { return operation(r) }
