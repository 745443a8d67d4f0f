package server

import (
	"context"
	"sync"
	"time"

	"github.com/roster-io/roster/registry/regtype"
)

// feed follows one scope with a registry watch on the whole scope and keeps
// the most recent events in a ring, so that a watch stream resumed with
// Last-Event-ID can be replayed exactly. It also counts the scope's visible
// members and groups for metrics.
//
// Events of a scope carry consecutive Seqs and the feed sees all of them in
// order, so the ring always holds a contiguous run of Seqs ending at last.
// When the feed itself falls behind (a registry resync) the ring is emptied:
// the run restarts after the resync's Seq.
type feed struct {
	scope string
	w     *regtype.Watch
	log   interface{ Warn(string, ...any) }
	done  chan struct{} // closed when run returns

	mu      sync.Mutex
	ring    []regtype.Event // grows to its capacity, then wraps
	head    int             // index of the oldest event once wrapped
	last    uint64          // Seq of the newest change seen
	closed  bool
	waiters chan struct{} // closed when last advances; nil if nobody waits
	members int
	groups  map[string]int
}

func newFeed(scope string, w *regtype.Watch, capacity int, log interface{ Warn(string, ...any) }) *feed {
	f := &feed{
		scope: scope, w: w, log: log, done: make(chan struct{}),
		ring: make([]regtype.Event, 0, min(capacity, 1024)), last: w.Seq,
		groups: map[string]int{},
	}
	f.recount(w.Snapshot)
	go f.run(capacity)
	return f
}

func (f *feed) run(capacity int) {
	defer close(f.done)
	for ev := range f.w.C {
		f.mu.Lock()
		switch ev.Type {
		case regtype.EventResync:
			f.log.Warn("watch history fell behind; resumes from before now get a resync", "scope", f.scope, "seq", ev.Seq)
			f.ring, f.head = f.ring[:0], 0
			f.recount(ev.Members)
		default:
			f.push(ev, capacity)
			f.count(ev)
		}
		f.last = ev.Seq
		f.wakeLocked()
		f.mu.Unlock()
	}
	f.mu.Lock()
	f.closed = true
	f.wakeLocked()
	f.mu.Unlock()
}

func (f *feed) wakeLocked() {
	if f.waiters != nil {
		close(f.waiters)
		f.waiters = nil
	}
}

func (f *feed) push(ev regtype.Event, capacity int) {
	if len(f.ring) < capacity {
		if len(f.ring) == cap(f.ring) {
			grown := make([]regtype.Event, len(f.ring), min(2*cap(f.ring), capacity))
			copy(grown, f.ring)
			f.ring = grown
		}
		f.ring = append(f.ring, ev)
		return
	}
	f.ring[f.head] = ev
	f.head = (f.head + 1) % len(f.ring)
}

// at returns the i-th oldest held event.
func (f *feed) at(i int) *regtype.Event { return &f.ring[(f.head+i)%len(f.ring)] }

func (f *feed) count(ev regtype.Event) {
	g := ev.Member.Group
	switch ev.Type {
	case regtype.EventJoin:
		f.members++
		f.groups[g]++
	case regtype.EventLeave:
		f.members--
		if f.groups[g]--; f.groups[g] <= 0 {
			delete(f.groups, g)
		}
	}
}

func (f *feed) recount(ms []regtype.Member) {
	f.members = len(ms)
	clear(f.groups)
	for _, m := range ms {
		f.groups[m.Group]++
	}
}

// counts returns the visible members and groups and the events held.
func (f *feed) counts() (members, groups, held int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.members, len(f.groups), len(f.ring)
}

// replay returns the held events with after < Seq <= upto that match, in
// order. ok is false when the history no longer reaches back to after+1
// (the caller must resync). It first waits, at most maxWait, for the feed
// to have seen upto: the feed runs slightly behind the registry.
func (f *feed) replay(ctx context.Context, after, upto uint64, match func(group string) bool, maxWait time.Duration) (evs []regtype.Event, ok bool) {
	if after >= upto {
		return nil, after == upto
	}
	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	f.mu.Lock()
	for f.last < upto {
		if f.closed {
			f.mu.Unlock()
			return nil, false
		}
		if f.waiters == nil {
			f.waiters = make(chan struct{})
		}
		ch := f.waiters
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, false
		case <-timer.C:
			return nil, false
		}
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	n := len(f.ring)
	if n == 0 || f.at(0).Seq > after+1 {
		return nil, false
	}
	// Seqs in the ring are consecutive: index of after+1 is after+1-oldest.
	for i := int(after + 1 - f.at(0).Seq); i < n; i++ {
		e := f.at(i)
		if e.Seq > upto {
			break
		}
		if match(e.Member.Group) {
			evs = append(evs, *e)
		}
	}
	return evs, true
}
