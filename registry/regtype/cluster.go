package regtype

import (
	"strconv"
	"time"

	"github.com/roster-io/roster/storage"
)

// The registry's own view of the cluster, its figures, its gossip keys
// and its limits, so that an embedder (and package server) needs nothing
// of the gossip layer: package registry converts them from gossip's
// values at the call.

// PeerState is what this node believes of another node.
type PeerState string

// Peer states.
const (
	PeerAlive   PeerState = "alive"
	PeerDead    PeerState = "dead"    // the failure detector declared it dead
	PeerLeft    PeerState = "left"    // it left gracefully
	PeerUnknown PeerState = "unknown" // known only from replicated state, never seen alive
)

// NodeInfo is one node of the cluster as this node sees it.
type NodeInfo struct {
	Name        string
	Incarnation uint64 // the node's run: a restart has a larger one
	Addr        string // gossip address (host:port)
	// HTTPAddr is the base URL of the node's API as it advertises it
	// (Config.HTTPAddr), "" when it advertises none.
	HTTPAddr string
	State    PeerState
	Scopes   []string // the scopes it serves
	Self     bool     // this node
}

// Divergence describes how far a peer was from agreeing with this node on
// a scope, by the last anti-entropy digest it sent for it, Age ago: it
// lacked Behind operations this node holds, and held Ahead operations this
// node lacks.
type Divergence struct {
	Scope         string
	Behind, Ahead uint64
	Age           time.Duration
}

// KeyInfo describes one gossip key without its material: its fingerprint
// (first 8 hex digits of its SHA-256) and whether it is the primary key
// (the one outgoing gossip is encrypted with).
type KeyInfo struct {
	Fingerprint string
	Primary     bool
}

// MessageKind is a kind of roster gossip message; Stats.Sent and
// Stats.Received are indexed by it. Package registry checks at compile
// time that the kinds are the gossip layer's, in its order.
type MessageKind uint8

// Message kinds.
const (
	KindDeltas      MessageKind = iota // deltas pushed to peers (local operations, repairs)
	KindRelay                          // deltas with the nodes to pass them on to (FanOut)
	KindSync                           // anti-entropy digests
	KindLeaving                        // a node's announcement that it is leaving
	NumMessageKinds                    // the number of kinds
)

var kindNames = [NumMessageKinds]string{KindDeltas: "deltas", KindRelay: "relay", KindSync: "sync", KindLeaving: "leaving"}

// String returns the kind's name, as in metric labels.
func (k MessageKind) String() string {
	if k < NumMessageKinds {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Traffic counts messages and their bytes.
type Traffic struct{ Messages, Bytes int64 }

// TransportStats count what the node's network transport sent and
// received: packets (UDP) and streams (TCP) dialled, accepted and refused
// (closed before memberlist saw them: a peer of another cluster, or an
// unkeyed one).
type TransportStats struct {
	PacketsSent, PacketBytesSent                   int64
	PacketsReceived, PacketBytesReceived           int64
	StreamsOpened, StreamsAccepted, StreamsRefused int64
}

// Stats are the node's cumulative gossip counters, for metrics and tests.
type Stats struct {
	// DeltasSent counts the local operations pushed to peers (a join,
	// update, leave or leave-all each; under load they are batched into
	// fewer deltas on the wire); DeltasReceived the deltas decoded.
	DeltasSent, DeltasReceived int64
	// PacketsSent and ReliableSent count best-effort (UDP) packets and
	// reliable (TCP) messages sent; BytesSent their bytes.
	PacketsSent, ReliableSent, BytesSent int64
	// SyncsSent and SyncsServed count anti-entropy digests sent and
	// answered; RepairDeltasSent and RepairBytesSent what the answers
	// carried.
	SyncsSent, SyncsServed, RepairDeltasSent, RepairBytesSent int64
	// RootsSent counts periodic rounds that sent the root of a range
	// digest instead of a digest (scopes of 64 replicas or more);
	// RootsInStep the roots received that matched this node's.
	RootsSent, RootsInStep int64
	// NarrowedSyncs counts digests sent restricted to the range-digest
	// buckets that differ, after a root that differed.
	NarrowedSyncs int64
	// PlumtreePayloads counts the Plumtree messages sent that carried a
	// batch (this node's, pushed or grafted, or one passed on down the
	// tree) in scopes past 32 peers, where the direct push gives way.
	PlumtreePayloads int64
	// DecodeErrors counts messages and deltas rejected as malformed or
	// invalid; OutOfOrderChunks the anti-entropy chunks received out of
	// order.
	DecodeErrors, OutOfOrderChunks int64
	// RejoinAttempts and RejoinSuccesses count the attempts to rejoin
	// missing peers and seeds, and those that worked.
	RejoinAttempts, RejoinSuccesses int64
	// Piggybacked counts delta packets queued on memberlist's gossip.
	Piggybacked int64
	// HeldBack counts deltas that arrived after a gap in their owner's
	// operations and waited for it; GapSyncs the digests sent to an owner
	// for such a gap.
	HeldBack, GapSyncs int64
	// Relayed counts received deltas passed on to other peers.
	Relayed int64
	// PacketsDropped counts received packets dropped because the node's
	// packet queue was full (anti-entropy repairs them).
	PacketsDropped int64
	// Unvouched counts deltas dropped because the failure detector does
	// not report their owner at that incarnation (forged, or early).
	Unvouched int64
	// Forged counts messages dropped because their claimed sender is not
	// the peer they came from, and relay requests refused.
	Forged int64
	// Overflow counts out-of-order transfer chunks dropped at the reorder
	// buffer's bounds or expiry (anti-entropy repairs what they carried).
	Overflow int64
	// Sent and Received count roster's own gossip messages, and their
	// bytes, by kind (index with a MessageKind).
	Sent, Received [NumMessageKinds]Traffic
	// AntiEntropyRounds counts the anti-entropy ticks.
	AntiEntropyRounds int64
	// Transport counts every packet and stream of the node's own network
	// transport; all zero with a transport set through Config.Tuning.
	Transport TransportStats
}

// ScopeStats describe one scope's replication and watch backlog on this
// node, for metrics. They are read at the time of the call.
type ScopeStats struct {
	// HeldDeltas are peers' deltas held before their turn: until a gap
	// in their owner's operations fills (Config.HoldBack), or, for a
	// transfer's chunks, until their predecessor comes. HeldBytes is their
	// approximate size.
	HeldDeltas, HeldBytes int
	// Watches counts the scope's open watches (a server's watch history
	// follows each scope with one of its own).
	Watches int
	// BacklogEvents counts the events the watches hold for consumers that
	// have not taken them yet: waiting in their channels (up to 256 each)
	// and queued behind them (read without stopping delivery: an event
	// moving into a channel meanwhile may count in both or neither).
	// MaxBacklogEvents is the largest single watch's.
	BacklogEvents, MaxBacklogEvents int
	// BacklogBytes estimates the memory of the events queued behind the
	// channels, and of the batch being handed over (the measure of
	// Limits.WatchBacklogBytes).
	BacklogBytes int
	// Behind counts the watches that fell behind and wait for their
	// consumer to take a resync.
	Behind int
}

// StorageStats are the figures of this node's store (Config.DataDir).
type StorageStats struct {
	// Metrics are the store's cumulative counters: fsyncs and their
	// latency histogram, commits, errors, recoveries.
	storage.Metrics
	// Pebble holds Pebble's own figures when PebbleOK; not while the
	// store has failed or is being recovered.
	Pebble   storage.PebbleMetrics
	PebbleOK bool
}

// Limits bound what clients can make one node hold, so that no client
// (embedded caller or, through the server, anyone on the network) can grow
// its memory without bound. A zero field takes its default (see
// DefaultLimits); a negative one is invalid. Limits apply to this node's
// own operations only: members other nodes own arrive by replication and
// are never refused (convergence must not depend on a limit).
type Limits struct {
	// MaxSessions bounds the live sessions of this node (default 10,000).
	MaxSessions int
	// MaxMembers bounds the members this node owns, over all scopes
	// (default 1,000,000). Updating an existing member is always allowed.
	MaxMembers int
	// MaxGroups bounds the groups holding at least one member this node
	// owns, over all scopes (default 250,000).
	MaxGroups int
	// MaxWatchers bounds the open watches of this node (default 1,024),
	// the server's own (one per scope, for its watch history) included.
	MaxWatchers int
	// WatchBacklogBytes bounds, approximately, the memory a watch's
	// undelivered events may hold (default 4 MiB). A consumer that falls
	// that far behind gets an explicit resync (a fresh snapshot) instead,
	// built once it has taken the events already in its channel: a
	// stalled consumer costs at most this and its channel's 256 events,
	// whatever the churn and the scope's size. It applies on top of
	// WatchBuffer.
	WatchBacklogBytes int
	// WatchBacklogTotalBytes bounds the undelivered events of all the
	// node's watches together (default 64 MiB): past it, the watch whose
	// backlog just grew is resynced (a snapshot, built once its consumer
	// has emptied its channel) instead of queueing. With many stalled
	// consumers, MaxWatchers times WatchBacklogBytes would be gigabytes;
	// this is the bound a node's memory actually keeps.
	WatchBacklogTotalBytes int
}

// DefaultLimits returns the default per-node limits.
func DefaultLimits() Limits {
	return Limits{MaxSessions: 10_000, MaxMembers: 1_000_000, MaxGroups: 250_000, MaxWatchers: 1024, WatchBacklogBytes: 4 << 20, WatchBacklogTotalBytes: 64 << 20}
}
