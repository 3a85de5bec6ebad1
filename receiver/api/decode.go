// Package api is the receiver's incoming HTTP surface: POST /webhook for
// Alertmanager's webhook payload and GET /api/v1/notifications over the audit log.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	amwebhook "github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"
)

// DecodeError says what is wrong with a payload and where.
type DecodeError struct {
	// Field is the JSON path of the problem ("alerts[2].status"), "" for the whole body.
	Field string
	Msg   string
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func badf(field, format string, args ...any) error {
	return &DecodeError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Decode reads and validates one payload: Alertmanager's own webhook message
// type (version 4, every field). Unknown fields are ignored so newer
// Alertmanager versions keep working. A message Decode returns has Data set.
func Decode(r io.Reader) (*amwebhook.Message, error) {
	dec := json.NewDecoder(r)
	m := amwebhook.Message{Data: &template.Data{}}
	if err := dec.Decode(&m); err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, jsonError(err)
		}
		return nil, badf("", "unexpected data after the JSON object")
	}
	if err := validate(&m); err != nil {
		return nil, err
	}
	return &m, nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tm *time.ParseError
	switch {
	case errors.As(err, &syn):
		return badf("", "invalid JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		// The embedded template.Data shows up in the path; the payload has no such level.
		field := strings.TrimPrefix(typ.Field, "Data.")
		if field == "" {
			field = "(top level)"
		}
		return badf(field, "must be %s, got JSON %s", typ.Type, typ.Value)
	case errors.As(err, &tm):
		return badf("", "invalid time %q: use RFC 3339", tm.Value)
	case errors.Is(err, io.EOF):
		return badf("", "empty body: expected an Alertmanager webhook payload")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badf("", "truncated JSON body")
	}
	return err
}

func validStatus(s string) bool { return s == "firing" || s == "resolved" }

func validate(m *amwebhook.Message) error {
	if m.Version != "" && m.Version != "4" {
		return badf("version", "unsupported webhook payload version %q, want \"4\"", m.Version)
	}
	if m.GroupKey == "" {
		return badf("groupKey", "is required")
	}
	if !validStatus(m.Status) {
		return badf("status", "must be \"firing\" or \"resolved\", got %q", m.Status)
	}
	if len(m.Alerts) == 0 {
		return badf("alerts", "must contain at least one alert")
	}
	for i, a := range m.Alerts {
		f := fmt.Sprintf("alerts[%d]", i)
		if !validStatus(a.Status) {
			return badf(f+".status", "must be \"firing\" or \"resolved\", got %q", a.Status)
		}
		if len(a.Labels) == 0 {
			return badf(f+".labels", "must not be empty")
		}
		if a.StartsAt.IsZero() {
			return badf(f+".startsAt", "is required")
		}
	}
	return nil
}
