package registry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/roster-io/roster/gossip"

	"github.com/roster-io/roster/crdt"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperNodeEnv) != "" {
		runHelperNode()
		return
	}
	// memberlist's Shutdown does not wait for a probe already in flight;
	// that goroutine ends on its own within a probe interval.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

const wait = 10 * time.Second

func openLocal(t *testing.T, name string, inc uint64, seeds ...string) *Registry {
	t.Helper()
	cfg := LocalConfig(name)
	cfg.Scopes = []string{"chat", "games"}
	cfg.Incarnation = inc
	cfg.Seeds = seeds
	r, err := Open(context.Background(), cfg)
	require.NoError(t, err)
	return r
}

func ids(ms []Member) string {
	var parts []string
	for _, m := range ms {
		parts = append(parts, m.ID+"@"+m.Owner)
	}
	return strings.Join(parts, ",")
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, wait, 5*time.Millisecond, what)
}

func membersOf(r *Registry, group string) string {
	ms, err := r.Members("chat", group)
	if err != nil {
		return "error: " + err.Error()
	}
	return ids(ms)
}

// next reads the next event of a watch, failing the test after a while.
func next(t *testing.T, w *Watch) Event {
	t.Helper()
	select {
	case e, ok := <-w.C:
		require.True(t, ok, "watch closed")
		return e
	case <-time.After(wait):
		t.Fatal("no event")
	}
	return Event{}
}

// TestLoopbackCluster runs three nodes over real UDP/TCP sockets on
// 127.0.0.1 through Open: replication, reads, validation errors, owner
// checks, context-bound members, graceful leave, crash detection and
// restart with a new incarnation.
func TestLoopbackCluster(t *testing.T) {
	ctx := context.Background()
	a := openLocal(t, "a", 1)
	b := openLocal(t, "b", 1, a.Addr())
	c := openLocal(t, "c", 1, a.Addr())
	defer func() {
		for _, r := range []*Registry{a, b, c} {
			require.NoError(t, r.Close(ctx))
		}
	}()
	eventually(t, "cluster formed", func() bool {
		for _, r := range []*Registry{a, b, c} {
			alive := 0
			for _, n := range r.Nodes() {
				if n.State == "alive" {
					alive++
				}
			}
			if alive != 3 {
				return false
			}
		}
		return true
	})
	eventually(t, "all ready after a first anti-entropy round", func() bool {
		return a.Ready() && b.Ready() && c.Ready()
	})

	w, err := c.Watch(ctx, "chat", Group("room"))
	require.NoError(t, err)
	defer w.Close()
	require.Empty(t, w.Snapshot)

	_, err = a.Join(ctx, "chat", "room", "alice", Meta{"addr": "10.0.0.1:1"})
	require.NoError(t, err)
	mb, err := b.Join(ctx, "chat", "room", "bob", nil)
	require.NoError(t, err)
	// The same id on two owners is two members.
	_, err = b.Join(ctx, "chat", "room", "alice", nil)
	require.NoError(t, err)
	for _, r := range []*Registry{a, b, c} {
		eventually(t, "replicated to "+r.Name(), func() bool { return membersOf(r, "room") == "alice@a,alice@b,bob@b" })
	}
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		e := next(t, w)
		require.Equal(t, EventJoin, e.Type)
		require.Equal(t, ReasonJoined, e.Reason)
		seen[e.Member.ID+"@"+e.Member.Owner] = true
	}
	require.Len(t, seen, 3)

	ls, err := b.LocalMembers("chat", "room")
	require.NoError(t, err)
	require.Equal(t, "alice@b,bob@b", ids(ls))
	gs, err := c.Groups("chat")
	require.NoError(t, err)
	require.Equal(t, []string{"room"}, gs)
	ms, err := c.Members("chat", "room")
	require.NoError(t, err)
	require.Equal(t, Meta{"addr": "10.0.0.1:1"}, ms[0].Meta)

	// Metadata update.
	require.NoError(t, mb.Update(ctx, Meta{"status": "away"}))
	e := next(t, w)
	require.Equal(t, EventUpdate, e.Type)
	require.Equal(t, "bob", e.Member.ID)
	require.Equal(t, Meta{"status": "away"}, e.Member.Meta)

	// Bad input: specific errors, nothing changes.
	_, err = a.Join(ctx, "chat", "", "x", nil)
	require.ErrorIs(t, err, ErrInvalidName)
	_, err = a.Join(ctx, "chat", "room", strings.Repeat("x", 256), nil)
	require.ErrorIs(t, err, ErrInvalidName)
	_, err = a.Join(ctx, "chat", "room", "bad\xff", nil)
	require.ErrorIs(t, err, ErrInvalidName)
	_, err = a.Join(ctx, "nope", "room", "x", nil)
	require.ErrorIs(t, err, ErrUnknownScope)
	_, err = a.Join(ctx, "chat", "room", "x", Meta{"k": strings.Repeat("v", 5000)})
	require.ErrorIs(t, err, ErrInvalidMeta)
	require.ErrorIs(t, a.Leave(ctx, "chat", "room", "bob"), ErrNotOwner)
	require.ErrorIs(t, a.Leave(ctx, "chat", "room", "nobody"), ErrNotMember)
	require.Equal(t, "alice@a,alice@b,bob@b", membersOf(a, "room"))
	requireCount(t, a, 3)
	_, err = a.Count("nope")
	require.ErrorIs(t, err, ErrUnknownScope)

	// A member tied to a context leaves when it ends.
	connCtx, hangUp := context.WithCancel(ctx)
	_, err = c.JoinWhile(connCtx, "chat", "room", "carol", nil)
	require.NoError(t, err)
	eventually(t, "carol visible on a", func() bool { return strings.Contains(membersOf(a, "room"), "carol@c") })
	hangUp()
	eventually(t, "carol gone from a", func() bool { return !strings.Contains(membersOf(a, "room"), "carol") })
	require.Equal(t, EventJoin, next(t, w).Type)
	require.Equal(t, EventLeave, next(t, w).Type)

	// b crashes: a and c hide its members once the failure detector says
	// so; c's watcher is told owner-down.
	b.node.Crash()
	eventually(t, "b's members hidden on a", func() bool { return membersOf(a, "room") == "alice@a" })
	eventually(t, "b's members hidden on c", func() bool { return membersOf(c, "room") == "alice@a" })
	requireCount(t, a, 1) // hidden members are not counted
	// Hidden, but still owned by b: not a's to remove.
	require.ErrorIs(t, a.Leave(ctx, "chat", "room", "bob"), ErrNotOwner)
	downs := map[string]Reason{}
	for i := 0; i < 2; i++ {
		e := next(t, w)
		require.Equal(t, EventLeave, e.Type)
		downs[e.Member.ID] = e.Reason
	}
	require.Equal(t, map[string]Reason{"alice": ReasonOwnerDown, "bob": ReasonOwnerDown}, downs)

	// b restarts with a new incarnation: the old entries are gone for good
	// and the new run's members appear.
	b2 := openLocal(t, "b", 2, a.Addr())
	defer func() { require.NoError(t, b2.Close(ctx)) }()
	_, err = b2.Join(ctx, "chat", "room", "bob-again", nil)
	require.NoError(t, err)
	for _, r := range []*Registry{a, c} {
		eventually(t, "b#2 visible on "+r.Name(), func() bool { return membersOf(r, "room") == "alice@a,bob-again@b" })
	}
	e = next(t, w)
	require.Equal(t, EventJoin, e.Type)
	require.Equal(t, "bob-again", e.Member.ID)
	require.Equal(t, uint64(2), e.Member.Incarnation)

	// Graceful close: the others hide its members at once (no failure
	// detection needed).
	require.NoError(t, b2.Close(ctx))
	eventually(t, "b#2 gone after close", func() bool { return membersOf(c, "room") == "alice@a" })
	e = next(t, w)
	require.Equal(t, EventLeave, e.Type)
	require.Equal(t, ReasonOwnerDown, e.Reason)
	eventually(t, "a lists b as left", func() bool {
		for _, n := range a.Nodes() {
			if n.Name == "b" {
				return n.State == "left" && n.Incarnation == 2
			}
		}
		return false
	})
}

func TestOpenValidates(t *testing.T) {
	cfg := LocalConfig("")
	_, err := Open(context.Background(), cfg)
	require.ErrorIs(t, err, ErrConfig)
	cfg = LocalConfig("x")
	cfg.WatchBuffer = 0
	_, err = Open(context.Background(), cfg)
	require.ErrorIs(t, err, ErrConfig)
	cfg = LocalConfig("x")
	cfg.Scopes = nil
	_, err = Open(context.Background(), cfg)
	require.True(t, errors.Is(err, ErrConfig), err)
	for _, k := range []int{-1, 1, 65} {
		cfg = LocalConfig("x")
		cfg.FanOut = k
		_, err = Open(context.Background(), cfg)
		require.ErrorIs(t, err, ErrConfig, "FanOut %d", k)
		require.ErrorContains(t, err, "FanOut")
	}
	cfg = LocalConfig("x")
	cfg.Cluster = strings.Repeat("c", 256)
	_, err = Open(context.Background(), cfg)
	require.ErrorIs(t, err, ErrConfig)
	require.ErrorContains(t, err, "Cluster must be at most 255 bytes")
	cfg = LocalConfig("x")
	cfg.Cluster = "blue"
	cfg.Tune(func(g *gossip.Config) {
		ml := *g.Memberlist
		ml.Label = "green"
		g.Memberlist = &ml
	})
	_, err = Open(context.Background(), cfg)
	require.ErrorIs(t, err, ErrConfig)
	require.ErrorContains(t, err, "differ")
}

// TestWatchBatchOverflow: a batch overflows a watch's buffer only by the
// events the watch follows (a batch longer than the buffer that it mostly
// does not follow is delivered), and a batch it follows that is longer than
// the buffer ends in a resync.
func TestWatchBatchOverflow(t *testing.T) {
	r := openBuffered(t, 4)
	w, err := r.Watch(context.Background(), "chat", Prefix("a"))
	require.NoError(t, err)
	defer w.Close()
	h := r.hubs["chat"]
	owner := crdt.ReplicaID{Name: "n2", Incarnation: 7}
	batch := func(groups ...string) []crdt.Event {
		evs := make([]crdt.Event, len(groups))
		for i, g := range groups {
			evs[i] = crdt.Event{Kind: crdt.EventJoin, Cause: crdt.CauseMerge, Group: g, ID: fmt.Sprintf("m%d", i), Owner: owner}
		}
		return evs
	}
	next := func() Event { return nextEvent(t, w) }
	// 10 events, 4 followed: all 4 arrive, in order.
	h.scope.Locked(func(*crdt.State) { h.publish(batch("b", "a1", "b", "a2", "b", "b", "a3", "b", "a4", "b")) })
	for i, g := range []string{"a1", "a2", "a3", "a4"} {
		e := next()
		require.Equal(t, EventJoin, e.Type, "event %d", i)
		require.Equal(t, g, e.Member.Group)
		require.Equal(t, "n2", e.Member.Owner)
	}
	// 5 followed updates into a buffer of 4 (the watch follows 4 members):
	// a resync, not a partial batch.
	updates := batch("a1", "a2", "a3", "a4", "a1")
	for i := range updates {
		updates[i].Kind = crdt.EventUpdate
	}
	h.scope.Locked(func(*crdt.State) { h.publish(updates) })
	e := next()
	require.Equal(t, EventResync, e.Type)
	require.Empty(t, e.Members, "the state holds none of the published members")
}

// TestWatchBufferFollowsHeldMembers: a consumer holding more members than
// WatchBuffer may fall behind by as many events as it holds before it is
// resynced (a resync would hand it at least that many), and no further;
// what it holds grows with the joins it takes.
func TestWatchBufferFollowsHeldMembers(t *testing.T) {
	r := openBuffered(t, 4)
	for i := range 10 {
		_, err := r.Join(context.Background(), "chat", "room", fmt.Sprintf("m%d", i), nil)
		require.NoError(t, err)
	}
	w, err := r.Watch(context.Background(), "chat", All())
	require.NoError(t, err)
	defer w.Close()
	require.Len(t, w.Snapshot, 10)
	h := r.hubs["chat"]
	events := func(kind crdt.EventKind, prefix string, n int) []crdt.Event {
		evs := make([]crdt.Event, n)
		for i := range evs {
			evs[i] = crdt.Event{Kind: kind, Cause: crdt.CauseMerge, Group: "room", ID: fmt.Sprintf("%s%d", prefix, i), Owner: crdt.ReplicaID{Name: "n2", Incarnation: 1}}
		}
		return evs
	}
	next := func() Event { return nextEvent(t, w) }
	// Holding 10: 10 events at once, more than the buffer, are delivered.
	h.scope.Locked(func(*crdt.State) { h.publish(events(crdt.EventJoin, "x", 10)) })
	for i := range 10 {
		require.Equal(t, EventJoin, next().Type, "join %d", i)
	}
	// Holding 20 now (the joins taken): 20 more at once are delivered too.
	h.scope.Locked(func(*crdt.State) { h.publish(events(crdt.EventJoin, "y", 20)) })
	for i := range 20 {
		require.Equal(t, EventJoin, next().Type, "join %d", i)
	}
	// Holding 40: 41 events at once are a resync, with the 10 members the
	// state holds.
	h.scope.Locked(func(*crdt.State) { h.publish(events(crdt.EventUpdate, "m", 41)) })
	e := next()
	require.Equal(t, EventResync, e.Type)
	require.Len(t, e.Members, 10)
}

// openBuffered opens a lone node n1 serving scope "chat" with the given
// WatchBuffer, closed when the test ends.
func openBuffered(t *testing.T, buffer int) *Registry {
	t.Helper()
	cfg := LocalConfig("n1")
	cfg.Incarnation = 1
	cfg.Scopes = []string{"chat"}
	cfg.WatchBuffer = buffer
	// Only the event count bounds these watches' backlogs here.
	cfg.Limits.WatchBacklogBytes = 1 << 30
	r, err := Open(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close(context.Background())) })
	return r
}

// nextEvent returns w's next event, failing the test if none comes.
func nextEvent(t *testing.T, w *Watch) Event {
	t.Helper()
	select {
	case e := <-w.C:
		return e
	case <-time.After(wait):
		t.Fatal("no event")
		return Event{}
	}
}

// TestWatchLargeSnapshot: a snapshot large enough to be built on several
// CPUs holds every member the watch follows exactly once, in (group, id,
// owner) order, for a whole scope and for a prefix.
func TestWatchLargeSnapshot(t *testing.T) {
	r := openBuffered(t, 16)
	ctx := context.Background()
	const n = 5 * snapshotPart
	for i := range n {
		_, err := r.Join(ctx, "chat", fmt.Sprintf("%c%02d", "gh"[i%2], i%37), fmt.Sprintf("m%d", i), nil)
		require.NoError(t, err)
	}
	for _, sel := range []Selector{All(), Prefix("g")} {
		w, err := r.Watch(ctx, "chat", sel)
		require.NoError(t, err)
		var want []Member
		groups, err := r.Groups("chat")
		require.NoError(t, err)
		for _, g := range groups {
			if sel.Matches(g) {
				ms, err := r.Members("chat", g)
				require.NoError(t, err)
				want = append(want, ms...)
			}
		}
		require.GreaterOrEqual(t, len(want), 2*snapshotPart, "the snapshot must take the parallel path")
		require.Equal(t, want, w.Snapshot)
		w.Close()
	}
}

// TestTiedHandles: only members tied to a context keep a registered handle;
// joining a tied member again returns its handle, and leaving it any other
// way stops watching the context, so a later plain join of the same member
// outlives that context.
func TestTiedHandles(t *testing.T) {
	ctx := context.Background()
	r := openLocal(t, "a", 1)
	defer func() { require.NoError(t, r.Close(ctx)) }() // a second Close is a no-op
	handles := func() int {
		r.handlesMu.Lock()
		defer r.handlesMu.Unlock()
		return len(r.handles)
	}

	plain, err := r.Join(ctx, "chat", "room", "p", nil)
	require.NoError(t, err)
	require.Equal(t, 0, handles(), "a plain join registered its handle")
	require.Equal(t, "p", plain.ID())

	conn, hangUp := context.WithCancel(ctx)
	tied, err := r.JoinWhile(conn, "chat", "room", "t", nil)
	require.NoError(t, err)
	require.Equal(t, 1, handles())
	again, err := r.Join(ctx, "chat", "room", "t", Meta{"v": "2"})
	require.NoError(t, err)
	require.Same(t, tied, again, "joining a tied member again gave another handle")

	require.NoError(t, tied.Leave(ctx))
	require.Equal(t, 0, handles(), "leaving kept the handle")
	_, err = r.Join(ctx, "chat", "room", "t", nil)
	require.NoError(t, err)
	hangUp()
	// The context's watcher was stopped by the leave: the member stays.
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, "p@a,t@a", membersOf(r, "room"))

	conn2, hangUp2 := context.WithCancel(ctx)
	_, err = r.JoinWhile(conn2, "chat", "room", "u", nil)
	require.NoError(t, err)
	hangUp2()
	eventually(t, "u left with its context", func() bool { return membersOf(r, "room") == "p@a,t@a" })
	eventually(t, "u's handle dropped", func() bool { return handles() == 0 })

	// Close stops watching the contexts of tied members.
	conn3, hangUp3 := context.WithCancel(ctx)
	defer hangUp3()
	_, err = r.JoinWhile(conn3, "chat", "room", "v", nil)
	require.NoError(t, err)
	v := tiedOf(r, "chat", "room", "v")
	require.NotNil(t, v)
	require.NoError(t, r.Close(ctx))
	require.Equal(t, 0, handles(), "Close kept the tied handles")
	v.mu.Lock()
	defer v.mu.Unlock()
	require.Empty(t, v.ties, "Close left the context watched")
}

// TestTieOncePerContext: a member joined again and again with the same
// context (its metadata updated through JoinWhile) is watched once for
// it, not once per join; another context adds a tie, and the first of
// them to end still takes the member out. A context that never ends is
// not watched at all.
func TestTieOncePerContext(t *testing.T) {
	ctx := context.Background()
	r := openLocal(t, "a", 1)
	defer func() { require.NoError(t, r.Close(ctx)) }()
	ties := func(m *tied) int {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.ties)
	}
	conn, hangUp := context.WithCancel(ctx)
	for i := range 100 {
		_, err := r.JoinWhile(conn, "chat", "room", "x", Meta{"v": fmt.Sprint(i)})
		require.NoError(t, err)
	}
	// The ties, held past the leave that unregisters them.
	m := tiedOf(r, "chat", "room", "x")
	require.NotNil(t, m)
	require.Equal(t, 1, ties(m))
	other, hangUpOther := context.WithCancel(ctx)
	defer hangUpOther()
	_, err := r.JoinWhile(other, "chat", "room", "x", nil)
	require.NoError(t, err)
	require.Equal(t, 2, ties(m))
	hangUp()
	eventually(t, "x left with its first context", func() bool { return membersOf(r, "room") == "" })
	// The leave drops the handle, which stops the other tie, just after.
	eventually(t, "x's ties stopped", func() bool { return ties(m) == 0 })

	_, err = r.JoinWhile(ctx, "chat", "room", "y", nil)
	require.NoError(t, err)
	require.Equal(t, 0, ties(tiedOf(r, "chat", "room", "y")), "a context that never ends was watched")
}

// TestWatchOrderAcrossHandOffs: events reach C exactly once and in order
// whether publish hands them over itself (an idle watch with room in C) or
// queues them for the watch's goroutine (C full, or events already queued),
// with a consumer that keeps switching between the two by pausing.
func TestWatchOrderAcrossHandOffs(t *testing.T) {
	r := openBuffered(t, 1<<16)
	w, err := r.Watch(context.Background(), "chat", All())
	require.NoError(t, err)
	defer w.Close()
	h := r.hubs["chat"]
	rng := rand.New(rand.NewPCG(7, 7))
	total := 0
	var sizes []int
	for total < 200*watchChanBuffer {
		n := 1 + rng.IntN(watchChanBuffer/4)
		sizes = append(sizes, n)
		total += n
	}
	go func() {
		for b, n := range sizes {
			evs := make([]crdt.Event, n)
			for i := range evs {
				evs[i] = crdt.Event{Kind: crdt.EventJoin, Cause: crdt.CauseMerge, Group: "room", ID: fmt.Sprintf("b%d-%d", b, i), Owner: crdt.ReplicaID{Name: "n2", Incarnation: 1}}
			}
			h.scope.Locked(func(*crdt.State) { h.publish(evs) })
			if b%50 == 0 {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()
	last := w.Seq
	for i := range total {
		e := nextEvent(t, w)
		require.Equal(t, EventJoin, e.Type, "event %d", i)
		require.Equal(t, last+1, e.Seq, "event %d out of order", i)
		last = e.Seq
		if i%(watchChanBuffer+1) == 0 {
			time.Sleep(100 * time.Microsecond) // C fills up meanwhile
		}
	}
	require.EqualValues(t, total, watcherOf(t, r, "chat", w).held.Load(), "held counts every join handed over")
}

// TestEndedTieSparesRejoin: a tied member left explicitly just as its
// context ends, then joined again without a tie, stays: the context's
// callback, already running when the leave stopped the tie, must not
// leave the new member. (Before the fix it removed almost all of them.)
func TestEndedTieSparesRejoin(t *testing.T) {
	bg := context.Background()
	r := openLocal(t, "a", 1)
	defer func() { require.NoError(t, r.Close(bg)) }()
	var rejoined []string
	for i := range 300 {
		id := fmt.Sprintf("m%d", i)
		ctx, cancel := context.WithCancel(bg)
		m, err := r.JoinWhile(ctx, "chat", "room", id, nil)
		require.NoError(t, err)
		cancel()
		if m.Leave(bg) != nil {
			continue // the callback left it first: nothing to check
		}
		_, err = r.Join(bg, "chat", "room", id, nil)
		require.NoError(t, err)
		rejoined = append(rejoined, id)
	}
	time.Sleep(200 * time.Millisecond) // any late callback has run
	ms, err := r.LocalMembers("chat", "room")
	require.NoError(t, err)
	held := map[string]bool{}
	for _, m := range ms {
		held[m.ID] = true
	}
	for _, id := range rejoined {
		require.True(t, held[id], "%s, left and joined again without a tie, was removed by the ended context", id)
	}
}

// TestSessionUndoRestores: a Join refused because its session ended while
// it was persisted changes nothing. A member it would have added is not
// there (nor its handle, nor a tie); a member that was there keeps its
// metadata, its plain lifetime and its tie (its context still takes it
// out). The race is hit within a few dozen tries; the test skips if it
// never is.
func TestSessionUndoRestores(t *testing.T) {
	bg := context.Background()
	// undone joins id in a session closed meanwhile until the join is
	// refused by the undo, and reports whether it ever was. setup runs
	// before each try.
	undone := func(r *Registry, id string, setup func()) bool {
		for range 3000 {
			setup()
			s, err := r.CreateSession(bg, time.Minute)
			require.NoError(t, err)
			go func() { _ = r.CloseSession(bg, s.ID) }()
			_, err = r.Join(bg, "chat", "room", id, Meta{"v": "session"}, InSession(s.ID))
			if errors.Is(err, ErrNoSession) && strings.Contains(err.Error(), "ended during the join") {
				return true
			}
			// Joined (then left with the session) or refused up front:
			// not the undo. Try again.
			if err == nil {
				eventually(t, "the session's member left", func() bool {
					_, ok := r.Lifetime("chat", "room", id)
					return !ok
				})
			}
		}
		return false
	}
	t.Run("new member", func(t *testing.T) {
		r := openLocal(t, "a", 1)
		defer func() { require.NoError(t, r.Close(bg)) }()
		if !undone(r, "n", func() {}) {
			t.Skip("the session never ended during a join")
		}
		_, ok := r.Lifetime("chat", "room", "n")
		require.False(t, ok, "the refused join left its member")
		require.Equal(t, "", membersOf(r, "room"))
		r.handlesMu.Lock()
		defer r.handlesMu.Unlock()
		require.Empty(t, r.handles)
	})
	t.Run("member there before", func(t *testing.T) {
		r := openLocal(t, "a", 1)
		defer func() { require.NoError(t, r.Close(bg)) }()
		conn, hangUp := context.WithCancel(bg)
		defer hangUp()
		if !undone(r, "p", func() {
			// There before each try (a join that went through left with
			// its session).
			_, err := r.JoinWhile(conn, "chat", "room", "p", Meta{"v": "before"})
			require.NoError(t, err)
		}) {
			t.Skip("the session never ended during a join")
		}
		life, ok := r.Lifetime("chat", "room", "p")
		require.True(t, ok, "the refused join removed a member that was there before it")
		require.Equal(t, Lifetime{}, life, "the member is no longer plain")
		ms, err := r.LocalMembers("chat", "room")
		require.NoError(t, err)
		require.Len(t, ms, 1)
		require.Equal(t, Meta{"v": "before"}, ms[0].Meta)
		hangUp()
		eventually(t, "the member left with its context", func() bool { return membersOf(r, "room") == "" })
	})
}

// requireCount checks Count of scope "chat" against want and against the
// members of its groups listed one by one.
func requireCount(t *testing.T, r *Registry, want int) {
	t.Helper()
	n, err := r.Count("chat")
	require.NoError(t, err)
	require.Equal(t, want, n)
	groups, err := r.Groups("chat")
	require.NoError(t, err)
	listed := 0
	for _, g := range groups {
		ms, err := r.Members("chat", g)
		require.NoError(t, err)
		listed += len(ms)
	}
	require.Equal(t, listed, n, "Count disagrees with the groups' members")
}

// TestSeqCountsUnwatchedChanges: changes made while nobody watches a scope
// (its events are then only counted, not built) still take their Seq, so
// Seq grows by one per change across watches.
func TestSeqCountsUnwatchedChanges(t *testing.T) {
	ctx := context.Background()
	r := openBuffered(t, 64)
	join := func(ids ...string) {
		for _, id := range ids {
			_, err := r.Join(ctx, "chat", "room", id, nil)
			require.NoError(t, err)
		}
	}
	join("a", "b", "c")
	require.NoError(t, r.Leave(ctx, "chat", "room", "b"))
	w, err := r.Watch(ctx, "chat", All())
	require.NoError(t, err)
	require.EqualValues(t, 4, w.Seq, "3 joins and a leave before the first watch")
	join("d")
	e := nextEvent(t, w)
	require.EqualValues(t, 5, e.Seq)
	w.Close()
	for range w.C {
	}
	require.Eventually(t, func() bool { return r.hubs["chat"].scope.Quiet() }, wait, time.Millisecond, "the scope stayed loud with no watch")
	join("e", "f")
	w2, err := r.Watch(ctx, "chat", All())
	require.NoError(t, err)
	defer w2.Close()
	require.EqualValues(t, 7, w2.Seq)
	require.Equal(t, "a@n1,c@n1,d@n1,e@n1,f@n1", ids(w2.Snapshot))
	join("g")
	require.EqualValues(t, 8, nextEvent(t, w2).Seq)
}

// tiedOf returns the registered ties of member (scope, group, id), nil
// if it has none (a plain join, or left).
func tiedOf(r *Registry, scope, group, id string) *tied {
	r.handlesMu.Lock()
	defer r.handlesMu.Unlock()
	return r.handles[handleKey{scope, group, id}]
}

// watcherOf returns the engine behind w, an open watch of scope on r.
func watcherOf(t *testing.T, r *Registry, scope string, w *Watch) *watcher {
	t.Helper()
	h := r.hubs[scope]
	h.mu.Lock()
	defer h.mu.Unlock()
	for x := range h.ws {
		if (<-chan Event)(x.out) == w.C {
			return x
		}
	}
	t.Fatalf("no open watch of %s has w's channel", scope)
	return nil
}
