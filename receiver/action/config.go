package action

import (
	"fmt"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
)

// SecretResolver reads a secret given inline or from a *_file path
// (relative to the configuration file); *config.File is one.
type SecretResolver interface {
	ResolveSecret(key string, inline config.Secret, file string) (config.Secret, error)
}

// Config is the receiver.actions section: how action links are signed and
// which silences they offer.
type Config struct {
	// Key signs the links; at least 32 bytes. Prefer KeyFile.
	Key     config.Secret `yaml:"key"`
	KeyFile string        `yaml:"key_file"`
	// PreviousKeyFiles keep links minted before a key rotation working until they expire.
	PreviousKeyFiles []string `yaml:"previous_key_files"`
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

func (c *Config) keys(r SecretResolver, key string) ([][]byte, []error) {
	var errs []error
	var keys [][]byte
	k, err := r.ResolveSecret(key+".key", c.Key, c.KeyFile)
	if err != nil {
		errs = append(errs, err)
	} else {
		keys = append(keys, []byte(k.Value()))
	}
	for i, f := range c.PreviousKeyFiles {
		pk, err := r.ResolveSecret(fmt.Sprintf("%s.previous_key_files[%d]", key, i), "", f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		keys = append(keys, []byte(pk.Value()))
	}
	return keys, errs
}

// Validate checks the section (key is its dotted path, e.g. "receiver.actions").
// Key files are read here so an unreadable or short key fails at load.
func (c *Config) Validate(r SecretResolver, key string) []error {
	if c == nil {
		return nil
	}
	keys, errs := c.keys(r, key)
	if len(errs) == 0 {
		for i, k := range keys {
			if len(k) >= MinKeyBytes {
				continue
			}
			field := key + ".key"
			if i > 0 {
				field = fmt.Sprintf("%s.previous_key_files[%d]", key, i-1)
			} else if c.KeyFile != "" {
				field += "_file"
			}
			// The length is safe to say; the content never is.
			errs = append(errs, config.Errorf(field, "signing key is %d bytes, need at least %d (e.g. `head -c 32 /dev/urandom | base64`)", len(k), MinKeyBytes))
		}
		if len(keys) == 0 || len(keys[0]) == 0 {
			errs = append(errs, config.Errorf(key+".key_file", "is required to sign action links"))
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

// Secrets are the signing keys, for the redactor.
func (c *Config) Secrets(r SecretResolver, key string) []string {
	keys, _ := c.keys(r, key)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, string(k))
	}
	return out
}

// NewSigner builds the signer of a validated section.
func (c *Config) NewSigner(r SecretResolver, key string, now func() time.Time) (*Signer, error) {
	keys, errs := c.keys(r, key)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no signing key", key)
	}
	return NewSigner(now, keys[0], keys[1:]...)
}
