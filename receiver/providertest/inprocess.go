package providertest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
)

// Handler returns the fake's handler, to call it in-process.
func (d *DingTalk) Handler() http.Handler { return http.HandlerFunc(d.handle) }

// Handler returns the fake's handler, to call it in-process.
func (w *WeCom) Handler() http.Handler { return http.HandlerFunc(w.handle) }

// Handler returns the fake's handler, to call it in-process.
func (f *Feishu) Handler() http.Handler { return http.HandlerFunc(f.handle) }

// Handler returns the fake's handler, to call it in-process.
func (a *Aliyun) Handler() http.Handler { return http.HandlerFunc(a.handle) }

// Handler returns the fake's handler, to call it in-process.
func (tc *Tencent) Handler() http.Handler { return http.HandlerFunc(tc.handle) }

// Handler returns the fake's handler, to call it in-process.
func (a *AliyunVoice) Handler() http.Handler { return http.HandlerFunc(a.handle) }

// Handler returns the fake's handler, to call it in-process.
func (tv *TencentVoice) Handler() http.Handler { return http.HandlerFunc(tv.handle) }

// InProcess is an http.RoundTripper that hands requests to handlers by
// host, in the calling goroutine: no sockets and no background goroutines,
// so code under testing/synctest can talk to the fakes while its clock is fake.
type InProcess struct {
	mu     sync.Mutex
	routes map[string]http.Handler
}

// Add routes requests for the host of rawURL to h.
func (p *InProcess) Add(rawURL string, h http.Handler) {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.routes == nil {
		p.routes = map[string]http.Handler{}
	}
	p.routes[u.Host] = h
}

// RoundTrip serves req with the handler of its host.
func (p *InProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	p.mu.Lock()
	h := p.routes[req.URL.Host]
	p.mu.Unlock()
	if h == nil {
		return nil, fmt.Errorf("dial tcp %s: connection refused", req.URL.Host)
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	// The handler sees what a server would: a body it can read, the Host header.
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		_ = req.Body.Close()
		body = b
	}
	in := req.Clone(req.Context())
	in.Body = io.NopCloser(bytes.NewReader(body))
	in.Host = req.URL.Host
	in.RequestURI = req.URL.RequestURI()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, in)
	resp := w.Result()
	resp.Request = req
	return resp, nil
}

// Client is an *http.Client over p.
func (p *InProcess) Client() *http.Client { return &http.Client{Transport: p} }
