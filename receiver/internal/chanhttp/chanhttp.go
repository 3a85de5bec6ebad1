// Package chanhttp holds what the HTTP-based channels share: posting with a
// timeout, redacting URLs so tokens never reach an error, and splitting long
// texts on UTF-8 and line boundaries.
package chanhttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
)

// MaxResponse bounds how much of a provider answer is read.
const MaxResponse = 1 << 20

// Redact keeps scheme, host and path of a URL and hides the query, user info
// and fragment, where robot tokens and keys live.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable url>"
	}
	out := u.Scheme + "://" + u.Host + u.EscapedPath()
	if u.RawQuery != "" {
		out += "?<redacted>"
	}
	return out
}

// Response is a provider answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends req with client and reads the answer. Transport failures come back
// as retryable notify errors whose text carries the redacted URL only.
func Do(ctx context.Context, client *http.Client, req *http.Request, timeout time.Duration) (*Response, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req = req.WithContext(ctx)
	target := Redact(req.URL.String())
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &notify.Error{Class: notify.Retry, Err: fmt.Errorf("%s %s: %w", req.Method, target, err)}
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse))
	if err != nil {
		return nil, &notify.Error{Class: notify.Retry, Err: fmt.Errorf("%s %s: read answer: %w", req.Method, target, err)}
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// PostJSON posts body as JSON to rawURL.
func PostJSON(ctx context.Context, client *http.Client, rawURL string, body []byte, timeout time.Duration) (*Response, error) {
	req, err := http.NewRequest(http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return nil, &notify.Error{Class: notify.Config, Err: fmt.Errorf("build request for %s: invalid URL", Redact(rawURL))}
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	return Do(ctx, client, req, timeout)
}

// StatusError classifies a non-2xx HTTP answer that carries no provider code:
// 408, 425, 429 and 5xx are retryable (429 honours Retry-After), 401/403 mean
// bad credentials, other 4xx mean the request itself is wrong.
func StatusError(target string, r *Response) *notify.Error {
	err := fmt.Errorf("%s answered HTTP %d: %s", Redact(target), r.Status, Snippet(r.Body))
	code := strconv.Itoa(r.Status)
	switch {
	case r.Status == http.StatusTooManyRequests:
		e := &notify.Error{Class: notify.Retry, Code: code, Err: err}
		if s, perr := strconv.Atoi(r.Header.Get("Retry-After")); perr == nil && s > 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return e
	case r.Status >= 500, r.Status == http.StatusRequestTimeout, r.Status == http.StatusTooEarly:
		return &notify.Error{Class: notify.Retry, Code: code, Err: err}
	case r.Status == http.StatusUnauthorized, r.Status == http.StatusForbidden, r.Status == http.StatusNotFound:
		return &notify.Error{Class: notify.Config, Code: code, Err: err}
	default:
		return &notify.Error{Class: notify.Permanent, Code: code, Err: err}
	}
}

// Snippet is a short, single-line excerpt of a provider answer for errors.
func Snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	const max = 200
	if len(s) > max {
		s = s[:max]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "..."
	}
	return s
}

// Split cuts s into pieces of at most max bytes. It never splits a rune and
// prefers to cut after a newline (or else a space) in the second half of a
// piece, so markdown lines stay whole where possible.
func Split(s string, max int) []string {
	if max < utf8.UTFMax {
		max = utf8.UTFMax
	}
	if len(s) <= max {
		return []string{s}
	}
	parts := make([]string, 0, len(s)/max+1)
	for len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if i := strings.LastIndexByte(s[:cut], '\n'); i >= max/2 {
			cut = i + 1
		} else if i := strings.LastIndexByte(s[:cut], ' '); i >= max/2 {
			cut = i + 1
		}
		parts = append(parts, s[:cut])
		s = s[cut:]
	}
	if s != "" {
		parts = append(parts, s)
	}
	return parts
}
