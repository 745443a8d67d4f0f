package dissem

import (
	"container/heap"
	"slices"
	"time"
)

// pending is an id announced to this node but not received: the peers that
// announced it, in order, and when the next one is grafted.
type pending struct {
	id         MsgID
	seq        uint64 // creation order: eviction and tie-breaks
	announcers []string
	ackTo      []string // announcers that asked for acknowledgement
	next       int      // announcers[next] is the next to graft from
	rounds     int      // times every announcer was tried and the list restarted
	due        time.Time
}

// timer is a graft deadline; it is stale (skipped) once its pending entry
// is gone or has been re-armed.
type timer struct {
	due time.Time
	id  MsgID
	seq uint64
}

type timerHeap []timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if c := h[i].due.Compare(h[j].due); c != 0 {
		return c < 0
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

type pendRef struct {
	id  MsgID
	seq uint64
}

// grafts is the pending ids, bounded (oldest dropped first), with their
// timers in a heap. Stale heap and order entries are skipped when met and
// compacted when they outnumber the live ones.
type grafts struct {
	byID  map[MsgID]*pending
	order []pendRef // creation order, for eviction
	timer timerHeap
	next  uint64
}

func (g *grafts) len() int { return len(g.byID) }

func (g *grafts) live(t timer) *pending {
	p := g.byID[t.id]
	if p == nil || p.seq != t.seq || !p.due.Equal(t.due) {
		return nil
	}
	return p
}

// announce records that from announced id (asking for acknowledgement if
// wantAck); a new entry's first graft is due at due. It reports whether an
// older entry was dropped to stay within max.
func (g *grafts) announce(id MsgID, from string, wantAck bool, due time.Time, max int) (evicted bool) {
	p := g.byID[id]
	if p == nil {
		if g.byID == nil {
			g.byID = make(map[MsgID]*pending)
		}
		p = &pending{id: id, seq: g.next, due: due}
		g.next++
		g.byID[id] = p
		g.order = append(g.order, pendRef{id, p.seq})
		g.arm(p)
		evicted = g.bound(max)
	}
	if len(p.announcers) < MaxAnnouncers && !slices.Contains(p.announcers, from) {
		p.announcers = append(p.announcers, from)
	}
	if wantAck && len(p.ackTo) < MaxAnnouncers && !slices.Contains(p.ackTo, from) {
		p.ackTo = append(p.ackTo, from)
	}
	return evicted
}

// bound drops the oldest entries beyond max.
func (g *grafts) bound(max int) (evicted bool) {
	for len(g.byID) > max {
		ref := g.order[0]
		g.order = g.order[1:]
		if q := g.byID[ref.id]; q != nil && q.seq == ref.seq {
			delete(g.byID, ref.id)
			evicted = true
		}
	}
	g.compact()
	return evicted
}

// arm schedules p at p.due.
func (g *grafts) arm(p *pending) {
	heap.Push(&g.timer, timer{p.due, p.id, p.seq})
}

func (g *grafts) remove(id MsgID) { delete(g.byID, id) }

// popDue returns the next pending entry due at or before now, or nil.
func (g *grafts) popDue(now time.Time) *pending {
	for len(g.timer) > 0 && !g.timer[0].due.After(now) {
		t := heap.Pop(&g.timer).(timer)
		if p := g.live(t); p != nil {
			return p
		}
	}
	return nil
}

// deadline is the earliest live timer.
func (g *grafts) deadline() (time.Time, bool) {
	for len(g.timer) > 0 {
		if g.live(g.timer[0]) != nil {
			return g.timer[0].due, true
		}
		heap.Pop(&g.timer)
	}
	return time.Time{}, false
}

// dropPeer forgets name as an announcer everywhere.
func (g *grafts) dropPeer(name string) {
	for _, p := range g.byID {
		p.ackTo = slices.DeleteFunc(p.ackTo, func(a string) bool { return a == name })
		if i := slices.Index(p.announcers, name); i >= 0 {
			p.announcers = slices.Delete(p.announcers, i, i+1)
			if i < p.next {
				p.next--
			}
		}
	}
}

// compact rebuilds the order and the heap from the live entries when the
// stale ones outnumber them, so memory stays O(pending).
func (g *grafts) compact() {
	limit := 2*len(g.byID) + 64
	if len(g.order) > limit {
		g.order = slices.DeleteFunc(g.order, func(r pendRef) bool {
			p := g.byID[r.id]
			return p == nil || p.seq != r.seq
		})
		g.order = slices.Clip(g.order)
	}
	if len(g.timer) > limit {
		g.timer = slices.DeleteFunc(g.timer, func(t timer) bool { return g.live(t) == nil })
		heap.Init(&g.timer)
	}
}

// maxGraftRounds is how many times the announcers of a pending id are
// tried again from the first, after 2, 4 and 8 GraftTimeouts, before it is
// given up.
const maxGraftRounds = 3

// fireGrafts handles the graft timers due: each pending id is grafted from
// its next announcer (one GRAFT per announcer for all its ids), which
// becomes eager, and re-armed at GraftTimeout/2; once its announcers were
// all tried it waits 2, 4, then 8 GraftTimeouts and tries them again from
// the first, and after that it is given up (a new IHAVE starts it again).
func (c *Core) fireGrafts() {
	type batch struct {
		to  string
		ids []MsgID
	}
	var batches []batch
	for {
		p := c.grafts.popDue(c.now)
		if p == nil {
			break
		}
		if p.next >= len(p.announcers) {
			if p.rounds >= maxGraftRounds || len(p.announcers) == 0 {
				c.grafts.remove(p.id)
				c.stats.GraftGiveUps++
				continue
			}
			// Every announcer was tried once more: a GRAFT or its answer
			// was lost (one in 50 at 1% loss), and no one else may
			// announce the id again (lazy peers announce once; the ring
			// predecessor may have crashed undetected). Start over, at
			// doubling intervals.
			p.rounds++
			p.next = 0
			p.due = c.now.Add(c.cfg.GraftTimeout << p.rounds)
			c.grafts.arm(p)
			c.stats.GraftRetries++
			continue
		}
		to := p.announcers[p.next]
		p.next++
		i := slices.IndexFunc(batches, func(b batch) bool { return b.to == to })
		if i < 0 {
			batches = append(batches, batch{to: to})
			i = len(batches) - 1
		}
		batches[i].ids = append(batches[i].ids, p.id)
		p.due = c.now.Add(c.cfg.GraftTimeout / 2)
		c.grafts.arm(p)
	}
	for _, b := range batches {
		c.setRole(b.to, roleEager)
		c.sendIDs(KindGraft, b.to, b.ids, false, false)
	}
	c.grafts.compact()
}
