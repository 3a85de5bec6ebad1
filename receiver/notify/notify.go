// Package notify is the contract between the receiver's delivery engine
// (outbox, routing, retries, escalation) and the channel packages
// (dingtalk, wecom, email, sms, ...). A channel only turns a notification into
// provider requests and classifies the provider's answer; rate limits,
// retries, digests, idempotency and audit live in the engine.
package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/alertmanager/template"
)

// Priority of a notification, derived from the alerts' severity.
type Priority string

const (
	P1 Priority = "P1" // critical: SMS + instant message, a person within 5 minutes
	P2 Priority = "P2" // warning: instant message + email
	P3 Priority = "P3" // info
)

// Notification is one Alertmanager group notification to deliver over one channel.
type Notification struct {
	// ID is stable for the same group key, status, alert fingerprints with start/end and channel.
	ID string
	// GroupKey is Alertmanager's group key.
	GroupKey string
	// Data is Alertmanager's template data for the payload.
	Data *template.Data
	// Priority of the notification.
	Priority Priority
	// Route is the name of the receiver route that selected the channel.
	Route string
	// Received is when the receiver accepted the payload.
	Received time.Time
	// TruncatedAlerts is how many alerts Alertmanager left out of the payload.
	TruncatedAlerts int
	// Note, when set, is an announcement about the group (who claimed it)
	// that the templates show instead of a new alert.
	Note string
}

// Channel delivers notifications. When more than one is given, the channel
// sends them as one digest message (used to coalesce a rate-limited backlog).
// It returns nil when the provider accepted the message, else an *Error (or
// any error, which is treated as retryable).
type Channel interface {
	Notify(ctx context.Context, ns ...*Notification) error
}

// Class says what the engine should do after a failure.
type Class int

const (
	// Retry later with backoff (network errors, 5xx, provider throttling).
	Retry Class = iota
	// Permanent: this message can never be delivered as is (bad content); do not retry it.
	Permanent
	// Config: the channel is misconfigured (bad token, bad signature); retrying will not help until reload.
	Config
)

func (c Class) String() string {
	switch c {
	case Retry:
		return "retry"
	case Permanent:
		return "permanent"
	case Config:
		return "config"
	}
	return "unknown"
}

// Error is a classified delivery failure.
type Error struct {
	Class Class
	// Code is the provider's error code (errcode, Code), "" if none.
	Code string
	// RetryAfter is a provider-suggested wait, 0 if none.
	RetryAfter time.Duration
	// Err is the underlying error. It must never contain secrets (tokens, keys, signatures).
	Err error
}

func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s (code %s): %v", e.Class, e.Code, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Class, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Classify returns the class and provider code of err; unclassified errors are retryable.
func Classify(err error) (Class, string, time.Duration) {
	var e *Error
	if errors.As(err, &e) {
		return e.Class, e.Code, e.RetryAfter
	}
	return Retry, "", 0
}

// Errorf builds a classified error.
func Errorf(class Class, code string, format string, args ...any) *Error {
	return &Error{Class: class, Code: code, Err: fmt.Errorf(format, args...)}
}

// Integration is a built channel as the engine uses it.
type Integration struct {
	Name     string
	Notifier Channel
	// PerMinute is the provider's message limit (0 = none).
	PerMinute int
	// Target is a redacted description of the destination for audit and logs.
	Target string
}
