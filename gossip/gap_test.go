package gossip

import (
	"context"
	"testing"
	"time"

	"github.com/roster-io/roster/gossip/memnet"
	"github.com/stretchr/testify/require"
)

// TestGapAsksOwner: a delta that overtook a lost one waits HoldBack, then
// is shown ahead of the gap, and the node asks the owner for what it
// lacks at once, with its digest, rather than wait for anti-entropy to
// pair them. Anti-entropy is an hour away here, so only that digest can
// bring the lost join. (The partition suite found nodes still missing
// joins 10 s after a 2.6 s cut healed, on 15 nodes under steady writes.)
// Piggy-backing is off: memberlist's gossip would carry x2 too, in time.
func TestGapAsksOwner(t *testing.T) {
	net := memnet.New(memnet.Config{Seed: 3})
	defer net.Shutdown()
	var nodes []*Node
	for i, name := range []string{"a", "b"} {
		tr, err := net.NewTransport(name)
		require.NoError(t, err)
		cfg := DefaultLocalConfig(name)
		cfg.Incarnation = uint64(10 + i)
		cfg.Transport = tr
		cfg.AntiEntropyInterval = time.Hour
		cfg.HoldBack = 100 * time.Millisecond
		cfg.PiggybackQueue = 0 // the epidemic path would repair x2 as well
		if i > 0 {
			cfg.Seeds = []string{net.Addr("a")}
		}
		n, err := New(cfg, nil)
		require.NoError(t, err)
		defer func() { require.NoError(t, n.Close(context.Background())) }()
		nodes = append(nodes, n)
	}
	a, b := nodes[0], nodes[1]
	require.Eventually(t, func() bool { return a.ml.NumMembers() == 2 && b.ml.NumMembers() == 2 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, a.Join("default", "room", "x1", ""))
	require.Eventually(t, func() bool { return len(members(b, "default", "room")) == 1 }, 5*time.Second, 5*time.Millisecond)

	net.Cut("a", "b")
	sent := a.Stats().PacketsSent
	require.NoError(t, a.Join("default", "room", "x2", "")) // lost
	require.Eventually(t, func() bool { return a.Stats().PacketsSent > sent }, 5*time.Second, time.Millisecond, "x2 pushed into the cut")
	net.Heal("a", "b")
	require.NoError(t, a.Join("default", "room", "x3", "")) // held back: x2 is missing
	require.Eventually(t, func() bool { return b.Stats().HeldBack == 1 }, 5*time.Second, 5*time.Millisecond, "%+v %v %+v", b.Stats(), members(b, "default", "room"), net.LinkStats("a", "b"))
	require.Equal(t, []string{"x1@a"}, members(b, "default", "room"))

	b.flushHeld(time.Now().Add(time.Second)) // the hold-back has run out
	require.Equal(t, int64(1), b.Stats().GapSyncs)
	require.Eventually(t, func() bool { return len(members(b, "default", "room")) == 3 }, 5*time.Second, 5*time.Millisecond,
		"the owner repairs the gap: %v\nowner: %+v\nasker: %+v\npeers at the owner: %+v", members(b, "default", "room"), a.Stats(), b.Stats(), a.Nodes())
	b.flushHeld(time.Now().Add(time.Second))
	require.Equal(t, int64(1), b.Stats().GapSyncs, "nothing held: nothing to ask")
}
