package server_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roster-io/roster/registry"
	"github.com/roster-io/roster/server"
	"github.com/stretchr/testify/require"
)

// startRouted starts n nodes like startClusterWith, each advertising the
// address of its HTTP API (startNodes, routed).
func startRouted(t *testing.T, n int, editReg func(i int, c *registry.Config), edit func(*server.Config)) []*node {
	t.Helper()
	return startNodes(t, n, true, editReg, edit)
}

// owners returns the "owners" of an error answer as name@http_addr(state).
func owners(r response) []string {
	e, _ := r.body["error"].(map[string]any)
	os, _ := e["owners"].([]any)
	var out []string
	for _, o := range os {
		m := o.(map[string]any)
		out = append(out, fmt.Sprintf("%s@%s(%s)", m["name"], m["http_addr"], m["state"]))
	}
	return out
}

func message(r response) string {
	e, _ := r.body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// TestForwardToOwner: behind a load balancer a request lands anywhere; a
// node forwards a leave, a session's get, keep-alive and close, and a
// join into a session to the node that holds them, one hop, with the
// token, and the answer is the owner's.
func TestForwardToOwner(t *testing.T) {
	const tok = "Authorization: Bearer s3cret"
	nodes := startRouted(t, 3, nil, func(c *server.Config) { c.Token = "s3cret" })
	n0, n1, n2 := nodes[0], nodes[1], nodes[2]

	// /v1/nodes shows every node's HTTP address, on every node.
	for _, nd := range nodes {
		r := nd.call(t, "GET", "/v1/nodes", nil, tok)
		require.Equal(t, http.StatusOK, r.status, r.raw)
		got := map[string]any{}
		for _, x := range r.body["nodes"].([]any) {
			m := x.(map[string]any)
			got[m["name"].(string)] = m["http_addr"]
		}
		require.Equal(t, map[string]any{"n0": n0.url, "n1": n1.url, "n2": n2.url}, got)
	}

	r := n0.call(t, "POST", "/v1/sessions", map[string]any{"ttl": "30s"}, tok)
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	sid := r.body["id"].(string)
	before, err := n0.reg.GetSession(sid)
	require.NoError(t, err)

	time.Sleep(20 * time.Millisecond)
	r = n1.call(t, "PUT", "/v1/sessions/"+sid, nil, tok)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, "n0", r.header.Get(server.HeaderForwardedTo))
	require.Equal(t, sid, r.body["id"])
	after, err := n0.reg.GetSession(sid)
	require.NoError(t, err)
	require.True(t, after.Expires.After(before.Expires), "the keep-alive reached n0")

	r = n2.call(t, "GET", "/v1/sessions/"+sid, nil, tok)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, "n0", r.header.Get(server.HeaderForwardedTo))

	// A join into n0's session sent to n1 joins on n0 (the body is passed on).
	const member = "/v1/scopes/default/groups/room/members/"
	r = n1.call(t, "PUT", member+"s1", map[string]any{"session": sid, "meta": map[string]string{"k": "v"}}, tok)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, "n0", r.body["owner"])
	require.Equal(t, sid, r.body["session"])
	local, err := n0.reg.LocalMembers("default", "room")
	require.NoError(t, err)
	require.Len(t, local, 1)
	require.Equal(t, registry.Meta{"k": "v"}, local[0].Meta)

	// A leave sent to another node reaches the owner, whatever the id
	// holds (escaped in the path).
	for _, id := range []string{"plain", "with/slash and space", "ümlaut%"} {
		r = n0.call(t, "PUT", member+url.PathEscape(id), nil, tok)
		require.Equal(t, http.StatusOK, r.status, r.raw)
		require.Eventually(t, func() bool {
			owners, err := n2.reg.Owners("default", "room", id)
			return err == nil && len(owners) == 1
		}, wait, 5*time.Millisecond, "%q replicated to n2", id)
		r = n2.call(t, "DELETE", member+url.PathEscape(id), nil, tok)
		require.Equal(t, http.StatusNoContent, r.status, "%q: %s", id, r.raw)
		require.Equal(t, "n0", r.header.Get(server.HeaderForwardedTo))
		_, held := n0.reg.Lifetime("default", "room", id)
		require.False(t, held, "%q left on n0", id)
	}

	// Closing through n1 closes on n0; after that n1 still sends it
	// there, and n0's own answer comes back.
	r = n1.call(t, "DELETE", "/v1/sessions/"+sid, nil, tok)
	require.Equal(t, http.StatusNoContent, r.status, r.raw)
	_, err = n0.reg.GetSession(sid)
	require.ErrorIs(t, err, registry.ErrNoSession)
	r = n1.call(t, "PUT", "/v1/sessions/"+sid, nil, tok)
	require.Equal(t, http.StatusNotFound, r.status, r.raw)
	require.Equal(t, "session_not_found", r.code())
	require.Equal(t, "n0", r.header.Get(server.HeaderForwardedTo))
	require.Empty(t, owners(r), "n0 does not point at itself")

	m := opsCounted(t, n1, tok)
	require.Equal(t, 2, m[`code="forwarded",op="session_keepalive"`], "n1 counts what it forwarded")
	require.Equal(t, 1, m[`code="forwarded",op="join"`])
	require.Equal(t, 1, m[`code="forwarded",op="session_close"`])
	require.Equal(t, 3, opsCounted(t, n2, tok)[`code="forwarded",op="leave"`])
	require.Equal(t, 3, opsCounted(t, n0, tok)[`code="ok",op="leave"`], "n0 did the leaves")
}

// opsCounted reads roster_operations_total from nd's /metrics as
// labels -> count.
func opsCounted(t *testing.T, nd *node, auth string) map[string]int {
	t.Helper()
	r := nd.call(t, "GET", "/metrics", nil, auth)
	require.Equal(t, http.StatusOK, r.status)
	out := map[string]int{}
	for _, line := range strings.Split(r.raw, "\n") {
		labels, ok := strings.CutPrefix(line, "roster_operations_total{")
		if !ok {
			continue
		}
		labels, count, _ := strings.Cut(labels, "} ")
		n, err := strconv.Atoi(count)
		require.NoError(t, err, line)
		out[labels] = n
	}
	return out
}

// TestForwardNotTwice: a request that was forwarded once is answered
// where it lands, naming the owner (no loops, whatever the nodes
// believe); so is one about a member several nodes hold. Nothing changes.
func TestForwardNotTwice(t *testing.T) {
	nodes := startRouted(t, 3, nil, nil)
	n0, n1, n2 := nodes[0], nodes[1], nodes[2]
	const member = "/v1/scopes/default/groups/room/members/"
	require.Equal(t, http.StatusOK, n0.call(t, "PUT", member+"mine", nil).status)
	require.Equal(t, http.StatusOK, n0.call(t, "PUT", member+"dup", nil).status)
	require.Equal(t, http.StatusOK, n1.call(t, "PUT", member+"dup", nil).status)
	require.Eventually(t, func() bool { return len(n2.members(t, "default", "room")) == 3 }, wait, 5*time.Millisecond)

	r := n1.call(t, "DELETE", member+"mine", nil, server.HeaderForwardedBy+": n9")
	require.Equal(t, http.StatusConflict, r.status, r.raw)
	require.Equal(t, "not_owner", r.code())
	require.Equal(t, []string{"n0@" + n0.url + "(alive)"}, owners(r))
	require.Contains(t, message(r), `already forwarded once (by "n9")`)
	require.Empty(t, r.header.Get(server.HeaderForwardedTo))

	r = n2.call(t, "DELETE", member+"dup", nil)
	require.Equal(t, http.StatusConflict, r.status, r.raw)
	require.Equal(t, []string{"n0@" + n0.url + "(alive)", "n1@" + n1.url + "(alive)"}, owners(r))
	require.Contains(t, message(r), "more than one owner")

	r = n2.call(t, "DELETE", member+"nobody", nil)
	require.Equal(t, "not_member", r.code(), "nobody's member: nothing to route")
	require.Empty(t, owners(r))
	require.Equal(t, []string{"dup@n0", "dup@n1", "mine@n0"}, n2.members(t, "default", "room"), "nothing changed")
}

// TestForwardOff: with Config.Forward off, the answer names the owner
// and its address instead.
func TestForwardOff(t *testing.T) {
	nodes := startRouted(t, 2, nil, func(c *server.Config) { c.Forward = false })
	n0, n1 := nodes[0], nodes[1]
	r := n0.call(t, "POST", "/v1/sessions", map[string]any{"ttl": "30s"})
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	sid := r.body["id"].(string)
	for _, req := range []struct{ method, path string }{
		{"PUT", "/v1/sessions/" + sid}, {"GET", "/v1/sessions/" + sid}, {"DELETE", "/v1/sessions/" + sid},
	} {
		r = n1.call(t, req.method, req.path, nil)
		require.Equal(t, http.StatusNotFound, r.status, r.raw)
		require.Equal(t, "session_not_found", r.code())
		require.Equal(t, []string{"n0@" + n0.url + "(alive)"}, owners(r), "%s %s", req.method, req.path)
		require.Contains(t, message(r), "not forwarded: forwarding is off")
	}
	r = n1.call(t, "PUT", "/v1/scopes/default/groups/room/members/x", map[string]any{"session": sid})
	require.Equal(t, "session_not_found", r.code())
	require.Equal(t, []string{"n0@" + n0.url + "(alive)"}, owners(r))

	_, err := n0.reg.GetSession(sid)
	require.NoError(t, err, "the session is untouched")
	_, err = n0.reg.Join(context.Background(), "default", "room", "m", nil, registry.Durable())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(n1.members(t, "default", "room")) == 1 }, wait, 5*time.Millisecond)
	r = n1.call(t, "DELETE", "/v1/scopes/default/groups/room/members/m", nil)
	require.Equal(t, http.StatusConflict, r.status, r.raw)
	require.Equal(t, []string{"n0@" + n0.url + "(alive)"}, owners(r))
	require.Contains(t, message(r), `node "n0" at `+n0.url)
}

// TestForwardOwnerUnreachable: an owner whose advertised address does
// not answer gives 502 owner_unreachable naming it; an owner that left
// is named, not tried.
func TestForwardOwnerUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	nodes := startRouted(t, 2, func(i int, c *registry.Config) {
		if i == 0 {
			c.HTTPAddr = dead
		}
	}, nil)
	n0, n1 := nodes[0], nodes[1]
	_, err = n0.reg.Join(context.Background(), "default", "room", "m", nil, registry.Durable())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(n1.members(t, "default", "room")) == 1 }, wait, 5*time.Millisecond)

	r := n1.call(t, "DELETE", "/v1/scopes/default/groups/room/members/m", nil)
	require.Equal(t, http.StatusBadGateway, r.status, r.raw)
	require.Equal(t, "owner_unreachable", r.code())
	require.Equal(t, []string{"n0@" + dead + "(alive)"}, owners(r))

	n0.stop(t) // leaves gracefully: n1 hides its members at once
	require.Eventually(t, func() bool {
		for _, n := range n1.reg.Nodes() {
			if n.Name == "n0" {
				return n.State == "left"
			}
		}
		return false
	}, wait, 5*time.Millisecond)
	r = n1.call(t, "DELETE", "/v1/scopes/default/groups/room/members/m", nil)
	require.Equal(t, http.StatusConflict, r.status, r.raw)
	require.Equal(t, []string{"n0@" + dead + "(left)"}, owners(r))
	require.Contains(t, message(r), "not forwarded: the owner is left")
}
