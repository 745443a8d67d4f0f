package crdt

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Options tune a State. The zero value is not valid; start from DefaultOptions.
type Options struct {
	// LogCap bounds, per replica, the log of recent events (joins, updates,
	// leaves) that lets Diff send a slightly-behind peer exactly what it
	// lacks. Each record costs about 48 bytes. When a peer is further behind
	// than the log reaches, Diff falls back to an authoritative repair that
	// names the live counters instead of the dead ones (a few bytes per live
	// member, never the full entries the peer already has). 0 disables the
	// log: every repair is then computed by scanning the slice. Correctness
	// never depends on this value, only repair size and CPU.
	LogCap int
}

// DefaultOptions returns the options used by roster nodes.
func DefaultOptions() Options { return Options{LogCap: 1024} }

func (o Options) validate() error {
	if o.LogCap < 0 || o.LogCap > 1<<24 {
		return fmt.Errorf("%w: LogCap %d out of range [0, 2^24]", ErrInvalidConfig, o.LogCap)
	}
	return nil
}

// EventKind says what happened to a visible member.
type EventKind uint8

const (
	EventJoin EventKind = iota + 1
	EventLeave
	EventUpdate
)

func (k EventKind) String() string {
	switch k {
	case EventJoin:
		return "join"
	case EventLeave:
		return "leave"
	case EventUpdate:
		return "update"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Cause says why an event happened.
type Cause uint8

const (
	CauseLocal      Cause = iota + 1 // a local Join, Leave or LeaveAll
	CauseMerge                       // a merged delta (the owner joined, updated or left)
	CauseSuperseded                  // a newer incarnation of the owner replaced this one
	CauseForgotten                   // the owner's slice was dropped after retention
	CauseSuspended                   // the owner was declared down (Suspend)
	CauseResumed                     // the owner came back (Resume)
)

func (c Cause) String() string {
	switch c {
	case CauseLocal:
		return "local"
	case CauseMerge:
		return "merge"
	case CauseSuperseded:
		return "superseded"
	case CauseForgotten:
		return "forgotten"
	case CauseSuspended:
		return "suspended"
	case CauseResumed:
		return "resumed"
	}
	return fmt.Sprintf("Cause(%d)", uint8(c))
}

// Event is one change of the visible membership. Replaying a stream of
// events on a copy of the visible membership yields the new one exactly.
type Event struct {
	Kind  EventKind
	Cause Cause
	Group string
	ID    string
	Owner ReplicaID
	// Meta is the new metadata for join and update, the last metadata for leave.
	Meta RawMeta
}

// Emit receives events as a State produces them. A nil Emit discards them.
type Emit func(Event)

// Member is one visible member.
type Member struct {
	Group string
	ID    string
	Owner ReplicaID
	Meta  RawMeta
}

type entry struct {
	counter uint64
	meta    RawMeta
}

// group is an interned group name with the member sets of every slice that
// has members in it. It exists while at least one slice has a member in it.
type group struct {
	name    string
	sets    []ownerSet // attached and detached only when an owner's first member joins or last leaves
	visible int        // members in non-suspended slices
}

// slice is one origin replica's part of the scope.
type slice struct {
	id        ReplicaID
	key       uint64 // nameKey(id.Name): its range digest bucket and hash
	ctx       ctxSet
	groups    map[*group]*memberSet
	n         int
	log       eventLog
	suspended bool
	// gone holds, per key, the highest leave counter applied while some
	// counter below it was still unseen (top < counter): a late add of an
	// older dot of that key must not resurrect it. Entries are pruned as soon
	// as top reaches them, so it is empty whenever the context is contiguous.
	gone map[memberKey]uint64
	// xfer is the position in the authoritative transfer being applied.
	xfer xferPos
}

type xferPos struct {
	id   uint64
	next uint32
}

// State is the replicated state of one scope on one node. See the package
// documentation. It is not safe for concurrent use.
type State struct {
	opts      Options
	local     *slice
	slices    map[string]*slice // by replica name: one incarnation per name
	groups    map[string]*group
	latest    map[string]uint64 // highest incarnation seen per name
	forgotten map[string]uint64 // name -> incarnation dropped after retention
	suspended map[ReplicaID]bool
	xfers     uint64            // authoritative transfers started here
	pend      []logRec          // scratch: the log records of the merge under way
	ord       orderScratch      // scratch: their order (logPending)
	expect    map[expectKey]int // Expect: adds coming per replica and group
	changes   uint64            // events produced, emitted or not (Changes)
}

// Changes returns how many events the state has produced since New: the
// events an Emit would have received had every call passed one. A caller
// that passes nil (nobody follows the events) can still number them.
func (s *State) Changes() uint64 { return s.changes }

// New returns an empty State for the local replica.
func New(local ReplicaID, opts Options) (*State, error) {
	if err := validReplica(local); err != nil {
		return nil, err
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	s := &State{
		opts:      opts,
		slices:    map[string]*slice{},
		groups:    map[string]*group{},
		latest:    map[string]uint64{local.Name: local.Incarnation},
		forgotten: map[string]uint64{},
		suspended: map[ReplicaID]bool{},
	}
	s.local = s.newSlice(local)
	return s, nil
}

// Local returns the local replica id.
func (s *State) Local() ReplicaID { return s.local.id }

func (s *State) newSlice(id ReplicaID) *slice {
	sl := &slice{id: id, key: nameKey(id.Name), groups: map[*group]*memberSet{}, suspended: s.suspended[id]}
	s.slices[id.Name] = sl
	return sl
}

func (s *State) groupFor(name string) *group {
	g := s.groups[name]
	if g == nil {
		g = &group{name: name}
		s.groups[name] = g
	}
	return g
}

// detach removes sl's (empty) member set from the group.
func (g *group) detach(sl *slice) {
	for i := range g.sets {
		if g.sets[i].sl == sl {
			last := len(g.sets) - 1
			g.sets[i] = g.sets[last]
			g.sets[last] = ownerSet{}
			g.sets = g.sets[:last]
			return
		}
	}
}

// lookup returns sl's entry for id in g, if it holds one.
func (sl *slice) lookup(g *group, id string) (entry, bool) { return sl.groups[g].get(id) }

// store stores e under id in set, sl's member set of g as the caller
// looked it up (nil: none yet; one is attached, sized for run: setFor),
// replacing old if had. It keeps the counts, emits the event and returns
// the set. The caller's lookup is the only one: a local join and a
// merge's add each find the set and the entry once.
func (s *State) store(sl *slice, g *group, set *memberSet, id string, e, old entry, had bool, run int, cause Cause, emit Emit) *memberSet {
	if set == nil {
		set = s.setFor(sl, g, run)
	}
	if had {
		set.set(id, e)
	} else {
		set.insert(id, e)
	}
	s.added(sl, g, id, e, old, had, cause, emit)
	return set
}

// setFor returns sl's member set of g, attaching a new one if needed,
// sized for run members if more than one.
func (s *State) setFor(sl *slice, g *group, run int) *memberSet {
	set := sl.groups[g]
	if set == nil {
		set = &memberSet{}
		sl.groups[g] = set
		g.sets = append(g.sets, ownerSet{sl, set})
		// A run of adds bringing a group the slice did not have (a
		// transfer) sizes its map once, for all the adds the deltas being
		// merged bring it if Expect counted them. Only then: most of a
		// run into a held set may be stale, and a map never shrinks.
		if run > 1 {
			set.reserve(max(run, s.expect[expectKey{sl.id.Name, g.name}]))
		}
	}
	return set
}

// added keeps the counts and emits the event of storing e (replacing old
// if had).
func (s *State) added(sl *slice, g *group, id string, e, old entry, had bool, cause Cause, emit Emit) {
	if had {
		if !sl.suspended && old.meta != e.meta {
			s.changes++
			if emit != nil {
				emit(Event{Kind: EventUpdate, Cause: cause, Group: g.name, ID: id, Owner: sl.id, Meta: e.meta})
			}
		}
		return
	}
	sl.n++
	if !sl.suspended {
		g.visible++
		s.changes++
		if emit != nil {
			emit(Event{Kind: EventJoin, Cause: cause, Group: g.name, ID: id, Owner: sl.id, Meta: e.meta})
		}
	}
}

// del removes an entry, dropping empty sets and groups.
func (s *State) del(sl *slice, g *group, id string, cause Cause, emit Emit) {
	set := sl.groups[g]
	if set == nil {
		return
	}
	old, had := set.del(id)
	if !had {
		return
	}
	sl.n--
	if set.len() == 0 {
		delete(sl.groups, g)
		g.detach(sl)
	}
	if !sl.suspended {
		g.visible--
		s.changes++
		if emit != nil {
			emit(Event{Kind: EventLeave, Cause: cause, Group: g.name, ID: id, Owner: sl.id, Meta: old.meta})
		}
	}
	if len(g.sets) == 0 && s.groups[g.name] == g {
		delete(s.groups, g.name)
	}
}

type slot struct {
	g  *group
	id string
	e  entry
}

// sorted returns the slice's entries ordered by group then id, so that
// everything emitted from whole-slice operations is deterministic.
func (sl *slice) sorted() []slot {
	groups := make([]*group, 0, len(sl.groups))
	for g := range sl.groups {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b *group) int { return strings.Compare(a.name, b.name) })
	out := make([]slot, 0, sl.n)
	for _, g := range groups {
		from := len(out)
		for id, e := range sl.groups[g].all() {
			out = append(out, slot{g, id, e})
		}
		slices.SortFunc(out[from:], func(a, b slot) int { return strings.Compare(a.id, b.id) })
	}
	return out
}

// dropSlice removes a replica's slice from this node's copy.
func (s *State) dropSlice(sl *slice, cause Cause, emit Emit) {
	for _, x := range sl.sorted() {
		s.del(sl, x.g, x.id, cause, emit)
	}
	delete(s.slices, sl.id.Name)
	delete(s.suspended, sl.id)
}

// nextCounter mints the local replica's next dot.
func (s *State) nextCounter() uint64 {
	c := s.local.ctx.top + 1 // the local context is always contiguous
	s.local.ctx.add(c, c)
	return c
}

// Join adds the local member (group, id) with meta, or updates its metadata.
// It returns the delta to disseminate, or nil when nothing changed (the
// member already has exactly this metadata).
func (s *State) Join(groupName, id string, meta Meta, emit Emit) (*Delta, error) {
	if err := ValidName(groupName); err != nil {
		return nil, fmt.Errorf("group: %w", err)
	}
	if err := ValidName(id); err != nil {
		return nil, fmt.Errorf("member id: %w", err)
	}
	raw, err := EncodeMeta(meta)
	if err != nil {
		return nil, err
	}
	return s.JoinRaw(groupName, id, raw, emit)
}

// JoinRaw is Join with metadata already encoded by EncodeMeta and names
// already validated by the caller.
func (s *State) JoinRaw(groupName, id string, raw RawMeta, emit Emit) (*Delta, error) {
	j := s.JoinLocal(groupName, id, raw, emit)
	if !j.Changed() {
		return nil, nil
	}
	return j.delta(s.local.id), nil
}

// localDelta is a one-entry delta allocated in one piece.
type localDelta struct {
	Delta
	adds [1]Add
	ctx  [2]Range
}

// JoinLocal is JoinRaw returning what it did as a value (for a Batch)
// instead of a delta: a burst of joins then allocates no delta per join.
// Its zero value means nothing changed.
func (s *State) JoinLocal(groupName, id string, raw RawMeta, emit Emit) LocalJoin {
	g := s.groupFor(groupName)
	set := s.local.groups[g]
	cur, had := set.get(id)
	if had && cur.meta == raw {
		return LocalJoin{}
	}
	c := s.nextCounter()
	s.store(s.local, g, set, id, entry{counter: c, meta: raw}, cur, had, 0, CauseLocal, emit)
	s.local.log.add(logRec{counter: c, g: g, id: id}, s.opts.LogCap)
	j := LocalJoin{Add: Add{Group: groupName, ID: id, Counter: c, Meta: raw}}
	if had {
		j.Prev = cur.counter
	}
	return j
}

// Leave removes the local member (group, id). It fails with ErrNotMember,
// changing nothing, when there is no such local member.
func (s *State) Leave(groupName, id string, emit Emit) (*Delta, error) {
	g := s.groups[groupName]
	var cur entry
	var had bool
	if g != nil {
		cur, had = s.local.lookup(g, id)
	}
	if !had {
		return nil, fmt.Errorf("%w: %q in group %q on %s", ErrNotMember, id, groupName, s.local.id)
	}
	d := &Delta{Replica: s.local.id}
	d.Ctx = makeRanges(s.leaveOne(d, g, id, cur, emit))
	return d, nil
}

// LeaveAll removes the local member id from every group it is in, as one
// delta. It fails with ErrNotMember when id is in no local group. It looks
// the id up in each group the local replica has members in (no per-id
// index is kept: that would cost a map entry per local member on every
// join, for an operation callers holding join handles rarely need).
func (s *State) LeaveAll(id string, emit Emit) (*Delta, error) {
	var gs []*group
	for g, set := range s.local.groups {
		if _, ok := set.get(id); ok {
			gs = append(gs, g)
		}
	}
	if len(gs) == 0 {
		return nil, fmt.Errorf("%w: %q has no local groups on %s", ErrNotMember, id, s.local.id)
	}
	slices.SortFunc(gs, func(a, b *group) int { return cmp.Compare(a.name, b.name) })
	d := &Delta{Replica: s.local.id}
	var counters []uint64
	for _, g := range gs {
		cur, _ := s.local.lookup(g, id)
		counters = append(counters, s.leaveOne(d, g, id, cur, emit)...)
	}
	d.Ctx = makeRanges(counters)
	return d, nil
}

// leaveOne removes one local entry, appends its removal to d and returns the
// counters d's context must cover: the dead dot and the new one.
func (s *State) leaveOne(d *Delta, g *group, id string, cur entry, emit Emit) []uint64 {
	c := s.nextCounter()
	d.Removes = append(d.Removes, Remove{Group: g.name, ID: id, Counter: c})
	s.del(s.local, g, id, CauseLocal, emit)
	s.local.log.add(logRec{counter: c, g: g, id: id, rm: true}, s.opts.LogCap)
	return []uint64{cur.counter, c}
}

// makeRanges turns counters (any order, duplicates allowed) into sorted,
// disjoint, coalesced ranges.
func makeRanges(cs []uint64) []Range {
	cs = slices.Clone(cs)
	slices.Sort(cs)
	var out []Range
	for _, c := range cs {
		if n := len(out); n > 0 && c <= out[n-1].Hi+1 {
			out[n-1].Hi = max(out[n-1].Hi, c)
			continue
		}
		out = append(out, Range{c, c})
	}
	return out
}

// --- Queries ---------------------------------------------------------------

// Members returns the visible members of a group (all owners not suspended),
// sorted by id then owner.
func (s *State) Members(groupName string) []Member {
	g := s.groups[groupName]
	if g == nil || g.visible == 0 {
		return nil
	}
	return s.appendVisible(make([]Member, 0, g.visible), g)
}

// AppendMembers appends the visible members of a group to out, sorted by
// id then owner, and returns the extended slice: Members without a slice
// per group, for listings of many groups.
func (s *State) AppendMembers(out []Member, groupName string) []Member {
	g := s.groups[groupName]
	if g == nil || g.visible == 0 {
		return out
	}
	return s.appendVisible(slices.Grow(out, g.visible), g)
}

func (s *State) appendVisible(out []Member, g *group) []Member {
	start := len(out)
	for _, os := range g.sets {
		if os.sl.suspended {
			continue
		}
		for id, e := range os.set.all() {
			out = append(out, Member{Group: g.name, ID: id, Owner: os.sl.id, Meta: e.meta})
		}
	}
	sortMembers(out[start:])
	return out
}

// Top returns, for the replica named name held here, its incarnation and
// how far its counter is known without a gap; ok is false when no state of
// that name is held.
func (s *State) Top(name string) (inc, top uint64, ok bool) {
	sl := s.slices[name]
	if sl == nil {
		return 0, 0, false
	}
	return sl.id.Incarnation, sl.ctx.top, true
}

// Holders returns the replicas holding (group, id), hidden ones included,
// in no particular order.
func (s *State) Holders(groupName, id string) []ReplicaID {
	g := s.groups[groupName]
	if g == nil {
		return nil
	}
	var out []ReplicaID
	for _, os := range g.sets {
		if _, ok := os.set.get(id); ok {
			out = append(out, os.sl.id)
		}
	}
	return out
}

// LocalMeta returns the metadata of the local member (group, id), and
// whether there is one.
func (s *State) LocalMeta(groupName, id string) (RawMeta, bool) {
	g := s.groups[groupName]
	if g == nil {
		return "", false
	}
	e, ok := s.local.lookup(g, id)
	return e.meta, ok
}

// LocalMembers returns the local replica's members of a group, sorted by id.
func (s *State) LocalMembers(groupName string) []Member {
	g := s.groups[groupName]
	if g == nil {
		return nil
	}
	set := s.local.groups[g]
	if set == nil {
		return nil
	}
	out := make([]Member, 0, set.len())
	for id, e := range set.all() {
		out = append(out, Member{Group: g.name, ID: id, Owner: s.local.id, Meta: e.meta})
	}
	sortMembers(out)
	return out
}

// ReplicaMembers returns every member held for replica r (visible or not),
// sorted by group then id.
func (s *State) ReplicaMembers(r ReplicaID) []Member {
	sl := s.slices[r.Name]
	if sl == nil || sl.id != r {
		return nil
	}
	out := make([]Member, 0, sl.n)
	for g, set := range sl.groups {
		for id, e := range set.all() {
			out = append(out, Member{Group: g.name, ID: id, Owner: sl.id, Meta: e.meta})
		}
	}
	sortMembers(out)
	return out
}

// Groups returns the names of the groups with at least one visible member,
// sorted.
func (s *State) Groups() []string {
	out := make([]string, 0, len(s.groups))
	for name, g := range s.groups {
		if g.visible > 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Visible reports how many visible members the group has.
func (s *State) Visible(groupName string) int {
	if g := s.groups[groupName]; g != nil {
		return g.visible
	}
	return 0
}

// VisibleLen returns the number of visible members, over all groups: the
// entries held minus those of suspended replicas.
func (s *State) VisibleLen() int {
	n := 0
	for _, sl := range s.slices {
		if !sl.suspended {
			n += sl.n
		}
	}
	return n
}

// Len returns the number of entries held, visible or not.
func (s *State) Len() int {
	n := 0
	for _, sl := range s.slices {
		n += sl.n
	}
	return n
}

// ReplicaInfo describes one replica's slice.
type ReplicaInfo struct {
	ID        ReplicaID
	Members   int
	Top       uint64 // every counter up to Top has been seen
	Max       uint64 // highest counter seen
	Suspended bool
}

// Replicas describes every slice held, sorted by name.
func (s *State) Replicas() []ReplicaInfo {
	out := make([]ReplicaInfo, 0, len(s.slices))
	for _, sl := range s.slices {
		out = append(out, ReplicaInfo{ID: sl.id, Members: sl.n, Top: sl.ctx.top, Max: sl.ctx.max(), Suspended: sl.suspended})
	}
	slices.SortFunc(out, func(a, b ReplicaInfo) int { return cmp.Compare(a.ID.Name, b.ID.Name) })
	return out
}

// sortMembers sorts ms by (group, id, owner). It sorts small keys (the
// first 8 bytes of each member's id, and its index) and then moves each
// member once. Comparing the members themselves chased two id strings
// scattered over the heap at every comparison, and swapping them moved 80
// bytes with write barriers while the GC ran: a 100k-member snapshot spent
// most of its time there.
func sortMembers(ms []Member) {
	if len(ms) < 2 {
		return
	}
	keys := make([]sortKey, len(ms))
	for i := range ms {
		keys[i] = sortKey{prefix: prefix8(ms[i].ID), i: int32(i)}
	}
	sameGroup := oneGroup(ms)
	slices.SortFunc(keys, func(a, b sortKey) int {
		if !sameGroup {
			if c := strings.Compare(ms[a.i].Group, ms[b.i].Group); c != 0 {
				return c
			}
		}
		if a.prefix != b.prefix {
			return cmp.Compare(a.prefix, b.prefix)
		}
		return compareInGroup(&ms[a.i], &ms[b.i])
	})
	order := make([]int32, len(keys))
	for p := range keys {
		order[p] = keys[p].i
	}
	permute(ms, order)
}

type sortKey struct {
	prefix uint64
	i      int32
}

// prefix8 packs the first 8 bytes of s big-endian, zero-padded: if a < b
// then prefix8(a) <= prefix8(b), so unequal prefixes order their strings
// and equal ones need the full comparison.
func prefix8(s string) uint64 {
	var p uint64
	n := min(len(s), 8)
	for i := 0; i < n; i++ {
		p |= uint64(s[i]) << (56 - 8*i)
	}
	return p
}

// oneGroup reports whether every member is of the same group (as those
// of one group's listing are): their sort then skips the group names.
func oneGroup(ms []Member) bool {
	for i := range ms {
		if ms[i].Group != ms[0].Group {
			return false
		}
	}
	return true
}

// compareInGroup orders members of one group by id, then owner, stopping
// at the first differing field (cmp.Or would compare all three).
func compareInGroup(a, b *Member) int {
	if c := strings.Compare(a.ID, b.ID); c != 0 {
		return c
	}
	if c := strings.Compare(a.Owner.Name, b.Owner.Name); c != 0 {
		return c
	}
	return cmp.Compare(a.Owner.Incarnation, b.Owner.Incarnation)
}

// Describe renders the replicated state canonically: per replica, its
// context and its entries with their dots. Two states that describe the
// same are equal as lattice elements (the event log, which is an
// accelerator and not part of the lattice, is not shown unless withLog).
func (s *State) Describe(withLog bool) string {
	var b strings.Builder
	names := make([]string, 0, len(s.slices))
	for n := range s.slices {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		sl := s.slices[n]
		if sl.n == 0 && sl.ctx.top == 0 && len(sl.ctx.cloud) == 0 && len(sl.gone) == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s ctx=%s", sl.id, fmtRanges(sl.ctx.ranges()))
		if sl.suspended {
			b.WriteString(" suspended")
		}
		b.WriteByte('\n')
		for _, m := range s.ReplicaMembers(sl.id) {
			e, _ := sl.lookup(s.groups[m.Group], m.ID)
			fmt.Fprintf(&b, "  %s/%s@%d", m.Group, m.ID, e.counter)
			if m.Meta != "" {
				fmt.Fprintf(&b, " %v", fmtMeta(m.Meta))
			}
			b.WriteByte('\n')
		}
		goneKeys := make([]memberKey, 0, len(sl.gone))
		for k := range sl.gone {
			goneKeys = append(goneKeys, k)
		}
		slices.SortFunc(goneKeys, func(a, b memberKey) int { return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(a.id, b.id)) })
		for _, k := range goneKeys {
			fmt.Fprintf(&b, "  gone %s/%s<%d\n", k.group, k.id, sl.gone[k])
		}
		if withLog {
			fmt.Fprintf(&b, "  log floor-all=%d floor-rm=%d:", sl.log.floorAll, sl.log.floorRm)
			recs, _ := sl.log.since(0)
			for r := range recs {
				op := "+"
				if r.rm {
					op = "-"
				}
				fmt.Fprintf(&b, " %s%d:%s/%s", op, r.counter, r.g.name, r.id)
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func fmtRanges(rs []Range) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		if r.Lo == r.Hi {
			parts[i] = fmt.Sprint(r.Lo)
		} else {
			parts[i] = fmt.Sprintf("%d-%d", r.Lo, r.Hi)
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func fmtMeta(r RawMeta) string {
	m := r.MustDecode()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return "{" + strings.Join(parts, ",") + "}"
}
