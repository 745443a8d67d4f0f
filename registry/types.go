package registry

import (
	"fmt"

	"github.com/roster-io/roster/gossip"
)

// The registry's own view of the cluster, its figures and its gossip keys
// (regtype's NodeInfo, Stats, KeyInfo), so that an embedder (and package
// server) needs nothing of the gossip layer: they are converted from
// gossip's values here, at the call.

func nodeInfo(n gossip.NodeInfo) NodeInfo {
	return NodeInfo{Name: n.Name, Incarnation: n.Incarnation, Addr: n.Addr, HTTPAddr: n.HTTPAddr,
		State: PeerState(n.State), Scopes: n.Scopes, Self: n.Self}
}

// The message kinds are the gossip layer's, in its order: a kind added to
// gossip without its name in regtype fails to compile here.
var (
	_ = [1]struct{}{}[int(KindDeltas)-int(gossip.KindDeltas)]
	_ = [1]struct{}{}[int(KindRelay)-int(gossip.KindRelay)]
	_ = [1]struct{}{}[int(KindSync)-int(gossip.KindSync)]
	_ = [1]struct{}{}[int(KindLeaving)-int(gossip.KindLeaving)]
	_ = [1]struct{}{}[int(NumMessageKinds)-int(gossip.NumMessageKinds)]
)

func statsOf(s gossip.Stats) Stats {
	out := Stats{
		DeltasSent: s.DeltasSent, DeltasReceived: s.DeltasReceived,
		PacketsSent: s.PacketsSent, ReliableSent: s.ReliableSent, BytesSent: s.BytesSent,
		SyncsSent: s.SyncsSent, SyncsServed: s.SyncsServed, RepairDeltasSent: s.RepairDeltasSent, RepairBytesSent: s.RepairBytesSent,
		RootsSent: s.RootsSent, RootsInStep: s.RootsInStep, NarrowedSyncs: s.NarrowedSyncs,
		PlumtreePayloads: s.PlumtreePayloads,
		DecodeErrors:     s.DecodeErrors, OutOfOrderChunks: s.OutOfOrderChunks,
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
