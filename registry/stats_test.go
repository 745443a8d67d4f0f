package registry

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/roster-io/roster/internal/syncbuf"

	"github.com/roster-io/roster/internal/jsonkeys"
	"github.com/stretchr/testify/require"
)

// TestScopeStatsWatchBacklog: a watch whose consumer does not read holds
// the events in its channel, then in its queue (counted in bytes too),
// then falls behind; reading drains the backlog, and closing the watch
// removes it.
func TestScopeStatsWatchBacklog(t *testing.T) {
	const buffer = 1000
	r := openBuffered(t, buffer)
	ctx := context.Background()
	st, err := r.ScopeStats("chat")
	require.NoError(t, err)
	require.Equal(t, ScopeStats{}, st)

	w, err := r.Watch(ctx, "chat", All())
	require.NoError(t, err)
	idle, err := r.Watch(ctx, "chat", Group("elsewhere"))
	require.NoError(t, err)
	defer idle.Close()
	join := func(from, to int) {
		for i := from; i < to; i++ {
			_, err := r.Join(ctx, "chat", "room", fmt.Sprintf("m%03d", i), nil)
			require.NoError(t, err)
		}
	}
	join(0, watchChanBuffer+10)
	// Exact once delivery stops on the full channel (an event moving into
	// it may count twice meanwhile).
	require.Eventually(t, func() bool {
		st, err = r.ScopeStats("chat")
		return err == nil && st.BacklogEvents == watchChanBuffer+10
	}, wait, time.Millisecond, "a full channel and ten queued: %+v", st)
	require.Equal(t, 2, st.Watches)
	require.Equal(t, watchChanBuffer+10, st.MaxBacklogEvents, "all of them the unread watch's")
	require.Positive(t, st.BacklogBytes, "the queued ten are counted in bytes")
	require.Zero(t, st.Behind)
	require.Zero(t, st.HeldDeltas, "a lone node holds nothing back")

	// Past its WatchBuffer (the consumer holds fewer members), whatever
	// batch its delivery holds in hand.
	join(watchChanBuffer+10, watchChanBuffer+10+2*buffer)
	require.Eventually(t, func() bool {
		st, _ = r.ScopeStats("chat")
		return st.Behind == 1 && st.BacklogEvents == watchChanBuffer
	}, wait, time.Millisecond, "the unread watch fell behind, its queue dropped for a resync")

	// A consumer that reads takes the channel, then its resync.
	for range watchChanBuffer {
		nextEvent(t, w)
	}
	require.Equal(t, EventResync, nextEvent(t, w).Type)
	require.Eventually(t, func() bool {
		st, _ = r.ScopeStats("chat")
		return st.BacklogEvents == 0 && st.BacklogBytes == 0 && st.Behind == 0
	}, wait, time.Millisecond, "%+v", st)

	w.Close()
	st, err = r.ScopeStats("chat")
	require.NoError(t, err)
	require.Equal(t, 1, st.Watches)

	_, err = r.ScopeStats("nope")
	require.ErrorIs(t, err, ErrUnknownScope)
}

// TestStorageStats: a node with DataDir reports its store's counters and
// Pebble's figures; one without has none.
func TestStorageStats(t *testing.T) {
	cfg := LocalConfig("disk")
	cfg.Scopes = []string{"chat"}
	cfg.DataDir = t.TempDir()
	r, err := Open(context.Background(), cfg)
	require.NoError(t, err)
	defer func() { require.NoError(t, r.Close(context.Background())) }()
	_, err = r.Join(context.Background(), "chat", "g", "a", nil, Durable())
	require.NoError(t, err)
	st, ok := r.StorageStats()
	require.True(t, ok)
	require.Positive(t, st.Syncs, "the incarnation and the durable join were fsynced")
	require.Positive(t, st.Commits)
	require.True(t, st.PebbleOK)
	require.Positive(t, st.Pebble.WALBytesWritten)

	mem := openLocal(t, "mem", 1)
	defer func() { require.NoError(t, mem.Close(context.Background())) }()
	_, ok = mem.StorageStats()
	require.False(t, ok)
}

// TestLogKeysUnique runs two nodes with stores on a plain JSON handler at
// debug level (no deduplicating wrapper): the registry, gossip,
// memberlist and Pebble lines each name their component once,
// and a peer joining and leaving is logged at info. Pebble's lines used
// to carry component twice.
func TestLogKeysUnique(t *testing.T) {
	var buf syncbuf.Buffer
	lg := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	open := func(name string, seeds ...string) *Registry {
		cfg := LocalConfig(name)
		cfg.Scopes = []string{"chat"}
		cfg.Incarnation = 1
		cfg.DataDir = t.TempDir()
		cfg.Seeds = seeds
		cfg.Logger = lg.With("node_under_test", name)
		r, err := Open(context.Background(), cfg)
		require.NoError(t, err)
		return r
	}
	a := open("a")
	defer func() { require.NoError(t, a.Close(context.Background())) }()
	b := open("b", a.Addr())
	eventually(t, "b joined", func() bool { return len(a.Nodes()) == 2 && a.Ready() && b.Ready() })
	_, err := b.Join(context.Background(), "chat", "g", "x", nil, Durable())
	require.NoError(t, err)
	eventually(t, "x replicated", func() bool { ms, _ := a.Members("chat", "g"); return len(ms) == 1 })
	require.NoError(t, b.Close(context.Background()))
	eventually(t, "b left", func() bool { return bytes.Contains(buf.Bytes(), []byte(`"msg":"peer left"`)) })

	out := buf.Bytes()
	require.Empty(t, jsonkeys.Lines(out))
	components := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" {
			continue
		}
		for _, c := range []string{"registry", "gossip", "memberlist", "pebble"} {
			if strings.Contains(line, `"component":"`+c+`"`) {
				components[c] = true
			}
		}
		if strings.Contains(line, `"msg":"peer joined"`) || strings.Contains(line, `"msg":"peer left"`) {
			require.Contains(t, line, `"level":"INFO"`)
			require.Contains(t, line, `"component":"gossip"`)
		}
	}
	require.Len(t, components, 4, "every layer logged: %v", components)
	require.Contains(t, string(out), `"msg":"peer joined","node_under_test":"a","component":"gossip","node":"a","peer":"b"`)
}
