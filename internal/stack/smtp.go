package stack

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// MailCatcher is a local SMTP server that stores every message it receives
// as an .eml file, standing in for a mail relay on a machine without one.
type MailCatcher struct {
	dir    string
	srv    *smtp.Server
	ln     net.Listener
	count  atomic.Int64
	logger *slog.Logger
	mu     sync.Mutex
	last   []byte
}

// StartMailCatcher listens on addr and writes messages into dir.
func StartMailCatcher(addr, dir string, logger *slog.Logger) (*MailCatcher, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create mail dir: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mail catcher listen on %s: %w", addr, err)
	}
	m := &MailCatcher{dir: dir, ln: ln, logger: logger}
	s := smtp.NewServer(backend{m})
	s.Domain = "localhost"
	s.ReadTimeout = 30 * time.Second
	s.WriteTimeout = 30 * time.Second
	s.MaxMessageBytes = 10 << 20
	s.AllowInsecureAuth = true
	m.srv = s
	go func() { _ = s.Serve(ln) }()
	return m, nil
}

// Addr is the listening address.
func (m *MailCatcher) Addr() string { return m.ln.Addr().String() }

// Count is the number of messages received so far.
func (m *MailCatcher) Count() int64 { return m.count.Load() }

// Last returns the newest message.
func (m *MailCatcher) Last() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.last...)
}

// Close stops the server.
func (m *MailCatcher) Close() error { return m.srv.Close() }

type backend struct{ m *MailCatcher }

func (b backend) NewSession(_ *smtp.Conn) (smtp.Session, error) { return &session{m: b.m}, nil }

type session struct {
	m        *MailCatcher
	from     string
	to       []string
	received bool
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.from = from; return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	n := s.m.count.Add(1)
	path := filepath.Join(s.m.dir, fmt.Sprintf("%04d.eml", n))
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("store message: %w", err)
	}
	s.m.mu.Lock()
	s.m.last = buf.Bytes()
	s.m.mu.Unlock()
	if s.m.logger != nil {
		s.m.logger.Info("mail received", "from", s.from, "to", s.to, "file", path)
	}
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }
