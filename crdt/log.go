package crdt

import "sort"

// logRec is one event of a replica: an add (join or update) or a removal of
// key (g, id) at counter. Records whose add was later superseded stay until
// truncated; readers check the entry's current counter.
type logRec struct {
	counter uint64
	g       *group
	id      string
	rm      bool
}

// eventLog is a bounded, counter-ordered log of a replica's recent events.
//
// Invariants, relied on by Diff:
//   - every live entry of the slice with counter > floorAll has its add record;
//   - every removal event in the slice's context with counter > floorRm has
//     its record.
//
// Truncation and merges of deltas that lack records raise the floors; they
// never fall.
type eventLog struct {
	recs     []logRec
	floorAll uint64
	floorRm  uint64
}

func (l *eventLog) add(r logRec, capacity int) {
	n := len(l.recs)
	if n == 0 || l.recs[n-1].counter < r.counter {
		l.recs = append(l.recs, r)
	} else {
		i := sort.Search(n, func(i int) bool { return l.recs[i].counter >= r.counter })
		if i < n && l.recs[i].counter == r.counter {
			return
		}
		l.recs = append(l.recs, logRec{})
		copy(l.recs[i+1:], l.recs[i:])
		l.recs[i] = r
	}
	if len(l.recs) > capacity {
		// Drop a quarter of the capacity at once so truncation is amortised.
		drop := len(l.recs) - capacity + capacity/4
		l.truncate(drop)
	}
}

// truncate drops the oldest n records, raising the floors past them.
func (l *eventLog) truncate(n int) {
	n = min(n, len(l.recs))
	for _, r := range l.recs[:n] {
		l.floorAll = max(l.floorAll, r.counter)
		if r.rm {
			l.floorRm = max(l.floorRm, r.counter)
		}
	}
	rest := copy(l.recs, l.recs[n:])
	clear(l.recs[rest:])
	l.recs = l.recs[:rest]
}

// raiseRm records that removal events up to f may be missing from the log.
func (l *eventLog) raiseRm(f uint64) {
	l.floorRm = max(l.floorRm, f)
}

// since returns the records with counter > p.
func (l *eventLog) since(p uint64) []logRec {
	i := sort.Search(len(l.recs), func(i int) bool { return l.recs[i].counter > p })
	return l.recs[i:]
}
