package action

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// Link is one action offered in a message: a button in a card, a link in
// a mail or a text.
type Link struct {
	Kind Kind
	// Label is the button text in the channel's language ("认领", "Silence 1h").
	Label string
	URL   string
}

// Linker returns the links offered for an alert group (nil when none).
type Linker func(groupKey string) []Link

type ctxKey struct{}

// WithLinker attaches the links of a delivery round to ctx; channels that
// can show actions ask LinksOf.
func WithLinker(ctx context.Context, l Linker) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// LinksOf returns the links for the group from ctx (nil when none).
func LinksOf(ctx context.Context, groupKey string) []Link {
	l, _ := ctx.Value(ctxKey{}).(Linker)
	if l == nil {
		return nil
	}
	return l(groupKey)
}

// WithoutLinks hides the links from templates rendered with the returned
// context, for channels that show them as buttons instead.
func WithoutLinks(ctx context.Context) context.Context {
	return context.WithValue(ctx, ctxKey{}, Linker(nil))
}

// Offer is what a message offers: who may act and for how long.
type Offer struct {
	// Base is the receiver's external URL.
	Base string
	// TTL is how long the links work.
	TTL time.Duration
	// Silences are the silence lengths offered.
	Silences []time.Duration
	// Language of the labels: zh or en.
	Language string
}

func silenceLabel(d time.Duration, lang string) string {
	h := d.Hours()
	var n string
	switch {
	case d%time.Hour == 0:
		n = strconv.Itoa(int(h))
		if lang == "zh" {
			return "静默 " + n + " 小时"
		}
		return "Silence " + n + "h"
	default:
		n = strconv.Itoa(int(d / time.Minute))
		if lang == "zh" {
			return "静默 " + n + " 分钟"
		}
		return "Silence " + n + "m"
	}
}

// Links mints the claim and silence links of group g for a message sent
// through channel to recipient ("" when not addressed to one person).
func (s *Signer) Links(o Offer, g GroupID, channel, recipient string) ([]Link, error) {
	exp := s.now().Add(o.TTL).Truncate(time.Second)
	base := strings.TrimRight(o.Base, "/") + "/api/v1/actions/"
	claimLabel := "Claim"
	if o.Language == "zh" {
		claimLabel = "认领"
	}
	tok, err := s.Mint(Claims{Kind: Claim, Group: g, Channel: channel, Recipient: recipient, Expires: exp})
	if err != nil {
		return nil, err
	}
	out := []Link{{Kind: Claim, Label: claimLabel, URL: base + tok}}
	for _, d := range o.Silences {
		tok, err := s.Mint(Claims{Kind: Silence, Silence: d, Group: g, Channel: channel, Recipient: recipient, Expires: exp})
		if err != nil {
			return nil, err
		}
		out = append(out, Link{Kind: Silence, Label: silenceLabel(d, o.Language), URL: base + tok})
	}
	return out, nil
}
