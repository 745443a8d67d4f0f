package crdt

import (
	"fmt"
	"testing"
)

// replicaState returns a state holding one member of each of n remote
// replicas (and of its own), as a node of an n-node scope would.
func replicaState(tb testing.TB, n int) *State {
	tb.Helper()
	s := mustNew(tb, "obs", 1, DefaultOptions())
	if _, err := s.Join("g", "self", nil, nil); err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		d := &Delta{
			Replica: ReplicaID{fmt.Sprintf("node-%05d", i), 1},
			Ctx:     []Range{{1, 3}},
			Adds:    []Add{{Group: "g", ID: "m", Counter: 3}},
		}
		if _, err := s.Merge(d, nil); err != nil {
			tb.Fatal(err)
		}
	}
	return s
}

// BenchmarkRangeDigest: computing a state's range digest, per replica
// count (the cost a node pays per anti-entropy round to send its root).
func BenchmarkRangeDigest(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		s := replicaState(b, n)
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var root uint64
			for b.Loop() {
				root ^= s.RangeDigest().Root()
			}
			_ = root
		})
	}
}

// BenchmarkDiffInOneBucket: answering a peer that differs from this node
// in one replica of 10,000, narrowed to its bucket, against the full
// digest's answer.
func BenchmarkDiffInOneBucket(b *testing.B) {
	s := replicaState(b, 10_000)
	peer := replicaState(b, 10_000)
	d := &Delta{Replica: ReplicaID{"node-00042", 1}, Ctx: []Range{{4, 4}}, Adds: []Add{{Group: "g", ID: "n", Counter: 4}}}
	if _, err := s.Merge(d, nil); err != nil {
		b.Fatal(err)
	}
	bs := DifferingBuckets(s.RangeDigest(), peer.RangeDigest())
	if len(bs) != 1 {
		b.Fatalf("%d buckets differ, want 1", len(bs))
	}
	b.Run("narrowed", func(b *testing.B) {
		b.ReportAllocs()
		digest := peer.DigestIn(bs)
		for b.Loop() {
			if len(s.DiffIn(digest, bs, 0)) != 1 {
				b.Fatal("want one delta")
			}
		}
		b.ReportMetric(float64(len(EncodeDigest(digest))), "digest-bytes")
	})
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		digest := peer.Digest()
		for b.Loop() {
			if len(s.Diff(digest, 0)) != 1 {
				b.Fatal("want one delta")
			}
		}
		b.ReportMetric(float64(len(EncodeDigest(digest))), "digest-bytes")
	})
}
