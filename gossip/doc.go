// Package gossip is everything between a node's CRDT state and the network.
//
// # What it owns
//
// One hashicorp/memberlist per node, whose node metadata advertises the
// node's roster incarnation, the scopes it serves (scopes are overlays: a
// scope's updates go only to nodes serving it) and the address of its HTTP
// API (Config.HTTPAddr; checked by ValidHTTPAddr on both ends, metadata
// that fails is ignored with its node). On top of memberlist:
//
//   - dissemination: every local join or leave becomes a crdt.Delta pushed
//     directly to every scope peer (or down a relay tree, Config.FanOut;
//     see Large clusters) over the packet transport; operations arriving
//     faster than they can be sent are collected in a crdt.Batch (deltas
//     of up to 4,096 operations and Config.ChunkBytes, no delta per
//     join), packed into as few packets as fit, and switched to the
//     stream transport for large batches; in a scope of more than
//     Config.DirectMax peers (32) a batch goes instead through the
//     scope's Plumtree core (gossip/dissem, driven by plumtree.go: eager
//     push down a spanning tree, lazy announcements, grafts, prunes), so
//     a writer sends a handful of copies, not one per peer; otherwise the
//     same packets are also piggy-backed on memberlist's own gossip (a
//     bounded queue), an epidemic second path that repairs a lost packet
//     within a few gossip rounds and relays around one-way cuts and
//     bridges (Plumtree's announcements and grafts do that in a large
//     scope);
//   - anti-entropy (when and to whom decided by gossip/pace): each node
//     periodically sends one random scope peer its digest (one counter
//     per replica); the peer answers with exactly what
//     is missing (crdt.State.Diff), in bounded chunks, and its own digest so
//     the exchange is two-way. In a scope of Config.RangeRootMin replicas
//     or more (64), a caught-up node's periodic round sends the 15-byte
//     root of its range digest (crdt.RangeDigest) instead; a peer with the
//     same root does nothing, one with another answers with its 256
//     bucket sums, and the exchange above then runs over the replicas of
//     the buckets that differ only (crdt.State.DigestIn, DiffIn), so
//     rounds do not grow with the cluster, in step or under writes. The
//     same exchange runs whenever a peer (re)appears, so a node joining or a partition healing converges at
//     once rather than at the next tick. What is only missing because it
//     is on its way is left out of a repair: replicas whose counter rose
//     at the asking node during the last interval (it names them in its
//     digest message), and replicas the answering node had already sent
//     a round earlier. A lost delta stops its replica's counter, so it is
//     repaired at most a round later. A node joining a cluster does not
//     start it: it answers the first greeting that shows it is behind (a
//     greeting proves the peer counts it alive; a digest sent to a peer
//     that has not heard of it yet waits there), and does not send its
//     digest again while the repair it asked for is on its way, so a
//     fresh node fetches a large scope from one peer, not from all of them;
//   - per-owner order: a delta that arrives after a gap in its owner's
//     counters waits (Config.HoldBack) for the gap to fill, so watchers see
//     each owner's operations in its order, as pg delivers a sender's
//     messages in order; a transfer's chunk that arrives before its
//     predecessor waits for it too. Both wait in one reorder buffer with
//     one set of bounds for the node (gossip/reorder, a pure data
//     structure; hold.go drives it);
//   - a rejoin loop: memberlist forgets dead peers after GossipToTheDeadTime
//     and never contacts them again, so this package remembers every peer
//     address it has seen and the configured seeds, and keeps calling Join
//     on the missing ones with backoff; partitions of any length heal
//     (the peer table, which addresses are missing and when to call them
//     are gossip/peers, a pure state machine; control.go drives it);
//   - owner liveness: when memberlist declares a node dead or left, its
//     replicas are suspended in every scope (members hidden, watchers told
//     owner-down); when the same replica is alive again they are resumed
//     (owner-up), without any transfer; after the retention period the slice
//     is forgotten, and taken again only once the owner itself is seen
//     alive; a new incarnation of a name supersedes the old one everywhere.
//
// # Who may say what
//
// memberlist's view of a node (its metadata, learnt through SWIM) is the
// only authority on which nodes exist and at which incarnation. A delta is
// merged only if memberlist reports its owner's name with that
// incarnation (Stats.Unvouched counts the rest: forged, or early and
// repaired later by anti-entropy); a digest decides only what is sent back
// to its sender; a leave announcement only labels memberlist's down event
// a graceful leave; on the plain direct path a digest or announcement
// from another address than its claimed sender's is dropped
// (Stats.Forged). Without a key anyone who reaches the port can lie to
// memberlist itself, so New refuses unkeyed gossip on a non-loopback
// address unless Config.Insecure. What a node keeps for others is bounded
// (see docs/security.md): the reorder buffer (out-of-order transfer
// chunks and held-back deltas), digests of peers not yet up, relay copies
// (one per alive scope peer, none when FanOut is 0), and the bytes incoming streams may claim before
// memberlist reads them (NetTransport screens every stream).
//
// Real sockets go through NetTransport, memberlist's UDP/TCP transport
// rebuilt to read packets into a reused buffer (memberlist's allocates 64
// KiB per packet, which at roster's packet rates kept the garbage collector
// running and set the replication p99). Without encryption it also hands
// roster's own packets (plain memberlist user messages, labelled with
// Config.Cluster if set) to the node's inbox goroutine, one hop from the
// socket where memberlist's path takes two and drops them once
// HandoffQueueDepth wait. Config.Cluster (memberlist's label) keeps
// clusters apart that come to reach each other's addresses.
//
// Scope states live here (Scope), each behind its own lock; the registry
// package reads them and turns their events into watch streams. Warm
// restarts: New can start from state saved by SaveState (Preload); the
// replicas it holds stay hidden until this node has caught up with their
// owners (or, with a grace period, are shown unconfirmed meanwhile).
//
// # Large clusters
//
// The direct push costs the writer one packet per scope peer per batch,
// like Erlang pg's full mesh: the right trade for small scopes, and what
// the 5-node benchmarks measure. Past Config.DirectMax peers (32) a scope
// switches by itself to Plumtree (gossip/dissem, a pure state machine
// this package drives; plumtree.go): the writer pushes to a few eager
// peers, every node passes a new batch on to its own and announces its
// id to a few lazy ones, a node that hears of a batch it has not received
// grafts it, and a duplicate prunes the link that carried it, so the
// eager links settle into a spanning tree and no message grows with N.
// roster-sim (cmd/roster-sim) runs the same cores by the thousand under
// virtual time; docs/scale.md gives the figures. Config.FanOut is the
// older relay tree, kept for comparison (roster-bench -run=fanout): the
// writer sends k messages naming every node below them (O(N) names at
// the first hop). A first version relayed epidemically (each receiver
// that learnt something passed it to k random peers); with k=3 on 16
// nodes the last node got at least half the joins only through the
// piggy-backed copy (p50 20 ms), and the cluster sent six times the
// messages. Scopes already confine the traffic to the nodes that serve
// them.
//
// # What it must not touch
//
// No public API validation beyond what the CRDT enforces, no storage, no
// HTTP. It never emits a removal of another node's entries: it only applies
// local lifecycle decisions (suspend, resume, forget, supersede) to its own
// copy. Subpackage memnet is the in-memory, fault-injecting transport used
// by tests. Six subpackages hold decisions as pure state machines (or,
// for push, pure functions), free of clocks, goroutines and sockets,
// which this package drives: push (a batch's route, its packing into
// packets or streams, piggy-back), dissem (what to send to spread a
// scope's changes past DirectMax peers), pace (when
// anti-entropy exchanges go out, and to whom), inflight (what a repair
// leaves out as already on its way), reorder (the deltas received before
// their turn) and peers (the peer table: liveness, leaves, retention, the
// rejoin schedule). TestProtocolCoresArePure checks them.
package gossip
