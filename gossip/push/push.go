// Package push decides how a node sends a batch of its own deltas to a
// scope's peers: the route (the direct push to every peer, Plumtree past
// DirectMax peers, or the older relay tree of fan-out FanOut), how the
// encoded deltas are grouped into messages (packets up to a size, or one
// stream message when they would take too many packets), whether the
// plain packets also ride on memberlist's gossip (piggy-back), and how a
// relay tree deals peers into subtrees. Pure functions of sizes and
// counts: they hold no state, read no clock, start no goroutine and touch
// no socket; gossip encodes and sends what they decide.
//
// # What it must not touch
//
// Encoding (sizes come in, the driver encodes), memberlist, the network,
// Plumtree's own decisions (gossip/dissem makes those once Route says
// Plumtree). Only the standard library is imported.
package push

// Route is the way a batch goes to a scope's peers.
type Route int

const (
	// Direct: one copy to every peer, as Erlang pg's full mesh: the right
	// trade for small scopes (5-node latency), O(N) for the writer.
	Direct Route = iota
	// Plumtree: eager push down a spanning tree with lazy announcements
	// (gossip/dissem), past DirectMax peers.
	Plumtree
	// Tree: the relay tree of fan-out FanOut, each first hop's message
	// naming the nodes below it (opt-in, kept for comparison).
	Tree
)

func (r Route) String() string { return [...]string{"direct", "plumtree", "tree"}[r] }

// Config is what the decisions depend on (gossip.Config's fields of the
// same names, defaults resolved).
type Config struct {
	// DirectMax: past this many peers a scope's batches go by Plumtree;
	// negative: never.
	DirectMax int
	// FanOut: the relay tree's fan-out, 0 off. A node with a fan-out
	// relays by the tree past FanOut peers and never uses Plumtree.
	FanOut int
	// MaxPacketBytes bounds a packet; ReliableBatchPackets is how many
	// packets a batch may take before it goes as one stream message to
	// each peer instead.
	MaxPacketBytes, ReliableBatchPackets int
	// StreamBytes bounds one stream message (several make a larger batch).
	StreamBytes int
}

// Route returns the route of a batch to a scope with peers alive peers.
func (c Config) Route(peers int) Route {
	switch {
	case c.FanOut == 0 && c.DirectMax >= 0 && peers > c.DirectMax:
		return Plumtree
	case c.FanOut == 0 || peers <= c.FanOut:
		return Direct
	}
	return Tree
}

// Piggyback reports whether the plain packets of a batch sent by route
// also ride on memberlist's gossip: an epidemic second path that repairs
// a lost packet within a few gossip rounds and relays around one-way
// cuts. Not for Plumtree, whose announcements and grafts do that, nor for
// a batch that goes as a stream (too large for gossip), nor for repairs
// and relayed copies (only a node's own batches).
func Piggyback(r Route, stream bool) bool { return r != Plumtree && !stream }

// Plan is how a batch's encoded deltas go out: messages, each holding the
// deltas Bounds[i] to Bounds[i+1]-1, as packets or (Stream) as reliable
// stream messages.
type Plan struct {
	Bounds []int
	Stream bool
}

// Messages returns the number of messages in the plan.
func (p Plan) Messages() int { return max(len(p.Bounds)-1, 0) }

// Packets plans deltas of the given encoded sizes, with overhead bytes per
// message and perDelta bytes per delta: best-effort packets of at most
// MaxPacketBytes when they take at most ReliableBatchPackets of them and
// each delta fits one; else stream messages of at most StreamBytes.
// ok is false if a delta does not fit even a stream message.
func (c Config) Packets(sizes []int, overhead, perDelta int) (p Plan, ok bool) {
	if b, fits := Pack(sizes, overhead, perDelta, c.MaxPacketBytes); fits && len(b)-1 <= c.ReliableBatchPackets {
		return Plan{Bounds: b}, true
	}
	b, fits := Pack(sizes, overhead, perDelta, c.StreamBytes)
	return Plan{Bounds: b, Stream: true}, fits
}

// Pack groups deltas of the given sizes, in order, into messages of at
// most limit bytes (overhead per message, perDelta per delta), filling
// each before starting the next, and returns the message boundaries (the
// first delta of each, then len(sizes)); false if one delta does not fit
// a message alone.
func Pack(sizes []int, overhead, perDelta, limit int) ([]int, bool) {
	if len(sizes) == 0 {
		return nil, true
	}
	bounds := []int{0}
	size := overhead
	for i, s := range sizes {
		need := s + perDelta
		if overhead+need > limit {
			return nil, false
		}
		if size+need > limit && i > bounds[len(bounds)-1] {
			bounds = append(bounds, i)
			size = overhead
		}
		size += need
	}
	return append(bounds, len(sizes)), true
}

// Deal splits peers into k groups round-robin, so groups differ in size
// by at most one (the relay tree's subtrees: the first of each group gets
// the batch with the names of the rest). Fewer than k peers make fewer
// groups; the order within a group is the peers' order.
func Deal[T any](peers []T, k int) [][]T {
	if k <= 0 {
		return nil
	}
	var out [][]T
	for g := range min(k, len(peers)) {
		var group []T
		for i := g; i < len(peers); i += k {
			group = append(group, peers[i])
		}
		out = append(out, group)
	}
	return out
}
