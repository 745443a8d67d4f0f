package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/roster-io/roster/gossip"

	"github.com/roster-io/roster/registry"
	"github.com/roster-io/roster/server"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// memberlist's Shutdown does not wait for a probe already in flight; that
// goroutine ends on its own within a probe interval. Everything else must
// be gone.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

const wait = 10 * time.Second

// closeTimeout bounds registry.Close (memberlist's leave wait). It stays
// below LocalConfig's GossipToTheDeadTime (2 s): gossip.Node.Close can
// otherwise hit a nil dereference in memberlist.LocalNode once memberlist
// has reaped the local node that left (reported to the gossip owners).
const closeTimeout = time.Second

// node is one in-process roster node with its HTTP API.
type node struct {
	reg *registry.Registry
	srv *server.Server
	ts  *httptest.Server
	url string
	hc  *http.Client
}

// startCluster starts n nodes serving scopes "default" and "chat", joined
// through the first one, and waits until every node sees all alive and is
// ready. edit, when not nil, adjusts each server's config.
func startCluster(t testing.TB, n int, edit func(*server.Config)) []*node {
	t.Helper()
	return startClusterWith(t, n, nil, edit)
}

// startClusterWith is startCluster with a hook for each registry config.
func startClusterWith(t testing.TB, n int, editReg func(*registry.Config), edit func(*server.Config)) []*node {
	t.Helper()
	return startNodes(t, n, false, func(_ int, c *registry.Config) {
		if editReg != nil {
			editReg(c)
		}
	}, edit)
}

// startNodes starts n nodes serving scopes "default" and "chat", joined
// through the first one, and waits until every node sees all alive and is
// ready. With routed, each advertises the address of its HTTP API
// (registry.Config.HTTPAddr) as roster serve does: its listener exists
// before its registry opens. editReg may change a node's config (i is its
// index); edit, each server's.
func startNodes(t testing.TB, n int, routed bool, editReg func(i int, c *registry.Config), edit func(*server.Config)) []*node {
	t.Helper()
	ctx := context.Background()
	var nodes []*node
	for i := range n {
		cfg := registry.LocalConfig(fmt.Sprintf("n%d", i))
		cfg.Scopes = []string{"default", "chat"}
		cfg.DataDir = t.TempDir() // the API's members are durable
		// No test here crashes a node: relax LocalConfig's failure
		// detector so that a loaded machine (-race, parallel packages)
		// does not suspect live nodes and hide their members.
		cfg.Tune(relaxFailureDetector)
		ts := httptest.NewUnstartedServer(nil)
		if routed {
			cfg.HTTPAddr = "http://" + ts.Listener.Addr().String()
		}
		if editReg != nil {
			editReg(i, &cfg)
		}
		if i > 0 {
			cfg.Seeds = []string{nodes[0].reg.Addr()}
		}
		reg, err := registry.Open(ctx, cfg)
		require.NoError(t, err)
		scfg := server.DefaultConfig()
		if edit != nil {
			edit(&scfg)
		}
		srv, err := server.New(reg, scfg)
		require.NoError(t, err)
		ts.Config.Handler = srv.Handler()
		ts.Start()
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		nd := &node{reg: reg, srv: srv, ts: ts, url: ts.URL, hc: &http.Client{Transport: tr}}
		nodes = append(nodes, nd)
		t.Cleanup(func() { nd.stop(t) })
	}
	require.Eventually(t, func() bool {
		for _, nd := range nodes {
			alive := 0
			for _, info := range nd.reg.Nodes() {
				if info.State == "alive" {
					alive++
				}
			}
			if alive != n || !nd.reg.Ready() {
				return false
			}
		}
		return true
	}, wait, 10*time.Millisecond, "cluster formed")
	return nodes
}

func (nd *node) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, nd.srv.Shutdown(ctx))
	nd.ts.Close()
	nd.hc.CloseIdleConnections()
	// A short leave timeout: see the note on closeTimeout.
	cctx, ccancel := context.WithTimeout(context.Background(), closeTimeout)
	defer ccancel()
	require.NoError(t, nd.reg.Close(cctx))
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// code returns the error code of an error answer.
func (r response) code() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// call sends a request with an optional body (string or JSON-encodable) and
// headers given as "Name: value" strings.
func (nd *node) call(t testing.TB, method, path string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, nd.url+path, rd)
	require.NoError(t, err)
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := nd.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(raw, &out.body), "body %q", raw)
	}
	return out
}

// memberIDs lists "id@owner" of a members answer.
func memberIDs(t testing.TB, r response) []string {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, r.raw)
	ms, ok := r.body["members"].([]any)
	require.True(t, ok, r.raw)
	out := []string{}
	for _, m := range ms {
		mm := m.(map[string]any)
		out = append(out, mm["id"].(string)+"@"+mm["owner"].(string))
	}
	return out
}

func (nd *node) members(t testing.TB, scope, group string) []string {
	return memberIDs(t, nd.call(t, "GET", "/v1/scopes/"+scope+"/groups/"+group+"/members", nil))
}

// sseEvent is one raw Server-Sent Event.
type sseEvent struct {
	id, event string
	data      map[string]any
}

// stream is a raw SSE connection.
type stream struct {
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
	done   chan struct{}
}

// watch opens a raw SSE stream; headers as in call.
func (nd *node) watch(t testing.TB, path string, headers ...string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", nd.url+path, nil)
	require.NoError(t, err)
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := nd.hc.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	s := &stream{resp: resp, events: make(chan sseEvent, 1024), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 16<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.event != "" {
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(line[6:]), &ev.data); err != nil {
					panic(err)
				}
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *stream) close() {
	s.cancel()
	<-s.done
	s.resp.Body.Close()
}

// next returns the next event, failing after a while.
func (s *stream) next(t testing.TB) sseEvent {
	t.Helper()
	select {
	case e, ok := <-s.events:
		require.True(t, ok, "stream ended")
		return e
	case <-time.After(wait):
		t.Fatal("no event")
	}
	return sseEvent{}
}

// summary renders a change event as "type id reason".
func (e sseEvent) summary() string {
	if m, ok := e.data["member"].(map[string]any); ok {
		return fmt.Sprintf("%s %s %s", e.event, m["id"], e.data["reason"])
	}
	return e.event
}

// snapshotIDs lists the member ids of a snapshot or resync.
func (e sseEvent) snapshotIDs() []string {
	out := []string{}
	ms, _ := e.data["members"].([]any)
	for _, m := range ms {
		out = append(out, m.(map[string]any)["id"].(string))
	}
	return out
}

// relaxFailureDetector lengthens LocalConfig's probe timings (see
// startClusterWith).
func relaxFailureDetector(g *gossip.Config) {
	ml := *g.Memberlist
	ml.ProbeInterval, ml.ProbeTimeout, ml.SuspicionMult = 500*time.Millisecond, 400*time.Millisecond, 6
	g.Memberlist = &ml
}
