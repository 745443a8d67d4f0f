// Package client is a Go client for roster's HTTP API (package server, the
// `roster serve` contract): joins and leaves, reads, sessions, cluster view
// and resumable watch streams.
//
//	c, err := client.New("http://127.0.0.1:8080", client.WithToken(token))
//	s, err := c.CreateSession(ctx, 15*time.Second)
//	m, err := c.Join(ctx, "default", "room:42", "conn-1", map[string]string{"addr": "10.0.0.5:4000"}, s.ID)
//	ms, err := c.Members(ctx, "default", "room:42", false)
//	w, err := c.Watch(ctx, "default", "room:42", "", "")
//	for e := range w.C { ... }
//	rs, err := c.Batch(ctx, "default", []client.BatchOp{{Group: "room:42", ID: "conn-2", Session: s.ID}, {Leave: true, Group: "room:42", ID: "conn-1"}})
//
// API errors are *Error values carrying the HTTP status and the API's error
// code; they match the sentinels of this package with errors.Is
// (errors.Is(err, client.ErrNotOwner), errors.Is(err, client.ErrNotFound)).
//
// It owns nothing but HTTP calls; it must not depend on the server or
// registry packages, so that it can be used against any roster node.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/roster-io/roster/apitype"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to one roster node. It is safe for concurrent use.
type Client struct {
	base       *url.URL
	token      string
	hc         *http.Client
	timeout    time.Duration // of every call but Watch
	maxLine    int           // of a watch stream's event
	watchState func(WatchState)
	// batchOps and batchBytes bound one batch request (Batch).
	batchOps, batchBytes int
}

// Defaults of the options.
const (
	// DefaultTimeout bounds every call but Watch (see WithTimeout).
	DefaultTimeout = 30 * time.Second
	// DefaultMaxEventBytes bounds one watch event (see WithMaxEventBytes).
	DefaultMaxEventBytes = 64 << 20
)

// WithTimeout bounds every call but Watch (default DefaultTimeout; the
// call's context may end it sooner). 0 means no bound but the context's.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithMaxEventBytes bounds the size of one watch event (its lines
// together; a snapshot is one event). A larger one ends the watch with
// ErrEventTooLarge instead of growing memory without bound. Default
// DefaultMaxEventBytes.
func WithMaxEventBytes(n int) Option { return func(c *Client) { c.maxLine = n } }

// Option configures a Client.
type Option func(*Client)

// WithToken sends "Authorization: Bearer <token>" with every request.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient uses hc for every request (TLS settings, proxies,
// transports). Do not set hc.Timeout if you use Watch: it would cut
// streams; WithTimeout bounds the other calls.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// New returns a client for the node at baseURL (e.g. http://127.0.0.1:8080).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("client: base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q: want http(s)://host:port", baseURL)
	}
	c := &Client{base: u, timeout: DefaultTimeout, maxLine: DefaultMaxEventBytes, batchOps: DefaultBatchOps, batchBytes: DefaultBatchBytes}
	for _, o := range opts {
		o(c)
	}
	if c.batchOps < 1 || c.batchBytes < 1 {
		return nil, fmt.Errorf("client: WithBatchLimits(%d, %d): want positive limits", c.batchOps, c.batchBytes)
	}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		c.hc = &http.Client{Transport: tr}
	}
	return c, nil
}

// BaseURL returns the node's base URL.
func (c *Client) BaseURL() string { return c.base.String() }

// Member is a member of a group as a node reports it (the API's shape,
// shared with the server). Its Incarnation, the owner's run, is sent as a
// decimal string; decoding also takes a number, as older nodes sent it.
// Durable, Session and Created are set only in the answer to Join:
// *Created is true when the join created the member, false when it
// updated one the node already owned.
type Member = apitype.Member

// Session is a lease that keeps its members alive while it is kept alive.
type Session struct {
	// ID is the session's only credential: set in the answers to
	// CreateSession, GetSession and KeepAlive, empty in Sessions.
	ID string
	// Fingerprint identifies the session without revealing its ID.
	Fingerprint string
	TTL         time.Duration
	Expires     time.Time
}

// UnmarshalJSON decodes the API's session, {"id","fingerprint","ttl":"15s","expires"}.
func (s *Session) UnmarshalJSON(b []byte) error {
	var raw apitype.Session
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	v, err := sessionFrom(raw)
	*s = v
	return err
}

// sessionFrom converts the API's session, whose TTL is a Go duration
// string.
func sessionFrom(raw apitype.Session) (Session, error) {
	ttl, err := time.ParseDuration(raw.TTL)
	if err != nil {
		return Session{}, fmt.Errorf("session ttl: %w", err)
	}
	return Session{ID: raw.ID, Fingerprint: raw.Fingerprint, TTL: ttl, Expires: raw.Expires}, nil
}

// Node is one node of the cluster as the queried node sees it (the API's
// shape; Incarnation decoded as Member's is).
type Node = apitype.Node

// Join adds the member (group, id) on this node, or updates its metadata
// (the answer's Created says which). With session == "" the member is
// durable (it lives until Leave); otherwise it lives while that session
// does.
func (c *Client) Join(ctx context.Context, scope, group, id string, meta map[string]string, session string) (Member, error) {
	body := apitype.JoinRequest{Meta: meta, Session: session}
	var m Member
	err := c.do(ctx, http.MethodPut, memberPath(scope, group, id), nil, body, &m)
	return m, err
}

// Leave removes the member (group, id), which must be owned by this node.
func (c *Client) Leave(ctx context.Context, scope, group, id string) error {
	return c.do(ctx, http.MethodDelete, memberPath(scope, group, id), nil, nil, nil)
}

// Members lists a group's reachable members on every node, or only this
// node's with local.
func (c *Client) Members(ctx context.Context, scope, group string, local bool) ([]Member, error) {
	var q url.Values
	if local {
		q = url.Values{"local": {"true"}}
	}
	var out apitype.Members
	err := c.do(ctx, http.MethodGet, scopePath(scope)+"/groups/"+url.PathEscape(group)+"/members", q, nil, &out)
	return out.Members, err
}

// Groups lists the scope's groups that have reachable members.
func (c *Client) Groups(ctx context.Context, scope string) ([]string, error) {
	var out apitype.Groups
	err := c.do(ctx, http.MethodGet, scopePath(scope)+"/groups", nil, nil, &out)
	return out.Groups, err
}

// Nodes returns the cluster as the node sees it, itself included.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var out apitype.Nodes
	err := c.do(ctx, http.MethodGet, "/v1/nodes", nil, nil, &out)
	return out.Nodes, err
}

// CreateSession starts a session on this node.
func (c *Client) CreateSession(ctx context.Context, ttl time.Duration) (Session, error) {
	var s Session
	err := c.do(ctx, http.MethodPost, "/v1/sessions", nil, apitype.SessionRequest{TTL: ttl.String()}, &s)
	return s, err
}

// KeepAlive refreshes a session: it now expires its TTL from now.
func (c *Client) KeepAlive(ctx context.Context, id string) (Session, error) {
	var s Session
	err := c.do(ctx, http.MethodPut, "/v1/sessions/"+url.PathEscape(id), nil, nil, &s)
	return s, err
}

// GetSession returns a live session.
func (c *Client) GetSession(ctx context.Context, id string) (Session, error) {
	var s Session
	err := c.do(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(id), nil, nil, &s)
	return s, err
}

// Sessions lists the node's live sessions by fingerprint, without their
// IDs (an ID is a session's credential), reading every page.
func (c *Client) Sessions(ctx context.Context) ([]Session, error) {
	var all []Session
	after := ""
	for {
		var out apitype.Sessions
		q := url.Values{"limit": {"1000"}}
		if after != "" {
			q.Set("after", after)
		}
		if err := c.do(ctx, http.MethodGet, "/v1/sessions", q, nil, &out); err != nil {
			return all, err
		}
		for _, raw := range out.Sessions {
			v, err := sessionFrom(raw)
			if err != nil {
				return all, fmt.Errorf("client: GET /v1/sessions: %w", err)
			}
			all = append(all, v)
		}
		if out.Next == "" || out.Next <= after {
			return all, nil
		}
		after = out.Next
	}
}

// CloseSession ends a session now; its members leave.
func (c *Client) CloseSession(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/sessions/"+url.PathEscape(id), nil, nil, nil)
}

// CloseIdleConnections closes the idle connections of the client's
// transport (for tests and short-lived programs).
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Health returns nil while the node's process serves HTTP.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil, nil)
}

// Ready reports whether the node has joined its cluster and caught up
// (/readyz answers 200). A node that answers 503 is not ready; err is set
// only when the node could not be asked.
func (c *Client) Ready(ctx context.Context) (bool, error) {
	err := c.Readiness(ctx)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusServiceUnavailable {
		return false, nil
	}
	return err == nil, err
}

// Readiness returns nil when the node is ready (/readyz answers 200),
// else why not: an *Error with status 503 and the node's reason (code
// not_ready or storage_failed), or the failure to ask it.
func (c *Client) Readiness(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/readyz", nil, nil, nil)
}

// Metrics returns the node's Prometheus metrics in text format.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	var b bytes.Buffer
	err := c.do(ctx, http.MethodGet, "/metrics", nil, nil, &b)
	return b.String(), err
}

func scopePath(scope string) string { return "/v1/scopes/" + url.PathEscape(scope) }

func memberPath(scope, group, id string) string {
	return scopePath(scope) + "/groups/" + url.PathEscape(group) + "/members/" + url.PathEscape(id)
}

// newRequest builds a request for an escaped path below the base URL.
func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body io.Reader) (*http.Request, error) {
	u := *c.base
	u.RawPath = c.base.EscapedPath() + path
	p, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return nil, fmt.Errorf("client: path %q: %w", path, err)
	}
	u.Path = p
	if q != nil {
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do performs one call. in, when not nil, is sent as JSON; out, when not
// nil, receives the JSON answer (or the raw body for a *bytes.Buffer).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var body io.Reader
	switch v := in.(type) {
	case nil:
	case json.RawMessage: // encoded by the caller
		body = bytes.NewReader(v)
	default:
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return readError(resp)
	}
	switch o := out.(type) {
	case nil:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	case *bytes.Buffer:
		_, err = o.ReadFrom(resp.Body)
	default:
		err = json.NewDecoder(resp.Body).Decode(out)
	}
	if err != nil {
		return fmt.Errorf("client: %s %s: reading the answer: %w", method, path, err)
	}
	return nil
}

// readError turns a non-2xx answer into an *Error.
func readError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body apitype.Error
	e := &Error{Status: resp.StatusCode}
	if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message, e.Owners = body.Error.Code, body.Error.Message, body.Error.Owners
	} else {
		e.Message = strings.TrimSpace(string(b))
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	return e
}

// Error is an error answered by the API.
type Error struct {
	Status  int    // HTTP status
	Code    string // the API's error code, e.g. "not_owner"
	Message string
	// Owners, on not_owner, session_not_found and owner_unreachable when
	// the node knows them: the nodes that hold the member or session,
	// where a client can send the request itself.
	Owners []Owner
}

// Owner names a node that holds a member or a session (the API's shape).
type Owner = apitype.Owner

func (e *Error) Error() string {
	if e.Code == "" {
		return "HTTP " + strconv.Itoa(e.Status) + ": " + e.Message
	}
	return e.Code + " (HTTP " + strconv.Itoa(e.Status) + "): " + e.Message
}

// Is matches the sentinels of this package: an *Error sentinel by code,
// ErrNotFound by status 404.
func (e *Error) Is(target error) bool {
	if target == ErrNotFound {
		return e.Status == http.StatusNotFound
	}
	t, ok := target.(*Error)
	return ok && t.Status == 0 && t.Code != "" && t.Code == e.Code
}

// ErrNotFound matches every 404 answer: unknown scope, member or session,
// or an unknown endpoint.
var ErrNotFound = errors.New("roster: not found")

// Sentinels matching API errors by code (errors.Is(err, ErrNotOwner)).
var (
	ErrInvalidName      = &Error{Code: "invalid_name"}
	ErrInvalidMeta      = &Error{Code: "invalid_meta"}
	ErrInvalidTTL       = &Error{Code: "invalid_ttl"}
	ErrInvalidQuery     = &Error{Code: "invalid_query"}
	ErrBadJSON          = &Error{Code: "bad_json"}
	ErrUnauthorized     = &Error{Code: "unauthorized"}
	ErrUnknownScope     = &Error{Code: "unknown_scope"}
	ErrNotMember        = &Error{Code: "not_member"}
	ErrSessionNotFound  = &Error{Code: "session_not_found"}
	ErrNotOwner         = &Error{Code: "not_owner"}
	ErrOwnerUnreachable = &Error{Code: "owner_unreachable"}
	ErrBodyTooLarge     = &Error{Code: "body_too_large"}
	ErrMethodNotAllowed = &Error{Code: "method_not_allowed"}
	ErrStorageFailed    = &Error{Code: "storage_failed"}
	ErrUnavailable      = &Error{Code: "unavailable"}
	ErrNotReady         = &Error{Code: "not_ready"}
	ErrInternal         = &Error{Code: "internal"}
	ErrBadRequest       = &Error{Code: "bad_request"}
	ErrRequestTimeout   = &Error{Code: "request_timeout"}
	ErrHeadersTooLarge  = &Error{Code: "headers_too_large"}
	ErrTooManySessions  = &Error{Code: "too_many_sessions"}
	ErrTooManyMembers   = &Error{Code: "too_many_members"}
	ErrTooManyGroups    = &Error{Code: "too_many_groups"}
	ErrTooManyWatchers  = &Error{Code: "too_many_watchers"}
	ErrInvalidBatch     = &Error{Code: "invalid_batch"}
	ErrBatchTooLarge    = &Error{Code: "batch_too_large"}
)

// ErrEventTooLarge ends a watch whose node sent an event larger than the
// client's bound (WithMaxEventBytes).
var ErrEventTooLarge = errors.New("roster: watch event too large")
