package action

import (
	"context"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
)

// Link is one action offered in a message: a button in a card, a link in
// a mail or a text.
type Link struct {
	Kind Kind
	// Label is the button text in the channel's language ("认领", "Silence 1h").
	Label string
	URL   string
}

// Linker returns the links of one notification (nil when it carries none).
type Linker func(n *notify.Notification) []Link

type ctxKey struct{}

// WithLinker attaches the links of a delivery round to ctx; channels that
// can show actions ask LinksOf.
func WithLinker(ctx context.Context, l Linker) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// LinksOf returns the links for n from ctx (nil when none).
func LinksOf(ctx context.Context, n *notify.Notification) []Link {
	l, _ := ctx.Value(ctxKey{}).(Linker)
	if l == nil || n == nil {
		return nil
	}
	return l(n)
}
