package oncall

import "context"

type ctxKey struct{}

// WithRecipients tells the channels of a delivery who an escalation step
// pages: IM robots mention them, SMS and voice go to their phones.
func WithRecipients(ctx context.Context, rs []Recipient) context.Context {
	return context.WithValue(ctx, ctxKey{}, rs)
}

// RecipientsFrom returns the recipients in ctx; ok is false when the
// delivery is not an escalation step (channels then use their own settings).
func RecipientsFrom(ctx context.Context) ([]Recipient, bool) {
	rs, ok := ctx.Value(ctxKey{}).([]Recipient)
	return rs, ok
}
