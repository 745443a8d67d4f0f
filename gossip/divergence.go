package gossip

import (
	"slices"
	"strings"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip/inflight"
)

// Divergence is how far a peer was from agreeing with this node on one
// scope, measured by anti-entropy: the peer's last digest of the scope
// (kept per peer for the in-flight check, see Scope.skipInFlight) against
// this node's state now. Both counts are of operations (joins, updates
// and leaves, by their owners' counters, each replica's contiguous
// prefix), not of members.
type Divergence struct {
	Scope string
	// Behind counts the operations this node holds that the peer's digest
	// lacked: the peer is that far behind here (new writes since the
	// digest included, most of them usually on their way).
	Behind uint64
	// Ahead counts the operations the peer's digest held that this node
	// lacks: this node is that far behind the peer.
	Ahead uint64
	// Age is how long ago the digest arrived: a peer sends its digest, or
	// answers ours, about once per Config.AntiEntropyInterval.
	Age time.Duration
}

// Divergence returns, for every peer that has sent this node a digest, its
// divergence in each scope it sent one of (sorted by scope). A peer is
// dropped once this node forgets it (Config.Retention after it went down).
func (n *Node) Divergence() map[string][]Divergence {
	now := time.Now()
	out := map[string][]Divergence{}
	for _, name := range n.order {
		sc := n.scopes[name]
		sc.prevMu.Lock()
		peers := sc.inflight.Peers() // each tops map is never changed once stored
		sc.prevMu.Unlock()
		if len(peers) == 0 {
			continue
		}
		var mine inflight.Tops
		sc.Read(func(st *crdt.State) { mine = inflight.ByName(st.Digest()) })
		for peer, pd := range peers {
			behind, ahead := inflight.Diverge(mine, pd.Tops)
			out[peer] = append(out[peer], Divergence{Scope: name, Behind: behind, Ahead: ahead, Age: max(now.Sub(pd.At), 0)})
		}
	}
	for _, ds := range out {
		slices.SortFunc(ds, func(a, b Divergence) int { return strings.Compare(a.Scope, b.Scope) })
	}
	return out
}

// forgetPeer drops what the scope keeps of a peer's digests.
func (s *Scope) forgetPeer(name string) {
	s.prevMu.Lock()
	s.inflight.Forget(name)
	s.prevMu.Unlock()
}
