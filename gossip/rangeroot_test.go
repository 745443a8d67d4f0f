package gossip

import (
	"context"
	"testing"
	"time"

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
// the full exchange that repairs it.
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
			require.NotZero(t, n.Stats().SyncsSent)
		}
	}
}
