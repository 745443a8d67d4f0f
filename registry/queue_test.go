package registry

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEventQueue: events come out in the order pushed, across blocks;
// each stops when asked; release empties the queue for reuse and clears
// the blocks it returns.
func TestEventQueue(t *testing.T) {
	var q eventQueue
	for round, n := range []int{1, blockEvents, blockEvents + 1, 3*blockEvents + 17} {
		for i := range n {
			q.push(Event{Seq: uint64(i + 1)})
		}
		require.Equal(t, n, q.len())
		var got []uint64
		require.True(t, q.each(func(e Event) bool { got = append(got, e.Seq); return true }))
		require.Len(t, got, n, "round %d", round)
		for i, s := range got {
			require.Equal(t, uint64(i+1), s, "round %d", round)
		}
		seen := 0
		stopped := !q.each(func(Event) bool { seen++; return seen < 3 })
		require.Equal(t, n >= 3, stopped)
		require.Equal(t, min(n, 3), seen)
		bs := append([]*eventBlock(nil), q.bs...)
		q.release()
		require.Zero(t, q.len())
		for _, b := range bs {
			require.Equal(t, eventBlock{}, *b, "a released block still holds events")
		}
	}
}
