package main

import (
	"math"
	"time"
)

// digestKind is what an anti-entropy round exchanges.
type digestKind uint8

const (
	// digestCounters is today's digest: one (name, incarnation, top)
	// entry per replica of the scope, sent every round.
	digestCounters digestKind = iota + 1
	// digestRanges is what gossip does past 64 replicas: a round between
	// nodes in step exchanges the root of a range digest (crdt.RangeDigest:
	// the replicas hashed into 256 buckets, a root over them) and nothing
	// else; when the roots differ, the full counters digest follows. (The
	// crdt can narrow that to the buckets that differ, DigestIn/DiffIn;
	// gossip does not use it yet, so neither does the model.)
	digestRanges
)

const (
	// aeInterval is the LAN preset's anti-entropy interval.
	aeInterval = 2 * time.Second
	// syncHeader is a digest message's fixed part: kind, scope, sender,
	// flags.
	syncHeader = 24
	// rangeBuckets is how many ranges a ranges digest splits replicas
	// into; rangeRoot is its root message (8-byte hash, 4-byte count).
	rangeBuckets = 256
	rangeRoot    = syncHeader + 12
)

// digestBytes is the size of what one side of an anti-entropy round
// sends over n replicas when differing of the 256 buckets differ.
func digestBytes(kind digestKind, n int, entry float64, differing int) float64 {
	full := syncHeader + float64(n)*entry
	switch {
	case kind == digestCounters:
		return full
	case differing == 0:
		return rangeRoot
	default:
		return rangeRoot + full
	}
}

// background is a node's traffic with no changes, in bytes per second,
// split into roster's own and memberlist's.
type background struct {
	roster, memberlist float64
}

// memberlist's LAN preset and its messages' sizes (memberlist's msgpack
// encoding of ping, ack and a push/pull node state with roster's
// metadata: incarnation, scopes, HTTP address).
const (
	probeInterval    = time.Second
	pingBytes        = 64
	ackBytes         = 20
	pushPullInterval = 30 * time.Second
	nodeStateBytes   = 96
)

// pushPullScale is memberlist's own (util.go): past 32 nodes the
// push/pull interval grows with log2 of the cluster size.
func pushPullScale(interval time.Duration, n int) time.Duration {
	const threshold = 32
	if n <= threshold {
		return interval
	}
	mult := math.Ceil(math.Log2(float64(n))-math.Log2(threshold)) + 1
	return time.Duration(mult) * interval
}

// idleTraffic models a node of an n-node cluster with no changes. Every
// round a node sends its digest to one peer and answers the one digest it
// receives on average with its own (the exchange is two-way), except that
// a range root matching the receiver's own is not answered; memberlist
// probes one node per interval (a ping sent, an ack for the ping it
// receives) and every push/pull interval exchanges its full state with
// one node, initiating one and answering one on average.
func idleTraffic(kind digestKind, n int, entry float64) background {
	sent := 2.0
	if kind == digestRanges {
		sent = 1
	}
	roster := sent * digestBytes(kind, n, entry, 0) / aeInterval.Seconds()
	ml := (pingBytes+ackBytes)/probeInterval.Seconds() +
		2*float64(n)*nodeStateBytes/pushPullScale(pushPullInterval, n).Seconds()
	return background{roster: roster, memberlist: ml}
}
