package config

import (
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"

	amtemplate "github.com/prometheus/alertmanager/template"
)

// Channel configures one notification channel of the receiver. Which fields
// apply depends on Type (dingtalk, wecom, email, sms, webhook, file); the keys
// are documented in receiver/CHANNELS.md.
type Channel struct {
	Type string `yaml:"type"`

	// URL is a robot webhook (dingtalk, wecom), an outgoing webhook or a
	// generic SMS gateway. It is a Secret because robot URLs carry the token.
	URL     Secret `yaml:"url"`
	URLFile string `yaml:"url_file"`

	// DingTalk signing secret (SEC...).
	Secret     Secret `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`

	AtMobiles           []string `yaml:"at_mobiles"`
	AtUserIDs           []string `yaml:"at_user_ids"`
	AtAll               bool     `yaml:"at_all"`
	MessageType         string   `yaml:"message_type"`
	MentionedMobileList []string `yaml:"mentioned_mobile_list"`

	SMTP SMTP     `yaml:"smtp"`
	From string   `yaml:"from"`
	To   []string `yaml:"to"`

	Provider            string   `yaml:"provider"`
	Endpoint            string   `yaml:"endpoint"`
	AccessKeyID         string   `yaml:"access_key_id"`
	AccessKeySecret     Secret   `yaml:"access_key_secret"`
	AccessKeySecretFile string   `yaml:"access_key_secret_file"`
	SignName            string   `yaml:"sign_name"`
	TemplateCode        string   `yaml:"template_code"`
	PhoneNumbers        []string `yaml:"phone_numbers"`
	SecretID            string   `yaml:"secret_id"`
	SecretKey           Secret   `yaml:"secret_key"`
	SecretKeyFile       string   `yaml:"secret_key_file"`
	SMSSdkAppID         string   `yaml:"sms_sdk_app_id"`
	TemplateID          string   `yaml:"template_id"`
	Region              string   `yaml:"region"`
	// TemplateParams are the SMS template variables: Go templates, named for
	// Aliyun (${name} in the SMS template), positional for Tencent ({1}, {2}, ...).
	TemplateParams []SMSParam `yaml:"template_params"`

	// Generic SMS gateway / webhook request shape; all three are templates.
	Method  string            `yaml:"method"`
	Headers map[string]string `yaml:"headers"`
	Body    string            `yaml:"body"`

	// Path of the file channel; "-" or "" means stdout.
	Path string `yaml:"path"`

	// Templates override built-in templates by name (title, markdown, text,
	// email_subject, email_text, email_html, sms).
	Templates map[string]string `yaml:"templates"`
	Language  string            `yaml:"language"`
	Timeout   Duration          `yaml:"timeout"`
}

// SMTP is the outgoing mail server of an email channel.
type SMTP struct {
	Host               string `yaml:"host"`
	Port               int    `yaml:"port"`
	Username           string `yaml:"username"`
	Password           Secret `yaml:"password"`
	PasswordFile       string `yaml:"password_file"`
	TLS                string `yaml:"tls"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	// Auth mechanism when a username is set: plain (default) or login.
	Auth string `yaml:"auth"`
}

// SMSParam is one SMS template variable.
type SMSParam struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

// Channel types.
const (
	ChannelDingTalk = "dingtalk"
	ChannelWeCom    = "wecom"
	ChannelEmail    = "email"
	ChannelSMS      = "sms"
	ChannelWebhook  = "webhook"
	ChannelFile     = "file"
)

// TemplateNames are the names accepted under a channel's templates key.
var TemplateNames = []string{"title", "markdown", "text", "email_subject", "email_text", "email_html", "sms"}

var phoneRE = regexp.MustCompile(`^\+?[0-9]{5,20}$`)

// DefaultTimeout of one provider request when the channel sets none.
const DefaultTimeout = 10 * time.Second

func (c Channel) validate(f *File, key string) []error {
	var errs []error
	add := func(k, format string, args ...any) {
		errs = append(errs, Errorf(key+k, format, args...))
	}
	if c.Timeout < 0 {
		add(".timeout", "must be >= 0, got %s", c.Timeout)
	}
	switch c.Language {
	case "", "zh", "en":
	default:
		add(".language", "must be zh or en, got %q", c.Language)
	}
	for name, body := range c.Templates {
		if !slices.Contains(TemplateNames, name) {
			add(".templates."+name, "unknown template %q; known: %s", name, strings.Join(TemplateNames, ", "))
			continue
		}
		if _, err := template.New(name).Option("missingkey=zero").Funcs(templateCheckFuncs).Parse(body); err != nil {
			add(".templates."+name, "does not parse: %v", err)
		}
	}
	// Resolving secrets here surfaces unreadable *_file paths at load time.
	resolve := func(k string, inline Secret, file string) Secret {
		s, err := f.ResolveSecret(key+"."+k, inline, file)
		if err != nil {
			errs = append(errs, err)
		}
		return s
	}
	switch c.Type {
	case ChannelDingTalk:
		u := resolve("url", c.URL, c.URLFile)
		errs = append(errs, checkURL(key+".url", u.Value(), true, "access_token")...)
		resolve("secret", c.Secret, c.SecretFile)
		switch c.MessageType {
		case "", "markdown", "actioncard":
		default:
			add(".message_type", "must be markdown or actioncard for dingtalk, got %q", c.MessageType)
		}
		errs = append(errs, checkPhones(key+".at_mobiles", c.AtMobiles)...)
	case ChannelWeCom:
		u := resolve("url", c.URL, c.URLFile)
		errs = append(errs, checkURL(key+".url", u.Value(), true, "key")...)
		switch c.MessageType {
		case "", "markdown", "text":
		default:
			add(".message_type", "must be markdown or text for wecom, got %q", c.MessageType)
		}
		for i, m := range c.MentionedMobileList {
			if m != "@all" && !phoneRE.MatchString(m) {
				add(fmt.Sprintf(".mentioned_mobile_list[%d]", i), "%q is neither a phone number nor @all", m)
			}
		}
	case ChannelEmail:
		errs = append(errs, c.validateEmail(f, key)...)
	case ChannelSMS:
		errs = append(errs, c.validateSMS(f, key)...)
	case ChannelWebhook:
		u := resolve("url", c.URL, c.URLFile)
		errs = append(errs, checkURL(key+".url", u.Value(), true, "")...)
	case ChannelFile:
	case "":
		add(".type", "is required: one of dingtalk, wecom, email, sms, webhook, file")
	default:
		add(".type", "unknown channel type %q: use dingtalk, wecom, email, sms, webhook or file", c.Type)
	}
	return errs
}

func (c Channel) validateEmail(f *File, key string) []error {
	var errs []error
	add := func(k, format string, args ...any) { errs = append(errs, Errorf(key+k, format, args...)) }
	if c.SMTP.Host == "" {
		add(".smtp.host", "is required for an email channel")
	}
	if c.SMTP.Port < 0 || c.SMTP.Port > 65535 {
		add(".smtp.port", "must be within 1..65535, got %d", c.SMTP.Port)
	}
	switch c.SMTP.TLS {
	case "", "starttls", "tls", "none":
	default:
		add(".smtp.tls", "must be starttls, tls or none, got %q", c.SMTP.TLS)
	}
	switch c.SMTP.Auth {
	case "", "plain", "login":
	default:
		add(".smtp.auth", "must be plain or login, got %q", c.SMTP.Auth)
	}
	pw, err := f.ResolveSecret(key+".smtp.password", c.SMTP.Password, c.SMTP.PasswordFile)
	if err != nil {
		errs = append(errs, err)
	}
	if pw != "" && c.SMTP.Username == "" {
		add(".smtp.username", "is required when a password is set")
	}
	if c.From == "" {
		add(".from", "is required for an email channel")
	} else if _, err := mail.ParseAddress(c.From); err != nil {
		add(".from", "%q is not a mail address: %v", c.From, err)
	}
	if len(c.To) == 0 {
		add(".to", "needs at least one recipient")
	}
	for i, to := range c.To {
		if _, err := mail.ParseAddress(to); err != nil {
			add(fmt.Sprintf(".to[%d]", i), "%q is not a mail address: %v", to, err)
		}
	}
	return errs
}

func (c Channel) validateSMS(f *File, key string) []error {
	var errs []error
	add := func(k, format string, args ...any) { errs = append(errs, Errorf(key+k, format, args...)) }
	required := func(k, v string) {
		if v == "" {
			add("."+k, "is required for a %s SMS channel", c.Provider)
		}
	}
	resolve := func(k string, inline Secret, file string) Secret {
		s, err := f.ResolveSecret(key+"."+k, inline, file)
		if err != nil {
			errs = append(errs, err)
		}
		return s
	}
	switch c.Provider {
	case "aliyun":
		required("access_key_id", c.AccessKeyID)
		if resolve("access_key_secret", c.AccessKeySecret, c.AccessKeySecretFile) == "" && c.AccessKeySecretFile == "" {
			add(".access_key_secret", "is required for an aliyun SMS channel (or access_key_secret_file)")
		}
		required("sign_name", c.SignName)
		required("template_code", c.TemplateCode)
		for i, p := range c.TemplateParams {
			if p.Name == "" {
				add(fmt.Sprintf(".template_params[%d].name", i), "is required for aliyun (the ${name} in the SMS template)")
			}
		}
	case "tencent":
		required("secret_id", c.SecretID)
		if resolve("secret_key", c.SecretKey, c.SecretKeyFile) == "" && c.SecretKeyFile == "" {
			add(".secret_key", "is required for a tencent SMS channel (or secret_key_file)")
		}
		required("sms_sdk_app_id", c.SMSSdkAppID)
		required("sign_name", c.SignName)
		required("template_id", c.TemplateID)
	case "generic":
		u := resolve("url", c.URL, c.URLFile)
		errs = append(errs, checkURL(key+".url", u.Value(), false, "")...)
		if c.Body == "" {
			add(".body", "is required for a generic SMS gateway (a template of the request body)")
		}
		if c.Method != "" {
			switch strings.ToUpper(c.Method) {
			case "GET", "POST", "PUT":
			default:
				add(".method", "must be GET, POST or PUT, got %q", c.Method)
			}
		}
		checks := map[string]string{".body": c.Body, ".url": c.URL.Value()}
		for h, v := range c.Headers {
			checks[".headers."+h] = v
		}
		for k, t := range checks {
			if _, err := template.New(strings.TrimPrefix(k, ".")).Funcs(templateCheckFuncs).Parse(t); err != nil {
				// The parse error names the position, never the template text (it may hold a token).
				add(k, "template does not parse: %s", parseErrorPosition(err))
			}
		}
	case "":
		add(".provider", "is required for an SMS channel: aliyun, tencent or generic")
	default:
		add(".provider", "unknown SMS provider %q: use aliyun, tencent or generic", c.Provider)
	}
	if c.Endpoint != "" {
		errs = append(errs, checkURL(key+".endpoint", c.Endpoint, true, "")...)
	}
	if len(c.PhoneNumbers) == 0 {
		add(".phone_numbers", "needs at least one phone number")
	}
	errs = append(errs, checkPhones(key+".phone_numbers", c.PhoneNumbers)...)
	return errs
}

// parseErrorPosition keeps "template: name:1: unexpected ..." but drops
// quoted template text that some parse errors echo.
func parseErrorPosition(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, " in "); i > 0 {
		return msg[:i]
	}
	return msg
}

func checkPhones(key string, phones []string) []error {
	var errs []error
	for i, p := range phones {
		if !phoneRE.MatchString(p) {
			errs = append(errs, Errorf(fmt.Sprintf("%s[%d]", key, i), "%q is not a phone number (digits, optional leading +)", p))
		}
	}
	return errs
}

// checkURL validates a URL without ever echoing it: robot URLs carry tokens.
func checkURL(key, raw string, required bool, wantQuery string) []error {
	if raw == "" {
		if required {
			return []error{Errorf(key, "is required")}
		}
		return nil
	}
	if strings.Contains(raw, "{{") {
		// A templated gateway URL is checked when rendered.
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return []error{Errorf(key, "is not a valid URL")}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return []error{Errorf(key, "must be an http or https URL, got scheme %q", u.Scheme)}
	}
	if u.Host == "" {
		return []error{Errorf(key, "has no host")}
	}
	if wantQuery != "" && u.Query().Get(wantQuery) == "" {
		return []error{Errorf(key, "must carry the %s query parameter (%s://%s%s?%s=...)", wantQuery, u.Scheme, u.Host, u.Path, wantQuery)}
	}
	return nil
}

// TemplateExtraFuncs are the receiver's own template functions, on top of
// Alertmanager's DefaultFuncs. Config only needs their names to parse
// templates at load time; receiver/tmpl binds the implementations (its tests
// keep the two lists in step).
var TemplateExtraFuncs = []string{"truncate", "severityIcon", "statusText", "labelsText", "joinLines", "dashboardURL", "l10n", "localTime"}

var templateCheckFuncs = func() template.FuncMap {
	m := make(template.FuncMap, len(amtemplate.DefaultFuncs)+len(TemplateExtraFuncs))
	for k, v := range amtemplate.DefaultFuncs {
		m[k] = v
	}
	for _, n := range TemplateExtraFuncs {
		m[n] = func(...any) any { return nil }
	}
	return m
}()
