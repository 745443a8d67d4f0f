package crdt

import (
	"fmt"
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
