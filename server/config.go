package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Sentinel errors of this package; test with errors.Is.
var (
	// ErrConfig: the Config given to New is invalid.
	ErrConfig = errors.New("server: invalid configuration")
	// ErrServing: Serve or ListenAndServe was called twice, or after
	// Shutdown.
	ErrServing = errors.New("server: already serving or shut down")
)

// Config configures a Server. Start from DefaultConfig and change what you
// need; New validates it.
type Config struct {
	// Addr is where ListenAndServe listens (host:port).
	Addr string

	// Token, when not empty, is the API token: every /v1 endpoint and
	// /metrics require "Authorization: Bearer <Token>". /healthz and
	// /readyz stay open.
	Token string

	// TLSCertFile and TLSKeyFile, when both set, make Serve and
	// ListenAndServe speak HTTPS (HTTP/1.1) with this PEM certificate and
	// key. The pair is loaded again when either file changes (checked at
	// most once a second, at a handshake), so a renewed certificate is
	// served without a restart; a pair that fails to load keeps the
	// previous one in use.
	TLSCertFile string
	TLSKeyFile  string

	// TLSClientCAFile, when set (with TLS), is a PEM bundle of CA
	// certificates: every client must then present a certificate signed
	// by one of them (mutual TLS), verified at the handshake.
	TLSClientCAFile string

	// MaxBodyBytes bounds a request body; larger bodies are answered 413
	// body_too_large.
	MaxBodyBytes int64

	// MaxHeaderBytes bounds a request's headers; larger ones are answered
	// 431 headers_too_large.
	MaxHeaderBytes int

	// MaxBatchOps bounds the ops of one batch (POST
	// /v1/scopes/{scope}/batch; more are answered 413 batch_too_large),
	// and MaxBatchBytes its body (instead of MaxBodyBytes; larger ones
	// are answered 413 body_too_large). MaxBatchesInFlight bounds the
	// batches read and applied at a time, so that the memory batches
	// hold stays bounded (about MaxBatchesInFlight times a few times
	// MaxBatchBytes) whatever the number of clients: the others wait,
	// their bodies unread, until one is done or their request ends.
	MaxBatchOps        int
	MaxBatchBytes      int64
	MaxBatchesInFlight int

	// WatchHistory is how many recent events per scope are kept so that a
	// watch reconnecting with Last-Event-ID can be resumed exactly.
	WatchHistory int

	// HeartbeatInterval is how often an idle watch stream gets a ": ping"
	// comment, so proxies and clients can tell it is alive.
	HeartbeatInterval time.Duration

	// WatchWriteTimeout bounds each write to a watch stream: a client
	// that does not read for that long is dropped (it reconnects with
	// Last-Event-ID and gets a replay or a resync) instead of the server
	// buffering for it.
	WatchWriteTimeout time.Duration

	// ReadHeaderTimeout bounds reading a request's headers, ReadTimeout
	// the whole request with its body, WriteTimeout writing a response
	// (watch streams instead have WatchWriteTimeout per write), and
	// IdleTimeout how long a keep-alive connection may wait for its next
	// request. They apply to Serve and ListenAndServe.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration

	// MaxConns bounds the connections Serve and ListenAndServe hold open
	// at a time; further clients wait in the listen backlog until one
	// closes.
	MaxConns int

	// ShutdownTimeout bounds the graceful shutdown Serve performs when its
	// context ends.
	ShutdownTimeout time.Duration

	// Forward sends a request about a member or session another node
	// holds (a leave; a session's get, keep-alive or close; a join into
	// the session) to that node, one hop, when its HTTP address is known
	// (registry.Config.HTTPAddr on that node): see forward.go. Off, such a
	// request is answered not_owner or session_not_found naming the
	// owner and its address. The bearer token is passed on: the owner
	// must accept the same one.
	Forward bool

	// ForwardTransport carries forwarded requests; nil means a transport
	// with bounded timeouts that verifies HTTPS owners against the
	// system's roots (set one with a RootCAs pool, or a client
	// certificate, for owners behind a private CA or mutual TLS).
	ForwardTransport http.RoundTripper

	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: listen on 127.0.0.1:8080, no token,
// no TLS, 64 KiB bodies and headers, batches of up to 10,000 ops and
// 8 MiB (4 at a time), 10 000 events of watch history per scope, a
// heartbeat every 15 s, watch writes bounded to 10 s, 10 s to read
// headers, 30 s to read a request or write an answer, 2 min idle, 4,096
// connections, forwarding to owners on.
func DefaultConfig() Config {
	return Config{
		Addr:               "127.0.0.1:8080",
		MaxBodyBytes:       64 << 10,
		MaxHeaderBytes:     64 << 10,
		MaxBatchOps:        10_000,
		MaxBatchBytes:      8 << 20,
		MaxBatchesInFlight: 4,
		WatchHistory:       10_000,
		HeartbeatInterval:  15 * time.Second,
		WatchWriteTimeout:  10 * time.Second,
		ReadHeaderTimeout:  10 * time.Second,
		ReadTimeout:        30 * time.Second,
		WriteTimeout:       30 * time.Second,
		IdleTimeout:        2 * time.Minute,
		MaxConns:           4096,
		ShutdownTimeout:    10 * time.Second,
		Forward:            true,
	}
}

// validate checks c and prepares the TLS configuration if any.
func (c *Config) validate(log *slog.Logger) (*tls.Config, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 64<<20:
		return nil, bad("MaxBodyBytes %d out of range [1 KiB, 64 MiB]", c.MaxBodyBytes)
	case c.MaxHeaderBytes < 1024 || c.MaxHeaderBytes > 1<<20:
		return nil, bad("MaxHeaderBytes %d out of range [1 KiB, 1 MiB]", c.MaxHeaderBytes)
	case c.MaxBatchOps < 1 || c.MaxBatchOps > 1_000_000:
		return nil, bad("MaxBatchOps %d out of range [1, 1,000,000]", c.MaxBatchOps)
	case c.MaxBatchBytes < 1024 || c.MaxBatchBytes > 256<<20:
		return nil, bad("MaxBatchBytes %d out of range [1 KiB, 256 MiB]", c.MaxBatchBytes)
	case c.MaxBatchesInFlight < 1 || c.MaxBatchesInFlight > 1024:
		return nil, bad("MaxBatchesInFlight %d out of range [1, 1024]", c.MaxBatchesInFlight)
	case c.WatchHistory < 1 || c.WatchHistory > 1<<24:
		return nil, bad("WatchHistory %d out of range [1, 2^24]", c.WatchHistory)
	case c.HeartbeatInterval <= 0:
		return nil, bad("HeartbeatInterval must be positive")
	case c.WatchWriteTimeout <= 0:
		return nil, bad("WatchWriteTimeout must be positive")
	case c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0:
		return nil, bad("ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout must be positive")
	case c.ShutdownTimeout < 0:
		return nil, bad("ShutdownTimeout must not be negative")
	case c.MaxConns < 1:
		return nil, bad("MaxConns %d must be at least 1", c.MaxConns)
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return nil, bad("TLSCertFile and TLSKeyFile must be set together")
	case c.TLSClientCAFile != "" && c.TLSCertFile == "":
		return nil, bad("TLSClientCAFile needs TLSCertFile and TLSKeyFile")
	}
	if c.TLSCertFile == "" {
		return nil, nil
	}
	certs := &certReloader{certFile: c.TLSCertFile, keyFile: c.TLSKeyFile, log: log}
	if err := certs.load(); err != nil {
		return nil, bad("TLS key pair: %v", err)
	}
	certs.checked = time.Now()
	tc := &tls.Config{
		GetCertificate: certs.getCertificate,
		MinVersion:     tls.VersionTLS12,
		// The server reads decrypted connections itself (so that even
		// net/http's own errors are JSON): HTTP/1.1 only.
		NextProtos: []string{"http/1.1"},
	}
	if c.TLSClientCAFile != "" {
		pool, err := clientCAs(c.TLSClientCAFile)
		if err != nil {
			return nil, bad("TLSClientCAFile: %v", err)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}
