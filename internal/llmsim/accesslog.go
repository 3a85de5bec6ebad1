package llmsim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Access log keys. They are the keys of the exporter's default JSON field
// mapping (the nginx escape=json format in exporter/accesslog/README.md), so
// `exporter.accesslog.format: json` reads the log without a field block;
// tokens, server_port and stream need the block documented in README.md.
const (
	logKeyTime         = "time_iso8601"
	logKeyClient       = "remote_addr"
	logKeyServerPort   = "server_port"
	logKeyMethod       = "method"
	logKeyPath         = "uri"
	logKeyStatus       = "status"
	logKeyDuration     = "request_time"
	logKeyTTFT         = "ttft"
	logKeyRequestBytes = "request_length"
	logKeyBodyBytes    = "body_bytes_sent"
	logKeyModel        = "model"
	logKeyInputTokens  = "input_tokens"
	logKeyOutputTokens = "output_tokens"
	logKeyStream       = "stream"
)

// logTimeLayout is RFC 3339 with a fixed microsecond fraction.
const logTimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// statusClientClosed is what nginx logs when the client left before any
// response was sent; the simulator logs the same so both sources agree.
const statusClientClosed = 499

// Bounds on client-chosen strings, so a line stays far below the 64 KiB a
// log follower accepts.
const (
	maxLoggedModel = 256
	maxLoggedPath  = 1024
)

// accessLogFlushEvery bounds how long a finished request may sit in the
// buffer: the exporter follows the file live.
const accessLogFlushEvery = 200 * time.Millisecond

// accessLog appends one JSON line per finished API request. One buffered
// writer behind a mutex serves all handlers; a ticker flushes it.
type accessLog struct {
	path   string
	logger *slog.Logger

	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	line    []byte
	failing bool // a write failed; logged once until writes succeed again

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

func openLogFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open access log: %w", err)
	}
	return f, nil
}

func openAccessLog(path string, flushEvery time.Duration, logger *slog.Logger) (*accessLog, error) {
	f, err := openLogFile(path)
	if err != nil {
		return nil, err
	}
	a := &accessLog{path: path, logger: logger, f: f, w: bufio.NewWriterSize(f, 64<<10),
		line: make([]byte, 0, 512), stop: make(chan struct{}), done: make(chan struct{})}
	go a.flushLoop(flushEvery)
	return a, nil
}

func (a *accessLog) flushLoop(every time.Duration) {
	defer close(a.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.mu.Lock()
			if a.w.Buffered() > 0 {
				a.noteErr(a.w.Flush())
			}
			a.mu.Unlock()
		}
	}
}

// noteErr logs the first of a run of write errors; a bufio.Writer keeps
// failing after an error, so the writer is reset onto the file to retry.
func (a *accessLog) noteErr(err error) {
	if err == nil {
		if a.failing {
			a.logger.Info("access log writable again", "path", a.path)
			a.failing = false
		}
		return
	}
	if !a.failing {
		a.logger.Error("access log write failed, dropping lines until it recovers", "path", a.path, "err", err)
		a.failing = true
	}
	a.w.Reset(a.f)
}

// write appends one whole line; a line is never split across two writes
// unless it is larger than the buffer.
func (a *accessLog) write(fill func([]byte) []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.line = fill(a.line[:0])
	if len(a.line) > a.w.Available() && a.w.Buffered() > 0 {
		if err := a.w.Flush(); err != nil {
			a.noteErr(err)
			return
		}
	}
	_, err := a.w.Write(a.line)
	a.noteErr(err)
}

// reopen switches to a new file at the same path (after logrotate moved
// the old one). On failure the old file stays in use.
func (a *accessLog) reopen() error {
	f, err := openLogFile(a.path)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	flushErr := a.w.Flush()
	closeErr := a.f.Close()
	a.f = f
	a.w.Reset(f)
	if err := errors.Join(flushErr, closeErr); err != nil {
		return fmt.Errorf("close rotated access log: %w", err)
	}
	return nil
}

func (a *accessLog) close() error {
	a.closeOnce.Do(func() {
		close(a.stop)
		<-a.done
		a.mu.Lock()
		defer a.mu.Unlock()
		flushErr := a.w.Flush()
		if err := errors.Join(flushErr, a.f.Close()); err != nil {
			a.closeErr = fmt.Errorf("close access log: %w", err)
		}
	})
	return a.closeErr
}

// exchange watches one API request for the access log. It never sees or
// keeps prompt or completion text: only sizes, times and the model name.
type exchange struct {
	http.ResponseWriter
	start      time.Time
	firstWrite time.Time
	status     int
	stream     bool
	bytes      int64
	model      string
	input      int64
	output     int64
	now        func() time.Time
}

func (e *exchange) WriteHeader(code int) {
	if e.status == 0 {
		e.status = code
		e.stream = strings.HasPrefix(e.Header().Get("Content-Type"), "text/event-stream")
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *exchange) Write(b []byte) (int, error) {
	if e.status == 0 {
		e.WriteHeader(http.StatusOK)
	}
	if e.firstWrite.IsZero() {
		e.firstWrite = e.now()
	}
	n, err := e.ResponseWriter.Write(b)
	e.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's Flush.
func (e *exchange) Unwrap() http.ResponseWriter { return e.ResponseWriter }

// noteModel and noteTokens tell the access log what the handler learned;
// they do nothing when the server keeps no access log.
func noteModel(w http.ResponseWriter, model string) {
	if e, ok := w.(*exchange); ok {
		e.model = model
	}
}

func noteTokens(w http.ResponseWriter, input, output int) {
	if e, ok := w.(*exchange); ok {
		e.input, e.output = int64(input), int64(output)
	}
}

// logged wraps an API handler so every request it answers is logged when
// the answer ends, including streams cut off by a fault (the deferred log
// runs while the abort panic unwinds).
func (s *Server) logged(h http.HandlerFunc) http.HandlerFunc {
	if s.alog == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		e := &exchange{ResponseWriter: w, start: s.now(), input: -1, output: -1, now: s.now}
		defer s.logExchange(e, r)
		h(e, r)
	}
}

func (s *Server) logExchange(e *exchange, r *http.Request) {
	end := s.now()
	status := e.status
	if status == 0 {
		// net/http answers 200 for a handler that wrote nothing; ours only
		// do that when the client already left.
		status = http.StatusOK
		if r.Context().Err() != nil {
			status = statusClientClosed
		}
	}
	client := ""
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		client = ap.Addr().Unmap().String()
	}
	port := 0
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ta, ok := la.(*net.TCPAddr); ok {
			port = ta.Port
		}
	}
	path, _ := json.Marshal(clip(r.URL.Path, maxLoggedPath))
	var model []byte
	if e.model != "" {
		model, _ = json.Marshal(clip(e.model, maxLoggedModel))
	}
	s.alog.write(func(b []byte) []byte {
		b = append(b, `{"`+logKeyTime+`":"`...)
		b = end.UTC().AppendFormat(b, logTimeLayout)
		b = append(b, `","`+logKeyClient+`":"`...)
		b = append(b, client...)
		b = append(b, '"')
		if port > 0 {
			b = append(b, `,"`+logKeyServerPort+`":`...)
			b = strconv.AppendInt(b, int64(port), 10)
		}
		b = append(b, `,"`+logKeyMethod+`":"`...)
		b = append(b, r.Method...) // net/http only accepts token characters here
		b = append(b, `","`+logKeyPath+`":`...)
		b = append(b, path...)
		b = append(b, `,"`+logKeyStatus+`":`...)
		b = strconv.AppendInt(b, int64(status), 10)
		b = append(b, `,"`+logKeyDuration+`":`...)
		b = strconv.AppendFloat(b, end.Sub(e.start).Seconds(), 'f', 6, 64)
		if e.stream && !e.firstWrite.IsZero() {
			b = append(b, `,"`+logKeyTTFT+`":`...)
			b = strconv.AppendFloat(b, e.firstWrite.Sub(e.start).Seconds(), 'f', 6, 64)
		}
		if r.ContentLength >= 0 {
			b = append(b, `,"`+logKeyRequestBytes+`":`...)
			b = strconv.AppendInt(b, r.ContentLength, 10)
		}
		b = append(b, `,"`+logKeyBodyBytes+`":`...)
		b = strconv.AppendInt(b, e.bytes, 10)
		if model != nil {
			b = append(b, `,"`+logKeyModel+`":`...)
			b = append(b, model...)
		}
		if e.input >= 0 {
			b = append(b, `,"`+logKeyInputTokens+`":`...)
			b = strconv.AppendInt(b, e.input, 10)
		}
		if e.output >= 0 {
			b = append(b, `,"`+logKeyOutputTokens+`":`...)
			b = strconv.AppendInt(b, e.output, 10)
		}
		b = append(b, `,"`+logKeyStream+`":`...)
		b = strconv.AppendBool(b, e.stream)
		return append(b, "}\n"...)
	})
}

// clip cuts s to at most n bytes without splitting a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
