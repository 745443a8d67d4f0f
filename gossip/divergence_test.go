package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/stretchr/testify/require"
)

// TestDivergenceCounts: a peer's last digest against this node's state
// counts, per scope, what the peer lacks (behind) and what this node lacks
// (ahead), a newer incarnation making the whole replica missing on the
// other side; a forgotten peer is no longer listed.
func TestDivergenceCounts(t *testing.T) {
	owner, err := crdt.New(crdt.ReplicaID{Name: "w", Incarnation: 2}, crdt.DefaultOptions())
	require.NoError(t, err)
	st, err := crdt.New(crdt.ReplicaID{Name: "me", Incarnation: 1}, crdt.DefaultOptions())
	require.NoError(t, err)
	for i := range 10 { // w's counter reaches 10 here
		d, err := owner.Join("g", fmt.Sprintf("m%d", i), nil, nil)
		require.NoError(t, err)
		_, err = st.Merge(d, nil)
		require.NoError(t, err)
	}
	for i := range 4 { // and ours 4
		_, err := st.Join("g", fmt.Sprintf("l%d", i), nil, nil)
		require.NoError(t, err)
	}
	sc := &Scope{name: "s", st: st}
	empty := &Scope{name: "t", st: must(crdt.New(crdt.ReplicaID{Name: "me", Incarnation: 1}, crdt.DefaultOptions()))}
	n := &Node{order: []string{"s", "t"}, scopes: map[string]*Scope{"s": sc, "t": empty}}
	require.Empty(t, n.Divergence(), "no digest received yet")

	digest := func(es ...crdt.DigestEntry) crdt.Digest { return crdt.Digest{Entries: es} }
	now := time.Now()
	// p has 7 of w's 10 and 1 of our 4, and 5 operations of its own.
	sc.skipInFlight("p", digest(
		crdt.DigestEntry{Name: "me", Incarnation: 1, Top: 1},
		crdt.DigestEntry{Name: "p", Incarnation: 3, Top: 5},
		crdt.DigestEntry{Name: "w", Incarnation: 2, Top: 7},
	), nil, st, now.Add(-1500*time.Millisecond), time.Second)
	// q is level with us on w and holds a newer incarnation of "me" than
	// this state's, with 9 operations.
	sc.skipInFlight("q", digest(
		crdt.DigestEntry{Name: "me", Incarnation: 2, Top: 9},
		crdt.DigestEntry{Name: "w", Incarnation: 2, Top: 10},
	), nil, st, now, time.Second)
	// r holds an older incarnation of w, and ours in full.
	sc.skipInFlight("r", digest(
		crdt.DigestEntry{Name: "me", Incarnation: 1, Top: 4},
		crdt.DigestEntry{Name: "w", Incarnation: 1, Top: 30},
	), nil, st, now, time.Second)
	empty.skipInFlight("p", digest(), nil, empty.st, now, time.Second)

	got := n.Divergence()
	require.Len(t, got, 3)
	p := got["p"]
	require.Len(t, p, 2, "p sent digests of both scopes")
	require.Equal(t, "s", p[0].Scope)
	require.Equal(t, uint64(3+3), p[0].Behind, "p lacks 3 of w's and 3 of ours")
	require.Equal(t, uint64(5), p[0].Ahead, "we lack p's 5")
	require.GreaterOrEqual(t, p[0].Age, 1500*time.Millisecond)
	require.Less(t, p[0].Age, time.Minute)
	require.Equal(t, Divergence{Scope: "t"}, Divergence{Scope: p[1].Scope, Behind: p[1].Behind, Ahead: p[1].Ahead}, "two empty states agree")

	q := got["q"][0]
	require.Equal(t, uint64(0), q.Behind, "our incarnation 1 is superseded at q: not missing there")
	require.Equal(t, uint64(9), q.Ahead, "q's newer incarnation of ours is missing here, all of it")
	r := got["r"][0]
	require.Equal(t, uint64(10), r.Behind, "r lacks the whole of w's newer incarnation")
	require.Equal(t, uint64(0), r.Ahead, "r's older incarnation of w is superseded here")

	sc.forgetPeer("q")
	got = n.Divergence()
	require.NotContains(t, got, "q")
	require.Contains(t, got, "r")
}

// TestDivergenceOnLoopback: two real nodes exchange digests when they
// meet and then agree; a write on one shows the other behind by it until
// the other's next digest, which comes after the write has arrived; a
// crashed peer's digest is dropped once the peer is forgotten.
func TestDivergenceOnLoopback(t *testing.T) {
	nodes := startNodes(t, 2, func(cfg *Config) {
		cfg.AntiEntropyInterval = time.Hour // rounds run only when the test calls them
	})
	n0, n1 := nodes[0], nodes[1]
	level := func(n *Node, peer string) bool {
		ds := n.Divergence()[peer]
		return len(ds) == 1 && ds[0].Scope == "default" && ds[0].Behind == 0 && ds[0].Ahead == 0
	}
	// The greetings of peers coming up carry digests both ways.
	require.Eventually(t, func() bool { return level(n0, "n1") && level(n1, "n0") }, 10*time.Second, 10*time.Millisecond)

	for i := range 3 {
		require.NoError(t, n1.Join("default", "g", fmt.Sprintf("m%d", i), ""))
	}
	ds := n1.Divergence()["n0"]
	require.Len(t, ds, 1)
	require.Equal(t, uint64(3), ds[0].Behind, "n0's last digest predates the 3 joins")
	require.Equal(t, uint64(0), ds[0].Ahead)

	require.Eventually(t, func() bool { return len(members(n0, "default", "g")) == 3 }, 10*time.Second, 5*time.Millisecond)
	n0.antiEntropy() // n0's digest goes to its only peer, n1
	require.Eventually(t, func() bool { return level(n1, "n0") }, 10*time.Second, 5*time.Millisecond,
		"n0's digest after the joins arrived: %+v", n1.Divergence())

	// A peer that goes down keeps its last digest until it is forgotten.
	n1.Crash()
	require.Eventually(t, func() bool {
		for _, info := range n0.Nodes() {
			if info.Name == "n1" {
				return info.State == PeerDead
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
	require.Contains(t, n0.Divergence(), "n1", "a dead peer's digest is kept")
	n0.expire(time.Now().Add(n0.cfg.Retention + time.Second))
	require.NotContains(t, n0.Divergence(), "n1", "a forgotten peer's digest is dropped")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
