package crdt

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestValidateRejects feeds Validate (and Merge, which must change nothing)
// deltas broken in one way each, with a dense context (counters checked in
// a bitmap) and a sparse one (counters checked in a map).
func TestValidateRejects(t *testing.T) {
	for _, sparse := range []bool{false, true} {
		// base returns a valid authoritative delta of 300 members over three
		// groups; with sparse, its counters lie far apart.
		base := func() *Delta {
			d := &Delta{Replica: ReplicaID{Name: "r", Incarnation: 7}, Auth: true, Xfer: 1}
			c := uint64(0)
			next := func() uint64 {
				if sparse {
					c += 1 << 20
				} else {
					c++
				}
				return c
			}
			for i := range 300 {
				d.Adds = append(d.Adds, Add{Group: fmt.Sprintf("g%d", i%3), ID: fmt.Sprintf("m%d", i), Counter: next()})
			}
			d.Removes = append(d.Removes, Remove{Group: "g0", ID: "gone", Counter: next()})
			d.Keep = append(d.Keep, next())
			d.Ctx = []Range{{1, c}}
			return d
		}
		require.NoError(t, base().Validate(), "sparse=%v", sparse)
		cases := []struct {
			name   string
			break_ func(d *Delta)
			want   string
		}{
			{"two adds of one key", func(d *Delta) { d.Adds[250].ID, d.Adds[250].Group = "m1", "g1" }, "member g1/m1 appears twice"},
			{"add and remove of one key", func(d *Delta) { d.Removes[0].ID = "m3" }, "member g0/m3 appears twice"},
			{"two adds at one counter", func(d *Delta) { d.Adds[10].Counter = d.Adds[200].Counter }, "used twice"},
			{"remove at an add's counter", func(d *Delta) { d.Removes[0].Counter = d.Adds[5].Counter }, "used twice"},
			{"keep at an add's counter", func(d *Delta) { d.Keep[0] = d.Adds[299].Counter }, "used twice"},
			{"counter outside the context", func(d *Delta) { d.Ctx[0].Hi-- }, "outside the context"},
			{"empty id", func(d *Delta) { d.Adds[7].ID = "" }, "add 7 id"},
			{"bad group after a good run", func(d *Delta) { d.Adds[298].Group = "\xff" }, "add 298 group"},
			{"empty group first", func(d *Delta) { d.Adds[0].Group = "" }, "add 0 group"},
			{"empty group on a remove alone", func(d *Delta) { d.Adds = nil; d.Removes[0].Group = "" }, "remove 0 group"},
			{"keep on a plain delta", func(d *Delta) { d.Auth, d.Xfer = false, 0 }, "keep list"},
		}
		for _, tc := range cases {
			t.Run(fmt.Sprintf("sparse=%v/%s", sparse, tc.name), func(t *testing.T) {
				d := base()
				tc.break_(d)
				err := d.Validate()
				require.ErrorIs(t, err, ErrInvalidDelta)
				require.ErrorContains(t, err, tc.want)

				s := mustNew(t, "local", 1, DefaultOptions())
				before := s.Describe(true)
				_, err = s.Merge(d, nil)
				require.ErrorIs(t, err, ErrInvalidDelta)
				require.Equal(t, before, s.Describe(true), "a rejected delta changed the state")
			})
		}
	}
}

// TestCheckKeysExactlyIgnoresHashTies: the exact check behind a hash tie
// accepts distinct keys (a tie alone is no duplicate).
func TestCheckKeysExactlyIgnoresHashTies(t *testing.T) {
	d := &Delta{Adds: []Add{{Group: "g", ID: "a"}, {Group: "g", ID: "b"}}, Removes: []Remove{{Group: "h", ID: "a"}}}
	require.NoError(t, d.checkKeysExactly())
	d.Removes[0].Group = "g"
	require.ErrorContains(t, d.checkKeysExactly(), "member g/a appears twice")
}

// TestHashSet: the probing set finds every repeat, treats hash 0 like any
// other, and a table handed back to the pool comes out empty, whether it
// was filled to its limit or reused for a smaller set.
func TestHashSet(t *testing.T) {
	for round := range 3 {
		n := []int{1000, 10, 40_000}[round]
		s := getHashSet(n)
		require.GreaterOrEqual(t, len(s.tab), 2*n)
		for i := range n {
			// Multiples of the table size all start at slot 0.
			require.True(t, s.add(uint64(i)*uint64(len(s.tab))), "round %d: %d reported present on first add", round, i)
		}
		for i := range n {
			require.False(t, s.add(uint64(i)*uint64(len(s.tab))), "round %d: %d missed on second add", round, i)
		}
		require.False(t, s.add(1), "hash 0 and 1 share a slot value")
		s.release()
	}
}

// TestGrowAdds: room for at least the run at hand; the rest of the
// message predicted from the bytes per add so far (with slack); never more
// adds than the bytes left could hold.
func TestGrowAdds(t *testing.T) {
	// First run: no rate known yet, room for the run only, and no more
	// than firstAdds whatever the run claims.
	require.Equal(t, 5, cap(growAdds(nil, 5, 0, 1000)))
	require.LessOrEqual(t, cap(growAdds(nil, 1<<20, 0, 4<<20)), firstAdds*9/8)
	// 10 adds took 120 bytes; 1200 bytes left predict about 100 more.
	have := make([]Add, 10)
	got := growAdds(have, 3, 120, 1200)
	require.Len(t, got, 10)
	require.GreaterOrEqual(t, cap(got), 10+100)
	// (Allocation rounds up to a size class: up to an eighth more.)
	require.LessOrEqual(t, cap(got), (10+100+100/8)*9/8, "more than the prediction and its slack")
	// A hostile rate (1 byte per add) is capped by what the bytes can hold.
	got = growAdds(make([]Add, 100), 1, 100, 400)
	require.LessOrEqual(t, cap(got), (100+400/minAddBytes)*9/8)
	require.GreaterOrEqual(t, cap(got), 101)
}

// TestReleaseReusesAdds: a released delta gives its adds back (and keeps
// none), a delta decoded into a pooled slice holds what it should, a small
// delta never keeps a big pooled slice, and what an earlier merge stored
// is untouched by the reuse.
func TestReleaseReusesAdds(t *testing.T) {
	w := mustNew(t, "w", 1, DefaultOptions())
	batch := func(from, n int) []byte {
		var ds []*Delta
		for i := from; i < from+n; i++ {
			d, err := w.JoinRaw(fmt.Sprintf("g%d", i%7), fmt.Sprintf("m%d", i), "", nil)
			require.NoError(t, err)
			ds = append(ds, d)
		}
		j, err := JoinAll(ds...)
		require.NoError(t, err)
		return EncodeDelta(j)
	}
	r := mustNew(t, "r", 1, DefaultOptions())
	next := 0
	// Several rounds: the pool may drop what it is given (always may under
	// -race), so one round could miss the reuse.
	for round := range 10 {
		big := batch(next, 2000)
		next += 2000
		d, err := DecodeDelta(big)
		require.NoError(t, err)
		require.Len(t, d.Adds, 2000)
		require.Equal(t, fmt.Sprintf("m%d", next-2000), d.Adds[0].ID)
		r.MergeValidated(d, nil)
		d.Release()
		require.Nil(t, d.Adds, "a released delta keeps no adds")

		small, err := DecodeDelta(batch(next, 3))
		require.NoError(t, err)
		next += 3
		require.Len(t, small.Adds, 3)
		require.LessOrEqual(t, cap(small.Adds), 3+8, "round %d: a small delta keeps a slice its size", round)
		require.Equal(t, fmt.Sprintf("m%d", next-1), small.Adds[2].ID)
		r.MergeValidated(small, nil)
		small.Release()
	}
	require.Equal(t, next, r.Len())
	held := map[string]bool{}
	for g := range 7 {
		for _, m := range r.Members(fmt.Sprintf("g%d", g)) {
			require.Equal(t, fmt.Sprintf("g%d", g), m.Group)
			held[m.ID] = true
		}
	}
	for i := range next {
		require.True(t, held[fmt.Sprintf("m%d", i)], "m%d lost", i)
	}
}
