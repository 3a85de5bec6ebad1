package httpserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

// Timeouts bound how long a client may hold a connection without making
// progress. http.Server's own ReadTimeout cannot be used for the body: it
// also ends the request context of a handler still streaming its answer
// (an LLM stream lasts minutes), so the body deadline is set per request.
type Timeouts struct {
	// ReadHeader bounds the arrival of a request's headers.
	ReadHeader time.Duration
	// ReadBody bounds the arrival of a request's body, counted from the end
	// of its headers.
	ReadBody time.Duration
	// Idle closes a keep-alive connection that sends no request for this long.
	Idle time.Duration
}

// DefaultTimeouts are the flags' defaults.
func DefaultTimeouts() Timeouts {
	return Timeouts{ReadHeader: 10 * time.Second, ReadBody: 30 * time.Second, Idle: 30 * time.Second}
}

// AddFlags declares --web.read-timeout and --web.idle-timeout.
func AddFlags(app *kingpin.Application) *Timeouts {
	t := DefaultTimeouts()
	app.Flag("web.read-timeout", "Longest a request's body may take to arrive (its headers: at most 10s); a connection whose request stalls is closed.").
		Default(t.ReadBody.String()).DurationVar(&t.ReadBody)
	app.Flag("web.idle-timeout", "Close a keep-alive connection that sends no request for this long.").
		Default(t.Idle.String()).DurationVar(&t.Idle)
	return &t
}

func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts()
	if t.ReadBody <= 0 {
		t.ReadBody = d.ReadBody
	}
	if t.Idle <= 0 {
		t.Idle = d.Idle
	}
	if t.ReadHeader <= 0 {
		t.ReadHeader = d.ReadHeader
	}
	t.ReadHeader = min(t.ReadHeader, t.ReadBody)
	return t
}

// harden applies t to srv and puts the body guard in front of every handler.
func harden(srv *http.Server, t Timeouts) {
	t = t.withDefaults()
	srv.ReadHeaderTimeout = t.ReadHeader
	srv.IdleTimeout = t.Idle
	if srv.Handler == nil {
		srv.Handler = http.DefaultServeMux
	}
	// exporter-toolkit wraps srv.Handler in its basic-auth handler when it
	// starts serving, and that handler answers 401 itself: the guard must
	// be outside it, or the 401 would wait for the body. Serve runs the
	// ConnState hook of a new connection before the connection's goroutine
	// starts, after the toolkit's wrapping, so the guard goes on there once.
	var once sync.Once
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			once.Do(func() { srv.Handler = &guard{next: srv.Handler, body: t.ReadBody} })
		}
		if prev != nil {
			prev(c, st)
		}
	}
}

// guard sets the body deadline of every request and closes the connection
// after an error answer to a request whose body it did not read.
type guard struct {
	next http.Handler
	body time.Duration
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		g.next.ServeHTTP(w, r)
		return
	}
	rc := http.NewResponseController(w)
	// Not every ResponseWriter supports deadlines (tests' recorders); the
	// server's own ones do.
	_ = rc.SetReadDeadline(time.Now().Add(g.body))
	b := &deadlineBody{ReadCloser: r.Body, rc: rc}
	r.Body = b
	gw := &guardWriter{ResponseWriter: w, body: b, http1: r.ProtoMajor == 1}
	g.next.ServeHTTP(gw, r)
	if gw.closing {
		// net/http still closes the body after the handler, reading what
		// is left of it first; the connection is going away, so do not
		// wait for a client that may never send it.
		_ = rc.SetReadDeadline(time.Now())
	}
}

// deadlineBody lifts the body deadline once the body has been read in full:
// from then on the connection only waits for the answer, however long a
// stream that takes.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	mu   sync.Mutex
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.mu.Lock()
		if !b.done {
			b.done = true
			_ = b.rc.SetReadDeadline(time.Time{})
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *deadlineBody) read() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done
}

// guardWriter marks error answers to unread bodies Connection: close, which
// makes net/http send them at once instead of first draining the body (up
// to 256 KiB, however long the client takes to send it).
type guardWriter struct {
	http.ResponseWriter
	body        *deadlineBody
	http1       bool
	wroteHeader bool
	closing     bool
}

func (w *guardWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		if code >= 400 && w.http1 && !w.body.read() {
			w.closing = true
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write without WriteHeader answers 200, which needs no closing.
func (w *guardWriter) Write(p []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(p)
}

// Flush keeps streaming answers (Server-Sent Events) working through the guard.
func (w *guardWriter) Flush() {
	w.wroteHeader = true
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack passes through, for handlers that take over the connection.
func (w *guardWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("%T cannot be hijacked", w.ResponseWriter)
	}
	return h.Hijack()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *guardWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeOn is Serve for a secondary listener without exporter-toolkit flags
// (the simulator's separate metrics address): plain HTTP, same timeouts.
func ServeOn(ctx context.Context, srv *http.Server, address string, t Timeouts) error {
	harden(srv, t)
	l, err := net.Listen("tcp", address)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", address, err)
	}
	return run(ctx, srv, func() error { return srv.Serve(l) })
}
