package main

import (
	"math"
	"time"

	"github.com/roster-io/roster/crdt"
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
	// else; when the roots differ, the receiver answers with its 256
	// bucket sums and the two exchange the counters of the replicas in
	// the buckets that differ only (crdt.State.DigestIn, DiffIn).
	digestRanges
)

const (
	// aeInterval is the LAN preset's anti-entropy interval.
	aeInterval = 2 * time.Second
	// syncHeader is a digest message's fixed part: kind, scope, sender,
	// flags.
	syncHeader = 24
	// rangeBuckets is how many ranges a ranges digest splits replicas
	// into (crdt's); rangeRoot is its root message (8-byte hash, 4-byte
	// count); rangeSums the message of all bucket sums (msgpack uint64s);
	// bucketEntry what naming one bucket in a narrowed digest costs.
	rangeBuckets = crdt.RangeBuckets
	rangeRoot    = syncHeader + 12
	rangeSums    = syncHeader + 9*rangeBuckets
	bucketEntry  = 2
)

// exchangeBytes is what the two sides of an anti-entropy round over n
// replicas send (the initiator's, the answerer's), when the changes one
// side lacks come from origins distinct replicas. Counter digests: the
// full digest each way. Range digests: the root alone if in step, else
// root, the answerer's bucket sums, and a digest each way of the replicas
// in the buckets those origins fall in (about n*b/256 of them, with b the
// expected number of distinct buckets origins replicas hash to).
func exchangeBytes(kind digestKind, n int, entry float64, origins int) (initiator, answerer float64) {
	full := syncHeader + float64(n)*entry
	switch {
	case kind == digestCounters:
		return full, full
	case origins == 0:
		return rangeRoot, 0
	default:
		b := rangeBuckets * (1 - math.Pow(1-1.0/rangeBuckets, float64(origins)))
		narrowed := syncHeader + b*bucketEntry + float64(n)*b/rangeBuckets*entry
		return rangeRoot + narrowed, rangeSums + narrowed
	}
}

// fullExchange is a round's two full digests, as a greeting or a heal
// sends them (a peer coming back is greeted with the full digest).
func fullExchange(n int, entry float64) float64 {
	return 2 * (syncHeader + float64(n)*entry)
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
	initiator, answerer := exchangeBytes(kind, n, entry, 0)
	roster := (initiator + answerer) / aeInterval.Seconds()
	ml := (pingBytes+ackBytes)/probeInterval.Seconds() +
		2*float64(n)*nodeStateBytes/pushPullScale(pushPullInterval, n).Seconds()
	return background{roster: roster, memberlist: ml}
}
