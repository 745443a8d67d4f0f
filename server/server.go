package server

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"path"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-io/roster/apitype"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/roster-io/roster/registry/regtype"
	"github.com/roster-io/roster/server/ui"
)

// Server serves the HTTP API of one registry. Create it with New, mount
// Handler or call Serve/ListenAndServe, and stop it with Shutdown.
type Server struct {
	reg     Registry
	cfg     Config
	log     *slog.Logger
	errLog  *log.Logger // log at warn, for net/http's and the proxy's own messages
	tls     *tls.Config
	feeds   map[string]*feed
	metrics *metrics
	handler http.Handler
	httpSrv *http.Server
	fwd     http.RoundTripper // forwarded requests (forward.go)
	ownFwd  *http.Transport   // fwd when New made it: its idle connections close at Shutdown
	// batchSlots holds a token per batch being read or applied
	// (Config.MaxBatchesInFlight).
	batchSlots chan struct{}

	conns    atomic.Int64 // open connections of Serve (MaxConns)
	serving  atomic.Bool
	draining atomic.Bool
	stopMu   sync.Mutex    // orders streams.Add before the close of stopping
	stopping chan struct{} // closed by Shutdown: watch streams end
	stopped  bool
	streams  sync.WaitGroup
}

// New creates a Server for reg (an open *registry.Registry). It validates
// cfg and starts following every scope of reg for watch history; Shutdown
// stops that.
func New(reg Registry, cfg Config) (*Server, error) {
	if v := reflect.ValueOf(reg); reg == nil || v.Kind() == reflect.Pointer && v.IsNil() {
		// A nil *registry.Registry is a non-nil Registry.
		return nil, fmt.Errorf("%w: nil registry", ErrConfig)
	}
	if !reg.Persistent() {
		// The API's members are durable or session-bound: they must
		// survive a restart, which needs the registry's store.
		return nil, fmt.Errorf("%w: the registry has no DataDir, so members joined over the API would not survive a restart", ErrConfig)
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	tlsCfg, err := cfg.validate(lg)
	if err != nil {
		return nil, err
	}
	s := &Server{reg: reg, cfg: cfg, log: lg, tls: tlsCfg, feeds: map[string]*feed{}, stopping: make(chan struct{}),
		errLog:     slog.NewLogLogger(lg.Handler(), slog.LevelWarn),
		batchSlots: make(chan struct{}, cfg.MaxBatchesInFlight)}
	for _, sc := range reg.Scopes() {
		w, err := reg.Watch(context.Background(), sc, regtype.All())
		if err != nil {
			s.stopFeeds()
			return nil, fmt.Errorf("server: following scope %q: %w", sc, err)
		}
		s.feeds[sc] = newFeed(sc, w, cfg.WatchHistory, lg)
	}
	s.fwd = cfg.ForwardTransport
	if s.fwd == nil {
		s.ownFwd = newForwardTransport()
		s.fwd = s.ownFwd
	}
	s.metrics = newMetrics(s)
	s.handler = s.routes()
	s.httpSrv = &http.Server{
		Addr:              cfg.Addr,
		Handler:           s.handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		// OPTIONS * reaches the handler (and gets a JSON 404).
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     s.errLog,
	}
	return s, nil
}

// Handler returns the API's handler, with authentication, limits and
// metrics, for use with any http.Server (or httptest).
func (s *Server) Handler() http.Handler { return s.handler }

// ListenAndServe listens on Config.Addr and serves until ctx ends (then it
// shuts down gracefully within Config.ShutdownTimeout) or Shutdown is
// called. It returns nil after a graceful shutdown.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln (HTTPS when TLS is configured) until ctx ends (then it
// shuts down gracefully within Config.ShutdownTimeout) or Shutdown is
// called. It returns nil after a graceful shutdown. It holds at most
// Config.MaxConns connections at a time.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.serving.Swap(true) || s.draining.Load() {
		_ = ln.Close()
		return ErrServing
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
			defer cancel()
			if err := s.Shutdown(sctx); err != nil {
				s.log.Warn("graceful shutdown incomplete", "err", err)
			}
		case <-done:
		}
	}()
	// Connections are limited first (a TLS handshake holds one too), then
	// decrypted here rather than by net/http, so that jsonErrorListener
	// sees the plain text of net/http's own error answers.
	ln = newLimitListener(ln, s.cfg.MaxConns, &s.conns)
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	err := s.httpSrv.Serve(jsonErrorListener{ln})
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the server gracefully: /readyz turns 503, listeners
// close, watch streams end, in-flight requests finish (until ctx ends), and
// the watch history stops following the registry. The registry itself is
// left open: close it afterwards.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.stopMu.Lock()
	if !s.stopped {
		s.stopped = true
		close(s.stopping)
	}
	s.stopMu.Unlock()
	err := s.httpSrv.Shutdown(ctx)
	// Handlers mounted elsewhere (Handler) are not tracked by httpSrv:
	// wait for their watch streams too.
	waited := make(chan struct{})
	go func() { s.streams.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	s.stopFeeds()
	if s.ownFwd != nil {
		s.ownFwd.CloseIdleConnections()
	}
	return err
}

// streamStarted registers a watch stream, unless the server is stopping.
func (s *Server) streamStarted() bool {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.stopped {
		return false
	}
	s.streams.Add(1)
	return true
}

func (s *Server) stopFeeds() {
	for _, f := range s.feeds {
		f.w.Close()
		<-f.done
	}
}

// route is one endpoint of the API. routes builds the mux from the table
// apiRoutes returns, and the OpenAPI test holds the document
// (openapi.json) to the same table: an endpoint added here and not
// documented there fails it.
type route struct {
	method  string // GET (which also answers HEAD unless noHead), POST, PUT or DELETE
	pattern string // the path pattern, as http.ServeMux takes it
	// op names the operation in roster_operations_total; "" for the
	// probes (/healthz, /readyz, /metrics), which are not counted.
	op string
	// query lists the query parameters the handler reads (queryParam).
	query  []string
	noHead bool // GET only: HEAD on a watch would open a stream with no end
	h      http.Handler
}

// apiRoutes is the API's table of endpoints.
func (s *Server) apiRoutes() []route {
	const member = "/v1/scopes/{scope}/groups/{group}/members/{id}"
	api := func(method, pattern, op string, h func(http.ResponseWriter, *http.Request) error, query ...string) route {
		return route{method: method, pattern: pattern, op: op, query: query, h: s.op(op, h)}
	}
	watch := api("GET", "/v1/scopes/{scope}/watch", "watch", s.watch, "group", "prefix", "last_event_id", "snapshot")
	watch.noHead = true
	return []route{
		api("PUT", member, "join", s.join),
		api("DELETE", member, "leave", s.leave),
		api("GET", "/v1/scopes/{scope}/groups/{group}/members", "members", s.members, "local", "limit", "offset"),
		api("GET", "/v1/scopes/{scope}/groups", "groups", s.groups, "prefix", "counts", "limit", "after"),
		watch,
		api("POST", "/v1/scopes/{scope}/batch", "batch", s.batch),
		api("POST", "/v1/sessions", "session_create", s.createSession),
		api("GET", "/v1/sessions", "sessions", s.listSessions, "limit", "after"),
		api("GET", "/v1/sessions/{id}", "session_get", s.getSession),
		api("PUT", "/v1/sessions/{id}", "session_keepalive", s.keepAlive),
		api("DELETE", "/v1/sessions/{id}", "session_close", s.closeSession),
		api("GET", "/v1/nodes", "nodes", s.nodes),
		api("GET", "/v1/keyring", "keyring", s.keyring), // server/keyring.go
		api("POST", "/v1/keyring", "keyring", s.keyring),
		api("GET", "/v1/openapi.json", "openapi", s.openAPI),
		// Liveness fails only on a storage failure a restart must fix (a
		// full disk is not one: restarting frees nothing and the node
		// recovers by itself); readiness fails while storage is failing
		// at all.
		{method: "GET", pattern: "/healthz", h: http.HandlerFunc(s.healthz)},
		{method: "GET", pattern: "/readyz", h: http.HandlerFunc(s.readyz)},
		{method: "GET", pattern: "/metrics", h: promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{ErrorLog: s.errLog})},
	}
}

// allowed lists the methods of a path's routes, as an Allow header: GET,
// HEAD, POST, PUT, DELETE in that order.
func allowed(rs []route) string {
	var ms []string
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "DELETE"} {
		for _, r := range rs {
			if r.method == m || m == "HEAD" && r.method == "GET" && !r.noHead {
				ms = append(ms, m)
				break
			}
		}
	}
	return strings.Join(ms, ", ")
}

// routes builds the mux and wraps it in the middleware.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	byPath := map[string][]route{}
	var paths []string
	for _, rt := range s.apiRoutes() {
		mux.Handle(rt.method+" "+rt.pattern, rt.h)
		if byPath[rt.pattern] == nil {
			paths = append(paths, rt.pattern)
		}
		byPath[rt.pattern] = append(byPath[rt.pattern], rt)
	}
	// The dashboard: public static files that hold no data; everything it
	// shows comes from /v1, with the token (package ui). Not an API
	// route: it answers HTML, and the OpenAPI document leaves it out.
	dashboard := ui.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errorf(http.StatusNotFound, CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
	}))
	for _, p := range []string{ui.Prefix, ui.Prefix + "/"} {
		mux.Handle("GET "+p, dashboard)
		paths = append(paths, p)
		byPath[p] = []route{{method: "GET", pattern: p}}
	}
	// The same paths with another method answer 405 in JSON; anything
	// else 404.
	for _, p := range paths {
		methods := allowed(byPath[p])
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", methods)
			s.writeError(w, r, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s not allowed on %s; allowed: %s", r.Method, p, methods))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errorf(http.StatusNotFound, CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return s.instrument(s.recoverPanics(s.canonical(s.authenticate(mux))))
}

// healthz: 200 unless storage failed in a way only a restart fixes.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if err := s.reg.StorageHealth(); errors.Is(err, regtype.ErrRestartRequired) {
		writeJSON(w, http.StatusServiceUnavailable, apitype.Error{Error: apitype.ErrorBody{Code: CodeStorageFailed, Message: "storage failed, restart required: " + err.Error()}})
		return
	}
	writeJSON(w, http.StatusOK, apitype.Status{Status: "ok"})
}

// canonical answers a path that is not in canonical form (// . ..) with a
// JSON 404, where http.ServeMux would redirect to the cleaned path (a
// redirect a JSON client does not expect, and for a member id holding
// such a sequence, a redirect to another member).
func (s *Server) canonical(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		if r.Method != http.MethodConnect && cleanPath(p) != p {
			code := s.writeError(w, r, errorf(http.StatusNotFound, CodeNotFound, "no such endpoint: path %q is not in canonical form", r.URL.Path))
			s.metrics.ops.WithLabelValues("path", code).Inc()
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cleanPath is net/http's: the canonical path for p, without . and ..
// elements and double slashes, keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		if len(p) == len(np)+1 && strings.HasPrefix(p, np) {
			np = p
		} else {
			np += "/"
		}
	}
	return np
}

// op wraps an API handler: it answers its error and counts the outcome.
func (s *Server) op(name string, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := "ok"
		if err := h(w, r); errors.Is(err, errForwarded) {
			code = "forwarded"
		} else if err != nil {
			code = s.writeError(w, r, err)
		}
		s.metrics.ops.WithLabelValues(name, code).Inc()
	})
}

// authenticate requires the bearer token on /v1 and /metrics when one is
// configured. The dashboard's files (/ui) are public: they hold no data,
// and the page sends the token it asks for with every /v1 request.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return next
	}
	want := []byte(s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "/v1" || strings.HasPrefix(p, "/v1/") || p == "/metrics" {
			// The scheme is case-insensitive (RFC 9110 11.1).
			scheme, got, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
			if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
				code := s.writeError(w, r, errorf(http.StatusUnauthorized, CodeUnauthorized, "missing or wrong bearer token"))
				s.metrics.ops.WithLabelValues("auth", code).Inc()
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a handler panic into a 500 instead of a dropped
// connection, and logs it.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", v)
				s.writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// instrument records the request duration by route pattern, method and
// status, and logs requests at debug level.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		d := time.Since(start)
		route := r.Pattern // set by the mux on this request
		if route == "" {
			route = "unmatched"
		}
		method := r.Method
		switch method {
		case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete:
		default:
			method = "other"
		}
		s.metrics.duration.WithLabelValues(route, method, strconv.Itoa(rec.status)).Observe(d.Seconds())
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", d)
	})
}

// statusRecorder remembers the status written; Unwrap lets
// http.ResponseController reach the real writer (Flush, deadlines).
type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Flush() { _ = r.FlushError() }

// FlushError flushes and reports a failed write (http.ResponseController
// prefers it to Flush).
func (r *statusRecorder) FlushError() error {
	return http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func formatUint(v uint64) string { return strconv.FormatUint(v, 10) }
