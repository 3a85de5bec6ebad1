package config

// Channel configures one notification channel of the receiver. Which fields
// apply depends on Type (dingtalk, wecom, email, sms, webhook, file).
type Channel struct {
	Type string `yaml:"type"`
}

func (c Channel) validate(_ *File, _ string) []error { return nil }
