package crdt

import (
	"fmt"
	"runtime"
	"testing"
)

// Benchmarks: go test -run - -bench . ./crdt/
//
// They print the figures the design is judged by: local joins per second,
// merge of one delta into a 1M-entry state, digest diff, encode/decode of a
// 100k-entry state, and heap bytes per replicated member.

func memberID(i int) string  { return fmt.Sprintf("conn-%08d", i) }
func groupName(i int) string { return fmt.Sprintf("room-%05d", i) }

// remoteState returns a state holding n members of one remote replica spread
// over the given number of groups, as a node that received them over the
// network would hold them, plus the owner.
func remoteState(tb testing.TB, n, groups int) (obs, owner *State) {
	owner = mustNew(tb, "owner", 1, DefaultOptions())
	for i := 0; i < n; i++ {
		if _, err := owner.JoinRaw(groupName(i%groups), memberID(i), "", nil); err != nil {
			tb.Fatal(err)
		}
	}
	obs = mustNew(tb, "obs", 1, DefaultOptions())
	for _, d := range owner.Diff(obs.Digest(), 0) {
		if _, err := obs.Merge(d, nil); err != nil {
			tb.Fatal(err)
		}
	}
	return obs, owner
}

func BenchmarkLocalJoin(b *testing.B) {
	s := mustNew(b, "a", 1, DefaultOptions())
	ids := make([]string, 1<<20)
	for i := range ids {
		ids[i] = memberID(i)
	}
	groups := make([]string, 10000)
	for i := range groups {
		groups[i] = groupName(i)
	}
	// Alternate metadata so that joins past the first 2^20 ids are updates.
	v1, err := EncodeMeta(Meta{"v": "1"})
	if err != nil {
		b.Fatal(err)
	}
	metas := []RawMeta{"", v1}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.JoinRaw(groups[i%len(groups)], ids[i%len(ids)], metas[(i>>20)&1], nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joins/s")
}

func BenchmarkLocalJoinValidated(b *testing.B) {
	s := mustNew(b, "a", 1, DefaultOptions())
	meta := []Meta{{"addr": "10.0.0.5:4000"}, {"addr": "10.0.0.6:4000"}}
	ids := make([]string, 1<<20)
	for i := range ids {
		ids[i] = memberID(i)
	}
	groups := make([]string, 10000)
	for i := range groups {
		groups[i] = groupName(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Join(groups[i%len(groups)], ids[i%len(ids)], meta[i&1], nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joins/s")
}

// BenchmarkMergeOneEntryInto1M merges one-entry deltas (joins of new members)
// into a state already holding 1M entries of the same replica.
func BenchmarkMergeOneEntryInto1M(b *testing.B) {
	obs, owner := remoteState(b, 1_000_000, 10_000)
	const batch = 10_000
	ds := make([]*Delta, 0, batch)
	next := 1_000_000
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(ds) == 0 {
			b.StopTimer()
			for j := 0; j < batch; j++ {
				d, err := owner.JoinRaw(groupName(next%10_000), memberID(next), "", nil)
				if err != nil {
					b.Fatal(err)
				}
				next++
				ds = append(ds, d)
			}
			b.StartTimer()
		}
		if _, err := obs.Merge(ds[0], nil); err != nil {
			b.Fatal(err)
		}
		ds = ds[1:]
	}
}

// BenchmarkDiff answers a peer digest on a 1M-entry replica: equal digests,
// a peer one operation behind, and a peer 1,000 operations behind.
func BenchmarkDiff(b *testing.B) {
	obs, owner := remoteState(b, 1_000_000, 10_000)
	_ = obs
	peer := owner.Digest()
	behind1 := peer
	behind1.Entries = append([]DigestEntry(nil), peer.Entries...)
	behind1.Entries[0].Top--
	behind1k := peer
	behind1k.Entries = append([]DigestEntry(nil), peer.Entries...)
	behind1k.Entries[0].Top -= 1000
	// Make the last 1,000 operations a mix of leaves and joins.
	for i := 0; i < 1000; i++ {
		if i%2 == 0 {
			if _, err := owner.Leave(groupName(i%10_000), memberID(i), nil); err != nil {
				b.Fatal(err)
			}
		} else if _, err := owner.JoinRaw(groupName(i%10_000), memberID(2_000_000+i), "", nil); err != nil {
			b.Fatal(err)
		}
	}
	top := owner.Digest().Entries[0].Top
	behind1.Entries[0].Top, behind1k.Entries[0].Top = top-1, top-1000
	for _, c := range []struct {
		name string
		d    Digest
	}{{"equal", owner.Digest()}, {"behind-1", behind1}, {"behind-1000", behind1k}} {
		b.Run(c.name, func(b *testing.B) {
			var bytes int
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				ds := owner.Diff(c.d, 0)
				if i == 0 {
					for _, d := range ds {
						bytes += len(EncodeDelta(d))
					}
				}
			}
			b.ReportMetric(float64(bytes), "repair-bytes")
		})
	}
}

func BenchmarkEncodeDecode100k(b *testing.B) {
	_, owner := remoteState(b, 100_000, 1_000)
	ds := owner.Diff(Digest{}, 0) // what a peer serves a fresh node
	var size int
	for _, d := range ds {
		size += len(EncodeDelta(d))
	}
	b.Run("diff-to-empty", func(b *testing.B) {
		// What a peer serves a fresh node: the whole slice, chunked.
		for i := 0; i < b.N; i++ {
			if got := owner.Diff(Digest{}, 0); len(got) == 0 {
				b.Fatal("empty diff")
			}
		}
	})
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(size))
		for i := 0; i < b.N; i++ {
			for _, d := range ds {
				_ = EncodeDelta(d)
			}
		}
		b.ReportMetric(float64(size)/100_000, "bytes/member")
	})
	enc := make([][]byte, len(ds))
	for i, d := range ds {
		enc[i] = EncodeDelta(d)
	}
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(size))
		for i := 0; i < b.N; i++ {
			for _, e := range enc {
				if _, err := DecodeDelta(e); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	for _, expect := range []bool{false, true} {
		name := "decode+merge-into-empty"
		if expect {
			name = "decode+expect+merge-into-empty"
		}
		b.Run(name, func(b *testing.B) {
			// As a node merges a transfer's message: every chunk
			// decoded, then merged (after Expect, as gossip does).
			b.SetBytes(int64(size))
			ds := make([]*Delta, len(enc))
			for i := 0; i < b.N; i++ {
				s := mustNew(b, "obs", 1, DefaultOptions())
				for j, e := range enc {
					d, err := DecodeDelta(e)
					if err != nil {
						b.Fatal(err)
					}
					ds[j] = d
				}
				if expect {
					s.Expect(ds)
				}
				for _, d := range ds {
					if r := s.MergeValidated(d, nil); r.Ignored != NotIgnored {
						b.Fatalf("chunk ignored: %v", r.Ignored)
					}
				}
				s.Expect(nil)
				if s.VisibleLen() != 100_000 {
					b.Fatalf("%d members merged", s.VisibleLen())
				}
			}
		})
	}
}

// BenchmarkMemoryPerMember measures the heap held per replicated member: 1M
// members of a remote replica over 10k groups, and with one member per
// group. It reports B/member; the loop runs once per b.N (use -benchtime=1x).
func BenchmarkMemoryPerMember(b *testing.B) {
	for _, shape := range []struct {
		name   string
		groups int
	}{{"1M-over-10k-groups", 10_000}, {"1M-one-per-group", 1_000_000}} {
		b.Run(shape.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				const n = 1_000_000
				owner := mustNew(b, "owner", 1, DefaultOptions())
				for j := 0; j < n; j++ {
					if _, err := owner.JoinRaw(groupName(j%shape.groups), memberID(j), "", nil); err != nil {
						b.Fatal(err)
					}
				}
				enc := [][]byte{}
				for _, d := range owner.Snapshot(0) {
					enc = append(enc, EncodeDelta(d))
				}
				owner = nil
				before := heapInUse()
				obs := mustNew(b, "obs", 1, DefaultOptions())
				for _, e := range enc {
					d, err := DecodeDelta(e)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := obs.Merge(d, nil); err != nil {
						b.Fatal(err)
					}
				}
				enc = nil
				after := heapInUse()
				if obs.Len() != n {
					b.Fatalf("holds %d members, want %d", obs.Len(), n)
				}
				b.ReportMetric(float64(after-before)/n, "B/member")
				runtime.KeepAlive(obs)
			}
		})
	}
}

func heapInUse() int64 {
	var m runtime.MemStats
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkBatch1024 is what the send loop does with a burst: join 1,024
// one-member local deltas over 1,000 groups into one and encode it.
func BenchmarkBatch1024(b *testing.B) {
	s := mustNew(b, "w", 1, DefaultOptions())
	ds := make([]*Delta, 1024)
	for i := range ds {
		d, err := s.Join(fmt.Sprintf("g%d", i%1000), fmt.Sprintf("m%d", i), nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		ds[i] = d
	}
	b.ReportAllocs()
	for b.Loop() {
		j, err := JoinAll(ds...)
		if err != nil {
			b.Fatal(err)
		}
		_ = EncodeDelta(j)
	}
}

// BenchmarkReceiveBatches is one receiver of roster-bench's throughput
// workload: a writer's 100k joins over 1,000 groups (member i in group
// i mod 1,000) are collected by a Batch, as gossip's send loop collects
// them, taken every 12,500 joins (what one reliable send carries there)
// and the deltas decoded, merged into an empty state and released. It
// reports ns/member and the bytes allocated per member, live or garbage,
// for batch limits around DefaultBatchLimit: a bigger delta carries more
// of each group's members in one run (one group name to decode, check
// and look up). "beside-4" keeps four states like it live meanwhile, as
// the other nodes of roster-bench's process are: the garbage collector
// then scans them on every cycle, which is what the heap's shape costs.
func BenchmarkReceiveBatches(b *testing.B) {
	const n, groups, message = 100_000, 1_000, 12_500
	encode := func(b *testing.B, limit int) [][]byte {
		w := mustNew(b, "w", 1, DefaultOptions())
		batch := Batch{Limit: limit}
		var enc [][]byte
		for i := 0; i < n; i++ {
			j := w.JoinLocal(fmt.Sprintf("g%d", i%groups), fmt.Sprintf("m%d", i), "", nil)
			if err := batch.AddJoin(w.Local(), j); err != nil {
				b.Fatal(err)
			}
			if batch.Len() == message || i == n-1 {
				for _, d := range batch.Take() {
					enc = append(enc, EncodeDelta(d))
				}
			}
		}
		return enc
	}
	receive := func(b *testing.B, enc [][]byte) *State {
		s := mustNew(b, "r", 1, DefaultOptions())
		for _, e := range enc {
			d, err := DecodeDelta(e)
			if err != nil {
				b.Fatal(err)
			}
			s.MergeValidated(d, nil)
			d.Release() // as gossip does after a merge
		}
		if s.Len() != n {
			b.Fatalf("holds %d, want %d", s.Len(), n)
		}
		return s
	}
	for _, limit := range []int{1024, 4096, 16384} {
		enc := encode(b, limit)
		for _, beside := range []int{0, 4} {
			b.Run(fmt.Sprintf("limit-%d/beside-%d", limit, beside), func(b *testing.B) {
				var live []*State
				for range beside {
					live = append(live, receive(b, enc))
				}
				runtime.GC()
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					receive(b, enc)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/member")
				runtime.KeepAlive(live)
			})
		}
	}
}
