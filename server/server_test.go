package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roster-io/roster/registry"
	"github.com/roster-io/roster/server"
	"github.com/stretchr/testify/require"
)

const member = "/v1/scopes/default/groups/room/members/"

func TestEndpoints(t *testing.T) {
	ns := startCluster(t, 3, nil)
	a, b, c := ns[0], ns[1], ns[2]

	r := a.call(t, "PUT", member+"alice", map[string]any{"meta": map[string]string{"addr": "10.0.0.1:1"}})
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, true, r.body["created"], "a new member: %s", r.raw)
	delete(r.body, "created")
	require.Equal(t, map[string]any{
		"id": "alice", "group": "room", "meta": map[string]any{"addr": "10.0.0.1:1"}, "owner": "n0",
		// A string: incarnations exceed 2^53, beyond exact JSON numbers.
		"incarnation": strconv.FormatUint(a.reg.Incarnation(), 10), "confirmed": true, "durable": true,
	}, r.body)
	life, ok := a.reg.Lifetime("default", "room", "alice")
	require.True(t, ok)
	require.True(t, life.Durable, "a join without a session is durable")

	// An empty body joins without metadata.
	r = b.call(t, "PUT", member+"bob", nil)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, map[string]any{}, r.body["meta"])
	// The same id on another owner is another member.
	require.Equal(t, http.StatusOK, c.call(t, "PUT", member+"alice", "{}").status)

	for _, nd := range ns {
		require.Eventually(t, func() bool {
			return strings.Join(nd.members(t, "default", "room"), ",") == "alice@n0,alice@n2,bob@n1"
		}, wait, 10*time.Millisecond, "replicated to %s", nd.reg.Name())
	}
	require.Equal(t, []string{"bob@n1"}, memberIDs(t, b.call(t, "GET", "/v1/scopes/default/groups/room/members?local=true", nil)))
	require.Equal(t, []string{}, memberIDs(t, b.call(t, "GET", "/v1/scopes/chat/groups/room/members", nil)))
	r = c.call(t, "GET", "/v1/scopes/default/groups", nil)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, []any{"room"}, r.body["groups"])
	require.Equal(t, []any{}, c.call(t, "GET", "/v1/scopes/chat/groups", nil).body["groups"])

	// Metadata update: the answer says it created nothing.
	r = a.call(t, "PUT", member+"alice", `{"meta":{"status":"away"}}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, false, r.body["created"], "an update: %s", r.raw)
	require.Eventually(t, func() bool {
		ms, _ := c.reg.Members("default", "room")
		return len(ms) == 3 && ms[0].Meta["status"] == "away"
	}, wait, 10*time.Millisecond)

	// Leave: only on the owner.
	r = a.call(t, "DELETE", member+"bob", nil)
	require.Equal(t, http.StatusConflict, r.status)
	require.Equal(t, "not_owner", r.code())
	r = a.call(t, "DELETE", member+"nobody", nil)
	require.Equal(t, http.StatusNotFound, r.status)
	require.Equal(t, "not_member", r.code())
	require.Equal(t, http.StatusNoContent, b.call(t, "DELETE", member+"bob", nil).status)
	require.Eventually(t, func() bool {
		return strings.Join(a.members(t, "default", "room"), ",") == "alice@n0,alice@n2"
	}, wait, 10*time.Millisecond)
	r = b.call(t, "DELETE", member+"bob", nil)
	require.Equal(t, "not_member", r.code(), "leaving twice")

	// Cluster view.
	r = b.call(t, "GET", "/v1/nodes", nil)
	require.Equal(t, http.StatusOK, r.status)
	nodes := r.body["nodes"].([]any)
	require.Len(t, nodes, 3)
	for i, x := range nodes {
		n := x.(map[string]any)
		require.Equal(t, fmt.Sprintf("n%d", i), n["name"])
		require.Equal(t, "alive", n["state"])
		require.Equal(t, i == 1, n["self"])
		require.Equal(t, []any{"chat", "default"}, n["scopes"])
		require.NotEmpty(t, n["addr"])
		require.Equal(t, strconv.FormatUint(ns[i].reg.Incarnation(), 10), n["incarnation"])
	}

	// Health, readiness, unknown endpoints and methods.
	require.Equal(t, http.StatusOK, a.call(t, "GET", "/healthz", nil).status)
	require.Equal(t, http.StatusOK, a.call(t, "GET", "/readyz", nil).status)
	r = a.call(t, "GET", "/v2/nothing", nil)
	require.Equal(t, http.StatusNotFound, r.status)
	require.Equal(t, "not_found", r.code())
	r = a.call(t, "POST", member+"x", "{}")
	require.Equal(t, http.StatusMethodNotAllowed, r.status)
	require.Equal(t, "method_not_allowed", r.code())
	require.Equal(t, "PUT, DELETE", r.header.Get("Allow"))

	// Ids are opaque: slashes and spaces survive path escaping.
	require.Equal(t, http.StatusOK, a.call(t, "PUT", "/v1/scopes/default/groups/a%2Fb/members/c%20d%2Fe", nil).status)
	ms, err := a.reg.Members("default", "a/b")
	require.NoError(t, err)
	require.Len(t, ms, 1)
	require.Equal(t, "c d/e", ms[0].ID)
}

func TestBadInputChangesNothing(t *testing.T) {
	ns := startCluster(t, 2, nil)
	a, b := ns[0], ns[1]
	require.Equal(t, http.StatusOK, b.call(t, "PUT", member+"bob", nil).status)
	sess := b.call(t, "POST", "/v1/sessions", `{"ttl":"1m"}`)
	require.Equal(t, http.StatusCreated, sess.status)
	require.Eventually(t, func() bool { return len(a.members(t, "default", "room")) == 1 }, wait, 10*time.Millisecond)

	metaPairs := map[string]string{}
	for i := range 65 {
		metaPairs[fmt.Sprintf("k%02d", i)] = "v"
	}
	cases := []struct {
		name, method, path string
		body               any
		headers            []string
		status             int
		code               string
	}{
		{"long id", "PUT", member + strings.Repeat("x", 256), nil, nil, 400, "invalid_name"},
		{"invalid UTF-8 group", "PUT", "/v1/scopes/default/groups/%FF/members/x", nil, nil, 400, "invalid_name"},
		{"long group read", "GET", "/v1/scopes/default/groups/" + strings.Repeat("g", 300) + "/members", nil, nil, 400, "invalid_name"},
		{"oversized body", "PUT", member + "x", `{"meta":{"k":"` + strings.Repeat("v", 70<<10) + `"}}`, nil, 413, "body_too_large"},
		{"invalid JSON", "PUT", member + "x", `{"meta":`, nil, 400, "bad_json"},
		{"not an object", "PUT", member + "x", `[1,2]`, nil, 400, "bad_json"},
		{"unknown field", "PUT", member + "x", `{"metadata":{}}`, nil, 400, "bad_json"},
		{"trailing data", "PUT", member + "x", `{} {}`, nil, 400, "bad_json"},
		{"meta value not a string", "PUT", member + "x", `{"meta":{"a":1}}`, nil, 400, "invalid_meta"},
		{"meta too many pairs", "PUT", member + "x", map[string]any{"meta": metaPairs}, nil, 400, "invalid_meta"},
		{"meta too large", "PUT", member + "x", map[string]any{"meta": map[string]string{"k": strings.Repeat("v", 5000)}}, nil, 400, "invalid_meta"},
		{"meta empty key", "PUT", member + "x", `{"meta":{"":"v"}}`, nil, 400, "invalid_meta"},
		{"unknown scope join", "PUT", "/v1/scopes/nope/groups/room/members/x", nil, nil, 404, "unknown_scope"},
		{"unknown scope members", "GET", "/v1/scopes/nope/groups/room/members", nil, nil, 404, "unknown_scope"},
		{"unknown scope groups", "GET", "/v1/scopes/nope/groups", nil, nil, 404, "unknown_scope"},
		{"unknown scope watch", "GET", "/v1/scopes/nope/watch", nil, nil, 404, "unknown_scope"},
		{"leave on a non-owner", "DELETE", member + "bob", nil, nil, 409, "not_owner"},
		{"leave absent", "DELETE", member + "zed", nil, nil, 404, "not_member"},
		{"join in unknown session", "PUT", member + "x", `{"session":"nope"}`, nil, 404, "session_not_found"},
		{"keep-alive unknown session", "PUT", "/v1/sessions/nope", nil, nil, 404, "session_not_found"},
		{"close unknown session", "DELETE", "/v1/sessions/nope", nil, nil, 404, "session_not_found"},
		{"get unknown session", "GET", "/v1/sessions/nope", nil, nil, 404, "session_not_found"},
		{"TTL too short", "POST", "/v1/sessions", `{"ttl":"1ms"}`, nil, 400, "invalid_ttl"},
		{"TTL too long", "POST", "/v1/sessions", `{"ttl":"25h"}`, nil, 400, "invalid_ttl"},
		{"TTL not a duration", "POST", "/v1/sessions", `{"ttl":"soon"}`, nil, 400, "invalid_ttl"},
		{"TTL negative seconds", "POST", "/v1/sessions", `{"ttl":-5}`, nil, 400, "invalid_ttl"},
		{"TTL missing", "POST", "/v1/sessions", `{}`, nil, 400, "invalid_ttl"},
		{"TTL wrong type", "POST", "/v1/sessions", `{"ttl":true}`, nil, 400, "invalid_ttl"},
		{"session bad JSON", "POST", "/v1/sessions", `{"ttl":`, nil, 400, "bad_json"},
		{"bad local flag", "GET", "/v1/scopes/default/groups/room/members?local=maybe", nil, nil, 400, "invalid_query"},
		{"watch group and prefix", "GET", "/v1/scopes/default/watch?group=a&prefix=b", nil, nil, 400, "invalid_query"},
		{"watch bad group", "GET", "/v1/scopes/default/watch?group=%FF", nil, nil, 400, "invalid_name"},
		{"method", "PATCH", "/v1/sessions", nil, nil, 405, "method_not_allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := a.call(t, tc.method, tc.path, tc.body, tc.headers...)
			require.Equal(t, tc.status, r.status, r.raw)
			require.Equal(t, tc.code, r.code(), r.raw)
			msg, _ := r.body["error"].(map[string]any)["message"].(string)
			require.NotEmpty(t, msg)
		})
	}
	// Nothing changed anywhere.
	time.Sleep(300 * time.Millisecond) // > anti-entropy interval
	for _, nd := range ns {
		require.Equal(t, []string{"bob@n1"}, nd.members(t, "default", "room"))
		gs, err := nd.reg.Groups("default")
		require.NoError(t, err)
		require.Equal(t, []string{"room"}, gs)
	}
	require.Empty(t, a.reg.Sessions())
	require.Len(t, b.reg.Sessions(), 1)
}

func TestAuth(t *testing.T) {
	ns := startCluster(t, 1, func(c *server.Config) { c.Token = "s3cret" })
	a := ns[0]
	for _, path := range []string{"/v1/nodes", "/metrics", "/v1/scopes/default/groups", "/v1/scopes/default/watch"} {
		for _, hdr := range [][]string{nil, {"Authorization: Bearer wrong"}, {"Authorization: s3cret"}, {"Authorization: Basic czNjcmV0"}} {
			r := a.call(t, "GET", path, nil, hdr...)
			require.Equal(t, http.StatusUnauthorized, r.status, "%s %v", path, hdr)
			require.Equal(t, "unauthorized", r.code())
			require.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
		}
	}
	r := a.call(t, "PUT", member+"x", nil)
	require.Equal(t, http.StatusUnauthorized, r.status)
	ms, err := a.reg.Members("default", "room")
	require.NoError(t, err)
	require.Empty(t, ms, "a rejected request changes nothing")

	require.Equal(t, http.StatusOK, a.call(t, "GET", "/v1/nodes", nil, "Authorization: Bearer s3cret").status)
	require.Equal(t, http.StatusOK, a.call(t, "GET", "/metrics", nil, "Authorization: Bearer s3cret").status)
	require.Equal(t, http.StatusOK, a.call(t, "GET", "/healthz", nil).status)
	require.Equal(t, http.StatusOK, a.call(t, "GET", "/readyz", nil).status)
}

func TestSessions(t *testing.T) {
	ns := startCluster(t, 2, nil)
	a, b := ns[0], ns[1]

	r := a.call(t, "POST", "/v1/sessions", `{"ttl":"1s"}`)
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	id := r.body["id"].(string)
	require.Equal(t, "1s", r.body["ttl"])
	exp, err := time.Parse(time.RFC3339Nano, r.body["expires"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Second), exp, 500*time.Millisecond)
	require.Equal(t, "/v1/sessions/"+id, r.header.Get("Location"))
	// A number of seconds works too.
	r2 := a.call(t, "POST", "/v1/sessions", `{"ttl":30}`)
	require.Equal(t, http.StatusCreated, r2.status)
	require.Equal(t, "30s", r2.body["ttl"])
	require.Equal(t, http.StatusNoContent, a.call(t, "DELETE", "/v1/sessions/"+r2.body["id"].(string), nil).status)

	r = a.call(t, "PUT", member+"s1", map[string]any{"meta": map[string]string{"k": "v"}, "session": id})
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, id, r.body["session"])
	require.Nil(t, r.body["durable"])
	require.Eventually(t, func() bool { return len(b.members(t, "default", "room")) == 1 }, wait, 10*time.Millisecond)

	// Keep-alives keep the member past its TTL.
	for range 4 {
		time.Sleep(400 * time.Millisecond)
		r = a.call(t, "PUT", "/v1/sessions/"+id, nil)
		require.Equal(t, http.StatusOK, r.status, r.raw)
		require.Equal(t, id, r.body["id"])
	}
	require.Equal(t, []string{"s1@n0"}, b.members(t, "default", "room"))
	r = a.call(t, "GET", "/v1/sessions", nil)
	require.Len(t, r.body["sessions"], 1)

	// Without keep-alives the session expires and its member leaves on the
	// other node too.
	require.Eventually(t, func() bool { return len(b.members(t, "default", "room")) == 0 }, wait, 20*time.Millisecond)
	require.Empty(t, a.members(t, "default", "room"))
	r = a.call(t, "PUT", "/v1/sessions/"+id, nil)
	require.Equal(t, http.StatusNotFound, r.status)
	require.Equal(t, "session_not_found", r.code())
	r = a.call(t, "PUT", member+"s2", map[string]any{"session": id})
	require.Equal(t, "session_not_found", r.code())
	require.Empty(t, a.members(t, "default", "room"))

	// Closing a session removes its members at once.
	r = a.call(t, "POST", "/v1/sessions", `{"ttl":"1m"}`)
	id = r.body["id"].(string)
	require.Equal(t, http.StatusOK, a.call(t, "PUT", member+"s3", map[string]any{"session": id}).status)
	require.Eventually(t, func() bool { return len(b.members(t, "default", "room")) == 1 }, wait, 10*time.Millisecond)
	require.Equal(t, http.StatusNoContent, a.call(t, "DELETE", "/v1/sessions/"+id, nil).status)
	require.Eventually(t, func() bool { return len(b.members(t, "default", "room")) == 0 }, wait, 10*time.Millisecond)
	require.Equal(t, "session_not_found", a.call(t, "DELETE", "/v1/sessions/"+id, nil).code())
}

func TestWatch(t *testing.T) {
	ns := startCluster(t, 2, nil)
	a, b := ns[0], ns[1]
	require.Equal(t, http.StatusOK, a.call(t, "PUT", member+"early", nil).status)
	require.Eventually(t, func() bool { return len(b.members(t, "default", "room")) == 1 }, wait, 10*time.Millisecond)

	w := b.watch(t, "/v1/scopes/default/watch?group=room")
	require.Equal(t, b.reg.Incarnation(), mustUint(t, w.resp.Header.Get(server.IncarnationHeader)))
	snap := w.next(t)
	require.Equal(t, "snapshot", snap.event)
	require.Equal(t, []string{"early"}, snap.snapshotIDs())
	require.Equal(t, "n1", snap.data["node"])
	require.Equal(t, strconv.FormatUint(b.reg.Incarnation(), 10), snap.data["incarnation"])
	require.Equal(t, strconv.FormatUint(a.reg.Incarnation(), 10), snap.data["members"].([]any)[0].(map[string]any)["incarnation"])
	snapID := b.seqOf(t, snap.id)
	pw := b.watch(t, "/v1/scopes/default/watch?prefix=ro")
	require.Equal(t, "snapshot", pw.next(t).event)

	// Changes on a arrive on b in order, with consecutive ids (one scope,
	// one watcher of the whole scope's changes that match).
	steps := []struct{ method, id, body string }{
		{"PUT", "m1", ""}, {"PUT", "m2", ""}, {"PUT", "m1", `{"meta":{"v":"2"}}`}, {"DELETE", "m2", ""}, {"PUT", "m3", ""},
	}
	want := []string{"join m1 joined", "join m2 joined", "update m1 updated", "leave m2 left", "join m3 joined"}
	var got []string
	var ids []uint64
	for _, s := range steps {
		r := a.call(t, s.method, member+s.id, s.body)
		require.Less(t, r.status, 300, r.raw)
		e := w.next(t) // one change at a time: the order is the issue order
		got = append(got, e.summary())
		ids = append(ids, b.seqOf(t, e.id))
		require.Equal(t, ids[len(ids)-1], uint64(e.data["seq"].(float64)))
	}
	require.Equal(t, want, got)
	for i, id := range ids {
		require.Equal(t, snapID+uint64(i)+1, id, "ids grow by one per scope change")
	}
	for range want {
		pw.next(t)
	}

	// Resume after the first change: exactly the later ones, then live.
	rw := b.watch(t, "/v1/scopes/default/watch?group=room", "Last-Event-ID: "+b.eventID(ids[0]))
	for _, s := range want[1:] {
		require.Equal(t, s, rw.next(t).summary())
	}
	// Resume from the snapshot's bare seq (as ids were before they named
	// their run) with the same incarnation in the header: every change.
	rs := b.watch(t, "/v1/scopes/default/watch?group=room", "Last-Event-ID: "+strconv.FormatUint(snapID, 10),
		server.IncarnationHeader+": "+strconv.FormatUint(b.reg.Incarnation(), 10))
	for _, s := range want {
		require.Equal(t, s, rs.next(t).summary())
	}
	// Resume from the last id: nothing to replay; the next change is live.
	rl := b.watch(t, "/v1/scopes/default/watch?group=room", "Last-Event-ID: "+b.eventID(ids[len(ids)-1]))
	require.Equal(t, http.StatusOK, a.call(t, "PUT", member+"m4", nil).status)
	for _, s := range []*stream{w, rw, rs, rl} {
		e := s.next(t)
		require.Equal(t, "join m4 joined", e.summary())
		require.Equal(t, ids[len(ids)-1]+1, b.seqOf(t, e.id))
	}
	// A resume point from another run of the node gets a resync.
	ri := b.watch(t, "/v1/scopes/default/watch?group=room", "Last-Event-ID: 1", server.IncarnationHeader+": 12345")
	e := ri.next(t)
	require.Equal(t, "resync", e.event)
	require.Equal(t, []string{"early", "m1", "m3", "m4"}, e.snapshotIDs())
	// So does an id this run never produced.
	rf := b.watch(t, "/v1/scopes/default/watch?group=room", "Last-Event-ID: "+b.eventID(999999))
	require.Equal(t, "resync", rf.next(t).event)
	// The query parameter works for clients that cannot set headers.
	rq := b.watch(t, "/v1/scopes/default/watch?group=room&last_event_id="+b.eventID(ids[3]))
	require.Equal(t, "join m3 joined", rq.next(t).summary())
}

func TestWatchResyncWhenHistoryIsGone(t *testing.T) {
	ns := startCluster(t, 1, func(c *server.Config) { c.WatchHistory = 4 })
	a := ns[0]
	w := a.watch(t, "/v1/scopes/default/watch")
	snap := w.next(t)
	for i := range 10 {
		require.Equal(t, http.StatusOK, a.call(t, "PUT", member+fmt.Sprintf("m%d", i), nil).status)
	}
	var last sseEvent
	for range 10 {
		last = w.next(t)
	}
	// The ring holds the last 4 changes: resuming within them replays
	// exactly; before them gets a resync with the full membership.
	r := a.watch(t, "/v1/scopes/default/watch", "Last-Event-ID: "+a.eventID(a.seqOf(t, last.id)-4))
	for _, id := range []string{"m6", "m7", "m8", "m9"} {
		require.Equal(t, "join "+id+" joined", r.next(t).summary())
	}
	r = a.watch(t, "/v1/scopes/default/watch", "Last-Event-ID: "+snap.id)
	e := r.next(t)
	require.Equal(t, "resync", e.event)
	require.Equal(t, last.id, e.id)
	require.Len(t, e.snapshotIDs(), 10)
	require.Equal(t, http.StatusOK, a.call(t, "PUT", member+"m10", nil).status)
	require.Equal(t, "join m10 joined", r.next(t).summary())

	m := metricValues(t, a)
	require.Equal(t, 1.0, m[`roster_watch_resyncs_total{cause="history",scope="default"}`])
	require.Equal(t, 4.0, m[`roster_watch_history_events{scope="default"}`])
}

func TestShutdownEndsStreams(t *testing.T) {
	ns := startCluster(t, 1, func(c *server.Config) { c.HeartbeatInterval = 50 * time.Millisecond })
	a := ns[0]
	w := a.watch(t, "/v1/scopes/default/watch")
	require.Equal(t, "snapshot", w.next(t).event)
	time.Sleep(120 * time.Millisecond) // a heartbeat or two pass unnoticed
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, a.srv.Shutdown(ctx))
	select {
	case _, ok := <-w.events:
		require.False(t, ok, "no more events")
	case <-time.After(wait):
		t.Fatal("stream not ended by Shutdown")
	}
	r := a.call(t, "GET", "/readyz", nil)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.Equal(t, "not_ready", r.code())
}

func TestServeAndListen(t *testing.T) {
	ns := startCluster(t, 1, nil)
	cfg := server.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	srv, err := server.New(ns[0].reg, cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx) }()
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(wait):
		t.Fatal("ListenAndServe did not return after its context ended")
	}
	require.ErrorIs(t, srv.ListenAndServe(context.Background()), server.ErrServing)
}

func TestConfigValidation(t *testing.T) {
	ns := startCluster(t, 1, nil)
	for _, edit := range []func(*server.Config){
		func(c *server.Config) { c.MaxBodyBytes = 0 },
		func(c *server.Config) { c.WatchHistory = 0 },
		func(c *server.Config) { c.MaxBatchOps = 0 },
		func(c *server.Config) { c.MaxBatchBytes = 100 },
		func(c *server.Config) { c.MaxBatchesInFlight = 0 },
		func(c *server.Config) { c.HeartbeatInterval = 0 },
		func(c *server.Config) { c.TLSCertFile = "cert.pem" },
		func(c *server.Config) { c.TLSCertFile, c.TLSKeyFile = "/nonexistent/cert.pem", "/nonexistent/key.pem" },
	} {
		cfg := server.DefaultConfig()
		edit(&cfg)
		_, err := server.New(ns[0].reg, cfg)
		require.ErrorIs(t, err, server.ErrConfig)
	}
	_, err := server.New(nil, server.DefaultConfig())
	require.True(t, errors.Is(err, server.ErrConfig))
	// A nil *registry.Registry is a non-nil server.Registry: refused the
	// same, not called.
	_, err = server.New((*registry.Registry)(nil), server.DefaultConfig())
	require.ErrorIs(t, err, server.ErrConfig)
	require.ErrorContains(t, err, "nil registry")

	// The API's members are durable: a registry that persists nothing is
	// refused rather than silently losing them at a restart.
	cfg := registry.LocalConfig("volatile")
	volatile, err := registry.Open(context.Background(), cfg)
	require.NoError(t, err)
	defer func() { require.NoError(t, volatile.Close(context.Background())) }()
	_, err = server.New(volatile, server.DefaultConfig())
	require.ErrorIs(t, err, server.ErrConfig)
	require.ErrorContains(t, err, "no DataDir")
}

func TestMetrics(t *testing.T) {
	ns := startCluster(t, 3, nil)
	a, b := ns[0], ns[1]
	for i := range 5 {
		require.Equal(t, http.StatusOK, a.call(t, "PUT", member+fmt.Sprintf("m%d", i), nil).status)
	}
	require.Equal(t, http.StatusOK, b.call(t, "PUT", "/v1/scopes/default/groups/other/members/x", nil).status)
	require.Eventually(t, func() bool { return len(b.members(t, "default", "room")) == 5 }, wait, 10*time.Millisecond)
	require.Equal(t, "not_owner", b.call(t, "DELETE", member+"m0", nil).code())
	require.Equal(t, "invalid_ttl", a.call(t, "POST", "/v1/sessions", `{"ttl":"0s"}`).code())
	w := a.watch(t, "/v1/scopes/default/watch")
	w.next(t)
	require.Eventually(t, func() bool {
		return metricValues(t, a)[`roster_members{scope="default"}`] == 6
	}, wait, 10*time.Millisecond)

	m := metricValues(t, a)
	for name, want := range map[string]float64{
		`roster_members{scope="default"}`:                                 6,
		`roster_members{scope="chat"}`:                                    0,
		`roster_groups{scope="default"}`:                                  2,
		`roster_operations_total{code="ok",op="join"}`:                    5,
		`roster_operations_total{code="invalid_ttl",op="session_create"}`: 1,
		`roster_peers{state="alive"}`:                                     2,
		`roster_peers{state="dead"}`:                                      0,
		`roster_watchers{scope="default"}`:                                1,
		`roster_ready`:                                                    1,
		`roster_sessions`:                                                 0,
	} {
		require.Equal(t, want, m[name], name)
	}
	require.Equal(t, 1.0, metricValues(t, b)[`roster_operations_total{code="not_owner",op="leave"}`])
	for _, name := range []string{
		"roster_gossip_deltas_sent_total", "roster_gossip_deltas_received_total", "roster_gossip_bytes_sent_total",
		"roster_anti_entropy_syncs_sent_total", "roster_anti_entropy_syncs_served_total",
	} {
		require.Contains(t, m, name)
	}
	require.Positive(t, m["roster_gossip_deltas_sent_total"])
	require.Positive(t, m["roster_anti_entropy_syncs_sent_total"]+m["roster_anti_entropy_syncs_served_total"])
	require.Positive(t, m[`roster_http_request_duration_seconds_count{code="200",method="PUT",route="PUT /v1/scopes/{scope}/groups/{group}/members/{id}"}`])
	require.Contains(t, m, "go_goroutines")
}

// metricValues scrapes /metrics into "name{labels}" -> value.
func metricValues(t testing.TB, nd *node) map[string]float64 {
	t.Helper()
	r := nd.call(t, "GET", "/metrics", nil)
	require.Equal(t, http.StatusOK, r.status)
	out := map[string]float64{}
	for _, line := range strings.Split(r.raw, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		out[line[:i]] = v
	}
	return out
}

func mustUint(t testing.TB, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	require.NoError(t, err, "%q", s)
	return v
}

// eventID is the SSE id of nd's event seq: "<incarnation>-<seq>".
func (nd *node) eventID(seq uint64) string {
	return strconv.FormatUint(nd.reg.Incarnation(), 10) + "-" + strconv.FormatUint(seq, 10)
}

// seqOf checks that id is one of nd's current run and returns its seq.
func (nd *node) seqOf(t testing.TB, id string) uint64 {
	t.Helper()
	run, seq, ok := strings.Cut(id, "-")
	require.True(t, ok, "event id %q names its run", id)
	require.Equal(t, nd.reg.Incarnation(), mustUint(t, run), "event id %q", id)
	return mustUint(t, seq)
}
