package crdt

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// bucketMate returns a name (q0, q1, ...) in the same range bucket as
// name, so that tests put several replicas in one bucket.
func bucketMate(name string) string {
	for i := 0; ; i++ {
		if c := fmt.Sprintf("q%d", i); rangeBucket(c) == rangeBucket(name) {
			return c
		}
	}
}

// rangeOwnerNames are the replicas of rangeWorld: two pairs that share a
// bucket (with each other, and with observer "a"), and one alone.
var rangeOwnerNames = []string{"r0", bucketMate("r0"), bucketMate("a"), "r1"}

// rangeWorld is the deltas of a few owners, some of them under two
// incarnations (a restart), for observers to merge.
type rangeWorld struct {
	owners  []ReplicaID
	deltas  []*Delta
	byOwner [][]int // per owner, its deltas' indices, in counter order
}

func drawRangeWorld(t *rapid.T) rangeWorld {
	var w rangeWorld
	var states []*State
	for _, name := range rangeOwnerNames[:rapid.IntRange(1, len(rangeOwnerNames)).Draw(t, "owners")] {
		incs := []uint64{1}
		if rapid.IntRange(0, 2).Draw(t, "restarted") == 0 {
			incs = append(incs, 2)
		}
		for _, inc := range incs {
			w.owners = append(w.owners, ReplicaID{name, inc})
			states = append(states, mustNew(t, name, inc, drawOptions(t, "ownerOpts")))
		}
	}
	w.byOwner = make([][]int, len(states))
	for range rapid.IntRange(0, 40).Draw(t, "steps") {
		o := rapid.IntRange(0, len(states)-1).Draw(t, "who")
		if d := randomOp(t, states[o], nil); d != nil {
			w.byOwner[o] = append(w.byOwner[o], len(w.deltas))
			w.deltas = append(w.deltas, d)
		}
	}
	return w
}

// obsPlan is a deterministic recipe for an observer: the deltas it
// merges, in order, then its own operations and lifecycle decisions, so
// that the same observer can be built twice.
type obsPlan struct {
	name  string
	opts  Options
	seq   []int
	local []localOp
	life  []lifeOp
}

type localOp struct {
	kind      int // 0 join, 1 leave, 2 leave all
	group, id string
	meta      Meta
}

type lifeOp struct {
	kind  int // 0 suspend, 1 forget, 2 supersede
	owner int
}

// drawObsPlan draws an observer. Half the time it receives a prefix of
// each owner's deltas in order, so it holds no counter above a gap (no
// cloud); otherwise any deltas in any order, with duplicates.
func drawObsPlan(t *rapid.T, name string, w rangeWorld) obsPlan {
	p := obsPlan{name: name, opts: drawOptions(t, name+"Opts")}
	if rapid.Bool().Draw(t, name+"InOrder") {
		for o, ds := range w.byOwner {
			p.seq = append(p.seq, ds[:rapid.IntRange(0, len(ds)).Draw(t, fmt.Sprintf("%sPrefix%d", name, o))]...)
		}
	} else if len(w.deltas) > 0 {
		p.seq = rapid.SliceOfN(rapid.IntRange(0, len(w.deltas)-1), 0, 2*len(w.deltas)).Draw(t, name+"Seq")
	}
	if rapid.Bool().Draw(t, name+"Writes") {
		for range rapid.IntRange(1, 6).Draw(t, name+"LocalOps") {
			p.local = append(p.local, localOp{
				kind:  rapid.IntRange(0, 2).Draw(t, "localKind"),
				group: rapid.SampledFrom(propGroups).Draw(t, "localGroup"),
				id:    rapid.SampledFrom(propIDs).Draw(t, "localID"),
				meta:  rapid.SampledFrom(propMetas).Draw(t, "localMeta"),
			})
		}
	}
	for range rapid.IntRange(0, 2).Draw(t, name+"Lifecycle") {
		p.life = append(p.life, lifeOp{rapid.IntRange(0, 2).Draw(t, "lifeKind"), rapid.IntRange(0, len(w.owners)-1).Draw(t, "lifeOwner")})
	}
	return p
}

func (p obsPlan) build(t *rapid.T, w rangeWorld) *State {
	s := mustNew(t, p.name, 1, p.opts)
	for _, i := range p.seq {
		if _, err := s.Merge(w.deltas[i], nil); err != nil {
			t.Fatalf("merge: %v", err)
		}
	}
	for _, op := range p.local {
		var err error
		switch op.kind {
		case 0:
			_, err = s.Join(op.group, op.id, op.meta, nil)
		case 1:
			_, err = s.Leave(op.group, op.id, nil)
		case 2:
			_, err = s.LeaveAll(op.id, nil)
		}
		if err != nil && !errors.Is(err, ErrNotMember) {
			t.Fatalf("local op %+v: %v", op, err)
		}
	}
	for _, op := range p.life {
		r := w.owners[op.owner]
		var err error
		switch op.kind {
		case 0:
			err = s.Suspend(r, nil)
		case 1:
			err = s.Forget(r, nil)
		case 2:
			err = s.Supersede(r.Name, r.Incarnation+2, nil)
		}
		if err != nil {
			t.Fatalf("lifecycle %+v: %v", op, err)
		}
	}
	return s
}

// bucketsOfNames returns the sorted, distinct buckets of the names.
func bucketsOfNames(names []string) []int {
	var out []int
	for _, n := range names {
		out = append(out, rangeBucket(n))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// changedNames returns the names whose entries differ between two digests
// (listed in one only, or with another incarnation or top).
func changedNames(a, b Digest) []string {
	entries := func(d Digest) map[string]DigestEntry {
		m := map[string]DigestEntry{}
		for _, e := range d.Entries {
			m[e.Name] = e
		}
		return m
	}
	ea, eb := entries(a), entries(b)
	var out []string
	for n, e := range ea {
		if f, ok := eb[n]; !ok || f != e {
			out = append(out, n)
		}
	}
	for n := range eb {
		if _, ok := ea[n]; !ok {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// filterDigest returns the entries of d in the given buckets.
func filterDigest(d Digest, buckets []int) Digest {
	var out Digest
	for _, e := range d.Entries {
		if slices.Contains(buckets, rangeBucket(e.Name)) {
			out.Entries = append(out.Entries, e)
		}
	}
	return out
}

// hasCloud reports whether s holds, for some replica, counters above a
// gap (which a digest, and so a range digest, does not describe).
func hasCloud(s *State) bool {
	for _, sl := range s.slices {
		if len(sl.ctx.cloud) > 0 {
			return true
		}
	}
	return false
}

// canonical encodes a copy of d without its transfer id, its adds and
// removes in counter order.
func canonical(d *Delta) []byte {
	c := *d
	c.Xfer = 0
	c.Adds = slices.SortedFunc(slices.Values(d.Adds), func(a, b Add) int { return cmp.Compare(a.Counter, b.Counter) })
	c.Removes = slices.SortedFunc(slices.Values(d.Removes), func(a, b Remove) int { return cmp.Compare(a.Counter, b.Counter) })
	return EncodeDelta(&c)
}

// TestPropRangeDigestFollowsDigest: a state's range digest is the one its
// digest gives (before and after the wire), and two states' range digests
// and roots are equal exactly when their digests are; DigestIn of every
// bucket is Digest, and of some buckets is Digest's entries in them.
func TestPropRangeDigestFollowsDigest(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := drawRangeWorld(t)
		pa := drawObsPlan(t, "a", w)
		pb := drawObsPlan(t, "b", w)
		if rapid.Bool().Draw(t, "sameDeltas") {
			// The same deltas in another order: the same digest when
			// neither wrote locally (the observers' own names differ).
			pb.seq = rapid.Permutation(pa.seq).Draw(t, "bOrder")
			pb.life = pa.life
		}
		A, B := pa.build(t, w), pb.build(t, w)
		for _, s := range []*State{A, B} {
			d := s.Digest()
			rd := s.RangeDigest()
			if rd != d.RangeDigest() {
				t.Fatalf("%s: State.RangeDigest %v differs from Digest.RangeDigest %v", s.Local(), rd, d.RangeDigest())
			}
			wire, err := DecodeDigest(EncodeDigest(d))
			if err != nil {
				t.Fatal(err)
			}
			if wire.RangeDigest() != rd {
				t.Fatalf("%s: range digest of the decoded digest differs", s.Local())
			}
			if rd.Count != len(d.Entries) {
				t.Fatalf("%s: count %d, digest lists %d", s.Local(), rd.Count, len(d.Entries))
			}
			all := make([]int, RangeBuckets)
			for i := range all {
				all[i] = i
			}
			if got := s.DigestIn(all); !slices.Equal(got.Entries, d.Entries) {
				t.Fatalf("%s: DigestIn(all) %v, Digest %v", s.Local(), got, d)
			}
			some := rapid.SliceOfDistinct(rapid.IntRange(-2, RangeBuckets+1), rapid.ID).Draw(t, "some")
			some = append(some, bucketsOfNames(rangeOwnerNames[:1])...)
			if got, want := s.DigestIn(some), filterDigest(d, some); !slices.Equal(got.Entries, want.Entries) {
				t.Fatalf("%s: DigestIn(%v) %v, want %v", s.Local(), some, got, want)
			}
		}
		sameDigest := slices.Equal(A.Digest().Entries, B.Digest().Entries)
		RA, RB := A.RangeDigest(), B.RangeDigest()
		if (RA == RB) != sameDigest || (RA.Root() == RB.Root()) != sameDigest {
			t.Fatalf("digests equal %v, range digests equal %v, roots equal %v", sameDigest, RA == RB, RA.Root() == RB.Root())
		}
		if got, want := DifferingBuckets(RA, RB), bucketsOfNames(changedNames(A.Digest(), B.Digest())); !slices.Equal(got, want) {
			t.Fatalf("differing buckets %v, the changed replicas are in %v", got, want)
		}
	})
}

// TestPropRangeDigestOneChange: a change to one replica (a local write, a
// merged delta, a restart, a forget) changes its bucket and no other;
// one that leaves the digest as it is (suspending, a late or duplicate
// delta) changes nothing, root included.
func TestPropRangeDigestOneChange(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := drawRangeWorld(t)
		A := drawObsPlan(t, "a", w).build(t, w)
		before, rBefore := A.Digest(), A.RangeDigest()
		r := w.owners[rapid.IntRange(0, len(w.owners)-1).Draw(t, "replica")]
		var wrote bool
		var err error
		switch kind := rapid.IntRange(0, 4).Draw(t, "change"); kind {
		case 0:
			wrote = randomOp(t, A, nil) != nil
		case 1:
			if len(w.deltas) > 0 {
				_, err = A.Merge(w.deltas[rapid.IntRange(0, len(w.deltas)-1).Draw(t, "delta")], nil)
			}
		case 2:
			err = A.Supersede(r.Name, r.Incarnation+2, nil)
		case 3:
			err = A.Forget(r, nil)
		case 4:
			err = A.Suspend(r, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		after, rAfter := A.Digest(), A.RangeDigest()
		changed := changedNames(before, after)
		if len(changed) > 1 {
			t.Fatalf("one change moved several replicas: %v", changed)
		}
		if wrote && !slices.Equal(changed, []string{"a"}) {
			t.Fatalf("a local write changed %v, want [a]", changed)
		}
		if got, want := DifferingBuckets(rBefore, rAfter), bucketsOfNames(changed); !slices.Equal(got, want) {
			t.Fatalf("changed %v (buckets %v) but buckets %v differ", changed, want, got)
		}
		if rAfter.Count-rBefore.Count != len(after.Entries)-len(before.Entries) {
			t.Fatalf("count went %d -> %d, digest %d -> %d entries", rBefore.Count, rAfter.Count, len(before.Entries), len(after.Entries))
		}
		if (rBefore.Root() == rAfter.Root()) != (len(changed) == 0) {
			t.Fatalf("changed %v but roots equal: %v", changed, rBefore.Root() == rAfter.Root())
		}
		if rAfter != after.RangeDigest() {
			t.Fatalf("after the change, State.RangeDigest differs from Digest.RangeDigest")
		}
	})
}

// TestPropRangeNarrowedRepair: for two random states A and B, the
// exchange narrowed to the differing buckets, A.DiffIn(B.DigestIn(bs),
// bs), merged into B gives what the full one, A.Diff(B.Digest()), gives
// for the replicas in those buckets; and when A holds nothing above a gap
// (a digest cannot describe that) the full one sends nothing more, so the
// two repairs are the same. The buckets are exactly those of the replicas
// whose digest entries differ, and DiffIn ignores what a peer's digest
// lists outside its buckets.
func TestPropRangeNarrowedRepair(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := drawRangeWorld(t)
		pa, pb := drawObsPlan(t, "a", w), drawObsPlan(t, "b", w)
		A := pa.build(t, w)
		bs := DifferingBuckets(A.RangeDigest(), pb.build(t, w).RangeDigest())
		if want := bucketsOfNames(changedNames(A.Digest(), pb.build(t, w).Digest())); !slices.Equal(bs, want) {
			t.Fatalf("differing buckets %v, the replicas that differ are in %v", bs, want)
		}
		chunk := rapid.SampledFrom([]int{1, 60, 0}).Draw(t, "chunk")

		peer := pb.build(t, w).DigestIn(bs)
		if rapid.Bool().Draw(t, "wire") {
			var err error
			if peer, err = DecodeDigest(EncodeDigest(peer)); err != nil {
				t.Fatal(err)
			}
		}
		repair := A.DiffIn(peer, bs, chunk)
		narrowed := pb.build(t, w)
		mergeAll(t, narrowed, repair, nil)

		full := A.Diff(pb.build(t, w).Digest(), chunk)
		var fullIn []*Delta
		for _, d := range full {
			if slices.Contains(bs, rangeBucket(d.Replica.Name)) {
				fullIn = append(fullIn, d)
			}
		}
		// The same deltas, but for their transfer ids (a count per call)
		// and the order of their entries (a map's, in places).
		if len(repair) != len(fullIn) {
			t.Fatalf("DiffIn sent %d deltas, Diff %d for the buckets %v", len(repair), len(fullIn), bs)
		}
		for i := range repair {
			if a, b := canonical(repair[i]), canonical(fullIn[i]); !bytes.Equal(a, b) {
				t.Fatalf("delta %d: DiffIn sent %+v, Diff %+v", i, repair[i], fullIn[i])
			}
		}
		viaFull := pb.build(t, w)
		mergeAll(t, viaFull, fullIn, nil)
		if got, want := narrowed.Describe(false), viaFull.Describe(false); got != want {
			t.Fatalf("narrowed repair (buckets %v) differs from the full one's part in them:\nnarrowed:\n%s\nfull:\n%s", bs, got, want)
		}
		if !hasCloud(A) && len(fullIn) != len(full) {
			t.Fatalf("without a cloud, the full repair sent %d deltas outside the differing buckets %v", len(full)-len(fullIn), bs)
		}

		// A whole digest in place of the partial one: entries outside the
		// buckets are not compared, so the repair is the same.
		wide := pb.build(t, w)
		mergeAll(t, wide, A.DiffIn(pb.build(t, w).Digest(), bs, chunk), nil)
		if got, want := wide.Describe(false), narrowed.Describe(false); got != want {
			t.Fatalf("DiffIn compared replicas outside its buckets:\nwith the whole digest:\n%s\nwith the partial one:\n%s", got, want)
		}
	})
}

// TestRangeDigestWireContract pins the hashes, which are part of the wire
// format: a node computing them differently would see every bucket differ
// from every peer's. Changing them means a new WireVersion.
func TestRangeDigestWireContract(t *testing.T) {
	// The bucket is FNV-1a 64 of the name, as the standard library
	// computes it, mod 256.
	for _, name := range []string{"a", "node-00001", "10.0.3.7:7946", strings.Repeat("x", 200)} {
		h := fnv.New64a()
		h.Write([]byte(name))
		require.Equal(t, h.Sum64(), nameKey(name), name)
		require.Equal(t, int(h.Sum64()%256), rangeBucket(name), name)
	}
	// mix64 is splitmix64's finaliser: seeded with 0, splitmix64's first
	// output is mix64 of its increment.
	require.Equal(t, uint64(0xe220a8397b1dcdaf), mix64(splitmixGamma))
	require.Equal(t, uint64(0xee7ac361aafa4435), entryHash(nameKey("a"), 1, 1))
	d := Digest{Entries: []DigestEntry{{"a", 1, 1}, {"node-00001", 3, 42}}}
	require.Equal(t, uint64(0x38411b4218dcfdd5), d.RangeDigest().Root())
	require.Equal(t, uint64(0x9e7d9f681dd514a6), RangeDigest{}.Root())
}

// TestRangeDigestRoot: the root covers the count and every bucket, in
// its place: changing either, or swapping two buckets, changes it.
func TestRangeDigestRoot(t *testing.T) {
	var d RangeDigest
	d.Count = 2
	d.Buckets[3], d.Buckets[200] = 11, 22
	base := d.Root()
	for name, change := range map[string]func(*RangeDigest){
		"count":   func(d *RangeDigest) { d.Count = 3 },
		"bucket":  func(d *RangeDigest) { d.Buckets[3]++ },
		"last":    func(d *RangeDigest) { d.Buckets[RangeBuckets-1] = 1 },
		"swapped": func(d *RangeDigest) { d.Buckets[3], d.Buckets[200] = d.Buckets[200], d.Buckets[3] },
	} {
		c := d
		change(&c)
		require.NotEqual(t, base, c.Root(), name)
	}
	require.Equal(t, base, d.Root(), "Root changed its receiver")
	require.Equal(t, []int{3, 200}, DifferingBuckets(d, RangeDigest{Count: 2}))
	require.Empty(t, DifferingBuckets(d, d))
}

// TestRangeDigestBlindAboveAGap: like the digest it summarises, a range
// digest says how far each replica is known without a gap (top), not
// which counters are known above one. Two nodes at the same top of a
// replica, one of which also holds a later counter, agree; the full Diff
// would send that counter, DiffIn does not. Whoever is past the gap (the
// owner, at least) has another top, so the exchange with it repairs both.
func TestRangeDigestBlindAboveAGap(t *testing.T) {
	owner := mustNew(t, "o", 1, DefaultOptions())
	var ds []*Delta
	for _, id := range []string{"m1", "m2", "m3"} {
		d, err := owner.Join("g", id, nil, nil)
		require.NoError(t, err)
		ds = append(ds, d)
	}
	a := mustNew(t, "a", 1, DefaultOptions())
	b := mustNew(t, "b", 1, DefaultOptions())
	for _, d := range []*Delta{ds[0], ds[2]} { // a misses counter 2
		_, err := a.Merge(d, nil)
		require.NoError(t, err)
	}
	_, err := b.Merge(ds[0], nil)
	require.NoError(t, err)

	ra, rb := a.RangeDigest(), b.RangeDigest()
	require.Equal(t, ra, rb, "same top, so the same summary")
	require.Empty(t, DifferingBuckets(ra, rb))
	require.Len(t, a.Diff(b.Digest(), 0), 1, "the full diff sends counter 3")
	require.Empty(t, a.DiffIn(b.DigestIn(nil), nil, 0))

	// The owner's summary differs from both in o's bucket only, and its
	// narrowed repair brings each up to the owner.
	ro := owner.RangeDigest()
	for _, s := range []*State{a, b} {
		bs := DifferingBuckets(ro, s.RangeDigest())
		require.Equal(t, []int{rangeBucket("o")}, bs)
		mergeAll(t, s, owner.DiffIn(s.DigestIn(bs), bs, 0), nil)
		require.Len(t, s.Members("g"), 3)
		require.Equal(t, ro, s.RangeDigest())
	}
}

// TestRangeDigestSpread: 10,000 replica names of a few usual shapes
// spread over the buckets: none holds under half or over twice its share
// (a bad bucket hash would narrow a difference down to a crowded bucket).
func TestRangeDigestSpread(t *testing.T) {
	for _, format := range []string{"node-%05d", "roster-%d.roster.svc", "10.0.%d.%d:7946"} {
		var load [RangeBuckets]int
		for i := range 10_000 {
			name := fmt.Sprintf(format, i)
			if strings.Count(format, "%d") == 2 {
				name = fmt.Sprintf(format, i/256, i%256)
			}
			load[rangeBucket(name)]++
		}
		mean := 10_000 / RangeBuckets
		require.Greater(t, slices.Min(load[:]), mean/2, format)
		require.Less(t, slices.Max(load[:]), 2*mean, format)
	}
}

// rangeBucket returns the bucket of the replica named name.
func rangeBucket(name string) int { return int(nameKey(name) % RangeBuckets) }
