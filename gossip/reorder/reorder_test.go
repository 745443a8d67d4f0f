package reorder

import (
	"fmt"
	"testing"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// ownerDeltas returns owner's first n deltas (one join each), encoded.
func ownerDeltas(t require.TestingT, owner string, n int) [][]byte {
	st, err := crdt.New(crdt.ReplicaID{Name: owner, Incarnation: 1}, crdt.DefaultOptions())
	require.NoError(t, err)
	out := make([][]byte, n)
	for i := range out {
		d, err := st.Join("g", fmt.Sprintf("%s-%d", owner, i), nil, nil)
		require.NoError(t, err)
		out[i] = crdt.EncodeDelta(d)
	}
	return out
}

// deliver is gossip's merge path for plain deltas: hold back, or merge and
// drain what that released. It returns the first counters merged, in
// order, by owner.
func deliver(t require.TestingT, b *Buffer, st *crdt.State, msg []byte, now time.Time, merged map[string][]uint64) {
	d, err := crdt.DecodeDelta(msg)
	require.NoError(t, err)
	if b.HoldGap("s", st, d, now) {
		return
	}
	merge := func(d *crdt.Delta) {
		if r := st.MergeValidated(d, nil); r.Ignored == crdt.NotIgnored && r.Added > 0 {
			merged[d.Replica.Name] = append(merged[d.Replica.Name], d.Ctx[0].Lo)
		}
	}
	merge(d)
	for g := b.NextGap("s", st, d.Replica.Name, false); g != nil; g = b.NextGap("s", st, d.Replica.Name, false) {
		merge(g)
	}
}

// TestAnyOrderMergesInOwnerOrder: whatever order (and duplication) the
// network delivers owners' deltas in, within the bounds each owner's
// operations are merged exactly in its order, and nothing is left held.
func TestAnyOrderMergesInOwnerOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		owners := rapid.IntRange(1, 3).Draw(t, "owners")
		var all [][]byte
		counts := map[string]int{}
		for o := range owners {
			name := fmt.Sprintf("o%d", o)
			counts[name] = rapid.IntRange(1, 25).Draw(t, "deltas")
			all = append(all, ownerDeltas(t, name, counts[name])...)
		}
		order := rapid.Permutation(all).Draw(t, "order")
		for range rapid.IntRange(0, 5).Draw(t, "duplicates") {
			order = append(order, rapid.SampledFrom(all).Draw(t, "dup"))
		}
		b := New(Limits{})
		st, err := crdt.New(crdt.ReplicaID{Name: "me", Incarnation: 1}, crdt.DefaultOptions())
		require.NoError(t, err)
		merged := map[string][]uint64{}
		for _, m := range order {
			deliver(t, b, st, m, time.Unix(0, 0), merged)
		}
		for name, n := range counts {
			want := make([]uint64, n)
			for i := range want {
				want[i] = uint64(i + 1)
			}
			require.Equal(t, want, merged[name], "owner %s", name)
		}
		entries, bytes := b.Len()
		require.Zero(t, entries)
		require.Zero(t, bytes)
		require.Zero(t, b.Stats().Refused)
	})
}

// TestBoundsHoldAndNothingIsLost: under random operations and small
// limits the buffer never holds more than its bounds, its totals agree
// with its parts, and every delta delivered ends up merged once what is
// overdue is forced out (a refused delta is merged at once, out of order;
// none is dropped).
func TestBoundsHoldAndNothingIsLost(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		lim := Limits{
			Bytes:      rapid.IntRange(100, 3000).Draw(t, "bytes"),
			OwnerBytes: rapid.IntRange(100, 2000).Draw(t, "ownerBytes"),
			Entries:    rapid.IntRange(1, 12).Draw(t, "entries"),
		}
		b := New(lim)
		st, err := crdt.New(crdt.ReplicaID{Name: "me", Incarnation: 1}, crdt.DefaultOptions())
		require.NoError(t, err)
		counts := map[string]int{}
		var all [][]byte
		for o := range 3 {
			name := fmt.Sprintf("o%d", o)
			counts[name] = rapid.IntRange(1, 15).Draw(t, "deltas")
			all = append(all, ownerDeltas(t, name, counts[name])...)
		}
		order := rapid.Permutation(all).Draw(t, "order")
		merged := map[string][]uint64{}
		now := time.Unix(0, 0)
		for _, m := range order {
			now = now.Add(time.Duration(rapid.IntRange(0, 100).Draw(t, "ms")) * time.Millisecond)
			deliver(t, b, st, m, now, merged)
			entries, bytes := b.Len()
			require.LessOrEqual(t, entries, lim.Entries)
			require.LessOrEqual(t, bytes, lim.Bytes)
			gaps, chunks, scopeBytes := b.Held("s")
			require.Equal(t, entries, gaps+chunks)
			require.Equal(t, bytes, scopeBytes)
			for name := range counts {
				require.LessOrEqual(t, b.OwnerBytes(Key{"s", name}), lim.OwnerBytes)
			}
		}
		for _, k := range b.Overdue(now, 0) {
			for g := b.NextGap(k.Scope, st, k.Owner, true); g != nil; g = b.NextGap(k.Scope, st, k.Owner, true) {
				st.MergeValidated(g, nil)
			}
		}
		for name, n := range counts {
			inc, top, ok := st.Top(name)
			require.True(t, ok)
			require.Equal(t, uint64(1), inc)
			require.Equal(t, uint64(n), top, "owner %s: every delta merged", name)
		}
		entries, _ := b.Len()
		require.Zero(t, entries)
	})
}

// TestOverdueOnlyPastWait: an owner is overdue once its oldest held delta
// has waited the hold-back time, not before; the list is sorted.
func TestOverdueOnlyPastWait(t *testing.T) {
	b := New(Limits{})
	st, err := crdt.New(crdt.ReplicaID{Name: "me", Incarnation: 1}, crdt.DefaultOptions())
	require.NoError(t, err)
	t0 := time.Unix(100, 0)
	for i, owner := range []string{"z", "a", "m"} {
		msgs := ownerDeltas(t, owner, 2)
		d, err := crdt.DecodeDelta(msgs[1])
		require.NoError(t, err)
		require.True(t, b.HoldGap("s", st, d, t0.Add(time.Duration(i)*100*time.Millisecond)))
	}
	require.Empty(t, b.Overdue(t0.Add(499*time.Millisecond), 500*time.Millisecond))
	require.Equal(t, []Key{{"s", "z"}}, b.Overdue(t0.Add(500*time.Millisecond), 500*time.Millisecond))
	require.Equal(t, []Key{{"s", "a"}, {"s", "m"}, {"s", "z"}}, b.Overdue(t0.Add(time.Second), 500*time.Millisecond))
	require.Nil(t, b.NextGap("s", st, "a", false), "the gap is still there")
	require.NotNil(t, b.NextGap("s", st, "a", true))
	require.Equal(t, int64(1), b.Stats().Forced)
}

// TestWaits: only plain deltas of the incarnation held, past the next
// counter, wait; chunks and new incarnations never do.
func TestWaits(t *testing.T) {
	st, err := crdt.New(crdt.ReplicaID{Name: "me", Incarnation: 1}, crdt.DefaultOptions())
	require.NoError(t, err)
	msgs := ownerDeltas(t, "o", 3)
	dec := func(b []byte) *crdt.Delta {
		d, err := crdt.DecodeDelta(b)
		require.NoError(t, err)
		return d
	}
	require.False(t, Waits(st, dec(msgs[0])), "first contact, counter 1")
	require.True(t, Waits(st, dec(msgs[2])), "first contact, counter 3")
	st.MergeValidated(dec(msgs[0]), nil)
	require.False(t, Waits(st, dec(msgs[1])))
	require.True(t, Waits(st, dec(msgs[2])))

	next, err := crdt.New(crdt.ReplicaID{Name: "o", Incarnation: 2}, crdt.DefaultOptions())
	require.NoError(t, err)
	for range 3 {
		_, err = next.Join("g", "x"+fmt.Sprint(next.Len()), nil, nil)
		require.NoError(t, err)
	}
	d, err := next.Join("g", "late", nil, nil)
	require.NoError(t, err)
	require.False(t, Waits(st, d), "another incarnation supersedes, it does not wait")
	for _, c := range next.Snapshot(0) {
		require.False(t, Waits(st, c), "chunks are HoldChunk's")
	}
}
