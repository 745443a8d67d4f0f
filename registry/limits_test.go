package registry

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func openLimited(t *testing.T, l Limits, edit func(*Config)) *Registry {
	t.Helper()
	cfg := LocalConfig("lim")
	cfg.Scopes = []string{"chat", "games"}
	cfg.Limits = l
	if edit != nil {
		edit(&cfg)
	}
	r, err := Open(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close(context.Background())) })
	return r
}

// TestLimits creates sessions, members, groups and watches past the node's
// limits: each refusal has its sentinel, changes nothing, and frees up
// when something is removed.
func TestLimits(t *testing.T) {
	ctx := context.Background()
	r := openLimited(t, Limits{MaxSessions: 2, MaxMembers: 3, MaxGroups: 2, MaxWatchers: 2}, func(c *Config) { c.DataDir = t.TempDir() })

	// Sessions.
	s1, err := r.CreateSession(ctx, time.Minute)
	require.NoError(t, err)
	_, err = r.CreateSession(ctx, time.Minute)
	require.NoError(t, err)
	_, err = r.CreateSession(ctx, time.Minute)
	require.ErrorIs(t, err, ErrTooManySessions)
	require.ErrorIs(t, err, ErrLimit)
	require.Len(t, r.Sessions(), 2, "a refused session is not created")

	// Members and groups, counted over all scopes.
	_, err = r.Join(ctx, "chat", "g1", "a", nil)
	require.NoError(t, err)
	_, err = r.Join(ctx, "chat", "g1", "b", nil, InSession(s1.ID))
	require.NoError(t, err)
	_, err = r.Join(ctx, "games", "g2", "c", nil, Durable())
	require.NoError(t, err)
	_, err = r.Join(ctx, "chat", "g3", "x", nil)
	require.ErrorIs(t, err, ErrTooManyMembers)
	require.ErrorIs(t, err, ErrLimit)
	_, err = r.Join(ctx, "chat", "g1", "a", Meta{"k": "v"}) // an update at the limit
	require.NoError(t, err)
	// Closing the session leaves b: one member free, but still two groups.
	require.NoError(t, r.CloseSession(ctx, s1.ID))
	_, err = r.Join(ctx, "chat", "g3", "x", nil)
	require.ErrorIs(t, err, ErrTooManyGroups)
	gs, err := r.Groups("chat")
	require.NoError(t, err)
	require.Equal(t, []string{"g1"}, gs, "refused joins changed nothing")
	_, err = r.Join(ctx, "chat", "g1", "x", nil)
	require.NoError(t, err)
	require.NoError(t, r.Leave(ctx, "games", "g2", "c"))
	_, err = r.Join(ctx, "chat", "g3", "y", nil)
	require.NoError(t, err, "a left member and its group free their places")
	// A member tied to a context frees its place when the context ends.
	require.NoError(t, r.Leave(ctx, "chat", "g3", "y"))
	tctx, cancel := context.WithCancel(ctx)
	_, err = r.JoinWhile(tctx, "chat", "g3", "y", nil)
	require.NoError(t, err)
	cancel()
	require.Eventually(t, func() bool {
		_, err := r.Join(ctx, "games", "g4", "z", nil)
		return err == nil
	}, wait, 10*time.Millisecond)

	// Watchers.
	w1, err := r.Watch(ctx, "chat", All())
	require.NoError(t, err)
	w2, err := r.Watch(ctx, "games", Group("g1"))
	require.NoError(t, err)
	_, err = r.Watch(ctx, "chat", All())
	require.ErrorIs(t, err, ErrTooManyWatchers)
	w1.Close()
	w3, err := r.Watch(ctx, "chat", All())
	require.NoError(t, err)
	w2.Close()
	w3.Close()
}

func TestLimitsValidated(t *testing.T) {
	cfg := LocalConfig("lim")
	cfg.Limits.MaxMembers = -1
	_, err := Open(context.Background(), cfg)
	require.ErrorIs(t, err, ErrConfig)
}

// TestStalledWatchersBounded is the attack of issue #15: many watchers
// that never read while the scope churns. Each stalled watch's backlog
// stays within Limits.WatchBacklogBytes (the heap does not grow with the
// churn), and once its consumer reads again it gets a resync, not a gap.
func TestStalledWatchersBounded(t *testing.T) {
	ctx := context.Background()
	const budget = 64 << 10
	r := openLimited(t, Limits{WatchBacklogBytes: budget, MaxWatchers: 200}, func(c *Config) {
		c.WatchBuffer = 1 << 20 // only the byte budget bounds the backlog
	})
	var ws []*Watch
	for range 150 {
		w, err := r.Watch(ctx, "chat", All())
		require.NoError(t, err)
		ws = append(ws, w)
	}
	before := heapInUse()
	// 10,000 changes of ~1 KiB of metadata: unbounded, every watch would
	// queue all of them (150 x 10,000 events), or a snapshot each.
	meta := Meta{"pad": strings.Repeat("x", 1000)}
	for i := range 10_000 {
		_, err := r.Join(ctx, "chat", fmt.Sprintf("g%d", i%50), fmt.Sprintf("m%d", i%2000), Meta{"pad": meta["pad"], "i": fmt.Sprint(i)})
		require.NoError(t, err)
	}
	for _, pub := range ws {
		w := watcherOf(t, r, "chat", pub)
		w.mu.Lock()
		backlog, n := w.queued+w.inHand, w.queue.len()
		w.mu.Unlock()
		require.LessOrEqual(t, backlog, budget)
		require.Less(t, n, budget/1000)
	}
	grown := int64(heapInUse()) - int64(before)
	// Bounded: about 150 x (budget + the channel's 256 events) at most,
	// and no snapshot for a watch that does not read; unbounded this is
	// over 300 MB.
	require.Less(t, grown, int64(64<<20), "heap grew by %d bytes", grown)

	// A consumer that reads again gets a resync and no gap: its view ends
	// equal to the registry's.
	w := ws[0]
	view := map[string]string{}
	resyncs := 0
	var last uint64
	for {
		var e Event
		select {
		case e = <-w.C:
		case <-time.After(200 * time.Millisecond):
		}
		if e.Type == "" {
			break
		}
		require.Greater(t, e.Seq, last, "no event twice, none out of order")
		last = e.Seq
		switch e.Type {
		case EventResync:
			resyncs++
			clear(view)
			for _, m := range e.Members {
				view[m.Group+"/"+m.ID] = m.Meta["i"]
			}
		case EventJoin, EventUpdate:
			view[e.Member.Group+"/"+e.Member.ID] = e.Member.Meta["i"]
		case EventLeave:
			delete(view, e.Member.Group+"/"+e.Member.ID)
		}
	}
	require.Positive(t, resyncs)
	want := map[string]string{}
	for g := range 50 {
		ms, err := r.Members("chat", fmt.Sprintf("g%d", g))
		require.NoError(t, err)
		for _, m := range ms {
			want[m.Group+"/"+m.ID] = m.Meta["i"]
		}
	}
	require.Equal(t, want, view)
	for _, w := range ws {
		w.Close()
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestWatchBacklogNodeBudget: many stalled watches share one byte budget
// for the node (Limits.WatchBacklogTotalBytes): per-watch budgets alone
// would let 1,024 stalled watches queue 4 GiB. The node's backlog never
// passes its budget, every watch that hit it resyncs once it reads, and
// when the watches end the node's backlog returns to zero (the accounting
// leaks nothing).
func TestWatchBacklogNodeBudget(t *testing.T) {
	ctx := context.Background()
	const total = 256 << 10
	r := openLimited(t, Limits{WatchBacklogBytes: 1 << 20, WatchBacklogTotalBytes: total, MaxWatchers: 100}, func(c *Config) {
		c.WatchBuffer = 1 << 20
	})
	var ws []*Watch
	for range 40 {
		w, err := r.Watch(ctx, "chat", All())
		require.NoError(t, err)
		ws = append(ws, w)
	}
	meta := strings.Repeat("x", 500)
	for i := range 5000 {
		_, err := r.Join(ctx, "chat", fmt.Sprintf("g%d", i%20), fmt.Sprintf("m%d", i%1000), Meta{"pad": meta, "i": fmt.Sprint(i)})
		require.NoError(t, err)
		if i%100 == 0 {
			require.LessOrEqual(t, r.backlog.Load(), int64(total))
		}
	}
	require.LessOrEqual(t, r.backlog.Load(), int64(total))
	// A stalled watch reads again: it catches up through a resync, and its
	// view ends equal to the registry's.
	w := ws[0]
	resyncs := 0
	for done := false; !done; {
		select {
		case e := <-w.C:
			if e.Type == EventResync {
				resyncs++
			}
		case <-time.After(300 * time.Millisecond):
			done = true
		}
	}
	require.Positive(t, resyncs, "a watch past the node's budget is resynced")
	for _, w := range ws {
		w.Close()
	}
	require.Eventually(t, func() bool { return r.backlog.Load() == 0 }, 5*time.Second, 10*time.Millisecond,
		"the node's backlog returns to zero: %d", r.backlog.Load())
}
