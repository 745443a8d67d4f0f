package crdt

import (
	"cmp"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// TestPropSplitAddsEqualsItems: a delta of adds only, in counter order,
// is cut by splitAdds into exactly the chunks the general splitItems cuts,
// for any counters (with gaps), context, sizes and chunk budget.
func TestPropSplitAddsEqualsItems(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 60).Draw(t, "adds")
		d := &Delta{Replica: ReplicaID{"owner", 1}}
		if rapid.Bool().Draw(t, "auth") {
			d.Auth, d.Xfer = true, 7
		}
		c := uint64(0)
		for i := range n {
			c += uint64(rapid.IntRange(1, 3).Draw(t, "gap"))
			d.Adds = append(d.Adds, Add{
				Group:   fmt.Sprintf("g%d", rapid.IntRange(0, 3).Draw(t, "group")),
				ID:      fmt.Sprintf("m%d-%s", i, rapid.StringN(0, 20, -1).Draw(t, "pad")),
				Counter: c,
				Meta:    RawMeta(rapid.StringN(0, 30, -1).Draw(t, "meta")),
			})
		}
		d.Ctx = []Range{{1, c + uint64(rapid.IntRange(1, 5).Draw(t, "tail"))}}
		maxBytes := rapid.IntRange(1, 1500).Draw(t, "maxBytes")
		fast, general := splitAdds(d, maxBytes), splitItems(d, maxBytes)
		require.Equal(t, general, fast)
		// And split takes the fast path for it.
		require.Equal(t, general, split(d, maxBytes))
	})
}

// TestPropLiveSplitEqualsSplit: liveSplit, which fills a repair's chunks
// straight from the slice, cuts the chunks split cuts from the slice's
// live entries listed in counter order: the same contexts, transfer ids
// and sequence numbers, and the same adds in each (in another order).
func TestPropLiveSplitEqualsSplit(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := mustNewQuiet("owner", 1)
		n := rapid.IntRange(1, 200).Draw(t, "joins")
		for i := range n {
			g := fmt.Sprintf("g%d", rapid.IntRange(0, 12).Draw(t, "group"))
			id := fmt.Sprintf("m%d", rapid.IntRange(0, n).Draw(t, "id"))
			var m Meta
			if rapid.IntRange(0, 3).Draw(t, "meta") == 0 {
				m = Meta{"v": fmt.Sprint(i)}
			}
			if _, err := s.Join(g, id, m, nil); err != nil {
				t.Fatal(err)
			}
		}
		sl := s.local
		p := uint64(rapid.IntRange(0, int(sl.ctx.top)).Draw(t, "p"))
		auth := rapid.Bool().Draw(t, "auth")
		maxBytes := rapid.IntRange(64, 3000).Draw(t, "maxBytes")
		template := func() *Delta {
			d := &Delta{Replica: sl.id, Ctx: sl.ctx.clip(p+1, MaxCounter-1)}
			if auth {
				d.Auth, d.Floor, d.Xfer = true, 3, 99
			}
			return d
		}
		got, ok := s.liveSplit(sl, p, template(), maxBytes)
		if !ok {
			// Not dense: updates left dead counters behind.
			if lo, hi, dense := denseAbove(sl, p); dense {
				t.Fatalf("dense counters [%d, %d] with %d live, refused", lo, hi, sl.n)
			}
			return
		}
		want := template()
		want.Adds = s.liveAbove(sl, p)
		wantChunks := split(want, maxBytes)
		require.Len(t, got, len(wantChunks))
		for i := range got {
			byCounter := func(a, b Add) int { return cmp.Compare(a.Counter, b.Counter) }
			slices.SortFunc(got[i].Adds, byCounter)
			if len(got[i].Adds) == 0 {
				got[i].Adds = nil
			}
			require.Equal(t, wantChunks[i], got[i], "chunk %d", i)
		}
	})
}
