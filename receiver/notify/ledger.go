package notify

import (
	"context"
	"errors"
	"time"
)

// Ledger is what the engine lends a channel for one Notify call whose
// message may take several provider messages (parts of a long text, one
// SMS per number, a follow-up mention): one token of the provider's rate
// limit per message, and durable memory of the messages already accepted,
// so neither a retry nor a crash sends a part twice.
type Ledger interface {
	// Take reserves one provider message before it is sent. When the
	// provider's limit allows none now it returns Paced(wait).
	Take() error
	// Sent reports whether the message with this key was accepted in an
	// earlier attempt of the same notification.
	Sent(key string) bool
	// Accepted records durably that the provider accepted the message with
	// this key; channels call it before they send the next message.
	Accepted(key string) error
}

// ErrPaced marks a message held back by the provider's rate limit: the
// engine sends the rest later without counting a failure.
var ErrPaced = errors.New("provider rate limit reached; the rest follows when it allows")

// Paced is the error Ledger.Take returns when no message may be sent before wait.
func Paced(wait time.Duration) *Error {
	return &Error{Class: Retry, RetryAfter: wait, Err: ErrPaced}
}

type ledgerKey struct{}

// WithLedger attaches l to ctx for the channel's Notify.
func WithLedger(ctx context.Context, l Ledger) context.Context {
	return context.WithValue(ctx, ledgerKey{}, l)
}

// LedgerFrom returns the Ledger in ctx, or nil when the caller lent none.
func LedgerFrom(ctx context.Context) Ledger {
	l, _ := ctx.Value(ledgerKey{}).(Ledger)
	return l
}
