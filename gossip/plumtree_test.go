package gossip

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/roster-io/roster/gossip/dissem"
	"github.com/roster-io/roster/gossip/memnet"
	"github.com/stretchr/testify/require"
)

// TestPlumMessageRoundTrip: every field of a Plumtree message survives
// the wire; a gossip without a valid origin, or an id list of odd length,
// does not decode.
func TestPlumMessageRoundTrip(t *testing.T) {
	for _, m := range []dissem.Message{
		{Kind: dissem.KindGossip, ID: dissem.MsgID{Origin: "n1", Seq: 1 << 60}, Round: 65535, Payload: []byte{1, 2, 3}, WantAck: true},
		{Kind: dissem.KindIHave, IDs: []dissem.MsgID{{Origin: "n1", Seq: 3}, {Origin: "n2", Seq: 4}}, Ack: true},
		{Kind: dissem.KindGraft, IDs: []dissem.MsgID{{Origin: "n3", Seq: 9}}},
		{Kind: dissem.KindPrune},
	} {
		got, err := decodeMessage(encodePlum("chat", "n9", m))
		require.NoError(t, err)
		require.Equal(t, msgPlum, got.kind)
		require.Equal(t, "chat", got.scope)
		require.Equal(t, "n9", got.from)
		m.From, m.Strategy = "n9", dissem.Plumtree
		require.Equal(t, m, got.plum)
	}
	_, err := decodeMessage(encodePlum("chat", "n9", dissem.Message{Kind: dissem.KindGossip, Payload: []byte{1}}))
	require.ErrorIs(t, err, ErrMessage, "a gossip needs an origin")
	_, err = decodeMessage(encodePlum("chat", "n9", dissem.Message{Kind: dissem.Kind(9)}))
	require.ErrorIs(t, err, ErrMessage, "unknown kind")
	big := make([]dissem.MsgID, dissem.MaxIDs+1)
	for i := range big {
		big[i] = dissem.MsgID{Origin: "n1", Seq: uint64(i)}
	}
	_, err = decodeMessage(encodePlum("chat", "n9", dissem.Message{Kind: dissem.KindIHave, IDs: big}))
	require.ErrorIs(t, err, ErrMessage, "more ids than an IHAVE may carry")
}

// TestPlumtreeLargeScope: with DirectMax 2, a 10-node scope spreads its
// batches with Plumtree. Anti-entropy is an hour away and piggy-backing
// off, so only the tree and its grafts deliver, under 5% packet loss:
// every join reaches every node through the driven core, with about one
// payload copy per node and join (roster-sim measures the copies and
// the writer's sends at scale).
func TestPlumtreeLargeScope(t *testing.T) {
	const size, joins = 10, 60
	net := memnet.New(memnet.Config{Seed: 11})
	defer net.Shutdown()
	var nodes []*Node
	for i := range size {
		name := fmt.Sprintf("n%d", i)
		tr, err := net.NewTransport(name)
		require.NoError(t, err)
		cfg := DefaultLocalConfig(name)
		cfg.Incarnation = uint64(100 + i)
		cfg.Transport = tr
		cfg.AntiEntropyInterval = time.Hour
		cfg.PiggybackQueue = 0
		cfg.DirectMax = 2
		cfg.PlumtreeTuning = func(c *dissem.Config) { c.GraftTimeout, c.Eager, c.Lazy = 30*time.Millisecond, 2, 2 }
		if i > 0 {
			cfg.Seeds = []string{net.Addr("n0")}
		}
		n, err := New(cfg, nil)
		require.NoError(t, err)
		defer func() { require.NoError(t, n.Close(context.Background())) }()
		nodes = append(nodes, n)
	}
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if len(n.scopePeers("default")) != size-1 {
				return false
			}
		}
		return true
	}, 20*time.Second, 10*time.Millisecond)
	net.SetLoss(0.05)
	rng := rand.New(rand.NewPCG(1, 2))
	for j := range joins {
		w := nodes[rng.IntN(size)]
		require.NoError(t, w.Join("default", "room", fmt.Sprintf("m%d", j), ""))
		time.Sleep(5 * time.Millisecond) // one batch per join
	}
	for _, n := range nodes {
		require.Eventually(t, func() bool { return len(members(n, "default", "room")) == joins }, 20*time.Second, 10*time.Millisecond,
			"%s holds %d of %d", n.self.Name, len(members(n, "default", "room")), joins)
	}
	var payloads int64
	for _, n := range nodes {
		payloads += n.Stats().PlumtreePayloads
	}
	// Each of the 540 (join, receiver) pairs needs a copy; duplicates
	// before the tree is pruned and grafted resends add some.
	require.Less(t, payloads, int64(joins*(size-1)*3/2))
	require.Greater(t, payloads, int64(joins*(size-1)*9/10), "every node got its copy from someone")
}
