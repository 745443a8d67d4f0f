// Package dissem decides what to send to spread one scope's changes: a
// deterministic state machine, one per node and scope (a Core), in the
// manner of etcd-io/raft's core. The driver gives it the time, its
// randomness (a *rand.Rand), the scope's membership (a View, read in
// place, and PeerUp/PeerDown events), local changes (Broadcast) and
// received messages (Step); it takes back the messages to send and the
// changes to deliver (Ready) and calls Tick at NextDeadline. The real gossip
// node drives it from memberlist and its sockets; cmd/roster-sim drives
// thousands of cores from a virtual clock.
//
// # What it owns
//
// The send decisions for one scope's changes under four strategies:
//
//   - Direct: one copy to every peer (today's push, Erlang pg's N-1);
//   - Tree: today's relay tree of fan-out FanOut, each message naming the
//     nodes its receiver must cover;
//   - Plumtree: eager/lazy push (Leitão et al. 2007): payloads go down a
//     spanning tree of eager links, ids go to lazy peers in batched IHAVEs,
//     a node missing an announced id GRAFTs it (making that link eager), and
//     duplicates PRUNE the link that carried them; no message grows with N;
//   - Auto: Direct up to DirectMax peers, Plumtree above, chosen per
//     Broadcast; a receiver follows the message's own Strategy.
//
// And what they need: the retained messages (ids for duplicates, payloads
// for GRAFTs; Retain, MaxRetained), the pending grafts and their timers,
// the eager and lazy sets, and the message size model (Size).
//
// # What Plumtree adds to the paper here
//
// The paper runs over HyParView's symmetric, reliable (TCP) links; this
// core runs over a full-membership View and a lossy packet network, so:
//
//   - the eager set is sampled from the View and made symmetric by use (a
//     node that receives a new message from p makes p eager); it may grow to
//     2*Eager (the oldest extra becomes lazy), the lazy set is topped up to
//     Lazy from the View;
//   - the ring links: each node also links the next RingLinks (2) names
//     after its own in sorted order (found by an O(View) scan, again only
//     when one goes down). Random samples leave some nodes with no
//     incoming link at all (about e^-8 of them at Eager+Lazy = 8) and
//     about e^-Lazy with no incoming lazy link; the ring gives every node
//     two, so every live node is reachable even while one predecessor has
//     crashed and is not yet declared dead;
//   - many writers at once (Leitão et al. assume few): a cycle's
//     redundant edge differs per writer, so pruning on every duplicate
//     cuts the tree apart and the fragments graft all at once, closing
//     new cycles. So a link is pruned only after PruneAfter (2)
//     duplicates in a row; a graft is due GraftTimeout plus a random part
//     of up to GraftTimeout after the first IHAVE, so that a fragment's
//     first graft sweeps it before the others fire; and a node that got
//     an id by its GRAFT and then from the tree prunes the grafted link,
//     not the tree's. Grafts whose announcers were all tried are tried
//     again after 2, 4 and 8 GraftTimeouts before they are given up;
//   - acknowledged offers on the ring links: what a node pushes or
//     announces to its ring links carries WantAck, and is re-announced (IHAVE) after
//     2*GraftTimeout, then at doubling intervals up to 16*GraftTimeout,
//     until an IHAVE with Ack (or a PRUNE naming it) says the peer holds it,
//     the peer goes down, or the id leaves retention. Together with the
//     ring this makes delivery eventual under any loss that ends within
//     Retain: a node missing an id is always re-told by its ring
//     predecessors, which hold it by the same argument. Other links are
//     fire-and-forget as in the paper, so the cost is about RingLinks
//     acknowledgements per node per change (batched with the IHAVEs);
//   - PeerUp links the returning peer if it is a new ring link, or
//     with probability Lazy/View.Len() as a lazy peer (reservoir sampling:
//     the sets stay a random sample as the View changes, both sides of a
//     healed partition get links across it, and a peer coming up is linked
//     by about Lazy nodes, whatever N); a peer linked this way, and a new
//     ring link, is offered every retained message;
//   - presets: DefaultConfig is for one data centre (GraftTimeout 10ms,
//     AnnounceEvery 5ms), WANConfig for regions (50ms, 10ms).
//
// A node's per-core state is O(Eager+Lazy) links plus O(retained and
// pending messages); it never copies the View (Tree's writer lists it once
// per Broadcast, as its first messages must name every node).
//
// # Determinism and untrusted input
//
// The same Config, View contents, rng seed and calls give the same
// outputs: map iteration never orders an output. Input from the network is
// untrusted: a malformed message (self or empty names, misaddressed, an
// unknown kind or strategy, more than MaxIDs ids or MaxRelayTo names), one
// from a peer not in the View, or a GRAFT for ids not held is ignored and
// counted (Stats), never a panic; every structure it could grow is
// bounded (MaxRetained retained and pending ids, MaxAnnouncers per id,
// at most 2*Eager+Lazy+RingLinks+64 links, MaxIDs per IHAVE).
//
// # What it must not touch
//
// No clock (time comes in as arguments; PeerUp and PeerDown act at the
// latest time given, so a deadline they set may already have passed: Tick
// at once), no goroutines, no sockets, no global randomness, no
// memberlist and no crdt internals: payloads are opaque bytes, shared,
// never modified. Only the standard library is imported. Repair of what
// is lost beyond Retain (and under Direct and Tree, which do not repair)
// is anti-entropy's job, outside this package.
package dissem
