package channels

import "github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"

func redactURL(u string) string {
	if u == "" {
		return ""
	}
	return chanhttp.Redact(u)
}
