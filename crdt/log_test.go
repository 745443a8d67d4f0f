package crdt

import (
	"math/rand/v2"
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
