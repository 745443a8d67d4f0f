package crdt

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

var (
	propGroups = []string{"g0", "g1", "g2"}
	propIDs    = []string{"m0", "m1", "m2", "m3"}
	propMetas  = []Meta{nil, {"v": "1"}, {"v": "2", "w": "x"}}
)

// randomOp performs one random local operation on s and returns its delta
// (nil when the operation changed nothing).
func randomOp(t *rapid.T, s *State, emit Emit) *Delta {
	g := rapid.SampledFrom(propGroups).Draw(t, "group")
	id := rapid.SampledFrom(propIDs).Draw(t, "id")
	switch rapid.IntRange(0, 9).Draw(t, "op") {
	case 0, 1, 2, 3, 4, 5:
		m := rapid.SampledFrom(propMetas).Draw(t, "meta")
		d, err := s.Join(g, id, m, emit)
		if err != nil {
			t.Fatalf("join: %v", err)
		}
		return d
	case 6, 7, 8:
		d, err := s.Leave(g, id, emit)
		if err != nil {
			return nil // not a member: ErrNotMember, nothing changed
		}
		return d
	default:
		d, err := s.LeaveAll(id, emit)
		if err != nil {
			return nil
		}
		return d
	}
}

func drawOptions(t *rapid.T, label string) Options {
	return Options{LogCap: rapid.SampledFrom([]int{0, 1, 3, 8, 1024}).Draw(t, label)}
}

// ownerHistory runs random operations on `owners` replicas and returns them
// with every delta they produced.
func ownerHistory(t *rapid.T) ([]*State, []*Delta) {
	n := rapid.IntRange(1, 3).Draw(t, "owners")
	owners := make([]*State, n)
	var all []*Delta
	for i := range owners {
		owners[i] = mustNew(t, fmt.Sprintf("r%d", i), 1, drawOptions(t, "ownerOpts"))
	}
	steps := rapid.IntRange(0, 40).Draw(t, "steps")
	for i := 0; i < steps; i++ {
		o := owners[rapid.IntRange(0, n-1).Draw(t, "who")]
		if d := randomOp(t, o, nil); d != nil {
			all = append(all, d)
		}
	}
	return owners, all
}

// plan is a deterministic recipe for an observer state: which deltas it
// receives, in order (duplicates allowed), and its log capacity.
type plan struct {
	name string
	opts Options
	seq  []int
}

func drawPlan(t *rapid.T, name string, n int) plan {
	p := plan{name: name, opts: drawOptions(t, name+"Opts")}
	if n > 0 {
		p.seq = rapid.SliceOfN(rapid.IntRange(0, n-1), 0, 2*n).Draw(t, name+"Seq")
	}
	return p
}

func (p plan) build(t *rapid.T, deltas []*Delta) *State {
	s := mustNew(t, p.name, 1, p.opts)
	for _, i := range p.seq {
		if _, err := s.Merge(deltas[i], nil); err != nil {
			t.Fatalf("merge: %v", err)
		}
	}
	return s
}

// join merges other's full state into s (the lattice join), in chunks.
func join(t *rapid.T, s, other *State, chunk int) *State {
	for _, d := range other.Snapshot(chunk) {
		if _, err := s.Merge(d, nil); err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	return s
}

// TestPropJoinLaws: the join of reachable states is commutative,
// associative and idempotent, whatever the chunking.
func TestPropJoinLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		_, deltas := ownerHistory(t)
		px, py, pz := drawPlan(t, "x", len(deltas)), drawPlan(t, "y", len(deltas)), drawPlan(t, "z", len(deltas))
		chunk := rapid.SampledFrom([]int{1, 40, 200, 0}).Draw(t, "chunk")
		X, Y, Z := px.build(t, deltas), py.build(t, deltas), pz.build(t, deltas)

		xy := join(t, px.build(t, deltas), Y, chunk).Describe(false)
		yx := join(t, py.build(t, deltas), X, chunk).Describe(false)
		if xy != yx {
			t.Fatalf("not commutative:\nx⊔y:\n%s\ny⊔x:\n%s", xy, yx)
		}
		left := join(t, join(t, px.build(t, deltas), Y, chunk), Z, chunk).Describe(false)
		yz := join(t, py.build(t, deltas), Z, chunk)
		right := join(t, px.build(t, deltas), yz, chunk).Describe(false)
		if left != right {
			t.Fatalf("not associative:\n(x⊔y)⊔z:\n%s\nx⊔(y⊔z):\n%s", left, right)
		}
		xx := join(t, px.build(t, deltas), X, chunk).Describe(false)
		if xx != X.Describe(false) {
			t.Fatalf("not idempotent:\nx:\n%s\nx⊔x:\n%s", X.Describe(false), xx)
		}
	})
}

// TestPropDeltasEqualFullState: a replica's deltas applied in any order, with
// duplicates, give exactly its full state, and merging its full state gives
// the same; events replayed give the visible membership.
func TestPropDeltasEqualFullState(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		owners, deltas := ownerHistory(t)
		order := rapid.Permutation(append(append([]int{}, seqN(len(deltas))...), rapid.SliceOfN(rapid.IntRange(0, max(len(deltas)-1, 0)), 0, len(deltas)).Draw(t, "dups")...)).Draw(t, "order")
		viaDeltas := mustNew(t, "obs", 1, drawOptions(t, "obsOpts"))
		m := model{}
		for _, i := range order {
			if i >= len(deltas) {
				continue
			}
			d := deltas[i]
			if rapid.Bool().Draw(t, "wire") {
				d = roundTrip(t, d)
			}
			if _, err := viaDeltas.Merge(d, m.emit(t)); err != nil {
				t.Fatal(err)
			}
		}
		viaState := mustNew(t, "obs", 1, DefaultOptions())
		var want string
		for _, o := range owners {
			want += o.Describe(false)
			join(t, viaState, o, rapid.SampledFrom([]int{1, 100, 0}).Draw(t, "chunk"))
		}
		if got := viaDeltas.Describe(false); got != want {
			t.Fatalf("deltas in any order differ from the full state:\nwant:\n%s\ngot:\n%s", want, got)
		}
		if got := viaState.Describe(false); got != want {
			t.Fatalf("full-state merge differs:\nwant:\n%s\ngot:\n%s", want, got)
		}
		if !equalModels(m, visible(viaDeltas)) {
			t.Fatalf("events replayed %v, state shows %v", m, visible(viaDeltas))
		}
	})
}

func seqN(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// TestPropConvergence: N replicas do random operations; deltas are lost,
// duplicated and reordered; lost ones are repaired only by digest-driven
// anti-entropy (whose chunks are themselves lost at random). After a final
// lossless sync every replica holds exactly the union of the owners' own
// slices, and its events replay to its visible membership.
func TestPropConvergence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 4).Draw(t, "nodes")
		nodes := make([]*State, n)
		models := make([]model, n)
		for i := range nodes {
			nodes[i] = mustNew(t, fmt.Sprintf("n%d", i), 1, drawOptions(t, "opts"))
			models[i] = model{}
		}
		type msg struct {
			to int
			d  *Delta
		}
		var inflight []msg
		deliver := func(m msg) {
			if _, err := nodes[m.to].Merge(m.d, models[m.to].emit(t)); err != nil {
				t.Fatal(err)
			}
		}
		sync := func(to, from int, loss bool, chunk int) {
			peer := nodes[to].Digest()
			if rapid.Bool().Draw(t, "digestWire") {
				var err error
				if peer, err = DecodeDigest(EncodeDigest(peer)); err != nil {
					t.Fatal(err)
				}
			}
			for _, d := range nodes[from].Diff(peer, chunk) {
				if loss && rapid.IntRange(0, 3).Draw(t, "chunkLost") == 0 {
					continue
				}
				deliver(msg{to, roundTrip(t, d)})
			}
		}
		steps := rapid.IntRange(1, 80).Draw(t, "steps")
		for s := 0; s < steps; s++ {
			switch rapid.IntRange(0, 5).Draw(t, "action") {
			case 0, 1, 2: // a local operation, sent to each peer unless lost
				i := rapid.IntRange(0, n-1).Draw(t, "who")
				d := randomOp(t, nodes[i], models[i].emit(t))
				if d == nil {
					continue
				}
				for j := range nodes {
					if j != i && rapid.IntRange(0, 2).Draw(t, "lost") != 0 {
						inflight = append(inflight, msg{j, d})
					}
				}
			case 3, 4: // deliver (and maybe duplicate) an in-flight delta
				if len(inflight) == 0 {
					continue
				}
				k := rapid.IntRange(0, len(inflight)-1).Draw(t, "pick")
				m := inflight[k]
				if !rapid.Bool().Draw(t, "dup") {
					inflight = append(inflight[:k], inflight[k+1:]...)
				}
				deliver(m)
			case 5: // lossy anti-entropy between two nodes
				to, from := rapid.IntRange(0, n-1).Draw(t, "to"), rapid.IntRange(0, n-1).Draw(t, "from")
				if to != from {
					sync(to, from, true, rapid.SampledFrom([]int{1, 60, 0}).Draw(t, "chunk"))
				}
			}
		}
		// Heal: one lossless round of anti-entropy between every pair.
		for to := range nodes {
			for from := range nodes {
				if to != from {
					sync(to, from, false, rapid.SampledFrom([]int{1, 60, 0}).Draw(t, "chunk"))
				}
			}
		}
		var want string
		for _, o := range nodes {
			want += o.local.describeAlone(o)
		}
		for i, s := range nodes {
			if got := s.Describe(false); got != want {
				t.Fatalf("node %d did not converge:\nwant:\n%s\ngot:\n%s", i, want, got)
			}
			if !equalModels(models[i], visible(s)) {
				t.Fatalf("node %d events replay to %v, state shows %v", i, models[i], visible(s))
			}
		}
	})
}

// describeAlone renders only this slice, as Describe would.
func (sl *slice) describeAlone(s *State) string {
	c := mustNewQuiet(sl.id.Name+"-view", 1)
	for _, d := range s.Snapshot(0) {
		if d.Replica == sl.id {
			_, _ = c.Merge(d, nil)
		}
	}
	return c.Describe(false)
}

func mustNewQuiet(name string, inc uint64) *State {
	s, err := New(ReplicaID{name, inc}, DefaultOptions())
	if err != nil {
		panic(err)
	}
	return s
}

// TestPropRejoinAddWins: join, leave, join again of one member arrive in any
// order, with duplicates: the member is present with the last metadata.
func TestPropRejoinAddWins(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		o := mustNew(t, "o", 1, DefaultOptions())
		var ds []*Delta
		for _, m := range []Meta{{"v": "1"}, nil, {"v": "2"}} {
			var d *Delta
			var err error
			if m == nil {
				d, err = o.Leave("g", "x", nil)
			} else {
				d, err = o.Join("g", "x", m, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			ds = append(ds, d)
		}
		order := rapid.SliceOfN(rapid.IntRange(0, 2), 3, 9).Filter(func(s []int) bool {
			seen := map[int]bool{}
			for _, i := range s {
				seen[i] = true
			}
			return len(seen) == 3
		}).Draw(t, "order")
		obs := mustNew(t, "obs", 1, drawOptions(t, "opts"))
		m := model{}
		for _, i := range order {
			if _, err := obs.Merge(ds[i], m.emit(t)); err != nil {
				t.Fatal(err)
			}
		}
		ms := obs.Members("g")
		if len(ms) != 1 || ms[0].Meta.MustDecode()["v"] != "2" {
			t.Fatalf("after %v: members %v, want x with v=2", order, ms)
		}
		if !equalModels(m, visible(obs)) {
			t.Fatalf("events replay to %v, state shows %v", m, visible(obs))
		}
	})
}

// TestPropSupersededNeverResurrects: deltas of an old incarnation arriving
// late, interleaved with the new incarnation's, never bring old entries back,
// from the owner or from a stale third party.
func TestPropSupersededNeverResurrects(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		old := mustNew(t, "o", 1, DefaultOptions())
		cur := mustNew(t, "o", 2, DefaultOptions())
		var d1, d2 []*Delta
		for i, n := 0, rapid.IntRange(1, 25).Draw(t, "oldOps"); i < n; i++ {
			if d := randomOp(t, old, nil); d != nil {
				d1 = append(d1, d)
			}
		}
		for i, n := 0, rapid.IntRange(0, 25).Draw(t, "newOps"); i < n; i++ {
			if d := randomOp(t, cur, nil); d != nil {
				d2 = append(d2, d)
			}
		}
		// A third party that only ever saw the old incarnation.
		stale := mustNew(t, "stale", 1, DefaultOptions())
		mergeAll(t, stale, d1, nil)

		all := append(append([]*Delta{}, d1...), d2...)
		order := rapid.Permutation(seqN(len(all))).Draw(t, "order")
		obs := mustNew(t, "obs", 1, drawOptions(t, "opts"))
		m := model{}
		seenNew := false
		for _, i := range order {
			if _, err := obs.Merge(all[i], m.emit(t)); err != nil {
				t.Fatal(err)
			}
			if all[i].Replica.Incarnation == 2 {
				seenNew = true
			}
			if seenNew && len(obs.ReplicaMembers(ReplicaID{"o", 1})) > 0 {
				t.Fatalf("old incarnation entries visible after the new one was seen")
			}
			if seenNew && rapid.Bool().Draw(t, "staleSync") {
				// Anti-entropy from the stale third party, and a forced full merge.
				mergeAll(t, obs, stale.Diff(obs.Digest(), 0), m.emit(t))
				mergeAll(t, obs, stale.Snapshot(0), m.emit(t))
				if len(obs.ReplicaMembers(ReplicaID{"o", 1})) > 0 {
					t.Fatalf("stale third party resurrected old incarnation")
				}
			}
		}
		if seenNew && len(d2) > 0 {
			if got, want := obs.Describe(false), cur.Describe(false); got != want {
				t.Fatalf("want exactly the new incarnation:\n%s\ngot:\n%s", want, got)
			}
		}
		if !equalModels(m, visible(obs)) {
			t.Fatalf("events replay to %v, state shows %v", m, visible(obs))
		}
	})
}

// TestPropLifecycleEvents: merges interleaved with suspend, resume, forget,
// readmit and supersede; events always replay to the visible membership, and
// suspended or forgotten replicas are never visible. Changes counts every
// event, and the same when the events are not asked for (nil Emit).
func TestPropLifecycleEvents(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		owners, deltas := ownerHistory(t)
		obs := mustNew(t, "obs", 1, DefaultOptions())
		quiet := mustNew(t, "obs", 1, DefaultOptions()) // the same, with nil Emit
		m := model{}
		emitted := uint64(0)
		emit := func() Emit {
			apply := m.emit(t)
			return func(e Event) { emitted++; apply(e) }
		}
		steps := rapid.IntRange(0, 60).Draw(t, "steps")
		for s := 0; s < steps; s++ {
			o := owners[rapid.IntRange(0, len(owners)-1).Draw(t, "owner")]
			r := o.Local()
			var err, qerr error
			switch rapid.IntRange(0, 7).Draw(t, "action") {
			case 0, 1, 2:
				if len(deltas) > 0 {
					d := deltas[rapid.IntRange(0, len(deltas)-1).Draw(t, "delta")]
					_, err = obs.Merge(d, emit())
					_, qerr = quiet.Merge(d, nil)
				}
			case 3:
				err, qerr = obs.Suspend(r, emit()), quiet.Suspend(r, nil)
			case 4:
				err, qerr = obs.Resume(r, emit()), quiet.Resume(r, nil)
			case 5:
				err, qerr = obs.Forget(r, emit()), quiet.Forget(r, nil)
			case 6:
				obs.Readmit(r)
				quiet.Readmit(r)
			case 7:
				if rapid.IntRange(0, 3).Draw(t, "supersede") == 0 {
					err = obs.Supersede(r.Name, r.Incarnation+1, emit())
					qerr = quiet.Supersede(r.Name, r.Incarnation+1, nil)
				}
			}
			if err != nil || qerr != nil {
				t.Fatal(err, qerr)
			}
			if obs.Changes() != emitted || quiet.Changes() != emitted {
				t.Fatalf("%d events emitted, Changes %d (%d without an Emit)", emitted, obs.Changes(), quiet.Changes())
			}
			if !equalModels(m, visible(obs)) {
				t.Fatalf("events replay to %v, state shows %v", m, visible(obs))
			}
			for _, o := range owners {
				id := o.Local()
				if (obs.Suspended(id) || obs.Forgotten(id)) && obs.Visible("g0")+obs.Visible("g1")+obs.Visible("g2") > 0 {
					for _, g := range obs.Groups() {
						for _, mem := range obs.Members(g) {
							if mem.Owner == id {
								t.Fatalf("%s is hidden but %v is visible", id, mem)
							}
						}
					}
				}
			}
		}
	})
}

// TestPropJoinAllEqualsDeltas: runs of one owner's consecutive deltas joined
// with JoinAll (as the gossip layer batches them), delivered in any order
// with duplicates and through the codec, give exactly the owner's state.
func TestPropJoinAllEqualsDeltas(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		owner := mustNew(t, "r0", 1, drawOptions(t, "ownerOpts"))
		var deltas []*Delta
		for i, n := 0, rapid.IntRange(0, 40).Draw(t, "steps"); i < n; i++ {
			if d := randomOp(t, owner, nil); d != nil {
				deltas = append(deltas, d)
			}
		}
		var batches []*Delta
		for i := 0; i < len(deltas); {
			n := rapid.IntRange(1, len(deltas)-i).Draw(t, "run")
			b, err := JoinAll(deltas[i : i+n]...)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Validate(); err != nil {
				t.Fatalf("joined delta invalid: %v", err)
			}
			batches = append(batches, roundTrip(t, b))
			i += n
		}
		obs := mustNew(t, "obs", 1, drawOptions(t, "obsOpts"))
		m := model{}
		if len(batches) > 0 {
			order := rapid.SliceOfN(rapid.IntRange(0, len(batches)-1), len(batches), 3*len(batches)).Draw(t, "order")
			for _, i := range append(order, seqN(len(batches))...) {
				if _, err := obs.Merge(batches[i], m.emit(t)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got, want := obs.Describe(false), owner.Describe(false); got != want {
			t.Fatalf("joined deltas differ from the owner's state:\nwant:\n%s\ngot:\n%s", want, got)
		}
		if !equalModels(m, visible(obs)) {
			t.Fatalf("events replayed %v, state shows %v", m, visible(obs))
		}
	})
	_, err := JoinAll()
	require.ErrorIs(t, err, ErrInvalidDelta)
}
