package crdt

import (
	"cmp"
	"slices"
	"strings"
)

// DigestEntry says how far one replica's counter is known: every counter up
// to Top has been seen for that incarnation.
type DigestEntry struct {
	Name        string
	Incarnation uint64
	Top         uint64
}

// Digest is the compact summary of a state that anti-entropy exchanges: one
// entry per replica held, sorted by name. Its size is independent of the
// number of members.
type Digest struct {
	Entries []DigestEntry
}

// Digest returns the state's digest.
func (s *State) Digest() Digest { return s.digest(nil) }

// digest returns the digest of the replicas in the buckets in (all of
// them when in is nil).
func (s *State) digest(in *bucketSet) Digest {
	var d Digest
	if in == nil {
		d.Entries = make([]DigestEntry, 0, len(s.slices))
	}
	for _, sl := range s.slices {
		if sl.listed() && in.holds(sl.key) {
			d.Entries = append(d.Entries, DigestEntry{Name: sl.id.Name, Incarnation: sl.id.Incarnation, Top: sl.ctx.top})
		}
	}
	slices.SortFunc(d.Entries, func(a, b DigestEntry) int { return cmp.Compare(a.Name, b.Name) })
	return d
}

// listed reports whether a digest lists the slice: whether any counter of
// it has been seen.
func (sl *slice) listed() bool { return sl.ctx.top != 0 || len(sl.ctx.cloud) != 0 }

// DefaultChunkBytes is the chunk size Diff and Snapshot aim for when given
// 0: well under memberlist's 20 MiB push/pull cap and quick to send over TCP.
const DefaultChunkBytes = 1 << 20

// Diff returns the deltas that bring a peer whose digest is peer up to date
// with this state, cut into chunks of about maxBytes encoded (0: the
// default). Each chunk can be merged on its own, in any order; a lost chunk
// is repaired by the next exchange. Nothing is returned for replicas the
// peer is not behind on, or for which it holds a newer incarnation.
//
// A peer behind on a replica gets, when this node's event log reaches back
// to the peer's counter, exactly the members added and the leaves since
// then. Otherwise the repair is authoritative: the live counters the peer
// already holds are listed by reference (a few bytes each) so it can drop
// the dead ones, and only entries it lacks are sent in full. A peer that
// holds nothing of a replica gets its live entries only.
func (s *State) Diff(peer Digest, maxBytes int) []*Delta {
	return s.diff(peer, nil, maxBytes)
}

// diff is Diff for the replicas in the buckets in (all of them when in is
// nil); peer's entries for replicas outside them are ignored.
func (s *State) diff(peer Digest, in *bucketSet, maxBytes int) []*Delta {
	if maxBytes <= 0 {
		maxBytes = DefaultChunkBytes
	}
	known := make(map[string]DigestEntry, len(peer.Entries))
	for _, e := range peer.Entries {
		known[e.Name] = e
	}
	var out []*Delta
	for _, sl := range s.sortedSlices(in) {
		pe, ok := known[sl.id.Name]
		switch {
		case ok && pe.Incarnation > sl.id.Incarnation:
			continue
		case ok && pe.Incarnation == sl.id.Incarnation:
			out = append(out, s.repair(sl, pe.Top, false, maxBytes)...)
		default:
			out = append(out, s.repair(sl, 0, true, maxBytes)...)
		}
	}
	return out
}

// Snapshot returns the full state as authoritative chunks: merging them into
// any state is the lattice join with this one.
func (s *State) Snapshot(maxBytes int) []*Delta {
	return s.snapshot(maxBytes, true)
}

// SnapshotRemote is Snapshot without the local replica's slice: what a node
// caches of the others to start warm after a restart (its own members are
// re-announced under a new incarnation instead).
func (s *State) SnapshotRemote(maxBytes int) []*Delta {
	return s.snapshot(maxBytes, false)
}

func (s *State) snapshot(maxBytes int, withLocal bool) []*Delta {
	if maxBytes <= 0 {
		maxBytes = DefaultChunkBytes
	}
	var out []*Delta
	for _, sl := range s.sortedSlices(nil) {
		if sl == s.local && !withLocal {
			continue
		}
		ctx := sl.ctx.ranges()
		if len(ctx) == 0 {
			continue
		}
		d := &Delta{Replica: sl.id, Ctx: ctx, Auth: true, Floor: sl.log.floorRm, Xfer: s.newXfer()}
		d.Removes = s.removalsAbove(sl, 0)
		out = append(out, s.liveChunks(sl, 0, d, maxBytes)...)
	}
	return out
}

// newXfer returns a transfer id unique to this state (FNV-1a of the local
// name and a per-state sequence number; never 0).
func (s *State) newXfer() uint64 {
	s.xfers++
	h := s.local.key
	for n := s.xfers; n > 0; n >>= 8 {
		h = (h ^ (n & 0xff)) * fnvPrime
	}
	return max(h, 1)
}

// sortedSlices returns the slices of the replicas in the buckets in (all
// of them when in is nil), by name.
func (s *State) sortedSlices(in *bucketSet) []*slice {
	var out []*slice
	if in == nil {
		out = make([]*slice, 0, len(s.slices))
	}
	for _, sl := range s.slices {
		if in.holds(sl.key) {
			out = append(out, sl)
		}
	}
	slices.SortFunc(out, func(a, b *slice) int { return cmp.Compare(a.id.Name, b.id.Name) })
	return out
}

// repair builds what a peer at counter p of sl lacks (p is 0 if the peer
// holds nothing of it).
func (s *State) repair(sl *slice, p uint64, holdsNothing bool, maxBytes int) []*Delta {
	above := sl.ctx.clip(p+1, MaxCounter-1)
	if len(above) == 0 {
		return nil
	}
	f := sl.log.floorRm
	if f <= p {
		// Plain: live entries and leave records above p. Its chunks can be
		// applied in any order.
		d := &Delta{Replica: sl.id, Ctx: above}
		d.Removes = s.removalsAbove(sl, p)
		return s.liveChunks(sl, p, d, maxBytes)
	}
	// The log does not reach back to p, so leaves in (p, f] may be unknown
	// here by record. Send an authoritative transfer of the whole slice:
	// entries the peer holds (<= p) are named by counter only, the rest
	// sent in full; the peer drops whatever else it holds. A peer holding
	// nothing gets the same without the references.
	d := &Delta{Replica: sl.id, Ctx: sl.ctx.ranges(), Auth: true, Floor: f, Xfer: s.newXfer()}
	if holdsNothing {
		d.Removes = s.removalsAbove(sl, 0)
		return s.liveChunks(sl, 0, d, maxBytes)
	}
	for _, a := range s.liveAbove(sl, 0) {
		if a.Counter <= p {
			d.Keep = append(d.Keep, a.Counter)
		} else {
			d.Adds = append(d.Adds, a)
		}
	}
	d.Removes = s.removalsAbove(sl, p)
	return split(d, maxBytes)
}

// liveChunks returns d with sl's live entries above p as its adds, cut
// into chunks of about maxBytes (split). d carries no adds or keeps yet.
// When it has no removes either (a transfer to a node that holds nothing,
// a snapshot of a slice no leave has touched), the entries above p are
// not read from the log, and their counters are dense, liveSplit cuts
// them straight from the slice.
func (s *State) liveChunks(sl *slice, p uint64, d *Delta, maxBytes int) []*Delta {
	if len(d.Removes) == 0 && !s.logReaches(sl, p) {
		if out, ok := s.liveSplit(sl, p, d, maxBytes); ok {
			return out
		}
	}
	d.Adds = s.liveAbove(sl, p)
	return split(d, maxBytes)
}

// logReaches reports whether sl's event log holds every event above p
// (liveAbove then reads the entries above p from it).
func (s *State) logReaches(sl *slice, p uint64) bool { return p >= sl.log.floorAll && p > 0 }

// liveSplit is split(d) for a delta d of sl's live entries above p and
// nothing else (no removes, no keeps), when those counters are dense (a
// slice filled once, as before a fresh node's transfer): it cuts the
// chunks split would, but fills them straight from the slice, group by
// group, instead of first listing every entry in counter order (a
// scatter over the whole slice) and copying them out. A chunk's adds are
// in no particular order; those of one group are together, as the
// encoder writes them. ok is false when the counters are not dense: the
// caller lists and splits them.
func (s *State) liveSplit(sl *slice, p uint64, d *Delta, maxBytes int) (out []*Delta, ok bool) {
	lo, hi, dense := denseAbove(sl, p)
	if !dense {
		return nil, false
	}
	// Each live counter's encoded-size estimate (addSize), at its place;
	// 0 marks a dead counter. Then, once cut, its chunk's index.
	at := make([]int32, hi-lo+1)
	total := chunkOverhead(d)
	for g, set := range sl.groups {
		for id, e := range set.all() {
			if e.counter >= lo {
				size := entrySize(g.name, id, e.meta)
				at[e.counter-lo] = int32(size)
				total += size
			}
		}
	}
	// Cut as splitAdds does, in counter order; his[i] is the highest
	// counter chunk i covers.
	var his []uint64
	var counts []int
	if total <= maxBytes {
		his, counts = []uint64{MaxCounter - 1}, []int{0}
		for i, size := range at {
			if size > 0 {
				at[i] = 0
				counts[0]++
			}
		}
	} else {
		budget := chunkBudget(d, maxBytes)
		size, n, last := 0, 0, uint64(0)
		for i, as := range at {
			if as == 0 {
				continue
			}
			if size > 0 && size+int(as) > budget {
				his, counts = append(his, last), append(counts, n)
				size, n = 0, 0
			}
			size += int(as)
			n++
			last = lo + uint64(i)
			at[i] = int32(len(his))
		}
		his, counts = append(his, MaxCounter-1), append(counts, n)
	}
	chunks := make([][]Add, len(his))
	for i, n := range counts {
		if n > 0 {
			chunks[i] = make([]Add, 0, n)
		}
	}
	// Groups in name order: which entries go in which chunk is fixed by
	// their counters, and a chunk lists its groups in one order; within
	// a group, members come in their set's order (a map's for a large
	// set, so not the same every time).
	groups := make([]*group, 0, len(sl.groups))
	for g := range sl.groups {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b *group) int { return strings.Compare(a.name, b.name) })
	for _, g := range groups {
		for id, e := range sl.groups[g].all() {
			if e.counter >= lo {
				i := at[e.counter-lo]
				chunks[i] = append(chunks[i], Add{Group: g.name, ID: id, Counter: e.counter, Meta: e.meta})
			}
		}
	}
	if len(his) == 1 {
		d.Adds = chunks[0]
		return []*Delta{d}, true
	}
	from := uint64(1)
	for i, hi := range his {
		c := chunkOf(d, from, hi)
		c.Adds = chunks[i]
		out = appendChunk(out, d, c)
		from = hi + 1
	}
	return out, true
}

// liveAbove returns sl's live entries with counter > p, in counter order:
// from the event log when it reaches back to p, else by scanning the slice.
func (s *State) liveAbove(sl *slice, p uint64) []Add {
	var out []Add
	if s.logReaches(sl, p) {
		recs, _ := sl.log.since(p)
		for r := range recs {
			if r.rm {
				continue
			}
			if e, ok := sl.lookup(r.g, r.id); ok && e.counter == r.counter {
				out = append(out, Add{Group: r.g.name, ID: r.id, Counter: e.counter, Meta: e.meta})
			}
		}
		return out
	}
	if lo, hi, dense := denseAbove(sl, p); dense {
		return s.liveDense(sl, lo, hi)
	}
	out = make([]Add, 0, sl.n)
	for g, set := range sl.groups {
		for id, e := range set.all() {
			if e.counter > p {
				out = append(out, Add{Group: g.name, ID: id, Counter: e.counter, Meta: e.meta})
			}
		}
	}
	return sortByCounter(out)
}

// denseAbove returns the counters [lo, hi] above p that sl's context
// covers, and whether they are dense: sl holds at least four entries for
// every five of them (entries at or below p included, so this bounds
// what placing them by counter allocates rather than promising that
// many are live above p). A slice filled once, as before a fresh node's
// transfer, is. Its entries are then placed at their counters rather
// than sorted.
func denseAbove(sl *slice, p uint64) (lo, hi uint64, dense bool) {
	lo, hi = p+1, sl.ctx.max()
	return lo, hi, hi >= lo && hi-lo < uint64(sl.n+sl.n/4)
}

// liveDense is liveAbove's scan when the counters in [lo, hi] are mostly
// live (a slice filled once, as before a fresh node's transfer): each
// entry is written at its counter's place, and the few dead counters'
// places are squeezed out, instead of collecting the entries in map
// order and sorting them (a third of what serving a transfer cost).
func (s *State) liveDense(sl *slice, lo, hi uint64) []Add {
	out := make([]Add, hi-lo+1)
	for g, set := range sl.groups {
		for id, e := range set.all() {
			if e.counter >= lo {
				out[e.counter-lo] = Add{Group: g.name, ID: id, Counter: e.counter, Meta: e.meta}
			}
		}
	}
	n := 0
	for i := range out {
		if out[i].Counter != 0 {
			if n != i {
				out[n] = out[i]
			}
			n++
		}
	}
	clear(out[n:])
	return out[:n:n]
}

// sortByCounter orders adds with distinct counters by counter, in place
// (a 100k-member diff copied 6 MB of adds otherwise).
func sortByCounter(adds []Add) []Add {
	order := counterOrder(len(adds), func(i int) uint64 { return adds[i].Counter }, nil)
	if order != nil {
		permute(adds, order)
	}
	return adds
}

// permute moves xs[order[i]] to position i for every i, in place, one
// cycle at a time; order is consumed (left as the identity).
func permute[T any](xs []T, order []int32) {
	for p := range order {
		if int(order[p]) == p {
			continue
		}
		tmp := xs[p]
		j := p
		for {
			k := int(order[j])
			order[j] = int32(j)
			if k == p {
				xs[j] = tmp
				break
			}
			xs[j] = xs[k]
			j = k
		}
	}
}

// counterOrder returns the indices 0..n-1 ordered by their distinct
// counters, or nil when they are in order already. Dense counters (a
// batch, a transfer, a slice's live entries) are placed at their counter,
// with no comparisons; others are sorted. With a scratch, the order and
// the placement slots are taken from it and kept in it for the next call
// (the order returned is valid until then).
func counterOrder(n int, counter func(i int) uint64, scratch *orderScratch) []int32 {
	if n < 2 {
		return nil
	}
	lo, hi := counter(0), counter(0)
	sorted := true
	for i := 1; i < n; i++ {
		c := counter(i)
		lo, hi = min(lo, c), max(hi, c)
		sorted = sorted && counter(i-1) < c
	}
	if sorted {
		return nil
	}
	if scratch == nil {
		scratch = &orderScratch{}
	}
	order := slices.Grow(scratch.order[:0], n)
	defer func() { scratch.keep(order) }()
	if span := hi - lo + 1; span <= uint64(4*n) {
		slot := slices.Grow(scratch.slot[:0], int(span))[:span] // index+1; 0 = none
		clear(slot)
		for i := range n {
			slot[counter(i)-lo] = int32(i + 1)
		}
		for _, j := range slot {
			if j != 0 {
				order = append(order, j-1)
			}
		}
		scratch.slot = slot
		return order
	}
	for i := range n {
		order = append(order, int32(i))
	}
	slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(counter(int(a)), counter(int(b))) })
	return order
}

// orderScratch keeps counterOrder's slices between the calls of one
// user: a receiver orders the log records of every batch it merges, and
// allocating both slices anew each time was a tenth of its garbage.
type orderScratch struct{ order, slot []int32 }

// maxScratch bounds what an orderScratch keeps (256 KiB per slice): a
// transfer's chunk is ordered with slices of its own.
const maxScratch = 1 << 16

func (sc *orderScratch) keep(order []int32) {
	sc.order = order
	if cap(sc.order) > maxScratch {
		sc.order = nil
	}
	if cap(sc.slot) > maxScratch {
		sc.slot = nil
	}
}

// removalsAbove returns the leave records of sl with counter > p, at most
// one per key (the latest) and none for a key that is live above p (a live
// entry is always its key's latest event, and the caller sends it as an
// add).
//
// Leaves still remembered above a gap (slice.gone) are always included.
func (s *State) removalsAbove(sl *slice, p uint64) []Remove {
	recs, nrecs := sl.log.since(max(p, sl.log.floorRm))
	if nrecs == 0 && len(sl.gone) == 0 {
		return nil
	}
	// A record's group handle may be stale (the group emptied and was made
	// anew), so look the group up by name.
	liveAbove := func(group, id string) bool {
		g := s.groups[group]
		if g == nil {
			return false
		}
		e, ok := sl.lookup(g, id)
		return ok && e.counter > p
	}
	var latest map[memberKey]int
	var out []Remove
	for r := range recs {
		if !r.rm || liveAbove(r.g.name, r.id) {
			continue
		}
		k := memberKey{r.g.name, r.id}
		if i, ok := latest[k]; ok {
			out[i].Counter = r.counter // records are in counter order
			continue
		}
		if latest == nil {
			latest = map[memberKey]int{}
		}
		latest[k] = len(out)
		out = append(out, Remove{Group: r.g.name, ID: r.id, Counter: r.counter})
	}
	for k, c := range sl.gone {
		if c <= p {
			continue
		}
		if liveAbove(k.group, k.id) {
			continue
		}
		if i, ok := latest[k]; ok {
			out[i].Counter = max(out[i].Counter, c)
			continue
		}
		if latest == nil {
			latest = map[memberKey]int{}
		}
		latest[k] = len(out)
		out = append(out, Remove{Group: k.group, ID: k.id, Counter: c})
	}
	return out
}

// Encoded-size estimates used to cut chunks (the encoder shares group names
// between consecutive entries, so these are upper bounds).
func addSize(a Add) int       { return entrySize(a.Group, a.ID, a.Meta) }
func removeSize(r Remove) int { return len(r.Group) + len(r.ID) + 14 }

// entrySize is addSize for an entry of the slice.
func entrySize(group, id string, meta RawMeta) int { return len(group) + len(id) + len(meta) + 16 }

const keepSize = 5

// opsSize estimates the encoded size of d's adds and removes.
func opsSize(d *Delta) int {
	n := 0
	for i := range d.Adds {
		n += addSize(d.Adds[i])
	}
	for i := range d.Removes {
		n += removeSize(d.Removes[i])
	}
	return n
}

// Footprint estimates the memory a decoded delta holds: its operations'
// strings and metadata, a fixed cost per operation (the Add and Remove
// structs), and its header and context. Gossip bounds what it keeps of
// deltas it cannot merge yet (held back, stashed) by it.
func (d *Delta) Footprint() int {
	return chunkOverhead(d) + opsSize(d) + 48*(len(d.Adds)+len(d.Removes))
}

// chunkOverhead estimates the encoded size of a chunk of d before its
// entries (header, replica, context).
func chunkOverhead(d *Delta) int { return 64 + len(d.Replica.Name) + 20*len(d.Ctx) }

// chunkBudget is what maxBytes leaves for the entries of each chunk of d
// (at least half of it).
func chunkBudget(d *Delta, maxBytes int) int { return max(maxBytes-chunkOverhead(d), maxBytes/2) }

// chunkOf returns an empty chunk of d covering counters [lo, hi]: its part
// of d's context, d's replica, floor and authority.
func chunkOf(d *Delta, lo, hi uint64) *Delta {
	return &Delta{Replica: d.Replica, Auth: d.Auth, Floor: d.Floor, Ctx: clipRanges(d.Ctx, lo, hi)}
}

// appendChunk appends chunk c of d to out, numbered in d's transfer when
// d is authoritative, unless its context is empty (nothing to say).
func appendChunk(out []*Delta, d, c *Delta) []*Delta {
	if len(c.Ctx) == 0 {
		return out
	}
	if d.Auth {
		c.Xfer, c.Seq = d.Xfer, uint32(len(out))
	}
	return append(out, c)
}

// split cuts d into chunks of about maxBytes, along counter boundaries: each
// chunk covers a contiguous counter interval, carries the adds, removes and
// keeps inside it, and the part of d's context inside it. Chunks of an
// authoritative delta are authoritative over their own interval only.
// consecutiveAdds reports whether every item is an add and their indices
// into the delta's adds follow each other.
func consecutiveAdds(items []splitItem) bool {
	for k, it := range items {
		if it.kind != 0 || it.i != items[0].i+k {
			return false
		}
	}
	return true
}

// splitItem is one add (kind 0), remove (1) or keep (2) of the delta
// being split: its counter, encoded size and index in its list.
type splitItem struct {
	c    uint64
	size int
	kind uint8
	i    int
}

func split(d *Delta, maxBytes int) []*Delta {
	if len(d.Removes) == 0 && len(d.Keep) == 0 && slices.IsSortedFunc(d.Adds, func(a, b Add) int { return cmp.Compare(a.Counter, b.Counter) }) {
		return splitAdds(d, maxBytes)
	}
	return splitItems(d, maxBytes)
}

// splitAdds is split for a delta of adds only, in counter order (a
// repair read from the event log, or listed when liveSplit could not cut
// it): the same chunks, cut straight from the adds without listing and
// sorting them as items.
func splitAdds(d *Delta, maxBytes int) []*Delta {
	if chunkOverhead(d)+opsSize(d) <= maxBytes {
		return []*Delta{d}
	}
	var out []*Delta
	lo := uint64(1)
	start, size := 0, 0
	flush := func(end int, hi uint64) {
		c := chunkOf(d, lo, hi)
		if end > start {
			c.Adds = d.Adds[start:end:end]
		}
		out = appendChunk(out, d, c)
		lo, start, size = hi+1, end, 0
	}
	budget := chunkBudget(d, maxBytes)
	for i := range d.Adds {
		as := addSize(d.Adds[i])
		if size > 0 && size+as > budget {
			flush(i, d.Adds[i-1].Counter)
		}
		size += as
	}
	flush(len(d.Adds), MaxCounter-1)
	return out
}

// splitItems is split for any delta: its adds, removes and keeps listed
// as items in counter order and cut.
func splitItems(d *Delta, maxBytes int) []*Delta {
	items := make([]splitItem, 0, len(d.Adds)+len(d.Removes)+len(d.Keep))
	total := chunkOverhead(d)
	for i, a := range d.Adds {
		items = append(items, splitItem{a.Counter, addSize(a), 0, i})
	}
	for i, r := range d.Removes {
		items = append(items, splitItem{r.Counter, removeSize(r), 1, i})
	}
	for i, c := range d.Keep {
		items = append(items, splitItem{c, keepSize, 2, i})
	}
	for _, it := range items {
		total += it.size
	}
	if total <= maxBytes {
		return []*Delta{d}
	}
	byCounter := func(a, b splitItem) int { return cmp.Compare(a.c, b.c) }
	if !slices.IsSortedFunc(items, byCounter) {
		slices.SortFunc(items, byCounter)
	}
	var out []*Delta
	lo := uint64(1)
	start, size := 0, 0
	flush := func(end int, hi uint64) {
		c := chunkOf(d, lo, hi)
		var n [3]int
		for _, it := range items[start:end] {
			n[it.kind]++
		}
		if n[0] > 0 && consecutiveAdds(items[start:end]) {
			// Only adds, consecutive in d (a transfer lists them by
			// counter): the chunk takes its part of d.Adds as is.
			first := items[start].i
			c.Adds = d.Adds[first : first+n[0] : first+n[0]]
			n[0] = 0
		} else if n[0] > 0 {
			c.Adds = make([]Add, 0, n[0])
		}
		if n[1] > 0 {
			c.Removes = make([]Remove, 0, n[1])
		}
		if n[2] > 0 {
			c.Keep = make([]uint64, 0, n[2])
		}
		for _, it := range items[start:end] {
			switch it.kind {
			case 0:
				if n[0] == 0 {
					continue // taken as a sub-slice above
				}
				c.Adds = append(c.Adds, d.Adds[it.i])
			case 1:
				c.Removes = append(c.Removes, d.Removes[it.i])
			case 2:
				c.Keep = append(c.Keep, d.Keep[it.i])
			}
		}
		out = appendChunk(out, d, c)
		lo, start, size = hi+1, end, 0
	}
	budget := chunkBudget(d, maxBytes)
	for i, it := range items {
		if size > 0 && size+it.size > budget {
			flush(i, items[i-1].c)
		}
		size += it.size
	}
	flush(len(items), MaxCounter-1)
	return out
}
