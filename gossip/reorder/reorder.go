// Package reorder holds the deltas a node receives before their turn, in
// one buffer with one set of bounds: plain deltas that arrive after a gap
// in their owner's counters (a packet lost or overtaken), which wait for
// the gap to fill so that watchers see each owner's operations in its
// order, as Erlang pg delivers a sender's messages in order; and the
// chunks of an authoritative transfer (an anti-entropy repair) that
// arrive before their predecessor, which crdt cannot apply out of order.
//
// # What it owns
//
// The decisions: whether a delta waits (Waits), whether the buffer takes
// it (HoldGap, HoldChunk: within Limits, node-wide and per owner), which
// held delta may go now (NextGap, NextChunk), which owners have waited
// too long (Overdue: the gap was a lost packet, which the driver asks the
// owner for), and which chunks are stale (Expire). And the accounting:
// entries and bytes by crdt.Delta.Footprint, in all and per (scope,
// owner), and its counters (Stats).
//
// # What it must not touch
//
// No clock (times come in as arguments), no goroutines, no sockets, no
// locks: a Buffer is not safe for concurrent use, its driver (gossip)
// serialises calls. It reads a scope's crdt.State (its owners' counters)
// and never changes it: merging is the driver's. A delta the buffer takes
// is the buffer's until it hands it back (NextGap, NextChunk) or gives it
// up (it then calls crdt.Delta.Release); one it refuses stays the
// caller's. Only the standard library and crdt are imported.
package reorder

import (
	"cmp"
	"slices"
	"time"

	"github.com/roster-io/roster/crdt"
)

// Limits bound what a Buffer keeps, across every scope: past them a plain
// delta is refused (the driver merges it at once, shown out of its
// owner's order, never lost) and so is a chunk (its transfer starts over
// at the next exchange). A peer that makes up gaps or out-of-order chunks
// cannot make the node keep more.
type Limits struct {
	// Bytes bounds the Footprint of everything held.
	Bytes int
	// OwnerBytes bounds the Footprint held for one owner in one scope: a
	// single owner (or one forging its name) cannot fill the buffer.
	OwnerBytes int
	// Entries bounds the number of deltas held.
	Entries int
}

// DefaultLimits are gossip's: 32 MiB in all, 16 MiB per owner, 8,192
// deltas. A transfer chunk is at most a few MiB (gossip's ChunkBytes); a
// plain delta is a batch of at most 4,096 operations.
func DefaultLimits() Limits {
	return Limits{Bytes: 32 << 20, OwnerBytes: 16 << 20, Entries: 8192}
}

// Key names one owner's deltas in one scope.
type Key struct{ Scope, Owner string }

// Stats are a Buffer's cumulative counters.
type Stats struct {
	// Gaps and Chunks count the deltas taken.
	Gaps, Chunks int64
	// Refused counts deltas turned away at a bound.
	Refused int64
	// Dropped counts chunks given up after they were taken: their owner's
	// next chunk was refused (the transfer cannot complete) or they were
	// older than Expire's age.
	Dropped int64
	// Forced counts gap deltas handed back before their gap filled
	// (NextGap with force).
	Forced int64
}

type entry struct {
	d    *crdt.Delta
	at   time.Time
	size int // d.Footprint(), taken once: a chunk holds thousands of operations
}

type chunkKey struct {
	xfer uint64
	seq  uint32
}

type queue struct {
	gaps   []entry // plain deltas after a gap, in arrival order
	chunks map[chunkKey]entry
	bytes  int
}

func (q *queue) empty() bool { return len(q.gaps) == 0 && len(q.chunks) == 0 }

// Buffer is one node's reorder buffer, for all its scopes. The zero value
// is not usable: call New.
type Buffer struct {
	lim     Limits
	q       map[Key]*queue
	bytes   int
	entries int
	stats   Stats
}

// New returns an empty buffer bounded by lim; a zero or negative field
// takes DefaultLimits' value.
func New(lim Limits) *Buffer {
	def := DefaultLimits()
	if lim.Bytes <= 0 {
		lim.Bytes = def.Bytes
	}
	if lim.OwnerBytes <= 0 {
		lim.OwnerBytes = def.OwnerBytes
	}
	if lim.Entries <= 0 {
		lim.Entries = def.Entries
	}
	return &Buffer{lim: lim, q: map[Key]*queue{}}
}

// Waits reports whether plain delta d must wait before it is merged into
// st: its owner's earlier counters are not all there yet, so merging it
// now would show its operations before earlier ones of the same owner.
// Authoritative chunks never wait here (HoldChunk is theirs), nor do
// deltas of another incarnation than the one st holds (they supersede
// it). An owner st has never seen counts as holding nothing yet: its
// earlier operations come first too. d must be valid (crdt.DecodeDelta).
func Waits(st *crdt.State, d *crdt.Delta) bool {
	if d.Auth || len(d.Ctx) == 0 {
		return false
	}
	inc, top, ok := st.Top(d.Replica.Name)
	if !ok {
		inc, top = d.Replica.Incarnation, 0
	}
	return inc == d.Replica.Incarnation && d.Ctx[0].Lo > top+1
}

// HoldGap takes plain delta d of scope, received at now, if it Waits and
// the bounds allow; it reports whether it did. If not, d stays the
// caller's, to merge at once.
func (b *Buffer) HoldGap(scope string, st *crdt.State, d *crdt.Delta, now time.Time) bool {
	if !Waits(st, d) {
		return false
	}
	k := Key{scope, d.Replica.Name}
	size := d.Footprint()
	if !b.fits(k, size) {
		b.stats.Refused++
		return false
	}
	q := b.queue(k)
	q.gaps = append(q.gaps, entry{d, now, size})
	b.add(q, size)
	b.stats.Gaps++
	return true
}

// NextGap removes and returns the held delta of owner in scope that can
// be merged into st now (no gap before it, or another incarnation than
// st's), the lowest first; with force, the lowest whatever the gap. Nil
// if there is none. Merge it, then call again: one merged delta can
// release several.
func (b *Buffer) NextGap(scope string, st *crdt.State, owner string, force bool) *crdt.Delta {
	k := Key{scope, owner}
	q := b.q[k]
	if q == nil || len(q.gaps) == 0 {
		return nil
	}
	best := 0
	for i, e := range q.gaps {
		if e.d.Ctx[0].Lo < q.gaps[best].d.Ctx[0].Lo {
			best = i
		}
	}
	e := q.gaps[best]
	inc, top, ok := st.Top(owner)
	if !ok {
		inc = e.d.Replica.Incarnation
	}
	if gap := e.d.Replica.Incarnation == inc && e.d.Ctx[0].Lo > top+1; gap {
		if !force {
			return nil
		}
		b.stats.Forced++
	}
	q.gaps = slices.Delete(q.gaps, best, best+1)
	b.remove(k, q, e.size)
	return e.d
}

// HoldChunk takes authoritative chunk d of scope (Seq > 0), received at
// now before its predecessor, if the bounds allow; it reports whether it
// did. A refused chunk leaves a hole in its transfer, so the owner's other
// chunks in scope are given up too (released; Stats.Dropped): the next
// exchange starts the transfer over. A chunk already held at the same
// place is replaced.
func (b *Buffer) HoldChunk(scope string, d *crdt.Delta, now time.Time) bool {
	k := Key{scope, d.Replica.Name}
	ck := chunkKey{d.Xfer, d.Seq}
	if q := b.q[k]; q != nil {
		if old, ok := q.chunks[ck]; ok {
			delete(q.chunks, ck)
			b.remove(k, q, old.size)
			old.d.Release()
		}
	}
	size := d.Footprint()
	if !b.fits(k, size) {
		b.stats.Refused++
		b.dropChunks(k, func(entry) bool { return true })
		return false
	}
	q := b.queue(k)
	if q.chunks == nil {
		q.chunks = map[chunkKey]entry{}
	}
	q.chunks[ck] = entry{d, now, size}
	b.add(q, size)
	b.stats.Chunks++
	return true
}

// NextChunk removes and returns the held chunk seq of transfer xfer of
// owner in scope, nil if it is not held: call it with the successor of
// each chunk applied.
func (b *Buffer) NextChunk(scope, owner string, xfer uint64, seq uint32) *crdt.Delta {
	k := Key{scope, owner}
	q := b.q[k]
	if q == nil {
		return nil
	}
	e, ok := q.chunks[chunkKey{xfer, seq}]
	if !ok {
		return nil
	}
	delete(q.chunks, chunkKey{xfer, seq})
	b.remove(k, q, e.size)
	return e.d
}

// Overdue lists the owners with a gap delta held since wait before now or
// longer, in order: their gap was a lost packet, not one overtaken, so
// the driver forces them out (NextGap with force) and asks the owner.
func (b *Buffer) Overdue(now time.Time, wait time.Duration) []Key {
	var out []Key
	for k, q := range b.q {
		for _, e := range q.gaps {
			if now.Sub(e.at) >= wait {
				out = append(out, k)
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b Key) int {
		return cmp.Or(cmp.Compare(a.Scope, b.Scope), cmp.Compare(a.Owner, b.Owner))
	})
	return out
}

// Expire gives up the chunks received age before now or earlier (their
// transfer stalled: its missing chunk was lost, and the next exchange
// starts it over) and returns how many.
func (b *Buffer) Expire(now time.Time, age time.Duration) int {
	before := b.stats.Dropped
	for k := range b.q {
		b.dropChunks(k, func(e entry) bool { return now.Sub(e.at) >= age })
	}
	return int(b.stats.Dropped - before)
}

// Held returns the number of gap deltas and chunks held for scope and
// their bytes (Footprint).
func (b *Buffer) Held(scope string) (gaps, chunks, bytes int) {
	for k, q := range b.q {
		if k.Scope == scope {
			gaps += len(q.gaps)
			chunks += len(q.chunks)
			bytes += q.bytes
		}
	}
	return gaps, chunks, bytes
}

// Len returns the number of deltas held and their bytes, in all.
func (b *Buffer) Len() (entries, bytes int) { return b.entries, b.bytes }

// OwnerBytes returns the bytes held for k.
func (b *Buffer) OwnerBytes(k Key) int {
	if q := b.q[k]; q != nil {
		return q.bytes
	}
	return 0
}

// Limits returns the buffer's bounds, defaults filled in.
func (b *Buffer) Limits() Limits { return b.lim }

// Stats returns the cumulative counters.
func (b *Buffer) Stats() Stats { return b.stats }

func (b *Buffer) fits(k Key, size int) bool {
	return b.entries < b.lim.Entries && b.bytes+size <= b.lim.Bytes && b.OwnerBytes(k)+size <= b.lim.OwnerBytes
}

func (b *Buffer) queue(k Key) *queue {
	q := b.q[k]
	if q == nil {
		q = &queue{}
		b.q[k] = q
	}
	return q
}

func (b *Buffer) add(q *queue, size int) {
	q.bytes += size
	b.bytes += size
	b.entries++
}

func (b *Buffer) remove(k Key, q *queue, size int) {
	q.bytes -= size
	b.bytes -= size
	b.entries--
	if q.empty() {
		delete(b.q, k)
	}
}

// dropChunks gives up k's chunks that match.
func (b *Buffer) dropChunks(k Key, match func(entry) bool) {
	q := b.q[k]
	if q == nil {
		return
	}
	for ck, e := range q.chunks {
		if match(e) {
			delete(q.chunks, ck)
			b.stats.Dropped++
			e.d.Release()
			b.remove(k, q, e.size)
			if b.q[k] == nil {
				return
			}
		}
	}
}
