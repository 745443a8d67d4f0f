package crdt

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// canon sorts a delta's adds and removes by key (none is nil), for
// comparing deltas whose operations were collected in different orders.
func canon(d *Delta) *Delta {
	c := *d
	c.Adds = slices.Clone(d.Adds)
	c.Removes = slices.Clone(d.Removes)
	slices.SortFunc(c.Adds, func(a, b Add) int { return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.ID, b.ID)) })
	slices.SortFunc(c.Removes, func(a, b Remove) int { return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.ID, b.ID)) })
	if len(c.Adds) == 0 {
		c.Adds = nil // JoinAll leaves an empty one, Batch none
	}
	if len(c.Removes) == 0 {
		c.Removes = nil
	}
	return &c
}

// joinModel is the reference for Batch and JoinAll: plain deltas of one
// replica joined as merging them one by one would, written the obvious
// way (a map of each key's latest operation, kept in the order keys first
// appear; the contexts' union).
func joinModel(ds []*Delta) *Delta {
	type op struct {
		add *Add
		rm  *Remove
		cnt uint64
	}
	latest := map[memberKey]op{}
	var order []memberKey
	note := func(k memberKey, o op) {
		cur, ok := latest[k]
		if !ok {
			order = append(order, k)
		}
		if !ok || o.cnt > cur.cnt {
			latest[k] = o
		}
	}
	out := &Delta{Replica: ds[0].Replica}
	var ctx []Range
	for _, d := range ds {
		out.Floor = max(out.Floor, d.Floor)
		ctx = append(ctx, d.Ctx...)
		for i := range d.Adds {
			note(memberKey{d.Adds[i].Group, d.Adds[i].ID}, op{add: &d.Adds[i], cnt: d.Adds[i].Counter})
		}
		for i := range d.Removes {
			note(memberKey{d.Removes[i].Group, d.Removes[i].ID}, op{rm: &d.Removes[i], cnt: d.Removes[i].Counter})
		}
	}
	for _, k := range order {
		if o := latest[k]; o.add != nil {
			out.Adds = append(out.Adds, *o.add)
		} else {
			out.Removes = append(out.Removes, *o.rm)
		}
	}
	slices.SortFunc(ctx, func(a, b Range) int { return cmp.Compare(a.Lo, b.Lo) })
	out.Ctx = unionRanges(ctx, nil)
	return out
}

// TestPropBatchEqualsJoinAll: a Batch fed a replica's operations in order
// (joins as LocalJoin values or as deltas, leaves as deltas) gives, under
// a limit no burst reaches, exactly the reference join's delta of them
// (joinModel), and so does JoinAll. Under any
// limit, with Takes at random points and the operations fed in any
// order, its deltas are valid, no larger than the limit (but for one
// delta's own operations), and delivered in any order with duplicates
// through the codec give exactly the owner's state.
func TestPropBatchEqualsJoinAll(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		owner := mustNew(t, "r0", 1, drawOptions(t, "ownerOpts"))
		type op struct {
			j LocalJoin
			d *Delta
		}
		var ops []op
		var deltas []*Delta
		for i, n := 0, rapid.IntRange(0, 40).Draw(t, "steps"); i < n; i++ {
			if rapid.IntRange(0, 2).Draw(t, "local join") == 0 {
				g := rapid.SampledFrom(propGroups).Draw(t, "group")
				id := rapid.SampledFrom(propIDs).Draw(t, "id")
				raw, err := EncodeMeta(rapid.SampledFrom(propMetas).Draw(t, "meta"))
				require.NoError(t, err)
				if j := owner.JoinLocal(g, id, raw, nil); j.Changed() {
					ops = append(ops, op{j: j})
					deltas = append(deltas, j.delta(owner.Local()))
				}
				continue
			}
			if d := randomOp(t, owner, nil); d != nil {
				ops = append(ops, op{d: d})
				deltas = append(deltas, d)
			}
		}
		feed := func(b *Batch, o op) {
			var err error
			if o.d != nil {
				err = b.Add(o.d)
			} else {
				err = b.AddJoin(owner.Local(), o.j)
			}
			if err != nil {
				t.Fatal(err)
			}
		}

		// In order, one delta: JoinAll's.
		if len(deltas) > 0 {
			var b Batch
			for _, o := range ops {
				feed(&b, o)
			}
			got := b.Take()
			require.Len(t, got, 1)
			want := joinModel(deltas)
			require.Equal(t, canon(want), canon(got[0]))
			all, err := JoinAll(deltas...)
			require.NoError(t, err)
			require.Equal(t, canon(want), canon(all))
			require.Empty(t, b.Take(), "taken")
			require.Zero(t, b.Len())
		}

		// Any order, any limits, taken at random points.
		b := Batch{Limit: rapid.IntRange(1, 6).Draw(t, "limit"), Bytes: rapid.IntRange(1, 200).Draw(t, "bytes")}
		biggest := 0 // the largest estimated size of one fed operation
		for _, d := range deltas {
			biggest = max(biggest, opsSize(d))
		}
		order := rapid.Permutation(seqN(len(ops))).Draw(t, "feed order")
		var out []*Delta
		for _, i := range order {
			feed(&b, ops[i])
			if rapid.IntRange(0, 4).Draw(t, "take") == 0 {
				out = append(out, b.Take()...)
			}
		}
		out = append(out, b.Take()...)
		for _, d := range out {
			if err := d.Validate(); err != nil {
				t.Fatalf("batched delta invalid: %v", err)
			}
			if n := len(d.Adds) + len(d.Removes); n > max(b.Limit, len(propGroups)) {
				t.Fatalf("delta of %d operations, limit %d", n, b.Limit)
			}
			if size := opsSize(d); size > max(b.Bytes, biggest) {
				t.Fatalf("delta of about %d bytes, limit %d (largest operation %d)", size, b.Bytes, biggest)
			}
		}
		obs := mustNew(t, "obs", 1, drawOptions(t, "obsOpts"))
		m := model{}
		if len(out) > 0 {
			again := rapid.SliceOfN(rapid.IntRange(0, len(out)-1), 0, 2*len(out)).Draw(t, "deliveries")
			for _, i := range append(rapid.Permutation(seqN(len(out))).Draw(t, "delivery order"), again...) {
				if _, err := obs.Merge(roundTrip(t, out[i]), m.emit(t)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got, want := obs.Describe(false), owner.Describe(false); got != want {
			t.Fatalf("batched deltas differ from the owner's state:\nwant:\n%s\ngot:\n%s", want, got)
		}
		if !equalModels(m, visible(obs)) {
			t.Fatalf("events replayed %v, state shows %v", m, visible(obs))
		}
	})
}

// TestBatchRejects: a batch takes plain deltas of one replica only, and
// a refused delta changes nothing.
func TestBatchRejects(t *testing.T) {
	a := mustNew(t, "a", 1, DefaultOptions())
	c := mustNew(t, "c", 1, DefaultOptions())
	da, err := a.Join("g", "x", nil, nil)
	require.NoError(t, err)
	dc, err := c.Join("g", "y", nil, nil)
	require.NoError(t, err)
	var b Batch
	require.NoError(t, b.Add(da))
	require.ErrorIs(t, b.Add(dc), ErrInvalidDelta)
	require.ErrorIs(t, b.AddJoin(c.Local(), c.JoinLocal("g", "z", "", nil)), ErrInvalidDelta)
	require.ErrorIs(t, b.Add(&Delta{Replica: a.Local(), Auth: true, Xfer: 1}), ErrInvalidDelta)
	require.Equal(t, 1, b.Len())
	got := b.Take()
	require.Len(t, got, 1)
	require.Equal(t, canon(da), canon(got[0]))
	// Empty again: the next delta may be another replica's.
	require.NoError(t, b.Add(dc))
	require.Equal(t, []*Delta{dc}, canon1(b.Take()))
}

func canon1(ds []*Delta) []*Delta {
	for i, d := range ds {
		ds[i] = canon(d)
	}
	return ds
}

// TestBatchBigDelta: one delta with more operations than the limit (a
// member leaving thousands of groups) goes out whole and alone, and the
// batch's index grows for it.
func TestBatchBigDelta(t *testing.T) {
	s := mustNew(t, "a", 1, DefaultOptions())
	b := Batch{Limit: 4}
	for i := range 3000 {
		d, err := s.Join(fmt.Sprintf("g%d", i), "x", nil, nil)
		require.NoError(t, err)
		require.NoError(t, b.Add(d))
	}
	require.NoError(t, b.AddJoin(s.Local(), s.JoinLocal("g0", "y", "", nil)))
	all, err := s.LeaveAll("x", nil)
	require.NoError(t, err)
	require.Len(t, all.Removes, 3000)
	require.NoError(t, b.Add(all))
	require.NoError(t, b.AddJoin(s.Local(), s.JoinLocal("g1", "y", "", nil)))
	out := b.Take()
	require.Len(t, out, 750+1+1+1, "3000 joins by 4, one with y, the leave alone, then y again")
	require.Len(t, out[751].Removes, 3000)
	require.Empty(t, out[751].Adds)
	obs := mustNew(t, "obs", 1, DefaultOptions())
	for _, d := range out {
		require.NoError(t, d.Validate())
		_, err := obs.Merge(d, nil)
		require.NoError(t, err)
	}
	require.Equal(t, s.Describe(false), obs.Describe(false))
}

// TestKeyHashSlots: key hashes are never 0 (a free slot) and their low
// bits, which pick the slot, take every value (a hash forced odd would
// leave half the index's slots unused as starting points).
func TestKeyHashSlots(t *testing.T) {
	var low [4]int
	for i := range 4000 {
		h := keyHash(fmt.Sprintf("g%d", i%7), fmt.Sprintf("m%d", i))
		require.NotZero(t, h)
		low[h&3]++
	}
	for v, n := range low {
		require.Greater(t, n, 500, "low bits %d taken by %d of 4000 keys", v, n)
	}
}

// TestBatchIndexSize: the key index grows with the first delta of a
// burst, by doubling, to twice the limit, where it stays for the next
// deltas; one huge delta grows it, and the seal after drops it.
func TestBatchIndexSize(t *testing.T) {
	s := mustNew(t, "a", 1, DefaultOptions())
	b := Batch{Limit: 64}
	for i := range 1000 {
		require.NoError(t, b.AddJoin(s.Local(), s.JoinLocal(fmt.Sprintf("g%d", i%3), fmt.Sprintf("m%d", i), "", nil)))
		want := 128
		if i < 64 {
			want = 16
			for want < 2*(i+1) {
				want *= 2
			}
		}
		require.Equal(t, want, len(b.keys), "after %d joins", i+1)
	}
	for i := range 500 {
		_, err := s.Join(fmt.Sprintf("h%d", i), "x", nil, nil)
		require.NoError(t, err)
	}
	all, err := s.LeaveAll("x", nil)
	require.NoError(t, err)
	require.NoError(t, b.Add(all))
	require.GreaterOrEqual(t, len(b.keys), 1000)
	require.Len(t, b.Take(), 1000/64+1+1)
	require.Nil(t, b.keys, "the index grown for one huge delta was kept")
}

// TestBatchBytes: with large metadata the byte bound, not the operation
// limit, cuts a burst, and every delta encodes within it.
func TestBatchBytes(t *testing.T) {
	s := mustNew(t, "a", 1, DefaultOptions())
	meta, err := EncodeMeta(Meta{"blob": strings.Repeat("x", 2000)})
	require.NoError(t, err)
	var b Batch
	const joins = 2000 // under DefaultBatchLimit
	for i := range joins {
		require.NoError(t, b.AddJoin(s.Local(), s.JoinLocal(fmt.Sprintf("g%d", i%10), fmt.Sprintf("m%d", i), meta, nil)))
	}
	ds := b.Take()
	total := 0
	for i, d := range ds {
		total += len(d.Adds)
		enc := EncodeDelta(d)
		require.LessOrEqual(t, len(enc), DefaultBatchBytes, "a delta of %d adds", len(d.Adds))
		if i < len(ds)-1 {
			require.Greater(t, len(enc), DefaultBatchBytes*9/10, "a delta of %d adds cut early", len(d.Adds))
		}
	}
	require.Equal(t, joins, total)
	perDelta := DefaultBatchBytes / addSize(Add{Group: "g0", ID: "m1000", Meta: meta})
	require.Len(t, ds, (joins+perDelta-1)/perDelta)
}
