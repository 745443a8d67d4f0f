package crdt

import (
	"fmt"
	"hash/maphash"
	"sync"
)

// Add is a join or metadata update of the member (Group, ID) at dot Counter
// of the delta's replica.
type Add struct {
	Group   string
	ID      string
	Counter uint64
	Meta    RawMeta
}

// Remove is the leave of member (Group, ID) by the event at Counter: every
// dot of that key below Counter is dead.
type Remove struct {
	Group   string
	ID      string
	Counter uint64
}

// Delta is a join-decomposable piece of one replica's slice: the unit that
// local operations return, that anti-entropy sends, and that Merge joins.
//
// A plain delta says: these counters (Ctx) are known; of them, Adds are live
// and Removes are leaves. An authoritative delta (Auth) says more: Adds plus
// Keep (counters of entries the receiver already holds, by reference) are
// every live entry whose counter lies in Ctx, so the receiver drops any other
// entry it holds in Ctx.
type Delta struct {
	Replica ReplicaID
	// Ctx is the sorted, disjoint set of counter ranges the delta covers.
	Ctx []Range
	// Floor says the sender's removal records may be incomplete for events
	// at or below it (0: complete). The receiver raises its own log floor.
	Floor   uint64
	Auth    bool
	Adds    []Add
	Removes []Remove
	// Keep lists, ascending, live counters in Ctx sent by reference (Auth only).
	Keep []uint64
	// Xfer and Seq chain the chunks of one authoritative transfer (Auth
	// only; Xfer is never 0 there). A receiver applies chunk Seq > 0 only
	// right after chunk Seq-1 of the same transfer, because an
	// authoritative chunk drops dead entries only inside its own counter
	// range, and the leaves that killed entries elsewhere may be older than
	// the sender's log reaches.
	Xfer uint64
	Seq  uint32
}

// complete reports whether the delta carries every leave record for the
// events in its context.
func (d *Delta) complete() bool {
	return len(d.Ctx) == 0 || d.Floor < d.Ctx[0].Lo
}

// Empty reports whether the delta carries nothing.
func (d *Delta) Empty() bool {
	return len(d.Ctx) == 0 && len(d.Adds) == 0 && len(d.Removes) == 0 && len(d.Keep) == 0
}

type memberKey struct{ group, id string }

// Validate checks that d is well formed: valid replica and names, valid
// metadata, sorted disjoint context ranges within bounds, every counter
// inside the context, each key and each counter used once, Keep only on an
// authoritative delta. Merge applies only valid deltas; the decoder applies
// this to everything it reads.
func (d *Delta) Validate() error {
	if err := validReplica(d.Replica); err != nil {
		return err
	}
	for i, r := range d.Ctx {
		if r.Lo == 0 || r.Lo > r.Hi || r.Hi >= MaxCounter {
			return fmt.Errorf("%w: context range %d [%d,%d] out of bounds", ErrInvalidDelta, i, r.Lo, r.Hi)
		}
		if i > 0 && r.Lo <= d.Ctx[i-1].Hi {
			return fmt.Errorf("%w: context ranges not sorted and disjoint at %d", ErrInvalidDelta, i)
		}
	}
	if d.Floor >= MaxCounter {
		return fmt.Errorf("%w: floor %d out of bounds", ErrInvalidDelta, d.Floor)
	}
	// lastGroup skips re-validating the group name of consecutive entries
	// (deltas are encoded in runs of one group); checked says it holds a
	// name already validated (the empty string is not one).
	lastGroup, checked := "", false
	check := func(what string, i int, group, id string, c uint64) error {
		if !checked || group != lastGroup {
			if err := ValidName(group); err != nil {
				return fmt.Errorf("%w: %s %d group: %w", ErrInvalidDelta, what, i, err)
			}
			lastGroup, checked = group, true
		}
		if err := ValidName(id); err != nil {
			return fmt.Errorf("%w: %s %d id: %w", ErrInvalidDelta, what, i, err)
		}
		if !rangesContain(d.Ctx, c) {
			return fmt.Errorf("%w: %s %d counter %d outside the context", ErrInvalidDelta, what, i, c)
		}
		return nil
	}
	for i, a := range d.Adds {
		if err := check("add", i, a.Group, a.ID, a.Counter); err != nil {
			return err
		}
		if a.Meta != "" {
			if _, err := decodeMeta([]byte(a.Meta)); err != nil {
				return fmt.Errorf("%w: add %d: %w", ErrInvalidDelta, i, err)
			}
		}
	}
	for i, r := range d.Removes {
		if err := check("remove", i, r.Group, r.ID, r.Counter); err != nil {
			return err
		}
	}
	if len(d.Keep) > 0 && !d.Auth {
		return fmt.Errorf("%w: keep list on a non-authoritative delta", ErrInvalidDelta)
	}
	if d.Auth != (d.Xfer != 0) || (!d.Auth && d.Seq != 0) {
		return fmt.Errorf("%w: transfer id set %v on a delta with auth %v (seq %d)", ErrInvalidDelta, d.Xfer != 0, d.Auth, d.Seq)
	}
	if !d.Auth && !d.complete() {
		return fmt.Errorf("%w: a plain delta must carry every leave of its context (floor %d)", ErrInvalidDelta, d.Floor)
	}
	for i, c := range d.Keep {
		if i > 0 && c <= d.Keep[i-1] {
			return fmt.Errorf("%w: keep list not ascending at %d", ErrInvalidDelta, i)
		}
		if !rangesContain(d.Ctx, c) {
			return fmt.Errorf("%w: keep %d counter %d outside the context", ErrInvalidDelta, i, c)
		}
	}
	return d.checkUnique()
}

// hashSeed keys the member hashes of checkUnique.
var hashSeed = maphash.MakeSeed()

// checkUnique checks that no member key appears twice among the adds and
// removes and that no counter is used twice among adds, removes and keeps.
// A 100k-member transfer is validated on every receiver, so it avoids maps
// keyed by strings: counters are marked in a bitmap over the context when
// that is dense enough (it always is for a transfer), and member keys are
// hashed, with equal hashes confirmed exactly.
func (d *Delta) checkUnique() error {
	nk := len(d.Adds) + len(d.Removes)
	n := nk + len(d.Keep)
	if n < 2 {
		return nil
	}
	// Every counter is already known to lie inside the context.
	fresh := counterSet(d.Ctx[0].Lo, d.Ctx[len(d.Ctx)-1].Hi, n)
	for c := range d.counters {
		if !fresh(c) {
			return fmt.Errorf("%w: counter %d used twice", ErrInvalidDelta, c)
		}
	}
	set := getHashSet(nk)
	defer set.release()
	var gh uint64
	lastGroup := ""
	for group, id := range d.keys {
		if group != lastGroup || gh == 0 {
			gh, lastGroup = maphash.String(hashSeed, group)|1, group
		}
		if !set.add(gh*0x9E3779B97F4A7C15 ^ maphash.String(hashSeed, id)) {
			return d.checkKeysExactly()
		}
	}
	return nil
}

// hashSet is checkUnique's set of member hashes: open addressing with
// linear probing over a table at least twice the number of keys, so it
// never grows (growing a map through every doubling was most of what
// checking a transfer's chunk cost). Tables are pooled and only their used
// part is cleared; 0 marks a free slot, so hash 0 is stored as 1 (equal
// hashes are confirmed exactly anyway).
type hashSet struct {
	tab  []uint64
	mask uint64
	buf  *[]uint64
}

var hashTables = sync.Pool{New: func() any { return new([]uint64) }}

// maxPooledTable bounds the tables kept for reuse (8 MiB).
const maxPooledTable = 1 << 20

func getHashSet(n int) hashSet {
	size := 16
	for size < 2*n {
		size <<= 1
	}
	buf := hashTables.Get().(*[]uint64)
	if cap(*buf) < size {
		*buf = make([]uint64, size)
	}
	tab := (*buf)[:size]
	return hashSet{tab: tab, mask: uint64(size - 1), buf: buf}
}

// add inserts h and reports whether it was absent.
func (s hashSet) add(h uint64) bool {
	if h == 0 {
		h = 1
	}
	for i := h & s.mask; ; i = (i + 1) & s.mask {
		switch s.tab[i] {
		case 0:
			s.tab[i] = h
			return true
		case h:
			return false
		}
	}
}

func (s hashSet) release() {
	if len(s.tab) > maxPooledTable {
		*s.buf = nil
	} else {
		clear(s.tab)
	}
	hashTables.Put(s.buf)
}

// counterSet returns a membership test for n counters in [lo, hi]: true
// the first time a counter is seen. A bitmap when the range is dense
// enough, else a map.
func counterSet(lo, hi uint64, n int) func(c uint64) bool {
	if span := hi - lo + 1; span <= uint64(64*max(n, 1024)) {
		bits := make([]uint64, (span+63)/64)
		return func(c uint64) bool {
			i := c - lo
			w, b := i/64, uint64(1)<<(i%64)
			if bits[w]&b != 0 {
				return false
			}
			bits[w] |= b
			return true
		}
	}
	seen := make(map[uint64]struct{}, n)
	return func(c uint64) bool {
		if _, ok := seen[c]; ok {
			return false
		}
		seen[c] = struct{}{}
		return true
	}
}

// checkKeysExactly is checkUnique's exact check of member keys, run only
// when two keys hash alike.
func (d *Delta) checkKeysExactly() error {
	seen := make(map[memberKey]struct{}, len(d.Adds)+len(d.Removes))
	for group, id := range d.keys {
		k := memberKey{group, id}
		if _, ok := seen[k]; ok {
			return fmt.Errorf("%w: member %s/%s appears twice", ErrInvalidDelta, group, id)
		}
		seen[k] = struct{}{}
	}
	return nil
}

// counters yields the counters of the adds, the removes and the keeps.
func (d *Delta) counters(yield func(uint64) bool) {
	for _, a := range d.Adds {
		if !yield(a.Counter) {
			return
		}
	}
	for _, r := range d.Removes {
		if !yield(r.Counter) {
			return
		}
	}
	for _, c := range d.Keep {
		if !yield(c) {
			return
		}
	}
}

// keys yields the member keys of the adds and the removes.
func (d *Delta) keys(yield func(group, id string) bool) {
	for _, a := range d.Adds {
		if !yield(a.Group, a.ID) {
			return
		}
	}
	for _, r := range d.Removes {
		if !yield(r.Group, r.ID) {
			return
		}
	}
}

// JoinAll joins plain deltas of one replica into one delta, the same as
// merging them one by one: for each key only its latest event is kept, and
// the context is the union of theirs. It is a Batch with no limit, taken
// once (the gossip layer batches a burst of local operations with a Batch
// directly).
func JoinAll(ds ...*Delta) (*Delta, error) {
	if len(ds) == 0 {
		return nil, fmt.Errorf("%w: nothing to join", ErrInvalidDelta)
	}
	ops := 0
	for _, d := range ds {
		ops += max(len(d.Adds)+len(d.Removes), 1)
	}
	b := Batch{Limit: ops} // one delta
	for _, d := range ds {
		if err := b.Add(d); err != nil {
			return nil, err
		}
	}
	return b.Take()[0], nil
}

// unionRanges merges two sorted disjoint range lists.
func unionRanges(a, b []Range) []Range {
	all := make([]Range, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var r Range
		if j >= len(b) || (i < len(a) && a[i].Lo <= b[j].Lo) {
			r, i = a[i], i+1
		} else {
			r, j = b[j], j+1
		}
		if n := len(all); n > 0 && r.Lo <= all[n-1].Hi+1 {
			all[n-1].Hi = max(all[n-1].Hi, r.Hi)
			continue
		}
		all = append(all, r)
	}
	return all
}
