package server_test

// The attacks of issue #15 (hardening), each against a real listener where
// the server's own timeouts and limits matter.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/roster-io/roster/registry"
	"github.com/roster-io/roster/server"
	"github.com/stretchr/testify/require"
)

// serve runs a second server for nd's registry on a real listener (Serve,
// with its timeouts and connection limit) and returns its address. Its
// connections have small socket buffers, so that a client that does not
// read blocks the server's writes soon.
func serve(t *testing.T, nd *node, edit func(*server.Config)) (*server.Server, string) {
	t.Helper()
	cfg := server.DefaultConfig()
	if edit != nil {
		edit(&cfg)
	}
	srv, err := server.New(nd.reg, cfg)
	require.NoError(t, err)
	lc := net.ListenConfig{Control: smallBuffers}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return srv, ln.Addr().String()
}

// smallBuffers gives a socket (and those a listener accepts) 4 KiB buffers.
func smallBuffers(_, _ string, rc syscall.RawConn) error {
	return rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096)
	})
}

// scrape reads srv's metrics through its handler (no connection needed).
func scrape(t *testing.T, srv *server.Server) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	out := map[string]float64{}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		_, err := fmt.Sscan(line[i+1:], &v)
		require.NoError(t, err, line)
		out[line[:i]] = v
	}
	return out
}

// rawResponse sends raw bytes on a new connection and reads the answer.
func rawResponse(t *testing.T, addr, request string) (*http.Response, map[string]any) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, request)
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(wait)))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var body map[string]any
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%s", b)
	require.NoError(t, json.Unmarshal(b, &body), "%s", b)
	return resp, body
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// TestStalledWatchStreamsDropped: watchers that never read while the scope
// churns are dropped after WatchWriteTimeout instead of being buffered for
// (150 of them took a node from 31 MB to 775 MB).
func TestStalledWatchStreamsDropped(t *testing.T) {
	nd := startCluster(t, 1, nil)[0]
	srv, addr := serve(t, nd, func(c *server.Config) { c.WatchWriteTimeout = 200 * time.Millisecond })
	const stalled = 20
	dialer := net.Dialer{Control: smallBuffers}
	for range stalled {
		c, err := dialer.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		_, err = io.WriteString(c, "GET /v1/scopes/default/watch HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err) // and never read
	}
	require.Eventually(t, func() bool {
		return scrape(t, srv)[`roster_watchers{scope="default"}`] == stalled
	}, wait, 10*time.Millisecond)
	pad := strings.Repeat("x", 3000)
	i := 0
	require.Eventually(t, func() bool {
		for range 50 { // churn until every stalled stream is gone
			r := nd.call(t, "PUT", fmt.Sprintf("%sm%d", member, i%500), map[string]any{"meta": map[string]string{"pad": pad, "i": fmt.Sprint(i)}})
			require.Equal(t, http.StatusOK, r.status, r.raw)
			i++
		}
		m := scrape(t, srv)
		return m[`roster_watchers{scope="default"}`] == 0 && m[`roster_watch_dropped_total{scope="default"}`] == stalled
	}, wait, time.Millisecond)
}

// TestSlowBodiesTimeOut: 300 slow bodies held their connections forever
// and accept failed with too many open files. Connections are now limited
// (MaxConns) and a body that does not arrive within ReadTimeout gets a 408
// and its connection back.
func TestSlowBodiesTimeOut(t *testing.T) {
	nd := startCluster(t, 1, nil)[0]
	const maxConns, slow = 10, 30
	srv, addr := serve(t, nd, func(c *server.Config) {
		c.MaxConns = maxConns
		c.ReadTimeout = 300 * time.Millisecond
	})
	var peak atomic.Int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if n := int64(scrape(t, srv)["roster_http_connections"]); n > peak.Load() {
				peak.Store(n)
			}
		}
	}()
	answers := make(chan string, slow)
	for range slow {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		_, err = io.WriteString(c, "PUT "+member+"slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"meta\":")
		require.NoError(t, err) // and the rest never comes
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(wait))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				answers <- "error: " + err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			var body map[string]any
			_ = json.Unmarshal(b, &body)
			answers <- fmt.Sprintf("%d %s", resp.StatusCode, errCode(body))
		}()
	}
	for range slow {
		require.Equal(t, "408 request_timeout", <-answers)
	}
	close(stop)
	<-watched
	require.LessOrEqual(t, peak.Load(), int64(maxConns), "never more than MaxConns connections")
	require.Positive(t, peak.Load())
	// The server still answers, and nothing was joined.
	r, err := nd.hc.Get("http://" + addr + "/v1/scopes/default/groups/room/members")
	require.NoError(t, err)
	defer r.Body.Close()
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Empty(t, nd.members(t, "default", "room"))
}

// TestEveryErrorIsJSON: the answers net/http and http.ServeMux give by
// themselves (400, 431, 501, 307 redirects) carry the API's JSON error
// body, and HEAD on a watch is refused instead of opening a stream that
// never ends.
func TestEveryErrorIsJSON(t *testing.T) {
	nd := startCluster(t, 1, nil)[0]
	_, addr := serve(t, nd, func(c *server.Config) { c.MaxHeaderBytes = 4096 })
	for _, tc := range []struct {
		name, request string
		status        int
		code          string
	}{
		{"malformed request line", "GARBAGE\r\n\r\n", 400, "bad_request"},
		{"no Host", "GET /v1/nodes HTTP/1.1\r\n\r\n", 400, "bad_request"},
		{"headers too large", "GET /v1/nodes HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n", 431, "headers_too_large"},
		{"transfer encoding", "PUT " + member + "x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "not_implemented"},
		{"double slash", "GET /v1//nodes HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"},
		{"dot dot", "GET /v1/scopes/default/groups/room/members/../../groups HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"},
		{"dot in a member path", "PUT /v1/scopes/default/groups/room/members/./x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 404, "not_found"},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawResponse(t, addr, tc.request)
			require.Equal(t, tc.status, resp.StatusCode)
			require.Equal(t, tc.code, errCode(body))
			require.NotEmpty(t, body["error"].(map[string]any)["message"])
		})
	}
	// HEAD on a watch answers at once.
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "HEAD /v1/scopes/default/watch HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(wait)))
	req, _ := http.NewRequest("HEAD", "/", nil)
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	require.NoError(t, err)
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	require.Equal(t, "GET", resp.Header.Get("Allow"))
	require.Empty(t, nd.members(t, "default", "room"))
}

// TestStrictInput: what encoding/json and the names let through before
// (duplicate keys, field names in any case, invalid UTF-8, lone
// surrogates, control characters in names) is refused and changes
// nothing; the bearer scheme is accepted in any case.
func TestStrictInput(t *testing.T) {
	nd := startCluster(t, 1, func(c *server.Config) { c.Token = "tok" })[0]
	auth := "Authorization: Bearer tok"
	for _, tc := range []struct {
		name, path, body, code string
	}{
		{"duplicate key", member + "x", `{"session":"","session":"s"}`, "bad_json"},
		{"duplicate meta key", member + "x", `{"meta":{"a":"1","a":"2"}}`, "bad_json"},
		{"field name case", member + "x", `{"Meta":{"a":"1"}}`, "bad_json"},
		{"field name upper", member + "x", `{"META":{}}`, "bad_json"},
		{"invalid UTF-8", member + "x", "{\"meta\":{\"a\":\"\xff\"}}", "bad_json"},
		{"lone surrogate", member + "x", `{"meta":{"a":"\ud800"}}`, "bad_json"},
		{"lone low surrogate", member + "x", `{"meta":{"a":"x\udc00"}}`, "bad_json"},
		{"NUL in id", member + "a%00b", `{}`, "invalid_name"},
		{"newline in id", member + "a%0Ab", `{}`, "invalid_name"},
		{"DEL in group", "/v1/scopes/default/groups/r%7Fm/members/x", `{}`, "invalid_name"},
		{"C1 in id", member + "a%C2%85b", `{}`, "invalid_name"},
		{"control in meta key", member + "x", `{"meta":{"a\u0007":"1"}}`, "invalid_meta"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := nd.call(t, "PUT", tc.path, tc.body, auth)
			require.Equal(t, http.StatusBadRequest, r.status, r.raw)
			require.Equal(t, tc.code, r.code(), r.raw)
		})
	}
	r := nd.call(t, "POST", "/v1/sessions", `{"TTL":"1m"}`, auth)
	require.Equal(t, "bad_json", r.code(), r.raw)
	require.Empty(t, nd.reg.Sessions())
	ms, err := nd.reg.Members("default", "room")
	require.NoError(t, err)
	require.Empty(t, ms)
	// A surrogate pair is fine.
	r = nd.call(t, "PUT", member+"ok", `{"meta":{"a":"\ud83d\ude00"}}`, auth)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, "😀", r.body["meta"].(map[string]any)["a"])
	for _, h := range []string{"Authorization: bearer tok", "Authorization: BEARER tok", "Authorization:   Bearer   tok  "} {
		require.Equal(t, http.StatusOK, nd.call(t, "GET", "/v1/nodes", nil, h).status, h)
	}
}

// TestLimitsOverHTTP: a client creating sessions, members, groups and
// watches without end gets 429 with a specific code, and nothing changes.
func TestLimitsOverHTTP(t *testing.T) {
	nd := startClusterWith(t, 1, func(c *registry.Config) {
		// The server follows its 2 scopes with a watch each.
		c.Limits = registry.Limits{MaxSessions: 2, MaxMembers: 3, MaxGroups: 2, MaxWatchers: 3}
	}, nil)[0]
	for range 2 {
		require.Equal(t, http.StatusCreated, nd.call(t, "POST", "/v1/sessions", `{"ttl":"24h"}`).status)
	}
	r := nd.call(t, "POST", "/v1/sessions", `{"ttl":"24h"}`)
	require.Equal(t, http.StatusTooManyRequests, r.status, r.raw)
	require.Equal(t, "too_many_sessions", r.code())
	require.Len(t, nd.reg.Sessions(), 2)

	require.Equal(t, http.StatusOK, nd.call(t, "PUT", "/v1/scopes/default/groups/g1/members/a", nil).status)
	require.Equal(t, http.StatusOK, nd.call(t, "PUT", "/v1/scopes/chat/groups/g2/members/b", nil).status)
	r = nd.call(t, "PUT", "/v1/scopes/default/groups/g3/members/c", nil)
	require.Equal(t, http.StatusTooManyRequests, r.status, r.raw)
	require.Equal(t, "too_many_groups", r.code())
	require.Equal(t, http.StatusOK, nd.call(t, "PUT", "/v1/scopes/default/groups/g1/members/c", nil).status)
	r = nd.call(t, "PUT", "/v1/scopes/default/groups/g1/members/d", nil)
	require.Equal(t, http.StatusTooManyRequests, r.status, r.raw)
	require.Equal(t, "too_many_members", r.code())
	require.Equal(t, []string{"a@n0", "c@n0"}, nd.members(t, "default", "g1"))

	w := nd.watch(t, "/v1/scopes/default/watch")
	require.Equal(t, "snapshot", w.next(t).event)
	r = nd.call(t, "GET", "/v1/scopes/default/watch", nil)
	require.Equal(t, http.StatusTooManyRequests, r.status, r.raw)
	require.Equal(t, "too_many_watchers", r.code())
}

// TestSessionListing: ids (the sessions' only credential) are not listed;
// the listing is paged by fingerprint.
func TestSessionListing(t *testing.T) {
	nd := startCluster(t, 1, nil)[0]
	ids := map[string]string{} // fingerprint -> id
	for range 5 {
		r := nd.call(t, "POST", "/v1/sessions", `{"ttl":"1m"}`)
		require.Equal(t, http.StatusCreated, r.status, r.raw)
		id, fp := r.body["id"].(string), r.body["fingerprint"].(string)
		require.NotEmpty(t, id)
		require.Len(t, fp, 16)
		ids[fp] = id
	}
	seen := map[string]bool{}
	after, pages := "", 0
	for {
		r := nd.call(t, "GET", "/v1/sessions?limit=2&after="+after, nil)
		require.Equal(t, http.StatusOK, r.status, r.raw)
		pages++
		for _, id := range ids {
			require.NotContains(t, r.raw, id, "a listing shows no session id")
		}
		ss := r.body["sessions"].([]any)
		require.LessOrEqual(t, len(ss), 2)
		for _, s := range ss {
			fp := s.(map[string]any)["fingerprint"].(string)
			require.Contains(t, ids, fp)
			require.False(t, seen[fp], "listed once")
			seen[fp] = true
			require.Equal(t, "1m0s", s.(map[string]any)["ttl"])
		}
		next, _ := r.body["next"].(string)
		if next == "" {
			break
		}
		after = next
	}
	require.Len(t, seen, 5)
	require.Equal(t, 3, pages)
	require.Equal(t, "invalid_query", nd.call(t, "GET", "/v1/sessions?limit=0", nil).code())
	require.Equal(t, "invalid_query", nd.call(t, "GET", "/v1/sessions?limit=1001", nil).code())
}

// TestResumeAcrossRestart: a client without the Roster-Incarnation header
// (curl, EventSource) resuming with Last-Event-ID after the node restarted
// got the new run's events of the same seqs. An id names its run now: an
// id of another run, or a malformed one, gets a resync.
func TestResumeAcrossRestart(t *testing.T) {
	ns := startCluster(t, 2, nil)
	old, restarted := ns[0], ns[1] // restarted stands for old's next run
	require.NotEqual(t, old.reg.Incarnation(), restarted.reg.Incarnation())
	ws := []*stream{old.watch(t, "/v1/scopes/chat/watch"), restarted.watch(t, "/v1/scopes/chat/watch")}
	var ids [2][]string
	for i, w := range ws {
		ids[i] = append(ids[i], w.next(t).id)
	}
	for i := range 8 { // the same seqs on both runs
		for j, nd := range []*node{old, restarted} {
			require.Equal(t, http.StatusOK, nd.call(t, "PUT", fmt.Sprintf("/v1/scopes/chat/groups/g%d/members/m%d", j, i), nil).status)
		}
	}
	for i, w := range ws {
		for len(ids[i]) < 9 {
			if e := w.next(t); e.data["member"].(map[string]any)["owner"] == ns[i].reg.Name() {
				ids[i] = append(ids[i], e.id)
			}
		}
	}
	oldSeq := old.seqOf(t, ids[0][3])
	for _, last := range []string{
		ids[0][3],                      // of the other run
		fmt.Sprint(oldSeq),             // a bare seq, no run named
		"garbage", "12-x", "x-12", "-", // malformed
	} {
		rw := restarted.watch(t, "/v1/scopes/chat/watch?group=g1", "Last-Event-ID: "+last)
		e := rw.next(t)
		require.Equal(t, "resync", e.event, "Last-Event-ID %q", last)
		require.Len(t, e.snapshotIDs(), 8)
		restarted.seqOf(t, e.id)
	}
	// An id of this run resumes exactly.
	rw := restarted.watch(t, "/v1/scopes/chat/watch?group=g1", "Last-Event-ID: "+ids[1][6])
	for _, id := range ids[1][7:] {
		require.Equal(t, id, rw.next(t).id)
	}
}

// TestStorageErrorsHidePaths: a storage error answers a generic message,
// not the data directory's file names (they go to the log).
func TestStorageErrorsHidePaths(t *testing.T) {
	disk := &fullDisk{}
	nd := startClusterWith(t, 1, func(c *registry.Config) {
		c.DataDir = "/secret-data-dir"
		c.Storage.FS = errorfs.Wrap(vfs.NewMem(), disk)
	}, nil)[0]
	require.Equal(t, http.StatusOK, nd.call(t, "PUT", member+"a", `{}`).status)
	disk.armed.Store(true)
	r := nd.call(t, "PUT", member+"x", `{}`)
	disk.armed.Store(false)
	require.Equal(t, http.StatusInsufficientStorage, r.status, r.raw)
	require.Equal(t, "storage_failed", r.code())
	require.NotContains(t, r.raw, "secret-data-dir")
	require.NotContains(t, r.raw, "/")
	require.Eventually(t, func() bool { return nd.call(t, "GET", "/readyz", nil).status == http.StatusOK }, wait, 20*time.Millisecond, "the store recovers")
}
