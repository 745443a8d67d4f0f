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
// for any counters (with gaps), context (one range or several), sizes and
// chunk budget; and no chunk's adds can be appended to over the next's.
func TestPropSplitAddsEqualsItems(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 60).Draw(t, "adds")
		d := &Delta{Replica: ReplicaID{"owner", 1}}
		if rapid.Bool().Draw(t, "auth") {
			d.Auth, d.Xfer = true, 7
		}
		// The context: ranges that hold every counter, split at some of
		// the gaps between them.
		c, lo := uint64(0), uint64(1)
		for i := range n {
			gap := uint64(rapid.IntRange(1, 3).Draw(t, "gap"))
			if c > 0 && gap > 1 && rapid.Bool().Draw(t, "split context") {
				d.Ctx = append(d.Ctx, Range{lo, c})
				lo = c + gap
			}
			c += gap
			d.Adds = append(d.Adds, Add{
				Group:   fmt.Sprintf("g%d", rapid.IntRange(0, 3).Draw(t, "group")),
				ID:      fmt.Sprintf("m%d-%s", i, rapid.StringN(0, 20, -1).Draw(t, "pad")),
				Counter: c,
				Meta:    RawMeta(rapid.StringN(0, 30, -1).Draw(t, "meta")),
			})
		}
		d.Ctx = append(d.Ctx, Range{lo, c + uint64(rapid.IntRange(1, 5).Draw(t, "tail"))})
		maxBytes := rapid.IntRange(1, 1500).Draw(t, "maxBytes")
		fast, general := splitAdds(d, maxBytes), splitItems(d, maxBytes)
		require.Equal(t, general, fast)
		// And split takes the fast path for it.
		require.Equal(t, general, split(d, maxBytes))
		for i, c := range fast {
			if len(fast) > 1 { // one chunk is d itself
				require.Equal(t, len(c.Adds), cap(c.Adds), "chunk %d shares its adds' array past its end", i)
			}
		}
	})
}

// TestPropLiveSplitEqualsSplit: liveSplit, which fills a repair's chunks
// straight from the slice, cuts the chunks the general split cuts from
// the slice's live entries above p, listed by a plain scan and sorted by
// counter: the same contexts, transfer ids and sequence numbers, and the
// same adds in each (in another order). A slice filled by joins of
// distinct members (dense counters) is always cut so.
func TestPropLiveSplitEqualsSplit(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := mustNewQuiet("owner", 1)
		n := rapid.IntRange(1, 200).Draw(t, "joins")
		distinct := rapid.Bool().Draw(t, "distinct members")
		for i := range n {
			g := fmt.Sprintf("g%d", rapid.IntRange(0, 12).Draw(t, "group"))
			id := fmt.Sprintf("m%d", i)
			if !distinct {
				id = fmt.Sprintf("m%d", rapid.IntRange(0, n).Draw(t, "id"))
			}
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
		byCounter := func(a, b Add) int { return cmp.Compare(a.Counter, b.Counter) }
		got, ok := s.liveSplit(sl, p, template(), maxBytes)
		if distinct && p == 0 {
			require.True(t, ok, "%d distinct joins: counters dense", n)
		}
		if !ok {
			return
		}
		want := template()
		for g, set := range sl.groups {
			for id, e := range set.all() {
				if e.counter > p {
					want.Adds = append(want.Adds, Add{Group: g.name, ID: id, Counter: e.counter, Meta: e.meta})
				}
			}
		}
		slices.SortFunc(want.Adds, byCounter)
		wantChunks := splitItems(want, maxBytes)
		require.Len(t, got, len(wantChunks))
		for i := range got {
			require.Equal(t, len(got[i].Adds), cap(got[i].Adds), "chunk %d", i)
			slices.SortFunc(got[i].Adds, byCounter)
			if len(got[i].Adds) == 0 {
				got[i].Adds = nil
			}
			if len(wantChunks[i].Adds) == 0 {
				wantChunks[i].Adds = nil
			}
			require.Equal(t, wantChunks[i], got[i], "chunk %d", i)
		}
	})
}
