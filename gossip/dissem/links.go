package dissem

import (
	"slices"
	"time"
)

// Plumtree links: the peers this node pushes to (eager), announces to
// (lazy), or only owes acknowledgements or re-announcements (none). At most
// 2*Eager + Lazy + RingLinks + maxIdleLinks, whatever the scope's size.

type role uint8

const (
	roleNone role = iota
	roleEager
	roleLazy
)

func (r role) String() string {
	return [...]string{"none", "eager", "lazy"}[r]
}

// maxIdleLinks bounds the links kept only for acknowledgements or offers
// awaiting one; maxAcks bounds the acknowledgements queued per link.
const (
	maxIdleLinks = 64
	maxAcks      = 4 * MaxIDs
)

// offer is an id this node made sure a peer hears of: queued for the next
// IHAVE flush, or sent (as Gossip or IHAVE) and awaiting acknowledgement.
type offer struct {
	id  MsgID
	seq uint64 // matches link.live[id] while the offer is current
	at  time.Time
}

type link struct {
	name    string
	role    role
	since   uint64           // when it took its role: the oldest is moved first
	queued  []offer          // to announce at the next flush
	sent    []offer          // announced or pushed, awaiting acknowledgement
	live    map[MsgID]uint64 // id -> seq of its current offer (queued or sent)
	acks    []MsgID          // acknowledgements to send at the next flush
	retryAt time.Time        // when unacknowledged offers are re-announced
	backoff time.Duration    // the interval after retryAt
	dups    uint8            // duplicates in a row pushed over it
}

// setRole gives name role r, eager or lazy (creating its link), keeping
// the eager set within 2*Eager (the oldest extra becomes lazy) and the
// lazy set within Lazy (the oldest lazy peer other than the ring link is
// demoted). Names not in the View, and self, take no role.
func (c *Core) setRole(name string, r role) {
	if name == c.cfg.Self || !c.view.Has(name) {
		return
	}
	l := c.links[name]
	if l == nil {
		l = c.newLink(name)
	}
	if l.role == r {
		return
	}
	c.roles[l.role]--
	c.roles[r]++
	l.role, l.since = r, c.stamp
	c.stamp++
	switch r {
	case roleEager:
		if c.count(roleEager) > 2*c.cfg.Eager {
			if o := c.oldest(roleEager, name); o != nil {
				c.setRole(o.name, roleLazy)
			}
		}
	case roleLazy:
		if c.count(roleLazy) > c.cfg.Lazy {
			if o := c.oldest(roleLazy, c.ring, c.ring2); o != nil {
				c.demote(o)
			}
		}
	}
}

// demote takes l's role away. It stays linked while it owes or is owed
// something, within maxIdleLinks; otherwise it is forgotten (what it was
// owed is re-announced by its peer, what it owed is dropped).
func (c *Core) demote(l *link) {
	c.roles[l.role]--
	c.roles[roleNone]++
	l.role = roleNone
	if len(l.live) > 0 || len(l.acks) > 0 {
		if c.count(roleNone) <= maxIdleLinks {
			return
		}
		c.stats.AcksDropped += uint64(len(l.acks))
	}
	c.removeLink(l)
}

func (c *Core) newLink(name string) *link {
	l := &link{name: name, backoff: c.retryBase()}
	c.roles[roleNone]++
	c.links[name] = l
	c.order = append(c.order, l)
	return l
}

// count is the number of links of role r.
func (c *Core) count(r role) int { return c.roles[r] }

// oldest is the link of role r that took it first, other than except.
func (c *Core) oldest(r role, except ...string) *link {
	var o *link
	for _, l := range c.order {
		if l.role == r && !slices.Contains(except, l.name) && (o == nil || l.since < o.since) {
			o = l
		}
	}
	return o
}

// Peers returns the eager and lazy peers, each sorted.
func (c *Core) Peers() (eager, lazy []string) {
	for _, l := range c.order {
		switch l.role {
		case roleEager:
			eager = append(eager, l.name)
		case roleLazy:
			lazy = append(lazy, l.name)
		}
	}
	slices.Sort(eager)
	slices.Sort(lazy)
	return eager, lazy
}

// removeLink forgets l entirely (its peer is down).
func (c *Core) removeLink(l *link) {
	c.roles[l.role]--
	delete(c.links, l.name)
	c.order = slices.DeleteFunc(c.order, func(o *link) bool { return o == l })
}

// removeIdle forgets links with no role and nothing owed either way.
func (c *Core) removeIdle() {
	c.order = slices.DeleteFunc(c.order, func(l *link) bool {
		if l.role == roleNone && len(l.live) == 0 && len(l.acks) == 0 {
			c.roles[roleNone]--
			delete(c.links, l.name)
			return true
		}
		return false
	})
}

// ackLink returns name's link, creating one with no role if there is room.
func (c *Core) ackLink(name string) *link {
	if l := c.links[name]; l != nil {
		return l
	}
	if c.count(roleNone) >= maxIdleLinks {
		return nil
	}
	return c.newLink(name)
}

// sample gives role r to up to k peers drawn at random from the View that
// have no role yet: random probes first, then a scan from a random offset
// if the View is too small for probes to find enough.
func (c *Core) sample(r role, k int) {
	n := c.view.Len()
	if k <= 0 || n == 0 {
		return
	}
	take := func(name string) bool {
		if name == c.cfg.Self {
			return false
		}
		if l := c.links[name]; l != nil && l.role != roleNone {
			return false
		}
		c.setRole(name, r)
		k--
		return true
	}
	for tries := 4*k + 8; k > 0 && tries > 0; tries-- {
		take(c.view.At(c.rng.IntN(n)))
	}
	for off, i := c.rng.IntN(n), 0; k > 0 && i < n; i++ {
		take(c.view.At((off + i) % n))
	}
}

// scanRing finds the ring link: the smallest name after Self, or the
// smallest of all if none is after it. O(View) once (unless the View is a
// SortedView), then only when the ring peer goes down.
func (c *Core) scanRing() string { return c.succ(c.cfg.Self) }

// scanRing2 finds the second ring link: the ring link's own successor
// (other than Self), or "" if RingLinks is 1 or there is none.
func (c *Core) scanRing2() string {
	if c.cfg.RingLinks < 2 || c.ring == "" {
		return ""
	}
	if r := c.succ(c.ring); r != c.ring {
		return r
	}
	return ""
}

// succ is the smallest name in the View after x other than Self, or the
// smallest of all if none is after it.
func (c *Core) succ(x string) string {
	if s, ok := c.view.(SortedView); ok {
		if r := s.Next(x); r != c.cfg.Self {
			return r
		}
		if r := s.Next(c.cfg.Self); r != c.cfg.Self {
			return r
		}
		return ""
	}
	var succ, first string
	for i, n := 0, c.view.Len(); i < n; i++ {
		p := c.view.At(i)
		if p == c.cfg.Self {
			continue
		}
		if p > x && (succ == "" || p < succ) {
			succ = p
		}
		if first == "" || p < first {
			first = p
		}
	}
	if succ != "" {
		return succ
	}
	return first
}

// closerOnRing reports whether p comes after Self before ring does.
func (c *Core) closerOnRing(p string) bool {
	return c.ring == "" || between(c.cfg.Self, p, c.ring)
}

// between reports whether p comes strictly after a and before b on the
// ring of sorted names (wrapping around after the largest); a != b.
func between(a, p, b string) bool {
	if a < b {
		return a < p && p < b
	}
	return p > a || p < b
}

// setRing makes name the ring link (linkRing).
func (c *Core) setRing(name string) {
	c.ring = name
	c.linkRing(name)
}

// setRing2 makes name the second ring link, linked and offered like the
// first.
func (c *Core) setRing2(name string) {
	c.ring2 = name
	c.linkRing(name)
}

// linkRing links a new ring link (lazy unless eager already) and offers
// it every retained message, since its predecessor on the ring may have
// been the one that failed to pass them on. Nothing for "".
func (c *Core) linkRing(name string) {
	if name == "" {
		return
	}
	if l := c.links[name]; l == nil || l.role == roleNone {
		c.setRole(name, roleLazy)
	}
	c.offerRetained(name)
}

// offerRetained offers name every retained Plumtree message.
func (c *Core) offerRetained(name string) {
	l := c.links[name]
	if l == nil {
		return
	}
	c.store.each(func(r *record) {
		if r.plum {
			c.offer(l, r.id)
		}
	})
}

func (c *Core) retryBase() time.Duration { return 2 * c.cfg.GraftTimeout }

// offer queues id for l's next IHAVE, unless it is queued already or
// awaiting acknowledgement.
func (c *Core) offer(l *link, id MsgID) {
	if _, ok := l.live[id]; ok {
		return
	}
	if !c.room(l) {
		return
	}
	l.live[id] = c.stamp
	l.queued = append(l.queued, offer{id: id, seq: c.stamp})
	c.stamp++
	c.armFlush()
	if len(l.queued) > 2*len(l.live)+64 {
		l.queued = slices.DeleteFunc(l.queued, func(o offer) bool { return !c.current(l, o) })
	}
}

// room reports whether l can take one more offer: it holds fewer than
// MaxRetained, counting only ids still retained.
func (c *Core) room(l *link) bool {
	if l.live == nil {
		l.live = make(map[MsgID]uint64)
	}
	if len(l.live) >= c.cfg.MaxRetained {
		for id := range l.live {
			if !c.store.has(id) {
				delete(l.live, id)
			}
		}
	}
	if len(l.live) >= c.cfg.MaxRetained {
		c.stats.OffersDropped++
		return false
	}
	return true
}

// wantAck reports whether offers to l ask for acknowledgement: those to
// the ring link do.
func (c *Core) wantAck(l *link) bool {
	return l.name == c.ring || (c.ring2 != "" && l.name == c.ring2)
}

// pushed records that id's payload was just sent to l; on the ring link it
// is an offer awaiting acknowledgement, re-announced if none comes.
func (c *Core) pushed(l *link, id MsgID) {
	if !c.wantAck(l) {
		return
	}
	if _, ok := l.live[id]; !ok && !c.room(l) {
		return
	}
	l.live[id] = c.stamp
	l.sent = append(l.sent, offer{id: id, seq: c.stamp, at: c.now})
	c.stamp++
	c.armRetry(l)
	if len(l.sent) > 2*len(l.live)+64 {
		c.compactSent(l)
	}
}

// acked records that name holds id: an offer of it needs no more.
func (c *Core) acked(name string, id MsgID) {
	l := c.links[name]
	if l == nil {
		return
	}
	if _, ok := l.live[id]; !ok {
		return
	}
	delete(l.live, id)
	if len(l.live) == 0 {
		l.queued, l.sent = l.queued[:0], l.sent[:0]
		l.retryAt, l.backoff = time.Time{}, c.retryBase()
	}
}

// queueAck queues an acknowledgement of id to name for the next flush.
func (c *Core) queueAck(name string, id MsgID) {
	l := c.ackLink(name)
	if l == nil || len(l.acks) >= maxAcks {
		c.stats.AcksDropped++
		return
	}
	l.acks = append(l.acks, id)
	c.armFlush()
}

// armFlush schedules the next flush, AnnounceEvery after the first thing
// queued (or after the latest time seen, for PeerUp and PeerDown, which
// carry none).
func (c *Core) armFlush() {
	if c.flushAt.IsZero() && !c.now.IsZero() {
		c.flushAt = c.now.Add(c.cfg.AnnounceEvery)
	}
}

func (c *Core) armRetry(l *link) {
	if l.retryAt.IsZero() {
		l.retryAt = c.now.Add(l.backoff)
	}
}

// current reports whether o is l's current offer of a retained message,
// forgetting it if it is current but no longer retained.
func (c *Core) current(l *link, o offer) bool {
	if seq, ok := l.live[o.id]; !ok || seq != o.seq {
		return false
	}
	if !c.store.has(o.id) {
		delete(l.live, o.id)
		return false
	}
	return true
}

// flush sends every link its queued announcements (IHAVEs of at most
// MaxIDs ids; on the ring link asking for acknowledgement and kept until
// it comes) and its acknowledgements, in link order.
func (c *Core) flush() {
	c.flushAt = time.Time{}
	c.plumReady()
	for _, l := range c.order {
		want := c.wantAck(l)
		var ids []MsgID
		for _, o := range l.queued {
			if !c.current(l, o) {
				continue
			}
			ids = append(ids, o.id)
			if want {
				o.at = c.now
				l.sent = append(l.sent, o)
			} else {
				delete(l.live, o.id)
			}
		}
		l.queued = l.queued[:0]
		if len(ids) > 0 {
			if want {
				c.armRetry(l)
			}
			c.sendIDs(KindIHave, l.name, ids, want, false)
		}
		if len(l.acks) > 0 {
			c.sendIDs(KindIHave, l.name, l.acks, false, true)
			l.acks = nil
		}
		if len(l.sent) > 2*len(l.live)+64 {
			c.compactSent(l)
		}
	}
}

// retransmit re-announces, on each link whose retry time has come, the
// offers sent at least retryBase ago and not acknowledged, and doubles the
// link's interval (up to 8 times retryBase). A link with nothing left to
// confirm stops retrying.
func (c *Core) retransmit() {
	base := c.retryBase()
	for _, l := range c.order {
		if l.retryAt.IsZero() || l.retryAt.After(c.now) {
			continue
		}
		var ids []MsgID
		keep := l.sent[:0]
		for _, o := range l.sent {
			if !c.current(l, o) {
				continue
			}
			if !o.at.Add(base).After(c.now) {
				ids = append(ids, o.id)
				o.at = c.now
			}
			keep = append(keep, o)
		}
		clear(l.sent[len(keep):])
		l.sent = keep
		l.retryAt = time.Time{}
		if len(ids) > 0 {
			c.stats.Reannounced += uint64(len(ids))
			c.sendIDs(KindIHave, l.name, ids, true, false)
			l.backoff = min(2*l.backoff, 8*base)
		}
		if len(l.sent) > 0 {
			c.armRetry(l)
		} else if len(l.live) == 0 {
			l.backoff = base
		}
	}
}

// compactSent drops sent offers that are no longer current.
func (c *Core) compactSent(l *link) {
	l.sent = slices.DeleteFunc(l.sent, func(o offer) bool { return !c.current(l, o) })
}
