package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roster-io/roster/internal/rostertest"

	"github.com/roster-io/roster/internal/syncbuf"

	"github.com/roster-io/roster/client"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// persistenceReady says whether roster serve persists to --data-dir
// (registry.Config.DataDir). With false, the restart subtest is skipped.
const persistenceReady = true

const wait = 15 * time.Second

// roster is this package's binary, built once per test binary.
var roster rostertest.Binary

func TestMain(m *testing.M) {
	code := 0
	func() {
		defer roster.Remove()
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines before tests:", err)
		}
		code = m.Run()
		if code == 0 {
			if err := goleak.Find(); err != nil {
				fmt.Fprintln(os.Stderr, "goleak:", err)
				code = 1
			}
		}
	}()
	os.Exit(code)
}

// binary builds cmd/roster once per test run.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs roster processes; skipped with -short")
	}
	return roster.Path(t)
}

// proc is one `roster serve` process.
type proc struct {
	t                    *testing.T
	name, dataDir, token string
	httpPort, gossipPort int
	seeds                []string
	extra                []string // more serve flags
	cmd                  *exec.Cmd
	out                  *syncbuf.Buffer
	exited               chan struct{}
	c                    *client.Client
}

func newProc(t *testing.T, name, token string, seeds ...string) *proc {
	p := &proc{t: t, name: name, token: token, dataDir: filepath.Join(t.TempDir(), name),
		httpPort: rostertest.FreePort(t), gossipPort: rostertest.FreePort(t), seeds: seeds}
	c, err := client.New(p.url(), client.WithToken(token))
	require.NoError(t, err)
	p.c = c
	t.Cleanup(func() {
		p.kill()
		c.CloseIdleConnections()
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, p.out)
		}
	})
	return p
}

func (p *proc) url() string        { return "http://127.0.0.1:" + strconv.Itoa(p.httpPort) }
func (p *proc) gossipAddr() string { return "127.0.0.1:" + strconv.Itoa(p.gossipPort) }

// start runs the process and waits until it answers /healthz.
func (p *proc) start() {
	t := p.t
	t.Helper()
	args := []string{"serve", "--name", p.name, "--data-dir", p.dataDir, "--profile", "local",
		"--gossip-addr", p.gossipAddr(), "--http-addr", "127.0.0.1:" + strconv.Itoa(p.httpPort),
		"--scopes", "default,chat", "--log-level", "warn",
		// A cluster of its own: nodes other tests run on 127.0.0.1 may
		// come to retry a port one of these has since been given.
		"--cluster", "e2e-" + strconv.Itoa(os.Getpid())}
	for _, s := range p.seeds {
		args = append(args, "--join", s)
	}
	if p.token != "" && !slices.Contains(p.extra, "--api-token-file") {
		args = append(args, "--api-token", p.token)
	}
	args = append(args, p.extra...)
	p.cmd = exec.Command(binary(t), args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ROSTER_") {
			env = append(env, kv)
		}
	}
	p.cmd.Env = env
	if p.out == nil {
		p.out = &syncbuf.Buffer{}
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	p.exited = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return p.c.Health(ctx) == nil
	}, wait, 20*time.Millisecond, "%s serving; output:\n%s", p.name, p.out)
}

// signal sends sig and waits for the exit; it returns the exit code.
func (p *proc) signal(sig syscall.Signal) int {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig))
	select {
	case <-p.exited:
	case <-time.After(wait):
		p.t.Fatalf("%s did not exit on %v", p.name, sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) kill() {
	if p.cmd != nil && p.exited != nil {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// ids renders members as sorted "id@owner".
func ids(ms []client.Member) string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID + "@" + m.Owner
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

func membersOn(t *testing.T, p *proc, group string) string {
	ms, err := p.c.Members(ctxT(t), "default", group, false)
	if err != nil {
		return "error: " + err.Error()
	}
	return ids(ms)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, wait, 20*time.Millisecond, what)
}

// startCluster starts n1 (seed), n2 and n3 (n3 with an API token) and
// waits until all see each other alive and are ready.
func startCluster(t *testing.T) []*proc {
	n1 := newProc(t, "n1", "")
	n1.start()
	n2 := newProc(t, "n2", "", n1.gossipAddr())
	n3 := newProc(t, "n3", "t0ken", n1.gossipAddr())
	n2.start()
	n3.start()
	ps := []*proc{n1, n2, n3}
	for _, p := range ps {
		eventually(t, p.name+" sees 3 alive and is ready", func() bool {
			ns, err := p.c.Nodes(ctxT(t))
			if err != nil || len(ns) != 3 {
				return false
			}
			for _, n := range ns {
				if n.State != "alive" {
					return false
				}
			}
			ok, err := p.c.Ready(ctxT(t))
			return err == nil && ok
		})
	}
	return ps
}

func TestEndToEnd(t *testing.T) {
	ps := startCluster(t)
	n1, n2, n3 := ps[0], ps[1], ps[2]
	ctx := ctxT(t)

	t.Run("join and leave are visible everywhere", func(t *testing.T) {
		m, err := n1.c.Join(ctx, "default", "room", "alice", map[string]string{"addr": "10.0.0.1:1"}, "")
		require.NoError(t, err)
		require.Equal(t, "n1", m.Owner)
		_, err = n2.c.Join(ctx, "default", "room", "bob", nil, "")
		require.NoError(t, err)
		for _, p := range ps {
			eventually(t, "members on "+p.name, func() bool { return membersOn(t, p, "room") == "alice@n1,bob@n2" })
		}
		ms, err := n3.c.Members(ctx, "default", "room", false)
		require.NoError(t, err)
		require.Equal(t, map[string]string{"addr": "10.0.0.1:1"}, ms[0].Meta)
		gs, err := n3.c.Groups(ctx, "default")
		require.NoError(t, err)
		require.Equal(t, []string{"room"}, gs)
		local, err := n2.c.Members(ctx, "default", "room", true)
		require.NoError(t, err)
		require.Equal(t, "bob@n2", ids(local))

		// n2 does not hold alice: it forwards the leave to n1, her owner.
		require.NoError(t, n2.c.Leave(ctx, "default", "room", "alice"))
		for _, p := range ps {
			eventually(t, "alice gone on "+p.name, func() bool { return membersOn(t, p, "room") == "bob@n2" })
		}
	})

	t.Run("watch order and resume", func(t *testing.T) {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		w, err := n3.c.Watch(wctx, "default", "chat", "", "")
		require.NoError(t, err)
		snap := <-w.C
		require.Equal(t, client.EventSnapshot, snap.Type)
		for i := range 10 {
			_, err := n1.c.Join(ctx, "default", "chat", fmt.Sprintf("m%d", i), nil, "")
			require.NoError(t, err)
		}
		// Each member's events come in its owner's order (the CRDT orders
		// them per member); joins of different members may be applied in
		// another order than they were made, so check the set.
		seen := map[string]int{}
		var last string
		for range 5 {
			e := recv(t, w)
			require.Equal(t, client.EventJoin, e.Type)
			seen[e.Member.ID]++
			last = e.ID
		}
		w.Close()
		require.NoError(t, n1.c.Leave(ctx, "default", "chat", "m0"))
		w2, err := n3.c.Watch(wctx, "default", "chat", "", last)
		require.NoError(t, err)
		defer w2.Close()
		for len(seen) < 10 {
			e := recv(t, w2)
			require.Equal(t, client.EventJoin, e.Type, "resumed after %s: %+v", last, e)
			seen[e.Member.ID]++
		}
		for i := range 10 {
			require.Equal(t, 1, seen[fmt.Sprintf("m%d", i)], "m%d exactly once across the resume", i)
		}
		e := recv(t, w2)
		require.Equal(t, "leave m0 left", string(e.Type)+" "+e.Member.ID+" "+e.Reason)
	})

	t.Run("sessions", func(t *testing.T) {
		s, err := n2.c.CreateSession(ctx, time.Second)
		require.NoError(t, err)
		_, err = n2.c.Join(ctx, "default", "presence", "s1", nil, s.ID)
		require.NoError(t, err)
		for _, p := range ps {
			eventually(t, "s1 on "+p.name, func() bool { return membersOn(t, p, "presence") == "s1@n2" })
		}
		// As behind a load balancer: every node takes the keep-alive
		// (n1 and n3 forward it to n2, n3's token passed on).
		for _, p := range ps {
			time.Sleep(500 * time.Millisecond)
			_, err := p.c.KeepAlive(ctx, s.ID)
			require.NoError(t, err, "keep-alive through %s", p.name)
		}
		require.Equal(t, "s1@n2", membersOn(t, n1, "presence"), "kept alive past its TTL")
		for _, p := range ps {
			eventually(t, "s1 expired on "+p.name, func() bool { return membersOn(t, p, "presence") == "" })
		}
		_, err = n2.c.KeepAlive(ctx, s.ID)
		require.ErrorIs(t, err, client.ErrSessionNotFound)
	})

	t.Run("nodes", func(t *testing.T) {
		ns, err := n2.c.Nodes(ctx)
		require.NoError(t, err)
		require.Len(t, ns, 3)
		for i, n := range ns {
			require.Equal(t, fmt.Sprintf("n%d", i+1), n.Name)
			require.Equal(t, "alive", n.State)
			require.Equal(t, n.Name == "n2", n.Self)
			require.Equal(t, []string{"chat", "default"}, n.Scopes)
		}
		require.Equal(t, n1.gossipAddr(), ns[0].Addr)
		for i, p := range ps {
			require.Equal(t, p.url(), ns[i].HTTPAddr, "derived from --http-addr")
		}

		// --json prints incarnations as the API sends them: exact
		// decimal strings (they exceed 2^53), and so does the table.
		var out bytes.Buffer
		require.NoError(t, run([]string{"nodes", "--json", "--addr", n2.url()}, &out, &out))
		var printed struct {
			Nodes []map[string]any `json:"nodes"`
		}
		require.NoError(t, json.Unmarshal(out.Bytes(), &printed), out.String())
		require.Len(t, printed.Nodes, 3)
		for i, n := range ns {
			require.Greater(t, n.Incarnation, uint64(1)<<53)
			require.Equal(t, strconv.FormatUint(n.Incarnation, 10), printed.Nodes[i]["incarnation"])
		}
		out.Reset()
		require.NoError(t, run([]string{"nodes", "--addr", n2.url()}, &out, &out))
		require.Contains(t, out.String(), strconv.FormatUint(ns[1].Incarnation, 10))
		require.Contains(t, out.String(), n3.url(), "roster nodes shows each node's HTTP address")
	})

	t.Run("metrics", func(t *testing.T) {
		text, err := n3.c.Metrics(ctx)
		require.NoError(t, err)
		for _, want := range []string{
			`roster_members{scope="default"} 10`, `roster_peers{state="alive"} 2`, `roster_ready 1`,
			"roster_gossip_deltas_received_total", "roster_anti_entropy_syncs_sent_total",
			`roster_operations_total{code="ok",op="watch"}`, "roster_http_request_duration_seconds_bucket",
		} {
			require.Contains(t, text, want)
		}
	})

	t.Run("auth", func(t *testing.T) {
		anon, err := client.New(n3.url())
		require.NoError(t, err)
		defer anon.CloseIdleConnections()
		_, err = anon.Nodes(ctx)
		require.ErrorIs(t, err, client.ErrUnauthorized)
		_, err = anon.Metrics(ctx)
		require.ErrorIs(t, err, client.ErrUnauthorized)
		_, err = anon.Join(ctx, "default", "room", "intruder", nil, "")
		require.ErrorIs(t, err, client.ErrUnauthorized)
		require.NoError(t, anon.Health(ctx))
		ok, err := anon.Ready(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		require.NotContains(t, membersOn(t, n1, "room"), "intruder")
	})

	t.Run("bad input", func(t *testing.T) {
		_, err := n1.c.Join(ctx, "default", "room", strings.Repeat("x", 256), nil, "")
		require.ErrorIs(t, err, client.ErrInvalidName)
		_, err = n1.c.Join(ctx, "nope", "room", "x", nil, "")
		require.ErrorIs(t, err, client.ErrUnknownScope)
		_, err = n1.c.Join(ctx, "default", "room", "x", map[string]string{"k": strings.Repeat("v", 5000)}, "")
		require.ErrorIs(t, err, client.ErrInvalidMeta)
		_, err = n1.c.Join(ctx, "default", "room", "x", map[string]string{"k": strings.Repeat("v", 70<<10)}, "")
		require.ErrorIs(t, err, client.ErrBodyTooLarge)
		_, err = n1.c.Join(ctx, "default", "room", "x", nil, "no-such-session")
		require.ErrorIs(t, err, client.ErrSessionNotFound)
		_, err = n1.c.CreateSession(ctx, 48*time.Hour)
		require.ErrorIs(t, err, client.ErrInvalidTTL)
		require.ErrorIs(t, n1.c.Leave(ctx, "default", "room", "nobody"), client.ErrNotMember)
		// Nothing changed (eventually: a loaded machine may briefly
		// suspect n2 and hide its members).
		eventually(t, "nothing changed", func() bool { return membersOn(t, n1, "room") == "bob@n2" })
	})

	t.Run("SIGTERM leaves the cluster", func(t *testing.T) {
		_, err := n2.c.Join(ctx, "default", "room", "carol", nil, "")
		require.NoError(t, err)
		eventually(t, "carol on n1", func() bool { return membersOn(t, n1, "room") == "bob@n2,carol@n2" })
		start := time.Now()
		require.Equal(t, 0, n2.signal(syscall.SIGTERM), "graceful exit; output:\n%s", n2.out)
		eventually(t, "n2's members gone on n1", func() bool { return membersOn(t, n1, "room") == "" })
		eventually(t, "n2's members gone on n3", func() bool { return membersOn(t, n3, "room") == "" })
		t.Logf("n2's members hidden %v after SIGTERM", time.Since(start).Round(time.Millisecond))
		require.Less(t, time.Since(start), 3*time.Second, "promptly, without failure detection")
		ns, err := n1.c.Nodes(ctx)
		require.NoError(t, err)
		require.Equal(t, "left", ns[1].State)
	})

	t.Run("SIGKILL and restart keep durable and session members", func(t *testing.T) {
		// n2 comes back with the same data dir after its SIGTERM.
		n2.start()
		eventually(t, "n2 alive again on n1", func() bool {
			ns, err := n1.c.Nodes(ctx)
			return err == nil && ns[1].State == "alive"
		})
		if !persistenceReady {
			t.Skip("needs registry persistence (DataDir)")
		}
		s, err := n2.c.CreateSession(ctx, time.Minute)
		require.NoError(t, err)
		_, err = n2.c.Join(ctx, "default", "keep", "durable", map[string]string{"k": "v"}, "")
		require.NoError(t, err)
		_, err = n2.c.Join(ctx, "default", "keep", "sessioned", nil, s.ID)
		require.NoError(t, err)
		eventually(t, "both on n1", func() bool { return membersOn(t, n1, "keep") == "durable@n2,sessioned@n2" })
		before, err := n2.c.Nodes(ctx)
		require.NoError(t, err)

		n2.signal(syscall.SIGKILL)
		eventually(t, "hidden on n1 once n2 is declared dead", func() bool { return membersOn(t, n1, "keep") == "" })
		n2.start()
		for _, p := range ps {
			eventually(t, "members back on "+p.name, func() bool { return membersOn(t, p, "keep") == "durable@n2,sessioned@n2" })
		}
		after, err := n1.c.Members(ctx, "default", "keep", false)
		require.NoError(t, err)
		require.Greater(t, after[0].Incarnation, before[1].Incarnation, "re-announced under the new incarnation")
		require.Equal(t, map[string]string{"k": "v"}, after[0].Meta)
		_, err = n2.c.KeepAlive(ctx, s.ID)
		require.NoError(t, err, "the session survived too")
	})
}

func recv(t *testing.T, w *client.Watch) client.Event {
	t.Helper()
	select {
	case e, ok := <-w.C:
		require.True(t, ok, "watch ended: %v", w.Err())
		return e
	case <-time.After(wait):
		t.Fatal("no event")
	}
	return client.Event{}
}

// TestWatchLatency measures the time from issuing a join on n1 to its SSE
// event on n3 over 1000 joins. It runs only with ROSTER_LATENCY_TEST=1:
//
//	ROSTER_LATENCY_TEST=1 go test ./cmd/roster -run TestWatchLatency -v
func TestWatchLatency(t *testing.T) {
	if os.Getenv("ROSTER_LATENCY_TEST") == "" {
		t.Skip("set ROSTER_LATENCY_TEST=1 to measure watch latency")
	}
	ps := startCluster(t)
	n1, n3 := ps[0], ps[2]
	ctx := ctxT(t)
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := n3.c.Watch(wctx, "default", "lat", "", "")
	require.NoError(t, err)
	defer w.Close()
	recv(t, w) // snapshot

	const n = 1000
	var mu sync.Mutex
	sent := make(map[string]time.Time, n)
	lat := make([]time.Duration, 0, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(lat) < n {
			select {
			case e, ok := <-w.C:
				if !ok {
					return
				}
				at := time.Now()
				if e.Type != client.EventJoin {
					continue
				}
				mu.Lock()
				lat = append(lat, at.Sub(sent[e.Member.ID]))
				mu.Unlock()
			case <-time.After(wait):
				return
			}
		}
	}()
	for i := range n {
		id := fmt.Sprintf("m%04d", i)
		mu.Lock()
		sent[id] = time.Now()
		mu.Unlock()
		_, err := n1.c.Join(ctx, "default", "lat", id, nil, "")
		require.NoError(t, err)
		time.Sleep(2 * time.Millisecond)
	}
	<-done
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, lat, n, "every join seen on n3")
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	msg := fmt.Sprintf("watch latency n1 join -> n3 SSE over %d joins: p50 %v, p90 %v, p99 %v, max %v",
		n, q(0.50), q(0.90), q(0.99), lat[len(lat)-1])
	t.Log(msg)
	fmt.Println(msg)
}
