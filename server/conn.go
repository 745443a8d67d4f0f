package server

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-io/roster/apitype"
)

// limitListener accepts at most max connections at a time: Accept waits
// for one to close before it takes the next (the kernel's backlog holds
// the rest), so that clients holding connections cannot exhaust the
// process's file descriptors.
type limitListener struct {
	net.Listener
	slots chan struct{}
	open  *atomic.Int64
	done  chan struct{}
	once  sync.Once
}

func newLimitListener(ln net.Listener, max int, open *atomic.Int64) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, max), open: open, done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.open.Add(1)
	return &limitConn{Conn: c, release: func() { l.open.Add(-1); <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// jsonErrorListener wraps the (decrypted) connections so that the error
// answers net/http writes by itself, before any handler runs (400 for a
// malformed request, 431 for oversized headers, 501 for an unsupported
// transfer encoding), carry the API's JSON error body like every other
// error.
type jsonErrorListener struct{ net.Listener }

func (l jsonErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonErrorConn{Conn: c}, nil
}

type jsonErrorConn struct{ net.Conn }

// netHTTPErrorHeaders is what net/http's own error answers have after
// their status line (net/http conn.serve); a handler's answer never does
// (net/http sorts headers, so Connection comes before Content-Type, and
// adds Date).
const netHTTPErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

func (c *jsonErrorConn) Write(p []byte) (int, error) {
	if !bytes.HasPrefix(p, []byte("HTTP/1.")) {
		return c.Conn.Write(p)
	}
	line, rest, ok := bytes.Cut(p, []byte(netHTTPErrorHeaders))
	if !ok || bytes.IndexByte(line, '\n') >= 0 || len(line) < len("HTTP/1.1 400") {
		return c.Conn.Write(p)
	}
	status, err := strconv.Atoi(string(line[len("HTTP/1.1 ") : len("HTTP/1.1 ")+3]))
	if err != nil {
		return c.Conn.Write(p)
	}
	code := CodeBadRequest
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		code = CodeHeadersTooLarge
	case http.StatusNotImplemented:
		code = CodeNotImplemented
	}
	body, _ := json.Marshal(apitype.Error{Error: apitype.ErrorBody{Code: code, Message: string(rest)}})
	body = append(body, '\n')
	head := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		status, http.StatusText(status), len(body))
	if _, err := c.Conn.Write(append([]byte(head), body...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// certReloader serves the certificate in a PEM file pair and loads it
// again when either file changes (size or modification time), so that a
// renewed certificate is served without a restart. A pair that fails to
// load keeps the previous one in use (and is logged).
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp
	checked time.Time
}

type fileStamp struct {
	size int64
	mod  time.Time
}

// certCheckInterval bounds how often the files are looked at: at most
// once a second, whatever the rate of handshakes.
const certCheckInterval = time.Second

func stampOf(name string) (fileStamp, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.Size(), fi.ModTime()}, nil
}

// load reads the pair now.
func (r *certReloader) load() error {
	cs, err := stampOf(r.certFile)
	if err != nil {
		return err
	}
	ks, err := stampOf(r.keyFile)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	r.cert, r.stamp = &cert, [2]fileStamp{cs, ks}
	return nil
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= certCheckInterval {
		r.checked = now
		cs, err1 := stampOf(r.certFile)
		ks, err2 := stampOf(r.keyFile)
		if err1 == nil && err2 == nil && [2]fileStamp{cs, ks} != r.stamp {
			if err := r.load(); err != nil {
				r.log.Warn("reloading the TLS certificate failed; serving the previous one", "err", err)
			} else {
				r.log.Info("reloaded the TLS certificate", "file", r.certFile)
			}
		}
	}
	return r.cert, nil
}

// clientCAs reads a PEM bundle of client CA certificates.
func clientCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", file)
	}
	return pool, nil
}
