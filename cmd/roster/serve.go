package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/roster-io/roster/internal/buildinfo"
	"github.com/roster-io/roster/registry"
	"github.com/roster-io/roster/server"
	"github.com/roster-io/roster/storage"
)

// The server takes the registry as server.Registry, an interface in
// regtype's terms, so that it depends on neither package registry nor the
// gossip layer; this is where the registry is handed over, and where it
// must satisfy it.
var _ server.Registry = (*registry.Registry)(nil)

// serveOptions are the flags of roster serve.
type serveOptions struct {
	name, dataDir, gossipAddr, advertiseAddr, httpAddr string
	join                                               listFlag
	scopes, profile, gossipKey, apiToken, cluster      string
	gossipKeyFile, apiTokenFile                        string
	advertiseHTTP                                      string
	forward                                            bool
	gossipInsecure                                     bool
	tlsCert, tlsKey, logLevel, logFormat               string
	tlsClientCA                                        string
	maxConns, maxSessions, maxWatchers                 int
	shutdownTimeout                                    time.Duration
	sync                                               string
	syncInterval                                       time.Duration
	fanOut                                             int
}

// serveFlags defines the flags of roster serve into o; their help goes to
// w.
func serveFlags(o *serveOptions, host string, w io.Writer) *flag.FlagSet {
	fs := newFlagSet("serve", "serve [flags]", w)
	fs.StringVar(&o.name, "name", host, "node `name`, unique in the cluster and stable across restarts")
	fs.StringVar(&o.dataDir, "data-dir", "./roster-data", "`directory` for durable members, sessions and the node's identity")
	fs.StringVar(&o.gossipAddr, "gossip-addr", "127.0.0.1:7946", "gossip (memberlist) bind `host:port`, UDP and TCP")
	fs.StringVar(&o.advertiseAddr, "advertise-addr", "", "gossip `host:port` other nodes reach this one at (default: derived from --gossip-addr)")
	fs.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:8080", "HTTP API listen `host:port`")
	fs.StringVar(&o.advertiseHTTP, "advertise-http", "", "`URL` of this node's HTTP API as other nodes and clients reach it, http(s)://host:port, or host:port (default: --http-addr, its host taken from --advertise-addr or --gossip-addr when it listens on all interfaces); shown by roster nodes, used to forward")
	fs.BoolVar(&o.forward, "forward", true, "forward a leave, a session's get/keep-alive/close and a join into a session to the node that holds them (one hop, token passed on); false: answer not_owner/session_not_found naming that node and its address")
	fs.Var(&o.join, "join", "seed `host:port` to join (repeatable or comma-separated; DNS names are re-resolved)")
	fs.StringVar(&o.scopes, "scopes", "default", "comma-separated `scopes` this node serves")
	fs.StringVar(&o.profile, "profile", "lan", "gossip timings: lan, wan or local (one machine, fast failure detection)")
	fs.StringVar(&o.gossipKey, "gossip-key", "", "base64 `key` of 16, 24 or 32 bytes encrypting gossip (same on every node); visible in ps: prefer --gossip-key-file")
	fs.StringVar(&o.gossipKeyFile, "gossip-key-file", "", "`file` of gossip keys, one base64 key per line, the first encrypting (primary), the others also accepted (rotation: see roster keyring)")
	fs.BoolVar(&o.gossipInsecure, "gossip-insecure", false, "allow unencrypted gossip on a non-loopback --gossip-addr: anyone who can reach the port can forge members (only for networks private by other means)")
	fs.StringVar(&o.cluster, "cluster", "", "cluster `name` (same on every node): nodes of other clusters are ignored even if they reach this node's address (memberlist's label); empty: none")
	fs.StringVar(&o.apiToken, "api-token", "", "bearer `token` required on /v1 and /metrics; visible in ps: prefer --api-token-file")
	fs.StringVar(&o.apiTokenFile, "api-token-file", "", "`file` holding the bearer token (surrounding whitespace ignored)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate `file` for HTTPS (with --tls-key)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM key `file` for HTTPS (with --tls-cert); both are reloaded when they change")
	fs.StringVar(&o.tlsClientCA, "tls-client-ca", "", "PEM `file` of CAs: HTTPS clients must present a certificate one of them signed (mutual TLS)")
	fs.IntVar(&o.maxConns, "max-conns", server.DefaultConfig().MaxConns, "most HTTP connections open at once")
	fs.IntVar(&o.maxSessions, "max-sessions", registry.DefaultLimits().MaxSessions, "most sessions this node holds")
	fs.IntVar(&o.maxWatchers, "max-watchers", registry.DefaultLimits().MaxWatchers, "most watches open on this node")
	fs.StringVar(&o.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log `format`: text or json")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take")
	fs.StringVar(&o.sync, "sync", "always", "when durable/session joins and leaves are acknowledged: always (after fsync, shared by concurrent writers) or interval (fsync every --sync-interval; a crash or kill -9 may lose the last interval of acknowledged writes)")
	fs.DurationVar(&o.syncInterval, "sync-interval", 10*time.Millisecond, "fsync period with --sync=interval")
	fs.IntVar(&o.fanOut, "fan-out", 0, "0: push each update to every scope peer (full mesh, as pg); `k` > 0: above k peers, send updates down a relay tree of fan-out k (no node sends more than k copies; log_k(N) hops)")
	return fs
}

func runServe(args []string, stdout, stderr io.Writer) error {
	host, _ := os.Hostname()
	if host == "" {
		host = "roster"
	}
	var o serveOptions
	fs := serveFlags(&o, host, stdout)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("serve takes no arguments, got %q", pos)
	}
	logger, err := newLogger(o.logLevel, o.logFormat, stderr)
	if err != nil {
		return err
	}
	token, err := secret("--api-token", o.apiToken, o.apiTokenFile)
	if err != nil {
		return err
	}
	cfg, err := registryConfig(o, logger)
	if err != nil {
		return err
	}
	warnExampleSecrets(logger, token, cfg)
	if cfg.Insecure {
		logger.Warn("--gossip-insecure: GOSSIP IS NEITHER ENCRYPTED NOR AUTHENTICATED; anyone who can reach " + o.gossipAddr + " can add, remove or hide any node's members")
	}
	scfg := server.DefaultConfig()
	scfg.Addr = o.httpAddr
	scfg.Token = token
	scfg.TLSCertFile, scfg.TLSKeyFile = o.tlsCert, o.tlsKey
	scfg.TLSClientCAFile = o.tlsClientCA
	scfg.MaxConns = o.maxConns
	cfg.Limits.MaxSessions, cfg.Limits.MaxWatchers = o.maxSessions, o.maxWatchers
	scfg.ShutdownTimeout = o.shutdownTimeout
	scfg.Forward = o.forward
	scfg.Logger = logger.With("component", "http")
	// Everything that can fail is checked and bound before the node joins
	// the cluster: a start that failed after joining left a node that
	// every peer listed and retried.
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return usageErr("--tls-cert and --tls-key must be given together")
	}
	if o.tlsCert != "" {
		if _, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey); err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
	}
	if o.tlsClientCA != "" {
		if o.tlsCert == "" {
			return usageErr("--tls-client-ca needs --tls-cert and --tls-key")
		}
		pem, err := os.ReadFile(o.tlsClientCA)
		if err != nil {
			return fmt.Errorf("--tls-client-ca: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return fmt.Errorf("--tls-client-ca: %s holds no PEM certificate", o.tlsClientCA)
		}
	}
	ln, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	defer ln.Close() // after Serve: already closed
	scheme := "http"
	if o.tlsCert != "" {
		scheme = "https"
	}
	if cfg.HTTPAddr, err = advertiseHTTP(o, ln.Addr(), scheme); err != nil {
		return err
	}
	if cfg.HTTPAddr == "" {
		logger.Warn("no HTTP address to advertise (listening on all interfaces, no private IP found): other nodes cannot forward to this one; set --advertise-http")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	reg, err := registry.Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("opening the registry: %w", err)
	}
	// From here on the node is in the cluster: any failure leaves it
	// gracefully, so peers see it as left rather than failed.
	closeReg := func() error {
		cctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
		defer cancel()
		return reg.Close(cctx)
	}
	srv, err := server.New(reg, scfg)
	if err != nil {
		_ = closeReg()
		return err
	}
	build := buildinfo.Get()
	fmt.Fprintf(stdout, "roster %s: node %q (incarnation %d) serving scopes %s\n  HTTP API: %s://%s (advertised: %s)\n  gossip:   %s\n  data:     %s\n",
		build.Version, reg.Name(), reg.Incarnation(), strings.Join(reg.Scopes(), ","), scheme, ln.Addr(), cmp.Or(cfg.HTTPAddr, "none"), reg.Addr(), o.dataDir)
	logger.Info("serving", "name", reg.Name(), "incarnation", reg.Incarnation(), "http", ln.Addr().String(), "http_advertised", cfg.HTTPAddr, "gossip", reg.Addr(), "seeds", []string(o.join), "version", build.Version, "commit", build.Commit)

	// Serve returns once ctx ends (SIGINT/SIGTERM) and the HTTP side has
	// shut down gracefully: no new connections, in-flight requests done,
	// watch streams ended.
	serveErr := srv.Serve(ctx, ln)
	logger.Info("shutting down: leaving the cluster")
	// Leave the cluster (peers hide our members at once) and close storage.
	if err := closeReg(); err != nil {
		logger.Warn("closing the registry", "err", err)
		if serveErr == nil {
			serveErr = err
		}
	}
	if serveErr != nil {
		return serveErr
	}
	logger.Info("stopped")
	return nil
}

// secret returns a secret given either inline (flag, visible in ps) or in
// a file (fileFlag), with surrounding whitespace removed.
func secret(flagName, inline, file string) (string, error) {
	if file == "" {
		return inline, nil
	}
	if inline != "" {
		return "", usageErr("%s and %s-file are exclusive", flagName, flagName)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s-file: %w", flagName, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", usageErr("%s-file %s is empty", flagName, file)
	}
	return v, nil
}

// parseKeys decodes gossip keys, one base64 key per line (blank lines
// and lines starting with # ignored), the first being the primary.
func parseKeys(what, text string) ([][]byte, error) {
	var keys [][]byte
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, usageErr("%s line %d: not base64: %v", what, i+1, err)
		}
		if n := len(key); n != 16 && n != 24 && n != 32 {
			return nil, usageErr("%s line %d: %d bytes, want 16, 24 or 32", what, i+1, n)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, usageErr("%s: no key", what)
	}
	return keys, nil
}

// registryConfig builds the registry configuration from the flags.
func registryConfig(o serveOptions, logger *slog.Logger) (registry.Config, error) {
	var cfg registry.Config
	switch o.profile {
	case "lan":
		cfg = registry.DefaultConfig(o.name)
	case "local":
		cfg = registry.LocalConfig(o.name)
	case "wan":
		cfg = registry.WANConfig(o.name)
	default:
		return cfg, usageErr("--profile %q: want lan, wan or local", o.profile)
	}
	cfg.Name = o.name
	cfg.FanOut = o.fanOut
	cfg.Cluster = o.cluster
	// The registry names itself (component=registry), and the layers
	// under it theirs (gossip, memberlist, storage, pebble).
	cfg.Logger = logger
	cfg.Scopes = nil
	for _, s := range strings.Split(o.scopes, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Scopes = append(cfg.Scopes, s)
		}
	}
	if len(cfg.Scopes) == 0 {
		return cfg, usageErr("--scopes: at least one scope")
	}
	var err error
	if cfg.BindAddr, cfg.BindPort, err = splitHostPort("--gossip-addr", o.gossipAddr); err != nil {
		return cfg, err
	}
	if o.advertiseAddr != "" {
		if cfg.AdvertiseAddr, cfg.AdvertisePort, err = splitHostPort("--advertise-addr", o.advertiseAddr); err != nil {
			return cfg, err
		}
	}
	cfg.Seeds = append([]string(nil), o.join...)
	keyText, err := secret("--gossip-key", o.gossipKey, o.gossipKeyFile)
	if err != nil {
		return cfg, err
	}
	if keyText != "" {
		what := "--gossip-key"
		if o.gossipKeyFile != "" {
			what = "--gossip-key-file " + o.gossipKeyFile
		}
		keys, err := parseKeys(what, keyText)
		if err != nil {
			return cfg, err
		}
		// A keyring rather than SecretKey, so that keys can be rotated at
		// run time (roster keyring). parseKeys checked each key's size.
		cfg.GossipKeys = keys
	}
	cfg.Insecure = o.gossipInsecure
	if o.dataDir == "" {
		return cfg, usageErr("--data-dir must not be empty")
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return cfg, fmt.Errorf("--data-dir: %w", err)
	}
	cfg.DataDir = o.dataDir
	switch o.sync {
	case "always":
		cfg.Storage.Sync = storage.SyncAlways
	case "interval":
		if o.syncInterval <= 0 {
			return cfg, usageErr("--sync-interval must be positive")
		}
		cfg.Storage.Sync, cfg.Storage.SyncInterval = storage.SyncInterval, o.syncInterval
	default:
		return cfg, usageErr("--sync %q: want always or interval", o.sync)
	}
	return cfg, nil
}

func splitHostPort(flagName, addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, usageErr("%s %q: %v", flagName, addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, usageErr("%s %q: bad port", flagName, addr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, p, nil
}
