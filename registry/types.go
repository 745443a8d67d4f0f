package registry

import (
	"fmt"
	"time"

	"github.com/roster-io/roster/gossip"
)

// The registry's own view of the cluster, its figures and its gossip
// keys, so that an embedder (and package server) needs nothing of the
// gossip layer: these are converted from gossip's values at the call.

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

func nodeInfo(n gossip.NodeInfo) NodeInfo {
	return NodeInfo{Name: n.Name, Incarnation: n.Incarnation, Addr: n.Addr, HTTPAddr: n.HTTPAddr,
		State: PeerState(n.State), Scopes: n.Scopes, Self: n.Self}
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
// Stats.Received are indexed by it.
type MessageKind uint8

// Message kinds.
const (
	KindDeltas      MessageKind = MessageKind(gossip.KindDeltas)      // deltas pushed to peers (local operations, repairs)
	KindRelay       MessageKind = MessageKind(gossip.KindRelay)       // deltas with the nodes to pass them on to (FanOut)
	KindSync        MessageKind = MessageKind(gossip.KindSync)        // anti-entropy digests
	KindLeaving     MessageKind = MessageKind(gossip.KindLeaving)     // a node's announcement that it is leaving
	NumMessageKinds MessageKind = MessageKind(gossip.NumMessageKinds) // the number of kinds
)

// String returns the kind's name, as in metric labels.
func (k MessageKind) String() string { return gossip.MessageKind(k).String() }

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
	// Overflow counts out-of-order chunks and held-back deltas dropped at
	// their memory bounds (anti-entropy repairs what they carried).
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

func statsOf(s gossip.Stats) Stats {
	out := Stats{
		DeltasSent: s.DeltasSent, DeltasReceived: s.DeltasReceived,
		PacketsSent: s.PacketsSent, ReliableSent: s.ReliableSent, BytesSent: s.BytesSent,
		SyncsSent: s.SyncsSent, SyncsServed: s.SyncsServed, RepairDeltasSent: s.RepairDeltasSent, RepairBytesSent: s.RepairBytesSent,
		DecodeErrors: s.DecodeErrors, OutOfOrderChunks: s.OutOfOrderChunks,
		RejoinAttempts: s.RejoinAttempts, RejoinSuccesses: s.RejoinSuccesses,
		Piggybacked: s.Piggybacked, HeldBack: s.HeldBack, GapSyncs: s.GapSyncs, Relayed: s.Relayed,
		PacketsDropped: s.PacketsDropped, Unvouched: s.Unvouched, Forged: s.Forged, Overflow: s.Overflow,
		AntiEntropyRounds: s.AntiEntropyRounds,
		Transport:         TransportStats(s.Transport),
	}
	for k := range NumMessageKinds {
		out.Sent[k], out.Received[k] = Traffic(s.Sent[k]), Traffic(s.Received[k])
	}
	return out
}

// ValidHTTPAddr checks a base URL of a node's API as Config.HTTPAddr takes
// it (http or https, a host and port, no path, bounded in length).
func ValidHTTPAddr(s string) error {
	if err := gossip.ValidHTTPAddr(s); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}
