package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
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
	// ListenAndServe speak HTTPS with this PEM certificate and key.
	TLSCertFile string
	TLSKeyFile  string

	// MaxBodyBytes bounds a request body; larger bodies are answered 413
	// body_too_large.
	MaxBodyBytes int64

	// WatchHistory is how many recent events per scope are kept so that a
	// watch reconnecting with Last-Event-ID can be resumed exactly.
	WatchHistory int

	// HeartbeatInterval is how often an idle watch stream gets a ": ping"
	// comment, so proxies and clients can tell it is alive.
	HeartbeatInterval time.Duration

	// ReadHeaderTimeout and IdleTimeout configure the http.Server used by
	// Serve and ListenAndServe. There is no write timeout: watch streams
	// are long-lived.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration

	// ShutdownTimeout bounds the graceful shutdown Serve performs when its
	// context ends.
	ShutdownTimeout time.Duration

	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: listen on 127.0.0.1:8080, no token,
// no TLS, 64 KiB bodies, 10 000 events of watch history per scope, a
// heartbeat every 15 s.
func DefaultConfig() Config {
	return Config{
		Addr:              "127.0.0.1:8080",
		MaxBodyBytes:      64 << 10,
		WatchHistory:      10_000,
		HeartbeatInterval: 15 * time.Second,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ShutdownTimeout:   10 * time.Second,
	}
}

// validate checks c and loads the TLS key pair if any.
func (c *Config) validate() (*tls.Config, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 64<<20:
		return nil, bad("MaxBodyBytes %d out of range [1 KiB, 64 MiB]", c.MaxBodyBytes)
	case c.WatchHistory < 1 || c.WatchHistory > 1<<24:
		return nil, bad("WatchHistory %d out of range [1, 2^24]", c.WatchHistory)
	case c.HeartbeatInterval <= 0:
		return nil, bad("HeartbeatInterval must be positive")
	case c.ReadHeaderTimeout < 0 || c.IdleTimeout < 0 || c.ShutdownTimeout < 0:
		return nil, bad("timeouts must not be negative")
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return nil, bad("TLSCertFile and TLSKeyFile must be set together")
	}
	if c.TLSCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
	if err != nil {
		return nil, bad("TLS key pair: %v", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
