package metrics

import "github.com/open-autoglm/autoglm-monitor/exporter/traffic"

// These give other outputs (request events) the same values the metrics'
// labels carry, so an event and a series of the same request agree.

// Method is the http_request_method value: a standard method or "_OTHER".
func Method(m string) string { return method(m) }

// Operation is the gen_ai_operation_name of a request, "" when it is not an LLM API call.
func Operation(r *traffic.Request) string { return operation(r) }

// GRPCCode is the rpc_grpc_status_code value of a grpc-status: its code name.
func GRPCCode(code int) string { return grpcCode(code) }

// ErrorType is the error_type value of a request, "" when it succeeded.
func ErrorType(r *traffic.Request) string { return errorType(r) }

// errorType is the request's own error, else the status code of an HTTP
// server error, else the code name of a gRPC server error.
func errorType(r *traffic.Request) string {
	if e := boundLabel(r.ErrorType, maxErrorLabel); e != "" {
		return e
	}
	switch {
	case r.Status >= 500 && statusLabel(r.Status) != "":
		return statusLabel(r.Status)
	case r.GRPC && grpcServerError(r.GRPCStatus):
		return grpcCode(r.GRPCStatus)
	}
	return ""
}
