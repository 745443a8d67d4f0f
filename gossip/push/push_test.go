package push

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// TestRoute: the direct push up to DirectMax peers, Plumtree past it
// unless a fan-out is set (or DirectMax is negative), the relay tree past
// FanOut peers.
func TestRoute(t *testing.T) {
	for _, c := range []struct {
		directMax, fanOut, peers int
		want                     Route
	}{
		{32, 0, 4, Direct}, {32, 0, 32, Direct}, {32, 0, 33, Plumtree}, {32, 0, 10000, Plumtree},
		{-1, 0, 10000, Direct}, {0, 0, 1, Plumtree}, {0, 0, 0, Direct},
		{32, 3, 3, Direct}, {32, 3, 4, Tree}, {32, 3, 10000, Tree},
	} {
		require.Equal(t, c.want, Config{DirectMax: c.directMax, FanOut: c.fanOut}.Route(c.peers), "%+v", c)
	}
	require.True(t, Piggyback(Direct, false))
	require.True(t, Piggyback(Tree, false))
	require.False(t, Piggyback(Plumtree, false), "Plumtree repairs by its own announcements")
	require.False(t, Piggyback(Direct, true), "a stream batch is too large for gossip")
}

// TestPackProperties: messages keep the deltas' order, cover each once,
// never exceed the limit, are filled greedily (the next delta did not
// fit the previous message), and packing fails exactly when one delta
// alone does not fit.
func TestPackProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sizes := rapid.SliceOf(rapid.IntRange(0, 3000)).Draw(t, "sizes")
		overhead := rapid.IntRange(0, 100).Draw(t, "overhead")
		per := rapid.IntRange(0, 10).Draw(t, "perDelta")
		limit := rapid.IntRange(1, 4000).Draw(t, "limit")
		b, ok := Pack(sizes, overhead, per, limit)
		tooBig := slices.ContainsFunc(sizes, func(s int) bool { return overhead+s+per > limit })
		require.Equal(t, !tooBig, ok)
		if !ok {
			return
		}
		if len(sizes) == 0 {
			require.Empty(t, b)
			return
		}
		require.Equal(t, 0, b[0])
		require.Equal(t, len(sizes), b[len(b)-1])
		for i := 0; i+1 < len(b); i++ {
			require.Less(t, b[i], b[i+1], "every message holds a delta")
			total := overhead
			for _, s := range sizes[b[i]:b[i+1]] {
				total += s + per
			}
			require.LessOrEqual(t, total, limit)
			if b[i+1] < len(sizes) {
				require.Greater(t, total+sizes[b[i+1]]+per, limit, "message %d not filled", i)
			}
		}
	})
}

// TestPacketsOrStream: a batch goes as packets when it takes at most
// ReliableBatchPackets of them and every delta fits one; else as stream
// messages.
func TestPacketsOrStream(t *testing.T) {
	c := Config{MaxPacketBytes: 100, ReliableBatchPackets: 2, StreamBytes: 1000}
	p, ok := c.Packets([]int{40, 40, 40}, 10, 0)
	require.True(t, ok)
	require.Equal(t, Plan{Bounds: []int{0, 2, 3}}, p)
	p, ok = c.Packets([]int{40, 40, 40, 40, 40}, 10, 0)
	require.True(t, ok)
	require.Equal(t, Plan{Bounds: []int{0, 5}, Stream: true}, p, "three packets: one stream message")
	p, ok = c.Packets([]int{500}, 10, 0)
	require.True(t, ok)
	require.True(t, p.Stream, "too large for a packet")
	_, ok = c.Packets([]int{2000}, 10, 0)
	require.False(t, ok, "too large for a stream message")
	b, ok := Pack([]int{40, 45}, 10, 5, 105)
	require.True(t, ok)
	require.Equal(t, []int{0, 2}, b, "an exact fit is one message")
}

// TestDeal: every peer lands in exactly one group, in order within it,
// and group sizes differ by at most one.
func TestDeal(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 50).Draw(t, "n")
		k := rapid.IntRange(1, 10).Draw(t, "k")
		peers := make([]int, n)
		for i := range peers {
			peers[i] = i
		}
		groups := Deal(peers, k)
		require.Len(t, groups, min(n, k))
		var all []int
		lo, hi := n, 0
		for _, g := range groups {
			require.True(t, slices.IsSorted(g))
			all = append(all, g...)
			lo, hi = min(lo, len(g)), max(hi, len(g))
		}
		slices.Sort(all)
		require.Equal(t, peers, append([]int{}, all...)[:n:n])
		if len(groups) > 0 {
			require.LessOrEqual(t, hi-lo, 1)
		}
	})
	require.Nil(t, Deal([]int{1, 2}, 0))
}
