package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/roster-io/roster/client"
)

// clientOptions are the flags shared by the client commands.
type clientOptions struct {
	addr, token, scope     string
	tlsCA, tlsCert, tlsKey string
	json                   bool
	timeout                time.Duration
}

// registerConn defines the flags that say how to reach the node.
func (o *clientOptions) registerConn(fs *flag.FlagSet) {
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "node's HTTP API: `host:port` (http:// assumed, https:// with a --tls-* flag) or a URL")
	fs.StringVar(&o.token, "token", "", "API bearer `token`")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "PEM `file` of the CAs that signed the node's HTTPS certificate (default: the system's)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM client certificate `file` for a node that requires one (mutual TLS; with --tls-key)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM client key `file` (with --tls-cert)")
}

func (o *clientOptions) register(fs *flag.FlagSet, withScope bool) {
	o.registerConn(fs)
	fs.BoolVar(&o.json, "json", false, "print JSON instead of text")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "request timeout")
	if withScope {
		fs.StringVar(&o.scope, "scope", "default", "`scope` to act on")
	}
}

// prepare parses a client command's arguments and returns its positional
// arguments, the API client and a context ended by SIGINT or SIGTERM.
func (o *clientOptions) prepare(fs *flag.FlagSet, args []string, extra ...client.Option) ([]string, *client.Client, context.Context, context.CancelFunc, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	c, err := o.client(extra...)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	return pos, c, ctx, stop, nil
}

func (o *clientOptions) client(extra ...client.Option) (*client.Client, error) {
	base, err := o.baseURL()
	if err != nil {
		return nil, err
	}
	hc, err := o.httpClient()
	if err != nil {
		return nil, err
	}
	opts := []client.Option{client.WithHTTPClient(hc)}
	if o.token != "" {
		opts = append(opts, client.WithToken(o.token))
	}
	c, err := client.New(base, append(opts, extra...)...)
	if err != nil {
		return nil, usageErr("--addr: %v", err)
	}
	return c, nil
}

// useTLS reports whether a TLS flag was given.
func (o *clientOptions) useTLS() bool { return o.tlsCA != "" || o.tlsCert != "" || o.tlsKey != "" }

// baseURL is --addr as a URL: host:port gets http://, or https:// when a
// TLS flag is given.
func (o *clientOptions) baseURL() (string, error) {
	switch {
	case o.addr == "":
		return "", usageErr("--addr is empty: want host:port or a URL")
	case !strings.Contains(o.addr, "://"):
		if o.useTLS() {
			return "https://" + o.addr, nil
		}
		return "http://" + o.addr, nil
	case o.useTLS() && strings.HasPrefix(strings.ToLower(o.addr), "http://"):
		return "", usageErr("--addr %s is plain HTTP but a --tls-* flag is given: use https:// or host:port", o.addr)
	}
	return o.addr, nil
}

// httpClient returns the HTTP client of the commands, with the TLS
// settings of the --tls-* flags.
func (o *clientOptions) httpClient() (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if !o.useTLS() {
		return &http.Client{Transport: tr}, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.tlsCA != "" {
		pem, err := os.ReadFile(o.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, usageErr("--tls-ca: %s holds no PEM certificate", o.tlsCA)
		}
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return nil, usageErr("--tls-cert and --tls-key must be given together")
	}
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	tr.TLSClientConfig = cfg
	return &http.Client{Transport: tr}, nil
}

// runClient runs the client commands.
func runClient(cmd string, args []string, stdout, stderr io.Writer) error {
	var o clientOptions
	var synopsis string
	withScope := true
	switch cmd {
	case "join":
		synopsis = "join [flags] GROUP ID [KEY=VALUE...]"
	case "leave":
		synopsis = "leave [flags] GROUP ID"
	case "members":
		synopsis = "members [flags] GROUP"
	case "groups":
		synopsis = "groups [flags]"
	case "watch":
		synopsis = "watch [flags]"
	case "nodes":
		synopsis, withScope = "nodes [flags]", false
	case "status":
		return runStatus(args, stdout)
	case "session":
		return runSession(args, stdout, stderr)
	}
	fs := newFlagSet(cmd, synopsis, stdout)
	o.register(fs, withScope)
	var session, group, prefix, lastID string
	var local bool
	switch cmd {
	case "join":
		fs.StringVar(&session, "session", "", "bind the member to this session `id` (default: durable member)")
	case "members":
		fs.BoolVar(&local, "local", false, "only members owned by this node")
	case "watch":
		fs.StringVar(&group, "group", "", "watch only this `group`")
		fs.StringVar(&prefix, "prefix", "", "watch the groups whose names start with `prefix`")
		fs.StringVar(&lastID, "last-event-id", "", "resume after this event `id` instead of starting with a snapshot")
	}
	var extra []client.Option
	if cmd == "watch" {
		extra = append(extra, client.WithWatchState(func(s client.WatchState) { watchState(stderr, s) }))
	}
	pos, c, ctx, stop, err := o.prepare(fs, args, extra...)
	if err != nil {
		return err
	}
	defer stop()
	defer c.CloseIdleConnections()
	if cmd != "watch" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	out := printer{w: stdout, json: o.json}
	switch cmd {
	case "join":
		if len(pos) < 2 {
			return usageErr("usage: roster %s", synopsis)
		}
		meta := map[string]string{}
		for _, kv := range pos[2:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return usageErr("metadata %q: want KEY=VALUE", kv)
			}
			meta[k] = v
		}
		m, err := c.Join(ctx, o.scope, pos[0], pos[1], meta, session)
		if err != nil {
			return err
		}
		life := "durable"
		if m.Session != "" {
			life = "session " + esc(m.Session)
		}
		verb := "updated"
		if m.Created != nil && *m.Created {
			verb = "joined"
		}
		return out.print(m, func(w io.Writer) {
			fmt.Fprintf(w, "%s %s/%s on %s (%s)%s\n", verb, esc(m.Group), esc(m.ID), esc(m.Owner), life, metaString(m.Meta, " "))
		})
	case "leave":
		if len(pos) != 2 {
			return usageErr("usage: roster %s", synopsis)
		}
		if err := c.Leave(ctx, o.scope, pos[0], pos[1]); err != nil {
			return err
		}
		return out.print(map[string]string{"left": pos[1], "group": pos[0]}, func(w io.Writer) {
			fmt.Fprintf(w, "left %s/%s\n", esc(pos[0]), esc(pos[1]))
		})
	case "members":
		if len(pos) != 1 {
			return usageErr("usage: roster %s", synopsis)
		}
		ms, err := c.Members(ctx, o.scope, pos[0], local)
		if err != nil {
			return err
		}
		return out.print(map[string]any{"members": orEmpty(ms)}, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tOWNER\tMETA")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", esc(m.ID), esc(m.Owner), metaString(m.Meta, ""))
			}
			tw.Flush()
		})
	case "groups":
		if len(pos) != 0 {
			return usageErr("usage: roster %s", synopsis)
		}
		gs, err := c.Groups(ctx, o.scope)
		if err != nil {
			return err
		}
		return out.print(map[string]any{"groups": orEmpty(gs)}, func(w io.Writer) {
			for _, g := range gs {
				fmt.Fprintln(w, esc(g))
			}
		})
	case "nodes":
		if len(pos) != 0 {
			return usageErr("usage: roster %s", synopsis)
		}
		ns, err := c.Nodes(ctx)
		if err != nil {
			return err
		}
		return out.print(map[string]any{"nodes": orEmpty(ns)}, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATE\tINCARNATION\tADDR\tHTTP\tSCOPES")
			for _, n := range ns {
				name := esc(n.Name)
				if n.Self {
					name += " (self)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\n", name, esc(n.State), n.Incarnation, esc(n.Addr), esc(cmp.Or(n.HTTPAddr, "-")), escList(n.Scopes, ","))
			}
			tw.Flush()
		})
	case "watch":
		if len(pos) != 0 {
			return usageErr("usage: roster %s", synopsis)
		}
		return watch(ctx, c, o, group, prefix, lastID, stdout)
	}
	return usageErr("unknown command %q", cmd)
}

// watch prints events until interrupted: text lines, or one JSON object per
// line with --json.
func watch(ctx context.Context, c *client.Client, o clientOptions, group, prefix, lastID string, stdout io.Writer) error {
	w, err := c.Watch(ctx, o.scope, group, prefix, lastID)
	if err != nil {
		return err
	}
	defer w.Close()
	enc := json.NewEncoder(stdout)
	for e := range w.C {
		if o.json {
			line := struct {
				ID      string           `json:"id"`
				Type    string           `json:"type"`
				Reason  string           `json:"reason,omitempty"`
				Seq     uint64           `json:"seq"`
				Member  *client.Member   `json:"member,omitempty"`
				Members *[]client.Member `json:"members,omitempty"`
			}{ID: e.ID, Type: string(e.Type), Reason: e.Reason, Seq: e.Seq}
			if e.Type == client.EventSnapshot || e.Type == client.EventResync {
				ms := orEmpty(e.Members)
				line.Members = &ms
			} else {
				line.Member = &e.Member
			}
			if err := enc.Encode(line); err != nil {
				return err
			}
			continue
		}
		switch e.Type {
		case client.EventSnapshot, client.EventResync:
			fmt.Fprintf(stdout, "%s %s: %d members\n", esc(e.ID), esc(string(e.Type)), len(e.Members))
			for _, m := range e.Members {
				fmt.Fprintf(stdout, "  %s/%s@%s%s\n", esc(m.Group), esc(m.ID), esc(m.Owner), metaString(m.Meta, " "))
			}
		default:
			m := e.Member
			fmt.Fprintf(stdout, "%s %s %s/%s@%s (%s)%s\n", esc(e.ID), esc(string(e.Type)), esc(m.Group), esc(m.ID), esc(m.Owner), esc(e.Reason), metaString(m.Meta, " "))
		}
	}
	if err := w.Err(); err != nil {
		return err
	}
	return nil
}

// watchState says on stderr that a watch lost its stream and is
// reconnecting, and when it is back.
func watchState(stderr io.Writer, s client.WatchState) {
	if !s.Connected {
		fmt.Fprintf(stderr, "roster: watch disconnected (%s); reconnecting\n", escapeText(s.Err.Error(), false))
		return
	}
	if s.LastEventID == "" {
		fmt.Fprintln(stderr, "roster: watch reconnected, starting again with a snapshot")
		return
	}
	fmt.Fprintf(stderr, "roster: watch reconnected, resuming after event %s\n", esc(s.LastEventID))
}

const sessionUsage = `usage: roster session create [--ttl 15s]      start a session; prints its id
       roster session keepalive [--every D] ID  refresh it (once, or every D until interrupted)
       roster session close ID                  end it now; its members leave
       roster session list                      the node's live sessions, by fingerprint
       roster session get ID                    one session's TTL and expiry
Run "roster session <command> -h" for the flags of a command.
`

// sessionSynopses are the synopses of roster session's commands.
var sessionSynopses = map[string]string{
	"create":    "session create [--ttl 15s] [flags]",
	"keepalive": "session keepalive [--every D] [flags] ID",
	"close":     "session close [flags] ID",
	"list":      "session list [flags]",
	"get":       "session get [flags] ID",
}

// runSession runs roster session create|keepalive|close|list|get.
func runSession(args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) > 0 && isHelp(args[0]):
		fmt.Fprint(stdout, sessionUsage)
		return nil
	case len(args) == 0 || strings.HasPrefix(args[0], "-"):
		return usageErr("%s", strings.TrimSuffix(sessionUsage, "\n"))
	}
	sub, args := args[0], args[1:]
	synopsis, ok := sessionSynopses[sub]
	if !ok {
		return unknownSub("session", sub)
	}
	var o clientOptions
	fs := newFlagSet("session "+sub, synopsis, stdout)
	o.register(fs, false)
	var ttl, every time.Duration
	switch sub {
	case "create":
		fs.DurationVar(&ttl, "ttl", 15*time.Second, "session time to live without keep-alive")
	case "keepalive":
		fs.DurationVar(&every, "every", 0, "keep refreshing at this `interval` until interrupted (0: once)")
	}
	pos, c, ctx, stop, err := o.prepare(fs, args)
	if err != nil {
		return err
	}
	defer stop()
	defer c.CloseIdleConnections()
	wantID := sub == "keepalive" || sub == "close" || sub == "get"
	if wantID && len(pos) != 1 || !wantID && len(pos) != 0 {
		return usageErr("usage: roster %s", synopsis)
	}
	call := func(f func(ctx context.Context) error) error {
		cctx, cancel := context.WithTimeout(ctx, o.timeout)
		defer cancel()
		return f(cctx)
	}
	out := printer{w: stdout, json: o.json}
	switch sub {
	case "create":
		var s client.Session
		if err := call(func(ctx context.Context) (err error) { s, err = c.CreateSession(ctx, ttl); return }); err != nil {
			return err
		}
		return out.print(sessionJSON(s), func(w io.Writer) { fmt.Fprintln(w, esc(s.ID)) })
	case "keepalive":
		return keepAlive(ctx, c, pos[0], every, o.timeout, out, stderr)
	case "get":
		var s client.Session
		if err := call(func(ctx context.Context) (err error) { s, err = c.GetSession(ctx, pos[0]); return }); err != nil {
			return err
		}
		return out.print(sessionJSON(s), func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "id\t%s\n", esc(s.ID))
			fmt.Fprintf(tw, "fingerprint\t%s\n", esc(s.Fingerprint))
			fmt.Fprintf(tw, "ttl\t%v\n", s.TTL)
			fmt.Fprintf(tw, "expires\t%s (in %v)\n", s.Expires.Local().Format(time.RFC3339), time.Until(s.Expires).Round(time.Second))
			tw.Flush()
		})
	case "list":
		var ss []client.Session
		if err := call(func(ctx context.Context) (err error) { ss, err = c.Sessions(ctx); return }); err != nil {
			return err
		}
		list := make([]map[string]any, len(ss))
		for i, s := range ss {
			list[i] = sessionJSON(s)
		}
		return out.print(map[string]any{"sessions": list}, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FINGERPRINT\tTTL\tEXPIRES")
			for _, s := range ss {
				fmt.Fprintf(tw, "%s\t%v\t%s\n", esc(s.Fingerprint), s.TTL, s.Expires.Local().Format(time.RFC3339))
			}
			tw.Flush()
		})
	default: // close
		if err := call(func(ctx context.Context) error { return c.CloseSession(ctx, pos[0]) }); err != nil {
			return err
		}
		return out.print(map[string]string{"closed": pos[0]}, func(w io.Writer) { fmt.Fprintf(w, "closed %s\n", esc(pos[0])) })
	}
}

// sessionJSON is a session as --json prints it; the id only where the
// node answered it (a listing names sessions by fingerprint).
func sessionJSON(s client.Session) map[string]any {
	m := map[string]any{"fingerprint": s.Fingerprint, "ttl": s.TTL.String(), "expires": s.Expires}
	if s.ID != "" {
		m["id"] = s.ID
	}
	return m
}

// keepAlive refreshes session id once (every 0) or every interval until
// interrupted. A failed refresh that may be transient (the node is
// restarting or unreachable, a 5xx answer) is retried with backoff, from
// a fraction of the interval up to the interval: sessions survive a
// restart of their node, so the keep-alive must too. It ends with an error
// only when the session is really gone (404) or the request is refused for
// good (another 4xx, e.g. a bad token).
func keepAlive(ctx context.Context, c *client.Client, id string, every, timeout time.Duration, out printer, stderr io.Writer) error {
	first := min(max(every/8, 100*time.Millisecond), time.Second)
	backoff := first
	for {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		s, err := c.KeepAlive(cctx, id)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, client.ErrSessionNotFound):
			return fmt.Errorf("session %s is gone (expired or closed; its members have left): %w", id, err)
		case err != nil && (every <= 0 || !transient(err)):
			return err
		case err != nil:
			fmt.Fprintf(stderr, "roster: keep-alive of %s failed, retrying in %v: %s\n", esc(id), backoff, escapeText(err.Error(), false))
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(backoff*2, every)
			continue
		}
		backoff = first
		if err := out.print(sessionJSON(s), func(w io.Writer) {
			fmt.Fprintf(w, "%s expires %s\n", esc(s.ID), s.Expires.Local().Format(time.RFC3339))
		}); err != nil {
			return err
		}
		if every <= 0 {
			return nil
		}
		if !sleep(ctx, every) {
			return nil
		}
	}
}

// transient reports whether a failed request may succeed if retried: no
// answer at all (connection refused or reset, timeout), or a 5xx, 408 or
// 429 answer.
func transient(err error) bool {
	var e *client.Error
	if !errors.As(err, &e) {
		return true
	}
	return e.Status >= 500 || e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests
}

// sleep waits d; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runWait runs roster wait --ready: it polls /readyz until the node is
// ready (exit 0) or the timeout passes (exit 1), for scripts that start
// nodes and then use them.
func runWait(args []string, stdout, stderr io.Writer) error {
	var o clientOptions
	fs := newFlagSet("wait", "wait --ready [--timeout 30s] [flags]", stdout)
	o.registerConn(fs)
	var ready bool
	var interval time.Duration
	fs.BoolVar(&ready, "ready", false, "wait until the node is ready (/readyz answers 200: joined, caught up, storage healthy)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this long")
	fs.DurationVar(&interval, "interval", 200*time.Millisecond, "poll interval")
	pos, c, ctx, stop, err := o.prepare(fs, args)
	if err != nil {
		return err
	}
	defer stop()
	if len(pos) != 0 || !ready {
		return usageErr("usage: roster wait --ready [--timeout 30s] [--addr host:port]")
	}
	if interval <= 0 || o.timeout <= 0 {
		return usageErr("--interval and --timeout must be positive")
	}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	for {
		rctx, rcancel := context.WithTimeout(ctx, max(interval, time.Second))
		err := c.Readiness(rctx)
		rcancel()
		if err == nil {
			fmt.Fprintf(stdout, "%s is ready\n", c.BaseURL())
			return nil
		}
		if !sleep(ctx, interval) {
			return fmt.Errorf("%s not ready after %v: %w", c.BaseURL(), o.timeout, err)
		}
	}
}

// printer prints a value as JSON or with a text function.
type printer struct {
	w    io.Writer
	json bool
}

func (p printer) print(v any, text func(io.Writer)) error {
	if p.json {
		enc := json.NewEncoder(p.w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(p.w)
	return nil
}

// metaString renders metadata as sorted k=v pairs after lead.
func metaString(m map[string]string, lead string) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = esc(k) + "=" + esc(m[k])
	}
	return lead + strings.Join(parts, " ")
}

// escList escapes each of names and joins them with sep.
func escList(names []string, sep string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = esc(n)
	}
	return strings.Join(out, sep)
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
