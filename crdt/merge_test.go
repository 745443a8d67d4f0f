package crdt

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMergeRunRefindsEmptiedGroup: within one run of adds to a group, an
// add known to be dead removes the group's last member (which drops the
// group from the index); a later add of the same run must land in the
// indexed group, not in the dropped one.
func TestMergeRunRefindsEmptiedGroup(t *testing.T) {
	owner := ReplicaID{Name: "a", Incarnation: 1}
	r := mustNew(t, "r", 1, DefaultOptions())
	_, err := r.Merge(&Delta{Replica: owner, Ctx: []Range{{1, 1}}, Adds: []Add{{Group: "g", ID: "x", Counter: 1}}}, nil)
	require.NoError(t, err)
	// r learnt that counter 2 is dead (an update of x it never saw alive).
	r.slices["a"].ctx.add(2, 2)
	_, err = r.Merge(&Delta{Replica: owner, Ctx: []Range{{2, 3}}, Adds: []Add{
		{Group: "g", ID: "x", Counter: 2}, // known dead: removes x@1, the group's last member
		{Group: "g", ID: "z", Counter: 3}, // new
	}}, nil)
	require.NoError(t, err)
	ms := r.Members("g")
	require.Len(t, ms, 1)
	require.Equal(t, "z", ms[0].ID)
	require.Equal(t, []string{"g"}, r.Groups())
}

// TestExpectSizesSetsOnce: a transfer's chunks merged after Expect give
// the same state as without it, and the member sets they create are sized
// once for all the chunks' adds rather than grown through every doubling,
// which shows in the bytes the merge allocates.
func TestExpectSizesSetsOnce(t *testing.T) {
	_, owner := remoteState(t, 20_000, 20) // 1,000 members per group
	chunks := owner.Diff(Digest{}, 64<<10)
	require.Greater(t, len(chunks), 4)
	decode := func() []*Delta {
		var ds []*Delta
		for _, c := range chunks {
			ds = append(ds, roundTrip(t, c))
		}
		return ds
	}
	merge := func(expect bool) (*State, uint64) {
		s := mustNew(t, "obs", 1, DefaultOptions())
		ds := decode()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if expect {
			s.Expect(ds)
		}
		for _, d := range ds {
			require.Equal(t, NotIgnored, s.MergeValidated(d, nil).Ignored)
		}
		s.Expect(nil)
		runtime.ReadMemStats(&after)
		require.Empty(t, s.expect, "Expect(nil) forgets the counts")
		return s, after.TotalAlloc - before.TotalAlloc
	}
	plain, grown := merge(false)
	sized, once := merge(true)
	require.True(t, equalModels(visible(plain), visible(sized)))
	require.Equal(t, 20_000, sized.VisibleLen())
	// Growing through every doubling allocates about twice the final
	// tables; sized once, the sets allocate them once.
	require.Less(t, float64(once), 0.8*float64(grown), "sized once: %d bytes, grown: %d bytes", once, grown)

	// Counts are per replica and only for sets the slice does not hold:
	// merged again, the same chunks expect nothing.
	sized.Expect(decode())
	require.Empty(t, sized.expect)
	// A single delta brings its counts in its runs already.
	fresh := mustNew(t, "obs", 1, DefaultOptions())
	fresh.Expect(decode()[:1])
	require.Empty(t, fresh.expect)
	// A replica the state ignores (an older incarnation) brings no sets.
	newer := mustNew(t, "obs", 1, DefaultOptions())
	require.NoError(t, newer.Supersede("owner", 2, nil))
	newer.Expect(decode())
	require.Empty(t, newer.expect)

	// One member updated by many deltas of a message: the counts add up,
	// but a set created by a run of one add is not sized from them, so it
	// stays a short list rather than a map sized for every update.
	src := mustNew(t, "src", 1, DefaultOptions())
	var updates []*Delta
	for i := range 200 {
		d, err := src.Join("h", "x", Meta{"v": fmt.Sprint(i)}, nil)
		require.NoError(t, err)
		updates = append(updates, roundTrip(t, d))
	}
	obs := mustNew(t, "obs", 1, DefaultOptions())
	obs.Expect(updates)
	require.Equal(t, 200, obs.expect[expectKey{"src", "h"}])
	for _, d := range updates {
		obs.MergeValidated(d, nil)
	}
	obs.Expect(nil)
	set := obs.slices["src"].groups[obs.groups["h"]]
	require.Equal(t, 1, set.len())
	require.Nil(t, set.m, "a one-member set sized for 200 updates")
}
