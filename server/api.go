package server

import (
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/roster-io/roster/apitype"

	"github.com/roster-io/roster/registry/regtype"
)

// join: PUT /v1/scopes/{scope}/groups/{group}/members/{id}. Without a
// session the member is durable. The answer says whether the join created
// the member ("created": true) or updated one the node already owned
// (false); `roster join` prints "joined" or "updated" from it. Two
// concurrent first joins of one member may both say created.
func (s *Server) join(w http.ResponseWriter, r *http.Request) error {
	var req apitype.JoinRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		return err
	}
	scope, group, id := r.PathValue("scope"), r.PathValue("group"), r.PathValue("id")
	opt := regtype.Durable()
	if req.Session != "" {
		opt = regtype.InSession(req.Session)
	}
	_, existed := s.reg.Lifetime(scope, group, id)
	if _, err := s.reg.Join(r.Context(), scope, group, id, req.Meta, opt); err != nil {
		if req.Session != "" && errors.Is(err, regtype.ErrNoSession) {
			return s.toOwner(w, r, err, s.sessionOwners(req.Session))
		}
		return err
	}
	m := toMember(regtype.Member{Group: group, ID: id, Meta: req.Meta, Owner: s.reg.Name(), Incarnation: s.reg.Incarnation(), Confirmed: true})
	created := !existed
	m.Durable, m.Session, m.Created = req.Session == "", req.Session, &created
	writeJSON(w, http.StatusOK, m)
	return nil
}

// leave: DELETE /v1/scopes/{scope}/groups/{group}/members/{id}.
func (s *Server) leave(w http.ResponseWriter, r *http.Request) error {
	scope, group, id := r.PathValue("scope"), r.PathValue("group"), r.PathValue("id")
	if err := s.reg.Leave(r.Context(), scope, group, id); err != nil {
		if errors.Is(err, regtype.ErrNotOwner) {
			return s.toOwner(w, r, err, s.memberOwners(scope, group, id))
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Listing pages of members and groups: at most this many entries each.
const maxListPage = 1000

// members: GET /v1/scopes/{scope}/groups/{group}/members[?local=true]
// [&limit=N[&offset=K]]. With limit, one page of the listing (sorted by id
// then owner) from position offset, and the listing's total.
func (s *Server) members(w http.ResponseWriter, r *http.Request) error {
	local, err := boolParam(r, "local")
	if err != nil {
		return err
	}
	limit, paged, err := intParam(r, "limit", 1, maxListPage)
	if err != nil {
		return err
	}
	offset, hasOffset, err := intParam(r, "offset", 0, math.MaxInt)
	if err != nil {
		return err
	}
	if hasOffset && !paged {
		return errorf(http.StatusBadRequest, CodeInvalidQuery, "offset needs limit")
	}
	scope, group := r.PathValue("scope"), r.PathValue("group")
	if paged {
		page := s.reg.MembersPage
		if local {
			page = s.reg.LocalMembersPage
		}
		ms, total, err := page(scope, group, offset, limit)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, apitype.Members{Members: toMembers(ms), Total: &total})
		return nil
	}
	read := s.reg.Members
	if local {
		read = s.reg.LocalMembers
	}
	ms, err := read(scope, group)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, apitype.Members{Members: toMembers(ms)})
	return nil
}

// groups: GET /v1/scopes/{scope}/groups[?prefix=p][&counts=true]
// [&limit=N[&after=g]]. prefix keeps the groups whose name starts with
// it; counts adds each listed group's number of members; limit answers a
// page of the groups after after (by name), with the number of groups
// matching prefix (total) and, when more follow, the after= of the next
// page (next).
func (s *Server) groups(w http.ResponseWriter, r *http.Request) error {
	prefix, after := queryParam(r, "prefix"), queryParam(r, "after")
	counts, err := boolParam(r, "counts")
	if err != nil {
		return err
	}
	limit, paged, err := intParam(r, "limit", 1, maxListPage)
	if err != nil {
		return err
	}
	if after != "" && !paged {
		return errorf(http.StatusBadRequest, CodeInvalidQuery, "after needs limit")
	}
	sizes, err := s.reg.GroupSizes(r.PathValue("scope"))
	if err != nil {
		return err
	}
	if prefix != "" {
		lo, _ := slices.BinarySearchFunc(sizes, prefix, func(g regtype.GroupSize, p string) int { return strings.Compare(g.Name, p) })
		hi := lo
		for hi < len(sizes) && strings.HasPrefix(sizes[hi].Name, prefix) {
			hi++
		}
		sizes = sizes[lo:hi]
	}
	out := apitype.Groups{Groups: []string{}}
	if paged {
		total := len(sizes)
		out.Total = &total
		from, _ := slices.BinarySearchFunc(sizes, after, func(g regtype.GroupSize, a string) int { return strings.Compare(g.Name, a) })
		if from < len(sizes) && sizes[from].Name == after {
			from++
		}
		sizes = sizes[from:]
		if len(sizes) > limit {
			sizes = sizes[:limit]
			out.Next = sizes[limit-1].Name
		}
	}
	if counts {
		out.Counts = make(map[string]int, len(sizes))
	}
	for _, g := range sizes {
		out.Groups = append(out.Groups, g.Name)
		if counts {
			out.Counts[g.Name] = g.Members
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// createSession: POST /v1/sessions {"ttl":"15s"}.
func (s *Server) createSession(w http.ResponseWriter, r *http.Request) error {
	var req apitype.SessionRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		return err
	}
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		return err
	}
	sess, err := s.reg.CreateSession(r.Context(), ttl)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/sessions/"+sess.ID)
	writeJSON(w, http.StatusCreated, toSession(sess))
	return nil
}

// parseTTL accepts a Go duration string or a number of seconds.
func parseTTL(v any) (time.Duration, error) {
	bad := func(format string, args ...any) error {
		return errorf(http.StatusBadRequest, CodeInvalidTTL, "ttl: "+format+" (want a duration like \"15s\" between %v and %v)",
			append(args, regtype.MinSessionTTL, regtype.MaxSessionTTL)...)
	}
	var d time.Duration
	switch t := v.(type) {
	case nil:
		return 0, bad("missing")
	case string:
		var err error
		if d, err = time.ParseDuration(t); err != nil {
			return 0, bad("%q is not a duration", t)
		}
	case float64:
		if t <= 0 || t > regtype.MaxSessionTTL.Seconds() {
			return 0, bad("%v seconds out of range", t)
		}
		d = time.Duration(t * float64(time.Second))
	default:
		return 0, bad("must be a string or a number of seconds")
	}
	if d < regtype.MinSessionTTL || d > regtype.MaxSessionTTL {
		return 0, bad("%v out of range", d)
	}
	return d, nil
}

// Session listing pages.
const (
	defaultSessionsPage = 100
	maxSessionsPage     = 1000
)

// listSessions: GET /v1/sessions[?limit=N][&after=FINGERPRINT]. Sessions
// are listed by fingerprint, without their ids (an id is the session's
// credential), a page at a time.
func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) error {
	limit, set, err := intParam(r, "limit", 1, maxSessionsPage)
	if err != nil {
		return err
	}
	if !set {
		limit = defaultSessionsPage
	}
	after := queryParam(r, "after")
	ss := s.reg.Sessions()
	page := make([]apitype.Session, 0, min(limit, len(ss)))
	all := make([]apitype.Session, 0, len(ss))
	for _, x := range ss {
		if j := toSession(x); j.Fingerprint > after {
			j.ID = ""
			all = append(all, j)
		}
	}
	slices.SortFunc(all, func(a, b apitype.Session) int { return strings.Compare(a.Fingerprint, b.Fingerprint) })
	out := apitype.Sessions{}
	if len(all) > limit {
		all = all[:limit]
		out.Next = all[limit-1].Fingerprint
	}
	out.Sessions = append(page, all...)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getSession: GET /v1/sessions/{id}.
func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.reg.GetSession(r.PathValue("id"))
	if err != nil {
		return s.sessionElsewhere(w, r, err)
	}
	writeJSON(w, http.StatusOK, toSession(sess))
	return nil
}

// keepAlive: PUT /v1/sessions/{id}.
func (s *Server) keepAlive(w http.ResponseWriter, r *http.Request) error {
	sess, err := s.reg.KeepAlive(r.Context(), r.PathValue("id"))
	if err != nil {
		return s.sessionElsewhere(w, r, err)
	}
	writeJSON(w, http.StatusOK, toSession(sess))
	return nil
}

// closeSession: DELETE /v1/sessions/{id}.
func (s *Server) closeSession(w http.ResponseWriter, r *http.Request) error {
	if err := s.reg.CloseSession(r.Context(), r.PathValue("id")); err != nil {
		return s.sessionElsewhere(w, r, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// sessionElsewhere handles the error of a request for session {id}: a
// session this node does not hold may be another node's (forward.go).
func (s *Server) sessionElsewhere(w http.ResponseWriter, r *http.Request, err error) error {
	if errors.Is(err, regtype.ErrNoSession) {
		return s.toOwner(w, r, err, s.sessionOwners(r.PathValue("id")))
	}
	return err
}

// nodes: GET /v1/nodes, with each node's advertised HTTP address. Each
// peer that has sent this node an anti-entropy digest carries its
// divergence: per scope, how many operations its last digest lacked of
// this node's (behind) and held that this node lacks (ahead), and the
// digest's age.
func (s *Server) nodes(w http.ResponseWriter, r *http.Request) error {
	ns := s.reg.Nodes()
	div := s.reg.Divergence()
	out := apitype.Nodes{Nodes: make([]apitype.Node, len(ns))}
	for i, n := range ns {
		scopes := n.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		out.Nodes[i] = apitype.Node{Name: n.Name, Incarnation: n.Incarnation, State: string(n.State), Scopes: scopes, Addr: n.Addr, HTTPAddr: n.HTTPAddr, Self: n.Self}
		if n.Self {
			continue
		}
		for _, d := range div[n.Name] {
			out.Nodes[i].Divergence = append(out.Nodes[i].Divergence, apitype.Divergence{Scope: d.Scope, Behind: d.Behind, Ahead: d.Ahead, AgeMS: d.Age.Milliseconds()})
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// readyz: 200 once the registry has joined and caught up, 503 before that,
// while storage is failing and while shutting down.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.reg.StorageHealth(); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, apitype.Error{Error: apitype.ErrorBody{Code: CodeStorageFailed, Message: "storage is failing: " + err.Error()}})
		return
	}
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, apitype.Error{Error: apitype.ErrorBody{Code: CodeNotReady, Message: "shutting down"}})
		return
	}
	if !s.reg.Ready() {
		writeJSON(w, http.StatusServiceUnavailable, apitype.Error{Error: apitype.ErrorBody{Code: CodeNotReady, Message: "not joined or not caught up yet"}})
		return
	}
	writeJSON(w, http.StatusOK, apitype.Status{Status: "ready"})
}

// intParam parses an optional integer query parameter in [lo, hi]; set is
// false when it is absent.
func intParam(r *http.Request, name string, lo, hi int) (v int, set bool, err error) {
	q := queryParam(r, name)
	if q == "" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < lo || n > hi {
		if hi == math.MaxInt {
			return 0, false, errorf(http.StatusBadRequest, CodeInvalidQuery, "%s=%q: want a number from %d", name, q, lo)
		}
		return 0, false, errorf(http.StatusBadRequest, CodeInvalidQuery, "%s=%q: want a number in [%d, %d]", name, q, lo, hi)
	}
	return n, true, nil
}

// queryParam returns the query parameter name of r ("" when absent).
// Handlers read query parameters only through it (and boolParam, intParam), with a
// literal name, so that the OpenAPI test can list them.
func queryParam(r *http.Request, name string) string {
	return r.URL.Query().Get(name)
}

// boolParam parses an optional boolean query parameter.
func boolParam(r *http.Request, name string) (bool, error) {
	v := queryParam(r, name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errorf(http.StatusBadRequest, CodeInvalidQuery, "%s=%q is not a boolean", name, v)
	}
	return b, nil
}
