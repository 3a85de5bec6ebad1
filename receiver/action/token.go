// Package action signs and verifies the links people follow from a
// notification to act on it: claim the alert group, or silence it for a
// while. A token names one action on one group, the channel it was sent
// through and, when known, the person it was sent to; it is HMAC-signed and
// expires. Tokens are compact so they fit the short links of an SMS.
package action

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Kind is what a token lets its holder do.
type Kind byte

const (
	// Claim takes the group: its escalation stops and the channel says who took it.
	Claim Kind = 1
	// Silence creates an Alertmanager silence over the group's labels for Claims.Silence.
	Silence Kind = 2
)

func (k Kind) String() string {
	switch k {
	case Claim:
		return "claim"
	case Silence:
		return "silence"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// GroupID is the short, stable identifier of an Alertmanager group:
// the first bytes of sha256(groupKey).
type GroupID [8]byte

// GroupOf returns the identifier of an Alertmanager group key.
func GroupOf(groupKey string) GroupID {
	h := sha256.Sum256([]byte(groupKey))
	var g GroupID
	copy(g[:], h[:])
	return g
}

// String is the URL-safe form of the identifier.
func (g GroupID) String() string { return base64.RawURLEncoding.EncodeToString(g[:]) }

// ParseGroupID reverses GroupID.String.
func ParseGroupID(s string) (GroupID, error) {
	var g GroupID
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != len(g) {
		return g, fmt.Errorf("group id %q is malformed", s)
	}
	copy(g[:], b)
	return g, nil
}

// Claims is what a token says.
type Claims struct {
	Kind Kind
	// Silence is the silence length (Silence tokens only), whole minutes.
	Silence time.Duration
	Group   GroupID
	// Channel the link was sent through (audited with the action).
	Channel string
	// Recipient is the on-call person the message was addressed to, "" when unknown.
	Recipient string
	Expires   time.Time
}

// Errors of Verify. They say why a link does not work without echoing it.
var (
	ErrMalformed = errors.New("action link is malformed")
	ErrSignature = errors.New("action link signature is invalid")
	ErrExpired   = errors.New("action link has expired")
	ErrGroup     = errors.New("action link belongs to another alert group")
)

const (
	version = 1
	macLen  = 12 // 96 bits: forging needs about 2^96 online tries, each a request
	// maxField bounds the channel and recipient names carried in a token.
	maxField = 64
	// MinKeyBytes is the shortest signing key accepted.
	MinKeyBytes = 32
)

// domain separates these MACs from any other use of the key.
var domain = []byte("autoglm-receiver action v1\x00")

// Signer mints tokens with its first key and accepts tokens signed by any
// of its keys (the others are previous keys kept during a rotation).
type Signer struct {
	keys [][]byte
	now  func() time.Time
}

// NewSigner returns a signer; now defaults to time.Now.
func NewSigner(now func() time.Time, key []byte, previous ...[]byte) (*Signer, error) {
	if now == nil {
		now = time.Now
	}
	keys := make([][]byte, 0, 1+len(previous))
	for i, k := range append([][]byte{key}, previous...) {
		if len(k) < MinKeyBytes {
			return nil, fmt.Errorf("signing key %d is %d bytes, need at least %d", i, len(k), MinKeyBytes)
		}
		keys = append(keys, append([]byte(nil), k...))
	}
	return &Signer{keys: keys, now: now}, nil
}

// Mint returns a token for c. A zero c.Expires is filled by the caller's policy, so it is an error here.
func (s *Signer) Mint(c Claims) (string, error) {
	if c.Kind != Claim && c.Kind != Silence {
		return "", fmt.Errorf("unknown action %s", c.Kind)
	}
	if c.Expires.IsZero() {
		return "", errors.New("action token needs an expiry")
	}
	mins := c.Silence / time.Minute
	if c.Kind == Silence && (mins <= 0 || mins > 0xffff || c.Silence%time.Minute != 0) {
		return "", fmt.Errorf("silence length %s must be whole minutes within (0, 45d]", c.Silence)
	}
	if c.Kind == Claim {
		mins = 0
	}
	if len(c.Channel) > maxField || len(c.Recipient) > maxField {
		return "", fmt.Errorf("channel and recipient names are limited to %d bytes", maxField)
	}
	exp := c.Expires.Unix()
	if exp <= 0 || exp > 0xffffffff {
		return "", fmt.Errorf("expiry %s out of range", c.Expires)
	}
	b := make([]byte, 0, 1+1+2+4+len(c.Group)+2+len(c.Channel)+len(c.Recipient)+macLen)
	b = append(b, version, byte(c.Kind))
	b = binary.BigEndian.AppendUint16(b, uint16(mins))
	b = binary.BigEndian.AppendUint32(b, uint32(exp))
	b = append(b, c.Group[:]...)
	b = append(b, byte(len(c.Channel)))
	b = append(b, c.Channel...)
	b = append(b, byte(len(c.Recipient)))
	b = append(b, c.Recipient...)
	b = append(b, mac(s.keys[0], b)...)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func mac(key, payload []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(domain)
	h.Write(payload)
	return h.Sum(nil)[:macLen]
}

// Verify checks the signature and expiry of token and returns its claims.
// The signature is checked before anything in the payload is trusted.
func (s *Signer) Verify(token string) (Claims, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < 1+1+2+4+8+2+macLen {
		return Claims{}, ErrMalformed
	}
	payload, sig := b[:len(b)-macLen], b[len(b)-macLen:]
	ok := false
	for _, k := range s.keys {
		// Every key is tried so timing does not tell which one matched.
		if hmac.Equal(sig, mac(k, payload)) {
			ok = true
		}
	}
	if !ok {
		return Claims{}, ErrSignature
	}
	if payload[0] != version {
		return Claims{}, ErrMalformed
	}
	c := Claims{Kind: Kind(payload[1])}
	c.Silence = time.Duration(binary.BigEndian.Uint16(payload[2:4])) * time.Minute
	c.Expires = time.Unix(int64(binary.BigEndian.Uint32(payload[4:8])), 0)
	copy(c.Group[:], payload[8:16])
	rest := payload[16:]
	field := func() (string, bool) {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return "", false
		}
		v := string(rest[1 : 1+int(rest[0])])
		rest = rest[1+int(rest[0]):]
		return v, true
	}
	var ok1, ok2 bool
	c.Channel, ok1 = field()
	c.Recipient, ok2 = field()
	if !ok1 || !ok2 || len(rest) != 0 {
		return Claims{}, ErrMalformed
	}
	switch {
	case c.Kind == Claim && c.Silence == 0:
	case c.Kind == Silence && c.Silence > 0:
	default:
		return Claims{}, ErrMalformed
	}
	if !s.now().Before(c.Expires) {
		return Claims{}, ErrExpired
	}
	return c, nil
}

// VerifyFor is Verify for a link that names its group separately (e.g. in
// the path): the token must have been minted for that group.
func (s *Signer) VerifyFor(token string, g GroupID) (Claims, error) {
	c, err := s.Verify(token)
	if err != nil {
		return c, err
	}
	if !hmac.Equal(c.Group[:], g[:]) {
		return Claims{}, ErrGroup
	}
	return c, nil
}
