package dissem

import (
	"slices"
	"time"
)

// Plumtree (Leitão, Pereira, Rodrigues 2007) over a full-membership View
// and a lossy network. See the package comment for what this adds to the
// paper: acknowledged offers, the ring link, and sampling on PeerUp.

// plumReady samples the eager set the first time Plumtree is used, finds
// the ring link when it is unknown, and tops the lazy set up to Lazy from
// the View (lazy peers become eager when they push a new message).
func (c *Core) plumReady() {
	if !c.filled {
		c.filled = true
		c.sample(roleEager, c.cfg.Eager)
		c.ringStale = true
	}
	if c.ringStale {
		c.ringStale = false
		if r := c.scanRing(); r != c.ring || (r != "" && c.links[r] == nil) {
			c.setRing(r)
		}
		if r := c.scanRing2(); r != c.ring2 || (r != "" && c.links[r] == nil) {
			c.setRing2(r)
		}
	}
	if n := c.count(roleLazy); n < c.cfg.Lazy && n+c.count(roleEager) < c.view.Len() {
		c.sample(roleLazy, c.cfg.Lazy-n)
	}
}

// broadcastPlum delivers a local change and pushes it to the eager peers,
// announcing it to the lazy ones.
func (c *Core) broadcastPlum(id MsgID, payload []byte) {
	c.plumReady()
	c.retain(record{id: id, payload: payload, plum: true})
	c.deliver(Delivered{ID: id, Payload: payload, From: c.cfg.Self})
	c.spread(id, payload, 0, "", nil)
}

// spread pushes id to the eager peers and offers it to the lazy ones, but
// not to from or to skip (they hold it).
func (c *Core) spread(id MsgID, payload []byte, round uint16, from string, skip []string) {
	for _, l := range c.order {
		if l.name == from || slices.Contains(skip, l.name) || !c.view.Has(l.name) {
			continue
		}
		switch l.role {
		case roleEager:
			c.send(Message{Kind: KindGossip, To: l.name, ID: id, Round: round, Payload: payload,
				Strategy: Plumtree, WantAck: c.wantAck(l)})
			c.pushed(l, id)
		case roleLazy:
			c.offer(l, id)
		}
	}
}

// onPlumGossip: a new message is delivered, its sender becomes eager, and
// it is passed on (pushed to eager peers, offered to lazy ones) with its
// graft timer cancelled; whoever asked for acknowledgement of it gets one.
// A duplicate makes its sender lazy and is answered by a PRUNE naming it
// (which acknowledges it too).
func (c *Core) onPlumGossip(m Message) {
	c.plumReady()
	c.acked(m.From, m.ID)
	if c.store.has(m.ID) || m.ID.Origin == c.cfg.Self {
		c.stats.Duplicates++
		if r := c.store.get(m.ID); r != nil && r.grafted != "" && r.grafted != m.From {
			// The tree delivered it after all: the graft raced a slow
			// path rather than repairing a broken one. Keep the tree's
			// link and drop the one the graft added, which would
			// otherwise close a cycle and cut the tree elsewhere.
			g := r.grafted
			r.grafted = ""
			c.stats.GraftsUndone++
			if l := c.links[g]; l != nil && l.role == roleEager {
				c.setRole(g, roleLazy)
			}
			c.send(Message{Kind: KindPrune, To: g})
			if m.WantAck {
				c.queueAck(m.From, m.ID)
			}
			return
		}
		if l := c.links[m.From]; l != nil && l.role == roleEager {
			// Pruned only after PruneAfter duplicates in a row: a link
			// that is a cycle's redundant edge for one writer is often
			// the tree's only path for another.
			l.dups++
			if int(l.dups) < c.cfg.PruneAfter {
				if m.WantAck {
					c.queueAck(m.From, m.ID)
				}
				return
			}
			l.dups = 0
			c.setRole(m.From, roleLazy)
		}
		c.send(Message{Kind: KindPrune, To: m.From, IDs: []MsgID{m.ID}})
		return
	}
	if l := c.links[m.From]; l != nil {
		l.dups = 0
	}
	round := nextRound(m.Round)
	rec := record{id: m.ID, payload: m.Payload, round: round, plum: true}
	if p := c.grafts.byID[m.ID]; p != nil && slices.Contains(p.announcers[:p.next], m.From) {
		rec.grafted = m.From
	}
	c.retain(rec)
	c.deliver(Delivered{ID: m.ID, Payload: m.Payload, From: m.From, Round: m.Round})
	c.setRole(m.From, roleEager)
	if m.WantAck {
		c.queueAck(m.From, m.ID)
	}
	var announcers []string
	if p := c.grafts.byID[m.ID]; p != nil {
		announcers = p.announcers
		for _, a := range p.ackTo {
			if a != m.From || !m.WantAck {
				c.queueAck(a, m.ID)
			}
		}
		c.grafts.remove(m.ID)
	}
	c.spread(m.ID, m.Payload, round, m.From, announcers)
}

// onIHave: the sender holds these ids, so offers of them to it are done.
// Unless this is an acknowledgement, ids held here are acknowledged if
// asked, and the others awaited from the sender: grafted after
// GraftTimeout if not received.
func (c *Core) onIHave(m Message) {
	c.plumReady()
	for _, id := range m.IDs {
		c.acked(m.From, id)
		if m.Ack {
			continue
		}
		if c.store.has(id) || id.Origin == c.cfg.Self {
			if m.WantAck {
				c.queueAck(m.From, id)
			}
			continue
		}
		if c.grafts.announce(id, m.From, m.WantAck, c.now.Add(c.graftDelay()), c.cfg.MaxRetained) {
			c.stats.PendingDropped++
		}
	}
}

// onGraft sends the sender the retained payloads it asks for and makes it
// eager. Ids not retained (or not Plumtree messages) are counted and
// skipped; a GRAFT for none held changes nothing.
func (c *Core) onGraft(m Message) {
	c.plumReady()
	for _, id := range m.IDs {
		r := c.store.get(id)
		if r == nil || !r.plum {
			c.stats.UnknownGrafts++
			continue
		}
		c.setRole(m.From, roleEager)
		l := c.links[m.From]
		c.send(Message{Kind: KindGossip, To: m.From, ID: id, Round: r.round, Payload: r.payload,
			Strategy: Plumtree, WantAck: c.wantAck(l)})
		c.pushed(l, id)
	}
}

// onPrune makes the sender lazy; the ids it names are acknowledged.
func (c *Core) onPrune(m Message) {
	c.plumReady()
	for _, id := range m.IDs {
		c.acked(m.From, id)
	}
	if l := c.links[m.From]; l != nil && l.role == roleEager {
		c.setRole(m.From, roleLazy)
	}
}

// PeerDown tells the core that name failed or left (call it after the
// View no longer has it). It is dropped from both sets, from what is owed
// to it, and as an announcer; the set it was in is refilled from the View.
func (c *Core) PeerDown(name string) {
	if name == c.cfg.Self {
		return
	}
	c.grafts.dropPeer(name)
	l := c.links[name]
	if l != nil {
		c.removeLink(l)
	}
	if !c.filled {
		return
	}
	if name == c.ring2 {
		c.ring2, c.ringStale = "", true
		c.armFlush()
	}
	if name == c.ring {
		// Found again at the next flush (or earlier use), so that a burst
		// of PeerDowns costs one scan of the View.
		c.ring, c.ringStale = "", true
		c.armFlush()
	}
	if l == nil {
		return
	}
	switch l.role {
	case roleEager:
		if c.count(roleEager) < c.cfg.Eager {
			c.sample(roleEager, 1)
		}
	case roleLazy:
		if c.count(roleLazy) < c.cfg.Lazy {
			c.sample(roleLazy, 1)
		}
	}
}

// PeerUp tells the core that name came up (call it after the View has it).
// Once the sets are in use, the peer is linked if it is the new ring link,
// as an eager peer if this node has none, or else as a lazy one with
// probability Lazy/View.Len() (replacing the oldest lazy peer): so the sets
// stay a random sample of the View as it changes, a healed partition is
// bridged, and a peer coming up is linked by about Lazy nodes, not by every
// node whose pruned eager set is below Eager. A peer linked this way is
// offered every retained message.
func (c *Core) PeerUp(name string) {
	if name == c.cfg.Self || !c.view.Has(name) || !c.filled {
		return
	}
	if l := c.links[name]; l != nil && l.role != roleNone {
		return
	}
	if !c.ringStale && c.closerOnRing(name) {
		c.setRing(name)
		if c.cfg.RingLinks >= 2 {
			// The old ring link becomes the second: found at the next
			// flush.
			c.ringStale = true
			c.armFlush()
		}
		return
	}
	if c.cfg.RingLinks >= 2 && !c.ringStale && c.ring != "" && c.newRing2(name) {
		c.setRing2(name)
		return
	}
	switch {
	case c.count(roleEager) == 0:
		c.setRole(name, roleEager)
	case c.rng.IntN(c.view.Len()) < c.cfg.Lazy:
		c.setRole(name, roleLazy)
	default:
		return
	}
	c.offerRetained(name)
}

// newRing2 reports whether name, just come up, is now the ring link's
// successor (other than Self): it comes between the ring link and the
// second one, or it is the only other node after the ring link. A
// constant-time test: the successor is never scanned for here, since
// every peer coming up would cost each core O(View). Between the ring
// link and the second ring link Self never lies (the second is found
// going on from the ring link before coming back to Self).
func (c *Core) newRing2(name string) bool {
	if name == c.ring || name == c.ring2 {
		return false
	}
	if c.ring2 == "" {
		return true // only Self and the ring link were up: name follows the ring link
	}
	return between(c.ring, name, c.ring2)
}

// graftDelay is how long an announced id is awaited before its first
// GRAFT: GraftTimeout plus a random part of up to GraftTimeout (unless
// NoGraftSpread). The nodes
// of a fragment of the tree hear of a message they lack at about the same
// time (the IHAVEs are flushed together); with equal timers they would all
// graft it at once, each adding a link into the same fragment, and the
// duplicates over those links would prune the tree apart again. Spread
// out, the first graft's payload usually sweeps the fragment before the
// other timers fire.
func (c *Core) graftDelay() time.Duration {
	if c.cfg.NoGraftSpread {
		return c.cfg.GraftTimeout
	}
	return c.cfg.GraftTimeout + time.Duration(c.rng.Int64N(int64(c.cfg.GraftTimeout)+1))
}
