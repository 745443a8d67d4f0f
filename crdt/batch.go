package crdt

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"slices"
)

// LocalJoin is what a local join or metadata update did, as a value: the
// add it made and the counter of the entry it replaced (0: none). It is
// JoinRaw's delta without the allocation, for a Batch. The zero value
// means nothing changed.
type LocalJoin struct {
	Add  Add
	Prev uint64
}

// Changed reports whether the join changed anything.
func (j LocalJoin) Changed() bool { return j.Add.Counter != 0 }

// ctx returns the counters the join's delta covers: the new one and the
// replaced one (the range between them when adjacent).
func (j LocalJoin) ctx() (Range, Range, int) {
	c := j.Add.Counter
	switch {
	case j.Prev == 0:
		return Range{c, c}, Range{}, 1
	case j.Prev+1 < c:
		return Range{j.Prev, j.Prev}, Range{c, c}, 2
	default:
		return Range{min(j.Prev, c), c}, Range{}, 1
	}
}

// delta returns the join as replica r's delta (what JoinRaw returns).
func (j LocalJoin) delta(r ReplicaID) *Delta {
	d := &localDelta{}
	d.adds[0] = j.Add
	d.Delta = Delta{Replica: r, Adds: d.adds[:]}
	r1, r2, n := j.ctx()
	d.ctx = [2]Range{r1, r2}
	d.Ctx = d.ctx[:n]
	return &d.Delta
}

// Batch collects one replica's local operations into plain deltas of at
// most Limit operations and about Bytes encoded bytes each, exactly as
// JoinAll would join the operations' deltas: for each key only its latest
// operation is kept, and the context is the union of theirs. It is how the
// gossip layer turns a burst of local joins into a few deltas without a
// delta per join.
//
// Operations may be added in any order (two goroutines' joins may come in
// after each other's counters): a key's operation with the higher counter
// wins. One added delta's operations always go out in one delta, whatever
// its size, since a delta's context must come with every removal it
// covers. The zero value collects deltas of up to DefaultBatchLimit
// operations and DefaultBatchBytes. A Batch is not safe for concurrent
// use.
type Batch struct {
	// Limit bounds the operations of each delta (0: DefaultBatchLimit).
	Limit int
	// Bytes bounds the estimated encoded size of each delta (0:
	// DefaultBatchBytes): an operation that would take the open delta
	// past it starts the next one.
	Bytes int

	replica ReplicaID
	open    Delta       // the delta being filled; Ctx is not yet sorted
	dead    int         // adds and removes of open replaced by a later operation
	ops     int         // operations recorded in open
	size    int         // estimated encoded bytes of the operations recorded in open
	total   int         // AddJoin and Add calls since the last Take
	keys    []batchSlot // open's keys: open addressing over their hashes
	used    []int       // slots of keys in use, to clear them cheaply
	sealed  []*Delta
	last    int // adds of the last sealed delta
}

// DefaultBatchLimit is the operations a batched delta carries by default:
// about a hundred kilobytes for short names without metadata. A receiver
// pays per run of one group's adds (its name decoded, checked and looked
// up) more than per add, and a burst spread over many groups has runs as
// long as a delta is big: merging roster-bench's throughput burst (1,000
// groups) costs about a quarter less in deltas of 4,096 operations than
// in deltas of 1,024 (BenchmarkReceiveBatches), and gains little beyond.
const DefaultBatchLimit = 4096

// DefaultBatchBytes bounds a batched delta's estimated encoded size by
// default: DefaultChunkBytes, so that deltas of long names and large
// metadata stay as small as a repair's chunks and far below a stream
// message's bound (gossip sets Bytes to its configured chunk size). The
// estimate counts the operations, not the context, which a burst of
// updates may leave in many ranges (up to 18 bytes each).
const DefaultBatchBytes = DefaultChunkBytes

// batchSlot is one key of the open delta: its hash (0: free) and where
// its latest operation is, at > 0 for Adds[at-1], at < 0 for
// Removes[-at-1].
type batchSlot struct {
	h  uint64
	at int32
}

func (b *Batch) limit() int {
	if b.Limit > 0 {
		return b.Limit
	}
	return DefaultBatchLimit
}

func (b *Batch) maxBytes() int {
	if b.Bytes > 0 {
		return b.Bytes
	}
	return DefaultBatchBytes
}

// Len returns how many local operations (AddJoin and Add calls: a join,
// a leave, a LeaveAll) were recorded since the last Take.
func (b *Batch) Len() int { return b.total }

// AddJoin records a local join of replica r (State.JoinLocal).
func (b *Batch) AddJoin(r ReplicaID, j LocalJoin) error {
	if !j.Changed() {
		return nil
	}
	if err := b.start(r, 1, addSize(j.Add)); err != nil {
		return err
	}
	r1, r2, n := j.ctx()
	b.addCtx(r1)
	if n == 2 {
		b.addCtx(r2)
	}
	if s := b.record(j.Add.Group, j.Add.ID, j.Add.Counter); s != nil {
		b.open.Adds = append(b.open.Adds, j.Add)
		s.at = int32(len(b.open.Adds))
	}
	b.ops++
	b.total++
	return nil
}

// Add records a plain delta of the batch's replica (one Leave, LeaveAll or
// JoinRaw made).
func (b *Batch) Add(d *Delta) error {
	if d.Auth {
		return fmt.Errorf("%w: can only batch plain deltas", ErrInvalidDelta)
	}
	n := max(len(d.Adds)+len(d.Removes), 1)
	if err := b.start(d.Replica, n, opsSize(d)); err != nil {
		return err
	}
	b.open.Floor = max(b.open.Floor, d.Floor)
	for _, r := range d.Ctx {
		b.addCtx(r)
	}
	for i := range d.Adds {
		a := &d.Adds[i]
		if s := b.record(a.Group, a.ID, a.Counter); s != nil {
			b.open.Adds = append(b.open.Adds, *a)
			s.at = int32(len(b.open.Adds))
		}
	}
	for i := range d.Removes {
		r := &d.Removes[i]
		if s := b.record(r.Group, r.ID, r.Counter); s != nil {
			b.open.Removes = append(b.open.Removes, *r)
			s.at = -int32(len(b.open.Removes))
		}
	}
	b.ops += n
	b.total++
	return nil
}

// addCtx adds a range to the open context, extending the last one when
// adjacent (a burst's counters mostly are).
func (b *Batch) addCtx(r Range) {
	if k := len(b.open.Ctx); k > 0 && b.open.Ctx[k-1].Hi+1 == r.Lo {
		b.open.Ctx[k-1].Hi = max(b.open.Ctx[k-1].Hi, r.Hi)
		return
	}
	b.open.Ctx = append(b.open.Ctx, r)
}

// start checks the replica, seals the open delta if n more operations of
// size estimated bytes would take it past the limits, readies a fresh one
// and counts them in.
func (b *Batch) start(r ReplicaID, n, size int) error {
	if b.total == 0 {
		b.replica = r
	} else if r != b.replica {
		return fmt.Errorf("%w: batch of %s given a delta of %s", ErrInvalidDelta, b.replica, r)
	}
	if b.ops > 0 && (b.ops+n > b.limit() || b.size+size > b.maxBytes()) {
		b.seal()
	}
	b.size += size
	b.reserve(n)
	if b.ops == 0 && b.last > 1 {
		// Sized like the delta before it: a burst fills one after
		// another, and growing each through every doubling made garbage
		// twice its size.
		b.open.Adds = make([]Add, 0, b.last)
	}
	return nil
}

// reserve makes the key index hold n more keys at half load at most. It
// grows by doubling as a burst's first delta fills and is kept for the
// next (so a lone join does not take a limit's worth of index).
func (b *Batch) reserve(n int) {
	want := 2 * (len(b.used) + n)
	if len(b.keys) >= want {
		return
	}
	size := max(16, 2*len(b.keys))
	for size < want {
		size <<= 1
	}
	old := b.keys
	b.keys = make([]batchSlot, size)
	mask := size - 1
	for k, i := range b.used {
		s := old[i]
		j := int(s.h) & mask
		for b.keys[j].h != 0 {
			j = (j + 1) & mask
		}
		b.keys[j] = s
		b.used[k] = j
	}
}

// record notes an operation on (group, id) at counter and returns the
// slot to point at it once stored, or nil when the key's operation
// already in the open delta is newer (this one is dropped; its context
// is kept either way). An older one is marked replaced.
func (b *Batch) record(group, id string, counter uint64) *batchSlot {
	h := keyHash(group, id)
	mask := len(b.keys) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		s := &b.keys[i]
		if s.h == 0 {
			s.h = h
			b.used = append(b.used, i)
			return s
		}
		if s.h != h {
			continue
		}
		g, k, c := b.at(s.at)
		if g != group || k != id {
			continue // another key with the same hash
		}
		if counter < c {
			return nil
		}
		b.kill(s.at)
		return s
	}
}

// at returns the key and counter of an open operation.
func (b *Batch) at(at int32) (string, string, uint64) {
	if at > 0 {
		a := &b.open.Adds[at-1]
		return a.Group, a.ID, a.Counter
	}
	r := &b.open.Removes[-at-1]
	return r.Group, r.ID, r.Counter
}

// kill marks an open operation replaced (counter 0, compacted at seal).
// Its key stays readable for record's comparisons until then.
func (b *Batch) kill(at int32) {
	if at > 0 {
		b.open.Adds[at-1].Counter = 0
	} else {
		b.open.Removes[-at-1].Counter = 0
	}
	b.dead++
}

// keyHash hashes a member key. 0 is never returned (it marks a free
// slot): the top bit is set, not the lowest, which picks the slot.
func keyHash(group, id string) uint64 {
	h := maphash.String(hashSeed, group)*0x9E3779B97F4A7C15 ^ maphash.String(hashSeed, id)
	return h | 1<<63
}

// seal closes the open delta: replaced operations dropped, context sorted
// and merged.
func (b *Batch) seal() {
	if b.ops == 0 {
		return
	}
	d := b.open
	if b.dead > 0 {
		d.Adds = slices.DeleteFunc(d.Adds, func(a Add) bool { return a.Counter == 0 })
		d.Removes = slices.DeleteFunc(d.Removes, func(r Remove) bool { return r.Counter == 0 })
	}
	if len(d.Adds) == 0 {
		d.Adds = nil
	}
	if len(d.Removes) == 0 {
		d.Removes = nil
	}
	slices.SortFunc(d.Ctx, func(a, b Range) int { return cmp.Compare(a.Lo, b.Lo) })
	d.Ctx = unionRanges(d.Ctx, nil)
	d.Replica = b.replica
	b.sealed = append(b.sealed, &d)
	b.last = len(d.Adds)
	if len(b.keys) > 4*b.limit() {
		// Grown for one huge delta (a LeaveAll of thousands of groups):
		// not kept for the scope's lifetime.
		b.keys, b.used = nil, nil
	} else {
		for _, i := range b.used {
			b.keys[i] = batchSlot{}
		}
		b.used = b.used[:0]
	}
	b.open, b.dead, b.ops, b.size = Delta{}, 0, 0, 0
}

// Take returns the deltas recorded since the last Take, oldest first, and
// empties the batch (keeping its index for reuse).
func (b *Batch) Take() []*Delta {
	b.seal()
	out := b.sealed
	b.sealed, b.total = nil, 0
	return out
}
