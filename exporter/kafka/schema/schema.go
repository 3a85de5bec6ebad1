// Package schema carries the JSON Schema of the request events the Kafka
// output writes, so consumers and tests read the very file that is published.
package schema

import _ "embed"

// RequestEventV1 is request-event.v1.json.
//
//go:embed request-event.v1.json
var RequestEventV1 []byte
