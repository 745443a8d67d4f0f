package main

import (
	"math"
	"math/rand/v2"
	"time"
)

// healResult is the convergence of a cluster cut in two halves once the
// cut heals, each half holding half of the scope's members, owned by its
// own nodes.
type healResult struct {
	took       time.Duration // until every node holds every member
	bytes      float64       // repair bytes sent, digests included
	difference float64       // the bytes of what each node lacked, summed
}

// aliveSpread is how long memberlist takes to tell every node that the
// other side is back: about log3(N) gossip rounds of 200 ms (gossip
// fan-out 3), from the nodes that first reach across.
func aliveSpread(n int) time.Duration {
	rounds := math.Ceil(math.Log(float64(n)) / math.Log(3))
	return time.Duration(rounds) * 200 * time.Millisecond
}

// simulateHeal models the exchange that follows a heal with the costs
// measured on the real crdt code. Each node, when it learns that the
// other side is back (spread over aliveSpread), exchanges digests with one
// node of the other side, which sends it the difference through its own
// NIC (transfers from one source queue behind each other); the node then
// decodes and merges it at the measured rate. A node fetches the
// difference once: the protocol's wait for a repair it asked for (see
// gossip's Scope.waiting) keeps it from asking a second peer meanwhile,
// which the registry's TestClusterFreshNodeFetchesOnce checks.
func simulateHeal(rng *rand.Rand, nm netModel, kind digestKind, nodes, members int, c crdtCosts) healResult {
	diffBytes := c.bytesPerMember * float64(members) / 2
	merge := time.Duration(float64(c.decodeMerge) * float64(members) / 2 / float64(c.members))
	// The heal's first exchange is a greeting (a peer back up): the
	// full digest each way, plus a root if rounds send them.
	dig := fullExchange(nodes, c.digestEntry)
	if kind == digestRanges {
		dig += rangeRoot
	}
	free := make([]time.Duration, nodes)
	spread := aliveSpread(nodes)
	var took time.Duration
	for x := range nodes {
		learnt := time.Duration(rng.Int64N(int64(spread)))
		src := rng.IntN(nodes/2)*2 + (1 - x%2) // a node of the other side
		if src >= nodes {
			src -= 2
		}
		rtt := 2 * nm.oneWay(rng, x, src)
		start := max(learnt+rtt, free[src])
		xfer := time.Duration(diffBytes / nm.bytesPerSec * float64(time.Second))
		free[src] = start + xfer
		done := start + xfer + rtt/2 + merge
		took = max(took, done)
	}
	return healResult{
		took:       took,
		bytes:      float64(nodes) * (diffBytes + dig),
		difference: float64(nodes) * diffBytes,
	}
}

// freshNode is how long a node joining a cluster takes to hold the whole
// scope: one digest exchange, the transfer through one peer's NIC, and
// decoding and merging it (measured).
func freshNode(nm netModel, c crdtCosts) time.Duration {
	xfer := time.Duration(float64(c.snapshotBytes) / nm.bytesPerSec * float64(time.Second))
	return time.Millisecond + xfer + c.decodeMerge
}
