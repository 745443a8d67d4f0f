package main

import (
	"math"
	"math/rand/v2"
	"time"
)

// netModel is the simulated network: the one-way delay of a packet
// between two nodes, and what a node's NIC and CPU cost per message.
type netModel struct {
	name string
	// oneWay returns the propagation delay from node a to node b.
	oneWay func(rng *rand.Rand, a, b int) time.Duration
	// bytesPerSec is each node's egress bandwidth: a node sending
	// 10,000 copies of a change queues them behind each other.
	bytesPerSec float64
	// sendCost and recvCost are the CPU time a node spends per message
	// sent and received (a syscall, an encode or decode): the busiest
	// node's queue is what makes a full mesh slow at 10,000 nodes.
	sendCost, recvCost time.Duration
}

// Per-message costs, from roster-bench on this machine: a small UDP
// packet sent through memberlist costs a few microseconds of CPU.
const (
	msgSendCost = 3 * time.Microsecond
	msgRecvCost = 3 * time.Microsecond
)

// lanModel is one data centre: 100–500 µs one way, 1 Gbit/s per node.
func lanModel() netModel {
	return netModel{
		name: "lan",
		oneWay: func(rng *rand.Rand, a, b int) time.Duration {
			return 100*time.Microsecond + time.Duration(rng.Int64N(int64(400*time.Microsecond)))
		},
		bytesPerSec: 125e6,
		sendCost:    msgSendCost,
		recvCost:    msgRecvCost,
	}
}

// wanRegions is how many regions the WAN model spreads nodes over, as a
// large cloud provider's footprint.
const wanRegions = 19

// wanModel spreads nodes over 19 regions evenly placed on a ring (node i
// in region i mod 19). Within a region a packet takes 0.5–1 ms one way;
// between regions the round trip is 4 ms plus up to 200 ms for the
// distance (the chord between the two regions on the ring, 200 ms for
// opposite ones: about Sydney–London), plus up to 1 ms of jitter.
func wanModel() netModel {
	return netModel{
		name: "wan",
		oneWay: func(rng *rand.Rand, a, b int) time.Duration {
			ra, rb := a%wanRegions, b%wanRegions
			jitter := time.Duration(rng.Int64N(int64(time.Millisecond)))
			if ra == rb {
				return 500*time.Microsecond + jitter/2
			}
			return wanRTT(ra, rb)/2 + jitter
		},
		bytesPerSec: 125e6,
		sendCost:    msgSendCost,
		recvCost:    msgRecvCost,
	}
}

// wanRTT is the round trip between two distinct regions.
func wanRTT(ra, rb int) time.Duration {
	angle := 2 * math.Pi * float64(ra-rb) / wanRegions
	chord := math.Abs(math.Sin(angle / 2)) // 0..1, 1 for opposite regions
	return 4*time.Millisecond + time.Duration(chord*float64(200*time.Millisecond))
}

func modelByName(name string) (netModel, bool) {
	switch name {
	case "lan":
		return lanModel(), true
	case "wan":
		return wanModel(), true
	}
	return netModel{}, false
}
