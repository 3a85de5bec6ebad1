// Package httpservertest opens the connections a hostile or broken client
// holds against a server — a request body that never arrives, a keep-alive
// connection that never sends another request — and measures how the server
// deals with them. The binaries' tests use it against the real processes.
package httpservertest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// Outcome is what one hostile connection saw.
type Outcome struct {
	// Response is everything the server sent before closing.
	Response string
	// FirstByte is when the server first sent something (0: never), and
	// Closed when it closed the connection, both since the request was sent.
	FirstByte, Closed time.Duration
	// Err is set when the connection was still open at the limit.
	Err error
}

// Status returns the status line of the response ("" if none).
func (o Outcome) Status() string {
	line, _, _ := strings.Cut(o.Response, "\r\n")
	return line
}

// StalledBodies opens n connections at once, each sending a POST to path
// with headers (e.g. "Authorization: Bearer x\r\n") that announces a body of
// 100,000 bytes and sends only its first byte, then waits up to limit for
// the server to close each connection.
func StalledBodies(addr, path, headers string, n int, limit time.Duration) ([]Outcome, error) {
	req := "POST " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\n" + headers + "Content-Length: 100000\r\n\r\n{"
	return many(addr, n, limit, req)
}

// IdleKeepAlives opens n connections at once, each sending one GET of path,
// and waits up to limit for the server to close the idle connection after
// answering.
func IdleKeepAlives(addr, path string, n int, limit time.Duration) ([]Outcome, error) {
	return many(addr, n, limit, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\n\r\n")
}

func many(addr string, n int, limit time.Duration, req string) ([]Outcome, error) {
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", addr, err)
		}
		conns = append(conns, c)
	}
	out := make([]Outcome, n)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = watch(c, req, limit)
		}()
	}
	wg.Wait()
	return out, nil
}

func watch(c net.Conn, req string, limit time.Duration) Outcome {
	begin := time.Now()
	if _, err := io.WriteString(c, req); err != nil {
		return Outcome{Err: fmt.Errorf("send request: %w", err)}
	}
	_ = c.SetReadDeadline(begin.Add(limit))
	var o Outcome
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if o.FirstByte == 0 {
				o.FirstByte = time.Since(begin)
			}
			b.Write(buf[:n])
		}
		if err == nil {
			continue
		}
		o.Response = b.String()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			o.Err = fmt.Errorf("connection still open after %s", limit)
			return o
		}
		// EOF or a reset: the server closed the connection.
		o.Closed = time.Since(begin)
		return o
	}
}
