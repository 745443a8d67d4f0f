package crdt

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEventLogRing checks the ring against its contract under random
// mostly-ascending adds with late (out-of-order) ones and duplicates: it
// stays sorted and bounded, holds every record above floorAll, and its
// floors are exactly the highest dropped counters.
func TestEventLogRing(t *testing.T) {
	for seed := range uint64(18) {
		rng := rand.New(rand.NewPCG(seed, 1))
		capacity := []int{0, 1, 3, 16, 17, 100}[seed%6]
		var l eventLog
		added := map[uint64]bool{} // counter -> rm
		var next uint64
		for range 800 {
			c := next + 1 + uint64(rng.IntN(3))
			if rng.IntN(5) == 0 && next > 10 {
				c = next - uint64(rng.IntN(10)) // late, or a duplicate
			}
			next = max(next, c)
			rm := rng.IntN(3) == 0
			if prev, ok := added[c]; ok {
				rm = prev // the same event again
			}
			added[c] = rm
			l.add(logRec{counter: c, rm: rm}, capacity)

			require.LessOrEqual(t, l.n, capacity)
			recs, n := l.since(0)
			held := map[uint64]bool{}
			var last uint64
			for r := range recs {
				require.Greater(t, r.counter, last, "seed %d: not strictly ascending", seed)
				last = r.counter
				require.Equal(t, added[r.counter], r.rm)
				held[r.counter] = true
			}
			require.Len(t, held, n)
			var wantAll, wantRm uint64
			for c, rm := range added {
				if held[c] {
					continue
				}
				wantAll = max(wantAll, c)
				if rm {
					wantRm = max(wantRm, c)
				}
			}
			require.Equal(t, wantAll, l.floorAll, "seed %d: floorAll", seed)
			require.Equal(t, wantRm, l.floorRm, "seed %d: floorRm", seed)
			for c := range added {
				if c > l.floorAll {
					require.True(t, held[c], "seed %d: record %d above floor %d missing", seed, c, l.floorAll)
				}
			}
			_, above := l.since(l.floorAll)
			require.Equal(t, n, above)
		}
	}
}

// TestMergeLogsTopCounters: a merge logs its records as if added one by one
// in any order: the log ends with the LogCap highest counters of the slice,
// whatever order the delta lists its entries in.
func TestMergeLogsTopCounters(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	for _, logCap := range []int{0, 1, 7, 64, 5000} {
		src := mustNew(t, "src", 1, Options{LogCap: 5000})
		for i := range 1200 {
			_, err := src.Join(fmt.Sprintf("g%d", rng.IntN(40)), fmt.Sprintf("m%d", i), nil, nil)
			require.NoError(t, err)
			if rng.IntN(4) == 0 {
				_, err := src.Leave(fmt.Sprintf("g%d", rng.IntN(40)), fmt.Sprintf("m%d", rng.IntN(i+1)), nil)
				if err != nil {
					require.ErrorIs(t, err, ErrNotMember)
				}
			}
		}
		var want string
		for round := range 4 {
			ds := src.Diff(Digest{}, 1<<30)
			require.Len(t, ds, 1)
			d := ds[0]
			if round > 0 {
				rng.Shuffle(len(d.Adds), func(i, j int) { d.Adds[i], d.Adds[j] = d.Adds[j], d.Adds[i] })
			}
			dst := mustNew(t, "dst", 1, Options{LogCap: logCap})
			_, err := dst.Merge(d, nil)
			require.NoError(t, err)
			var all []uint64
			for _, a := range d.Adds {
				all = append(all, a.Counter)
			}
			for _, r := range d.Removes {
				all = append(all, r.Counter)
			}
			slices.Sort(all)
			recs, n := dst.slices["src"].log.since(0)
			logged := []uint64{}
			for r := range recs {
				logged = append(logged, r.counter)
			}
			require.Len(t, logged, n)
			require.Equal(t, append([]uint64{}, all[len(all)-min(logCap, len(all)):]...), logged, "logCap %d: not the highest counters", logCap)
			got := dst.Describe(true)
			if round == 0 {
				want = got
				continue
			}
			require.Equal(t, want, got, "logCap %d: the log depends on the order of the delta's entries", logCap)
		}
	}
}

// TestMergeLogsTopCountersSparse: the same with counters too far apart for
// the dense path (select, then sort).
func TestMergeLogsTopCountersSparse(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, logCap := range []int{0, 7, 500} {
		d := &Delta{Replica: ReplicaID{Name: "src", Incarnation: 1}, Auth: true, Xfer: 1}
		var all []uint64
		for i := range 300 {
			c := uint64(10*i + 1)
			d.Adds = append(d.Adds, Add{Group: fmt.Sprintf("g%d", i%9), ID: fmt.Sprintf("m%d", i), Counter: c})
			all = append(all, c)
		}
		d.Ctx = []Range{{1, all[len(all)-1]}}
		rng.Shuffle(len(d.Adds), func(i, j int) { d.Adds[i], d.Adds[j] = d.Adds[j], d.Adds[i] })
		dst := mustNew(t, "dst", 1, Options{LogCap: logCap})
		_, err := dst.Merge(d, nil)
		require.NoError(t, err)
		recs, _ := dst.slices["src"].log.since(0)
		logged := []uint64{}
		for r := range recs {
			logged = append(logged, r.counter)
		}
		require.Equal(t, append([]uint64{}, all[len(all)-min(logCap, len(all)):]...), logged, "logCap %d", logCap)
		require.Equal(t, uint64(0), dst.slices["src"].log.floorRm)
		if logCap < len(all) {
			require.Equal(t, all[len(all)-logCap-1], dst.slices["src"].log.floorAll, "logCap %d: floor", logCap)
		}
	}
}
