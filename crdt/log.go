package crdt

import (
	"iter"
	"sort"
)

// logRec is one event of a replica: an add (join or update) or a removal of
// key (g, id) at counter. Records whose add was later superseded stay until
// truncated; readers check the entry's current counter.
type logRec struct {
	counter uint64
	g       *group
	id      string
	rm      bool
}

// eventLog is a bounded, counter-ordered log of a replica's recent events,
// kept in a ring so that a full log drops its oldest record in O(1) (every
// join of a busy replica does).
//
// Invariants, relied on by Diff:
//   - every live entry of the slice with counter > floorAll has its add record;
//   - every removal event in the slice's context with counter > floorRm has
//     its record.
//
// Truncation and merges of deltas that lack records raise the floors; they
// never fall.
type eventLog struct {
	buf      []logRec // ring; its length is 0 or a power of two
	head     int      // index in buf of the oldest record
	n        int      // records held
	floorAll uint64
	floorRm  uint64
}

// at returns the i-th oldest record.
func (l *eventLog) at(i int) *logRec { return &l.buf[(l.head+i)&(len(l.buf)-1)] }

func (l *eventLog) add(r logRec, capacity int) {
	if capacity <= 0 {
		l.drop(r)
		return
	}
	i := l.n
	if l.n > 0 && l.at(l.n-1).counter >= r.counter {
		// Out of order (a merge filling a gap): insert in place.
		i = sort.Search(l.n, func(i int) bool { return l.at(i).counter >= r.counter })
		if l.at(i).counter == r.counter {
			return
		}
		if l.n == capacity && i == 0 {
			l.drop(r) // older than everything kept: it would go first
			return
		}
	}
	if l.n == capacity {
		l.truncate(1)
		i--
	}
	if l.n == len(l.buf) {
		l.grow(capacity)
	}
	for j := l.n; j > i; j-- {
		*l.at(j) = *l.at(j - 1)
	}
	*l.at(i) = r
	l.n++
}

// grow doubles the ring (up to the first power of two holding capacity),
// unwrapping it.
func (l *eventLog) grow(capacity int) {
	size := max(16, 2*len(l.buf))
	for size/2 > capacity && size > 16 {
		size /= 2
	}
	buf := make([]logRec, size)
	for i := 0; i < l.n; i++ {
		buf[i] = *l.at(i)
	}
	l.buf, l.head = buf, 0
}

// drop accounts for a record that is not kept.
func (l *eventLog) drop(r logRec) {
	l.floorAll = max(l.floorAll, r.counter)
	if r.rm {
		l.floorRm = max(l.floorRm, r.counter)
	}
}

// truncate drops the oldest n records, raising the floors past them.
func (l *eventLog) truncate(n int) {
	for n = min(n, l.n); n > 0; n-- {
		r := l.at(0)
		l.drop(*r)
		*r = logRec{}
		l.head = (l.head + 1) & (len(l.buf) - 1)
		l.n--
	}
}

// raiseRm records that removal events up to f may be missing from the log.
func (l *eventLog) raiseRm(f uint64) {
	l.floorRm = max(l.floorRm, f)
}

// since returns the records with counter > p, oldest first, and how many
// there are.
func (l *eventLog) since(p uint64) (iter.Seq[logRec], int) {
	from := sort.Search(l.n, func(i int) bool { return l.at(i).counter > p })
	return func(yield func(logRec) bool) {
		for i := from; i < l.n; i++ {
			if !yield(*l.at(i)) {
				return
			}
		}
	}, l.n - from
}
