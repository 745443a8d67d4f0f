package gossip

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/stretchr/testify/require"
)

// TestAntiEntropyWaitsForQueuedMerges: while delta messages are queued for
// merging in a scope, its anti-entropy round is skipped (the digest would
// ask for what is already queued), at most maxBusyTicks times in a row, and
// the node does not answer a digest with its own.
func TestAntiEntropyWaitsForQueuedMerges(t *testing.T) {
	nodes := startNodes(t, 2, func(cfg *Config) {
		cfg.AntiEntropyInterval = time.Hour // rounds run only when the test calls them
	})
	n := nodes[0]
	require.Eventually(t, func() bool { return len(n.scopePeers("default")) == 1 }, 10*time.Second, 10*time.Millisecond)
	n.caughtUp.Store("default", true)
	sc := n.scopes["default"]
	sent := func() int64 { return n.Stats().SyncsSent }

	before := sent()
	n.antiEntropy()
	require.Equal(t, before+1, sent(), "an idle scope runs its round")

	sc.merging.Add(1) // a delta message is being merged
	require.False(t, n.mayReply("default"))
	before = sent()
	for range maxBusyTicks {
		n.antiEntropy()
	}
	require.Equal(t, before, sent(), "rounds run while merges are queued")
	n.antiEntropy()
	require.Equal(t, before+1, sent(), "a busy scope must still run a round every %d ticks", maxBusyTicks+1)
	n.antiEntropy()
	require.Equal(t, before+1, sent(), "the busy count restarts after a forced round")

	sc.merging.Add(-1)
	require.True(t, n.mayReply("default"))
	n.antiEntropy()
	require.Equal(t, before+2, sent())
}

// TestMergeAllOneBatch: the chunks of one message are merged under one
// hold of the lock, so the sink gets their events as one batch (a watch
// then resyncs once for a whole transfer, not once per chunk).
func TestMergeAllOneBatch(t *testing.T) {
	src, err := crdt.New(crdt.ReplicaID{Name: "src", Incarnation: 1}, crdt.DefaultOptions())
	require.NoError(t, err)
	for i := range 3000 {
		_, err := src.Join(fmt.Sprintf("g%d", i%10), fmt.Sprintf("m%d", i), nil, nil)
		require.NoError(t, err)
	}
	chunks := src.Snapshot(8 << 10)
	require.Greater(t, len(chunks), 3, "the transfer must be chunked for this test")

	var calls, events int
	cfg := DefaultLocalConfig("dst")
	cfg.Incarnation = 1
	n, err := New(cfg, func(scope string, evs []crdt.Event) { calls++; events += len(evs) })
	require.NoError(t, err)
	defer func() { require.NoError(t, n.Close(context.Background())) }()
	sc := n.scopes["default"]
	// src counts as alive, so its members are shown (evented).
	n.mu.Lock()
	n.peers["src"] = &peer{name: "src", meta: nodeMeta{inc: 1}, state: PeerAlive}
	n.mu.Unlock()
	calls, events = 0, 0
	n.mergeAll(sc, chunks)
	require.Equal(t, 3000, events)
	require.Equal(t, 1, calls, "%d chunks reached the sink in %d batches", len(chunks), calls)
}
