package crdt

import (
	"cmp"
	"fmt"
	"slices"
)

// Ignored says why Merge set a delta aside without applying it.
type Ignored uint8

const (
	NotIgnored        Ignored = iota
	IgnoredSelf               // about the local replica: this node is its only author
	IgnoredStale              // an incarnation older than one already seen (superseded)
	IgnoredForgotten          // a forgotten replica not readmitted
	IgnoredNewerSelf          // claims a newer incarnation of the local node's name
	IgnoredOutOfOrder         // an authoritative chunk whose predecessor was not applied
)

func (i Ignored) String() string {
	return [...]string{"", "self", "stale-incarnation", "forgotten", "newer-self", "out-of-order"}[i]
}

// MergeStats counts what a Merge changed in the replicated state (visible or
// not).
type MergeStats struct {
	Ignored Ignored
	Added   int
	Updated int
	Removed int
}

// Merge joins a delta (or a state chunk) into the state. It is a lattice
// join: merging the same delta twice, or deltas in any order, gives the same
// state. Invalid deltas are rejected whole with an ErrInvalidDelta error and
// change nothing. A delta of a newer incarnation supersedes the older one
// (its entries are dropped, Cause Superseded) before being applied; deltas of
// older or forgotten incarnations, or of the local replica, are ignored.
func (s *State) Merge(d *Delta, emit Emit) (MergeStats, error) {
	if err := d.Validate(); err != nil {
		return MergeStats{}, err
	}
	return s.MergeValidated(d, emit), nil
}

// MergeValidated is Merge for a delta already validated and not changed
// since: one DecodeDelta returned (it validates what it decodes). It skips
// the second validation, which cost a receiver a tenth of a 100k-member
// transfer. Passing any other delta may corrupt the state; use Merge.
func (s *State) MergeValidated(d *Delta, emit Emit) MergeStats {
	sl, why := s.admit(d.Replica, emit)
	if sl == nil {
		return MergeStats{Ignored: why}
	}
	var st MergeStats
	if d.Auth {
		if d.Seq > 0 && sl.xfer != (xferPos{d.Xfer, d.Seq}) {
			return MergeStats{Ignored: IgnoredOutOfOrder}
		}
		sl.xfer = xferPos{d.Xfer, d.Seq + 1}
		if sl.ctx.overlaps(d.Ctx) {
			s.applyAuth(sl, d, emit, &st)
		}
	}
	if n := len(d.Adds) + len(d.Removes); cap(s.pend) < n {
		s.pend = make([]logRec, 0, n) // a transfer's chunk: sized once, not grown
	}
	// Adds come in runs of one group (as encoded): the group is looked up
	// once per run, and a run of new members sizes the set's map once.
	for i := 0; i < len(d.Adds); {
		g := s.groupFor(d.Adds[i].Group)
		j := runEnd(d.Adds, i)
		run := j - i
		set := sl.groups[g] // looked up once per run, not twice per add
		for ; i < j; i++ {
			if len(g.sets) == 0 {
				// Emptied by a removal earlier in the run, del dropped
				// the group from the index: take the indexed one.
				g = s.groupFor(g.name)
			}
			set = s.applyAdd(sl, g, set, d.Adds[i], run, emit, &st)
		}
		if len(g.sets) == 0 && s.groups[g.name] == g {
			delete(s.groups, g.name) // created for nothing
		}
	}
	for _, r := range d.Removes {
		s.applyRemove(sl, r, emit, &st)
	}
	s.logPending(sl)
	top := sl.ctx.top
	for _, r := range d.Ctx {
		sl.ctx.add(r.Lo, r.Hi)
	}
	if !d.complete() {
		sl.log.raiseRm(min(d.Floor, d.Ctx[len(d.Ctx)-1].Hi))
	}
	// Leaves above a gap stay remembered until the gap is filled.
	for _, r := range d.Removes {
		if r.Counter > sl.ctx.top {
			if g := s.groups[r.Group]; g != nil {
				if cur, had := sl.lookup(g, r.ID); had && cur.counter > r.Counter {
					continue // re-joined since: the live entry guards its key
				}
			}
			if sl.gone == nil {
				sl.gone = map[memberKey]uint64{}
			}
			k := memberKey{r.Group, r.ID}
			sl.gone[k] = max(sl.gone[k], r.Counter)
		}
	}
	if sl.ctx.top > top {
		for k, c := range sl.gone {
			if c <= sl.ctx.top {
				delete(sl.gone, k)
			}
		}
	}
	return st
}

// admit finds or creates the slice for r, superseding an older incarnation.
func (s *State) admit(r ReplicaID, emit Emit) (*slice, Ignored) {
	if why := s.ignores(r); why != NotIgnored {
		return nil, why
	}
	if r.Incarnation > s.latest[r.Name] {
		s.supersede(r.Name, r.Incarnation, emit)
	}
	sl := s.slices[r.Name]
	if sl == nil {
		sl = s.newSlice(r)
	}
	return sl, NotIgnored
}

// ignores says why a delta of replica r would be ignored (NotIgnored if
// it would not be), without changing anything.
func (s *State) ignores(r ReplicaID) Ignored {
	if r.Name == s.local.id.Name {
		switch {
		case r.Incarnation == s.local.id.Incarnation:
			return IgnoredSelf
		case r.Incarnation < s.local.id.Incarnation:
			return IgnoredStale
		default:
			return IgnoredNewerSelf
		}
	}
	if r.Incarnation < s.latest[r.Name] {
		return IgnoredStale
	}
	if f, ok := s.forgotten[r.Name]; ok && f == r.Incarnation {
		return IgnoredForgotten
	}
	return NotIgnored
}

// Expect tells the state that the deltas ds are about to be merged, one
// MergeValidated each, so that the member sets they create are sized once
// for every add ds bring to them: the chunks of a transfer each bring a
// part of every group, and a set sized for its first chunk's part grew
// through every doubling after it (a quarter of what merging a transfer
// cost). Only counts are kept, never the deltas, and only of adds that
// can make new members: not those of a replica the state ignores, nor
// those whose counter the slice has seen. A set is sized from them only
// when a run of several adds creates it; the counts overstate what it
// will hold only if ds update one member several times or some of them
// are held back, and never by more than the adds ds hold. Expect(nil)
// forgets them, as the next Expect does. A message of few adds is not
// worth counting.
func (s *State) Expect(ds []*Delta) {
	if len(s.expect) > 4096 {
		s.expect = nil // clearing costs the map's capacity: drop a big one
	} else {
		clear(s.expect)
	}
	n := 0
	for _, d := range ds {
		if d != nil {
			n += len(d.Adds)
		}
	}
	if len(ds) < 2 || n < minExpectAdds {
		return
	}
	for _, d := range ds {
		if d == nil || len(d.Adds) == 0 || s.ignores(d.Replica) != NotIgnored {
			continue
		}
		sl := s.slices[d.Replica.Name]
		if sl != nil && sl.id != d.Replica {
			sl = nil // to be superseded: it brings no sets
		}
		for i := 0; i < len(d.Adds); {
			name := d.Adds[i].Group
			j := runEnd(d.Adds, i)
			if sl == nil || sl.groups[s.groups[name]] == nil {
				k := j - i
				if sl != nil {
					k = 0
					for _, a := range d.Adds[i:j] {
						if !sl.ctx.contains(a.Counter) {
							k++
						}
					}
				}
				if k > 0 {
					if s.expect == nil {
						s.expect = map[expectKey]int{}
					}
					s.expect[expectKey{d.Replica.Name, name}] += k
				}
			}
			i = j
		}
	}
}

// runEnd returns the end of the run of adds of one group that starts at
// i: adds come in such runs, as the encoder writes them.
func runEnd(adds []Add, i int) int {
	j := i + 1
	for j < len(adds) && adds[j].Group == adds[i].Group {
		j++
	}
	return j
}

// minExpectAdds is how many adds a message must bring for Expect to count
// them: a relay's or a packet's few deltas are merged without.
const minExpectAdds = 64

// expectKey names one replica's part of a group in Expect's counts.
type expectKey struct{ replica, group string }

// applyAuth drops held entries whose counter lies in the authoritative
// context but is not live in the delta.
func (s *State) applyAuth(sl *slice, d *Delta, emit Emit, st *MergeStats) {
	live := make(map[uint64]struct{}, len(d.Keep)+len(d.Adds))
	for _, c := range d.Keep {
		live[c] = struct{}{}
	}
	adds := make(map[memberKey]uint64, len(d.Adds))
	for _, a := range d.Adds {
		live[a.Counter] = struct{}{}
		adds[memberKey{a.Group, a.ID}] = a.Counter
	}
	type victim struct {
		g  *group
		id string
	}
	var victims []victim
	for g, set := range sl.groups {
		for id, e := range set.all() {
			if _, ok := live[e.counter]; ok || !rangesContain(d.Ctx, e.counter) {
				continue
			}
			if c, ok := adds[memberKey{g.name, id}]; ok && c > e.counter {
				continue // the add replaces it (an update, not a leave + join)
			}
			victims = append(victims, victim{g, id})
		}
	}
	slices.SortFunc(victims, func(a, b victim) int { return cmp.Or(cmp.Compare(a.g.name, b.g.name), cmp.Compare(a.id, b.id)) })
	for _, v := range victims {
		s.del(sl, v.g, v.id, CauseMerge, emit)
		st.Removed++
	}
}

// applyAdd applies one add under the owner-sequential rule: for one key a
// higher counter supersedes every lower one, live or dead. set is sl's
// member set of g (nil if none); it returns the set after the add.
func (s *State) applyAdd(sl *slice, g *group, set *memberSet, a Add, run int, emit Emit, st *MergeStats) *memberSet {
	cur, had := set.get(a.ID)
	known := sl.ctx.contains(a.Counter)
	if c, ok := sl.gone[memberKey{a.Group, a.ID}]; ok {
		if a.Counter < c {
			known = true // left at c, and a.Counter is older
		} else if !known {
			delete(sl.gone, memberKey{a.Group, a.ID}) // re-joined: the entry guards its key
		}
	}
	switch {
	case had && cur.counter >= a.Counter:
		// Stale or duplicate.
	case had && known:
		// We already know a.Counter is dead, so everything older is too.
		s.del(sl, g, a.ID, CauseMerge, emit)
		st.Removed++
		if set.len() == 0 {
			return nil // del detached it
		}
	case had:
		set = s.store(sl, g, set, a.ID, entry{counter: a.Counter, meta: a.Meta}, cur, true, run, CauseMerge, emit)
		s.pend = append(s.pend, logRec{counter: a.Counter, g: g, id: a.ID})
		st.Updated++
	case !known:
		set = s.store(sl, g, set, a.ID, entry{counter: a.Counter, meta: a.Meta}, entry{}, false, run, CauseMerge, emit)
		s.pend = append(s.pend, logRec{counter: a.Counter, g: g, id: a.ID})
		st.Added++
	}
	return set
}

func (s *State) applyRemove(sl *slice, r Remove, emit Emit, st *MergeStats) {
	g := s.groups[r.Group]
	if g != nil {
		if cur, had := sl.lookup(g, r.ID); had && cur.counter < r.Counter {
			s.del(sl, g, r.ID, CauseMerge, emit)
			st.Removed++
		}
	} else {
		g = &group{name: r.Group} // log-only handle; never indexed
	}
	if !sl.ctx.contains(r.Counter) {
		s.pend = append(s.pend, logRec{counter: r.Counter, g: g, id: r.ID, rm: true})
	}
}

// logPending adds the records collected by one merge to sl's log in counter
// order: a transfer lists its entries by group, and inserting them one by
// one out of order would shift the log on every entry.
func (s *State) logPending(sl *slice) {
	n, k := len(s.pend), s.opts.LogCap
	order := counterOrder(n, func(i int) uint64 { return s.pend[i].counter }, &s.ord)
	for pos := range n {
		i := pos
		if order != nil {
			i = int(order[pos])
		}
		// Only the k highest can stay: the rest are accounted for as
		// dropped (a transfer brings many more than the log holds).
		if r := s.pend[i]; pos < n-k {
			sl.log.drop(r)
		} else {
			sl.log.add(r, k)
		}
	}
	if cap(s.pend) > 4096 {
		s.pend = nil // do not keep a transfer's worth of scratch
	} else {
		clear(s.pend)
		s.pend = s.pend[:0]
	}
}

// --- Replica lifecycle (local decisions, never replicated) ------------------

// Supersede records that incarnation inc of name exists: any older
// incarnation's slice is dropped (leave events with Cause Superseded) and its
// late deltas are ignored forever. It is a no-op when inc is not newer than
// what is known.
func (s *State) Supersede(name string, inc uint64, emit Emit) error {
	if name == s.local.id.Name {
		return fmt.Errorf("%w: supersede %s#%d", ErrLocalReplica, name, inc)
	}
	if inc > s.latest[name] {
		s.supersede(name, inc, emit)
	}
	return nil
}

func (s *State) supersede(name string, inc uint64, emit Emit) {
	s.latest[name] = inc
	if sl := s.slices[name]; sl != nil && sl.id.Incarnation < inc {
		s.dropSlice(sl, CauseSuperseded, emit)
	}
	if f, ok := s.forgotten[name]; ok && f < inc {
		delete(s.forgotten, name)
	}
	for r := range s.suspended {
		if r.Name == name && r.Incarnation < inc {
			delete(s.suspended, r)
		}
	}
}

// Settle records that name's current incarnation is inc, as the failure
// detector (the one authority on incarnations) reports it: a slice of any
// other incarnation, newer ones included, is dropped (Cause Superseded), and
// inc becomes the latest, so that deltas of inc are taken again. A newer
// incarnation than the detector's can only have come from a source that
// lied (a forged delta, a cache written while one was believed); an older
// one is superseded as by Supersede. It is a no-op for the local replica's
// name (an error) and when inc is already the latest.
func (s *State) Settle(name string, inc uint64, emit Emit) error {
	if name == s.local.id.Name {
		return fmt.Errorf("%w: settle %s#%d", ErrLocalReplica, name, inc)
	}
	latest := s.latest[name]
	switch {
	case inc > latest:
		s.supersede(name, inc, emit)
	case inc < latest:
		if sl := s.slices[name]; sl != nil && sl.id.Incarnation != inc {
			s.dropSlice(sl, CauseSuperseded, emit)
		}
		s.latest[name] = inc
		if f, ok := s.forgotten[name]; ok && f != inc {
			delete(s.forgotten, name)
		}
		for r := range s.suspended {
			if r.Name == name && r.Incarnation != inc {
				delete(s.suspended, r)
			}
		}
	}
	return nil
}

// Observe applies what a peer's digest says about incarnations: every newer
// incarnation it lists supersedes the older one held here. A digest is a
// peer's claim, not the failure detector's: gossip no longer calls it on
// what arrives from the network (see Settle); it is kept for tests and
// tools that merge trusted digests.
func (s *State) Observe(peer Digest, emit Emit) {
	for _, e := range peer.Entries {
		if e.Name != s.local.id.Name && e.Incarnation > s.latest[e.Name] && e.Incarnation < MaxCounter {
			s.supersede(e.Name, e.Incarnation, emit)
		}
	}
}

// Forget drops replica r's slice (retention expired while its owner was
// unreachable) and ignores its deltas until Readmit. Events have Cause
// Forgotten, and none are emitted for a suspended slice (its members were
// already hidden).
func (s *State) Forget(r ReplicaID, emit Emit) error {
	if r.Name == s.local.id.Name {
		return fmt.Errorf("%w: forget %s", ErrLocalReplica, r)
	}
	switch latest := s.latest[r.Name]; {
	case r.Incarnation < latest:
		return nil // already superseded
	case r.Incarnation > latest:
		s.supersede(r.Name, r.Incarnation, emit)
	}
	if sl := s.slices[r.Name]; sl != nil && sl.id == r {
		s.dropSlice(sl, CauseForgotten, emit)
	}
	s.forgotten[r.Name] = r.Incarnation
	return nil
}

// Readmit lets a forgotten replica's deltas in again (its owner was seen
// alive). It reports whether r was forgotten.
func (s *State) Readmit(r ReplicaID) bool {
	if f, ok := s.forgotten[r.Name]; ok && f == r.Incarnation {
		delete(s.forgotten, r.Name)
		return true
	}
	return false
}

// Forgotten reports whether r is forgotten (its deltas are ignored).
func (s *State) Forgotten(r ReplicaID) bool {
	f, ok := s.forgotten[r.Name]
	return ok && f == r.Incarnation
}

// Suspend hides replica r's members from reads (leave events with Cause
// Suspended). Its slice keeps merging; nothing is dropped. A replica can be
// suspended before any of its state arrives.
func (s *State) Suspend(r ReplicaID, emit Emit) error {
	if r.Name == s.local.id.Name {
		return fmt.Errorf("%w: suspend %s", ErrLocalReplica, r)
	}
	if s.suspended[r] || r.Incarnation < s.latest[r.Name] {
		return nil
	}
	s.suspended[r] = true
	sl := s.slices[r.Name]
	if sl == nil || sl.id != r {
		return nil
	}
	for g, set := range sl.groups {
		g.visible -= set.len()
	}
	s.changes += uint64(sl.n)
	if emit != nil {
		for _, x := range sl.sorted() {
			emit(Event{Kind: EventLeave, Cause: CauseSuspended, Group: x.g.name, ID: x.id, Owner: r, Meta: x.e.meta})
		}
	}
	sl.suspended = true
	return nil
}

// Resume shows a suspended replica's current members again (join events with
// Cause Resumed).
func (s *State) Resume(r ReplicaID, emit Emit) error {
	if r.Name == s.local.id.Name {
		return fmt.Errorf("%w: resume %s", ErrLocalReplica, r)
	}
	if !s.suspended[r] {
		return nil
	}
	delete(s.suspended, r)
	sl := s.slices[r.Name]
	if sl == nil || sl.id != r {
		return nil
	}
	sl.suspended = false
	for g, set := range sl.groups {
		g.visible += set.len()
	}
	s.changes += uint64(sl.n)
	if emit != nil {
		for _, x := range sl.sorted() {
			emit(Event{Kind: EventJoin, Cause: CauseResumed, Group: x.g.name, ID: x.id, Owner: r, Meta: x.e.meta})
		}
	}
	return nil
}

// Suspended reports whether r is suspended.
func (s *State) Suspended(r ReplicaID) bool { return s.suspended[r] }
