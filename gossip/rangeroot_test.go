package gossip

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip/memnet"
	"github.com/stretchr/testify/require"
)

func rangeRootCluster(t *testing.T, rootMin int) (*memnet.Network, []*Node) {
	t.Helper()
	net := memnet.New(memnet.Config{Seed: 5})
	t.Cleanup(net.Shutdown)
	var nodes []*Node
	for i, name := range []string{"a", "b", "c"} {
		tr, err := net.NewTransport(name)
		require.NoError(t, err)
		cfg := DefaultLocalConfig(name)
		cfg.Incarnation = uint64(10 + i)
		cfg.Transport = tr
		cfg.AntiEntropyInterval = 50 * time.Millisecond
		cfg.PiggybackQueue = 0 // anti-entropy is the only repair
		cfg.HoldBack = 0
		cfg.RangeRootMin = rootMin
		if i > 0 {
			cfg.Seeds = []string{net.Addr("a")}
		}
		n, err := New(cfg, nil)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, n.Close(context.Background())) })
		nodes = append(nodes, n)
	}
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if n.ml.NumMembers() != 3 {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond)
	return net, nodes
}

// TestRangeRootRounds: in step, periodic rounds exchange the roots of
// range digests and nothing else; a node that missed a join (its link to
// the writer cut, no piggy-backing) has a different root, which starts
// the exchange, narrowed to the buckets that differ, that repairs it.
func TestRangeRootRounds(t *testing.T) {
	net, nodes := rangeRootCluster(t, 1)
	a, b, c := nodes[0], nodes[1], nodes[2]
	require.NoError(t, a.Join("default", "room", "x1", ""))
	for _, n := range nodes {
		require.Eventually(t, func() bool { return len(members(n, "default", "room")) == 1 }, 5*time.Second, 5*time.Millisecond)
	}
	// In step: roots are sent and found equal, and no repair goes out.
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if n.Stats().RootsInStep < 3 {
				return false
			}
		}
		return true
	}, 5*time.Second, 10*time.Millisecond)
	repairs := b.Stats().RepairDeltasSent + c.Stats().RepairDeltasSent + a.Stats().RepairDeltasSent
	syncs := b.Stats().SyncsSent
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, repairs, b.Stats().RepairDeltasSent+c.Stats().RepairDeltasSent+a.Stats().RepairDeltasSent, "nothing to repair in step")
	require.Equal(t, syncs, b.Stats().SyncsSent, "in step, b sends roots, not digests")

	net.Cut("a", "b")
	require.NoError(t, a.Join("default", "room", "x2", ""))
	require.Eventually(t, func() bool { return len(members(c, "default", "room")) == 2 }, 5*time.Second, 5*time.Millisecond)
	net.Heal("a", "b")
	require.Eventually(t, func() bool { return len(members(b, "default", "room")) == 2 }, 5*time.Second, 5*time.Millisecond,
		"a root that differs starts the exchange that repairs b: %v", members(b, "default", "room"))
	require.NotZero(t, a.Stats().NarrowedSyncs+b.Stats().NarrowedSyncs+c.Stats().NarrowedSyncs,
		"caught-up nodes whose roots differ exchange digests of the differing buckets")
}

// TestRangeDigestNarrowsRepair: two caught-up nodes whose roots differ
// compare range digests and exchange the counters of the differing
// buckets only: a node that missed one replica's join is repaired by a
// narrowed exchange (which replicas a narrowed digest lists and a repair
// compares is crdt's DigestIn and DiffIn, tested there).
func TestRangeDigestNarrowsRepair(t *testing.T) {
	net, nodes := rangeRootCluster(t, 1)
	a, b, c := nodes[0], nodes[1], nodes[2]
	for i, n := range nodes {
		require.NoError(t, n.Join("default", "room", fmt.Sprintf("m%d", i), ""))
	}
	for _, n := range nodes {
		require.Eventually(t, func() bool { return len(members(n, "default", "room")) == 3 }, 5*time.Second, 5*time.Millisecond)
	}
	// b misses a's next join (a's link to b cut) and c does not.
	require.Eventually(t, func() bool { // caught up and in step: rounds send roots
		for _, n := range nodes {
			if n.Stats().RootsInStep < 2 {
				return false
			}
		}
		return true
	}, 5*time.Second, 10*time.Millisecond)
	narrowed := c.Stats().NarrowedSyncs + b.Stats().NarrowedSyncs
	net.Cut("a", "b")
	require.NoError(t, a.Join("default", "room", "late", ""))
	require.Eventually(t, func() bool { return len(members(b, "default", "room")) == 4 }, 5*time.Second, 5*time.Millisecond,
		"b is repaired through c while its link to a is cut")
	require.Greater(t, c.Stats().NarrowedSyncs+b.Stats().NarrowedSyncs, narrowed, "by a narrowed exchange")
	net.Heal("a", "b")
	for _, n := range nodes {
		var d string
		sc, _ := n.Scope("default")
		sc.Read(func(st *crdt.State) { d = st.Describe(false) })
		require.Contains(t, d, "late")
	}
}

// TestRangeRootOff: RangeRootMin < 0 keeps the full digest in every
// round; a scope below RangeRootMin replicas does too.
func TestRangeRootOff(t *testing.T) {
	for _, min := range []int{-1, 10} {
		_, nodes := rangeRootCluster(t, min)
		require.NoError(t, nodes[0].Join("default", "room", "x1", ""))
		time.Sleep(400 * time.Millisecond)
		for _, n := range nodes {
			require.Zero(t, n.Stats().RootsSent, "RangeRootMin %d", min)
			require.Zero(t, n.Stats().NarrowedSyncs, "RangeRootMin %d", min)
			require.NotZero(t, n.Stats().SyncsSent)
		}
	}
}
