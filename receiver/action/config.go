package action

import (
	"fmt"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
)

// Config is the receiver.actions section: how action links are signed and
// which silences they offer.
type Config struct {
	// Key signs the links; at least 32 bytes. Prefer KeyFile.
	Key     config.Secret `yaml:"key"`
	KeyFile string        `yaml:"key_file"`
	// PreviousKeyFiles keep links minted before a key rotation working until they expire.
	PreviousKeyFiles []string `yaml:"previous_key_files"`
	// previous are the keys read from PreviousKeyFiles by Validate.
	previous [][]byte
	// TTL is how long a link works after the notification was sent.
	TTL config.Duration `yaml:"ttl"`
	// Silences are the silence lengths offered in messages (default 1h and 4h).
	Silences []config.Duration `yaml:"silences"`
	// Priorities that carry actions (default P1 and P2).
	Priorities []string `yaml:"priorities"`
}

// Defaults of the section.
const DefaultTTL = 24 * time.Hour

// DefaultSilences are offered when none are configured.
var DefaultSilences = []time.Duration{time.Hour, 4 * time.Hour}

// Enabled reports whether links are configured at all.
func (c *Config) Enabled() bool { return c != nil && (c.Key != "" || c.KeyFile != "") }

// SilenceLengths returns the configured silences or the defaults.
func (c *Config) SilenceLengths() []time.Duration {
	if len(c.Silences) == 0 {
		return DefaultSilences
	}
	out := make([]time.Duration, len(c.Silences))
	for i, d := range c.Silences {
		out[i] = d.D()
	}
	return out
}

// LinkTTL is the configured lifetime or DefaultTTL.
func (c *Config) LinkTTL() time.Duration {
	if c.TTL <= 0 {
		return DefaultTTL
	}
	return c.TTL.D()
}

// ForPriority reports whether notifications of priority p carry actions.
func (c *Config) ForPriority(p string) bool {
	if len(c.Priorities) == 0 {
		return p == "P1" || p == "P2"
	}
	for _, q := range c.Priorities {
		if q == p {
			return true
		}
	}
	return false
}

// Validate checks the section (key is its dotted path, e.g. "receiver.actions")
// and reads the key files, so an unreadable or short key fails at load.
func (c *Config) Validate(key string, f *config.File) []error {
	if c == nil {
		return nil
	}
	var errs []error
	k, err := f.ResolveSecret(key+".key", c.Key, c.KeyFile)
	if err != nil {
		errs = append(errs, err)
	} else {
		c.Key = k
		field := key + ".key"
		if c.KeyFile != "" {
			field += "_file"
		}
		switch {
		case k == "":
			errs = append(errs, config.Errorf(key+".key_file", "is required to sign action links"))
		case len(k) < MinKeyBytes:
			// The length is safe to say; the content never is.
			errs = append(errs, config.Errorf(field, "signing key is %d bytes, need at least %d (e.g. `head -c 32 /dev/urandom | base64`)", len(k), MinKeyBytes))
		}
	}
	c.previous = c.previous[:0]
	for i, file := range c.PreviousKeyFiles {
		field := fmt.Sprintf("%s.previous_key_files[%d]", key, i)
		pk, err := f.ResolveSecret(field, "", file)
		switch {
		case err != nil:
			errs = append(errs, err)
		case len(pk) < MinKeyBytes:
			errs = append(errs, config.Errorf(field, "signing key is %d bytes, need at least %d", len(pk), MinKeyBytes))
		default:
			c.previous = append(c.previous, []byte(pk.Value()))
		}
	}
	if c.TTL < 0 {
		errs = append(errs, config.Errorf(key+".ttl", "must be > 0, got %s", c.TTL))
	}
	seen := map[config.Duration]bool{}
	for i, d := range c.Silences {
		k := fmt.Sprintf("%s.silences[%d]", key, i)
		switch {
		case d.D() < time.Minute || d.D()%time.Minute != 0 || d.D() > 45*24*time.Hour:
			errs = append(errs, config.Errorf(k, "must be whole minutes between 1m and 45d, got %s", d))
		case seen[d]:
			errs = append(errs, config.Errorf(k, "%s listed twice", d))
		}
		seen[d] = true
	}
	for i, p := range c.Priorities {
		if p != "P1" && p != "P2" && p != "P3" {
			errs = append(errs, config.Errorf(fmt.Sprintf("%s.priorities[%d]", key, i), "must be P1, P2 or P3, got %q", p))
		}
	}
	return errs
}

// Secrets are the signing keys, for the redactor (after Validate).
func (c *Config) Secrets() []string {
	out := []string{c.Key.Value()}
	for _, k := range c.previous {
		out = append(out, string(k))
	}
	return out
}

// NewSigner builds the signer of a validated section.
func (c *Config) NewSigner(now func() time.Time) (*Signer, error) {
	return NewSigner(now, []byte(c.Key.Value()), c.previous...)
}
