package gossip

import (
	"slices"
	"strings"

	"github.com/hashicorp/memberlist"
	"github.com/roster-io/roster/gossip/push"
)

// Dissemination of local batches by the route gossip/push decides: to
// every scope peer (the full mesh, as Erlang pg), through the scope's
// Plumtree core past DirectMax peers (plumtree.go), or down a relay tree
// when Config.FanOut bounds it.

// relay is received deltas to pass on (see Config.FanOut).
type relay struct {
	scope    string
	payloads [][]byte
	to       []string // the nodes of this node's part of the relay tree
}

// disseminate sends a batch of local deltas to the scope's peers by its
// route (push.Config.Route): to every one of them, through Plumtree, or
// down a relay tree (relayTree).
func (n *Node) disseminate(scope string, ds [][]byte) {
	peers := n.scopePeers(scope)
	route := n.push.Route(len(peers))
	switch route {
	case push.Plumtree:
		n.plumDisseminate(scope, ds)
		return
	case push.Direct:
		n.sendDeltas(scope, peers, ds, nil, route, true)
		return
	}
	// Sorted, so one writer's batches all take the same paths and arrive
	// in its order (a batch overtaking another would wait out HoldBack).
	slices.SortFunc(peers, func(a, b *memberlist.Node) int { return strings.Compare(a.Name, b.Name) })
	// The piggy-backed copy is the plain one: a relay message gossiped to
	// random nodes would have them relay it again.
	if plan, ok := n.push.Packets(sizes(ds), deltasOverhead(scope, nil), perDeltaOverhead); ok && push.Piggyback(route, plan.Stream) {
		n.piggyback(encodePlan(scope, nil, ds, plan))
	}
	n.relayTree(scope, peers, ds)
}

// relayTree sends deltas to peers through a tree of fan-out
// Config.FanOut: peers are dealt into FanOut groups (push.Deal); the first
// node of each group gets the deltas with the names of the rest of its
// group, which it deals the same way. Every peer gets one copy (N-1
// messages in all, as a full mesh), each node sends at most FanOut, and
// the last node is log_FanOut(N) hops away. A node that is down or a
// packet lost cuts off its subtree until the piggy-backed copy or
// anti-entropy gets there.
func (n *Node) relayTree(scope string, peers []*memberlist.Node, ds [][]byte) {
	if n.push.Route(len(peers)) != push.Tree {
		// A node relaying without a fan-out of its own (FanOut differs
		// across the cluster), or for few peers, sends its whole subtree
		// a copy directly.
		n.sendDeltas(scope, peers, ds, nil, push.Direct, false)
		return
	}
	for _, group := range push.Deal(peers, n.cfg.FanOut) {
		rest := make([]string, len(group)-1)
		for i, p := range group[1:] {
			rest[i] = p.Name
		}
		n.sendDeltas(scope, group[:1], ds, rest, push.Tree, false)
	}
}

// namedPeers returns the alive peers of scope among names, in the given
// order, each once; the others (down, unknown here, this node, repeats)
// are skipped, and with them only their own copy: their subtree is dealt
// among the rest. A relay request therefore makes a node send at most one
// copy per alive scope peer, whatever the list says (a list naming one
// peer 15,000 times made a node send it 15,042 packets).
func (n *Node) namedPeers(scope string, names []string) []*memberlist.Node {
	peers := n.scopePeers(scope)
	byName := make(map[string]*memberlist.Node, len(peers))
	for _, p := range peers {
		byName[p.Name] = p
	}
	var out []*memberlist.Node
	for _, name := range names {
		if p, ok := byName[name]; ok {
			out = append(out, p)
			delete(byName, name)
		}
	}
	return out
}
