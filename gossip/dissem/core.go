package dissem

import (
	"math/rand/v2"
	"time"
)

// View is the scope's current membership as the driver knows it
// (memberlist's alive nodes serving the scope, self excluded). The core
// reads it, never copies it whole. The driver changes it before calling
// PeerUp or PeerDown for the change.
type View interface {
	Len() int
	// At returns the i-th peer, 0 <= i < Len(); the order may change
	// between calls that follow a membership change.
	At(i int) string
	Has(name string) bool
}

// SortedView is a View that can find the ring link itself, faster than the
// core's O(Len) scan (a driver holding the names sorted: O(log Len)). The
// core uses it when its View implements it.
type SortedView interface {
	View
	// Next returns the smallest name in the View greater than name, or the
	// smallest of all if none is greater, or "" if the View is empty.
	Next(name string) string
}

// Core is one node's dissemination state machine for one scope. It is not
// safe for concurrent use: the driver serialises calls.
type Core struct {
	cfg  Config
	view View
	rng  *rand.Rand
	now  time.Time // the latest time given to Broadcast, Step or Tick

	out       []Message
	delivered []Delivered
	stats     Stats

	store  store
	grafts grafts

	// Plumtree links (see links.go).
	links     map[string]*link
	order     []*link // links in creation order: every output follows it
	roles     [3]int  // links by role
	stamp     uint64  // orders roles (oldest first) and offers
	filled    bool    // the sets were sampled once
	ring      string  // the next name after Self in sorted order: always linked
	ring2     string  // the ring link's successor, with RingLinks 2: also always linked
	ringStale bool
	flushAt   time.Time // when queued IHAVEs go out; zero if none queued
}

// New returns a core for cfg (zero fields take the defaults) reading view
// and drawing its randomness from rng.
func New(cfg Config, view View, rng *rand.Rand) (*Core, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if view == nil {
		return nil, ErrNilView
	}
	if rng == nil {
		return nil, ErrNilRand
	}
	return &Core{cfg: cfg.withDefaults(), view: view, rng: rng, links: make(map[string]*link)}, nil
}

// Config returns the configuration in use, defaults applied.
func (c *Core) Config() Config { return c.cfg }

// Broadcast spreads a local change with the configured strategy (Auto:
// Direct while View.Len() <= DirectMax, Plumtree above) and delivers it
// here too. An id already held, or with an empty or overlong origin, is
// ignored (Stats.BroadcastsIgnored).
func (c *Core) Broadcast(now time.Time, id MsgID, payload []byte) {
	c.advance(now)
	if !validID(id) || c.store.has(id) {
		c.stats.BroadcastsIgnored++
		return
	}
	c.stats.Broadcasts++
	s := c.cfg.Strategy
	if s == Auto {
		s = Plumtree
		if c.view.Len() <= c.cfg.DirectMax {
			s = Direct
		}
	}
	switch s {
	case Direct:
		c.broadcastDirect(id, payload)
	case Tree:
		c.broadcastTree(id, payload)
	default:
		c.broadcastPlum(id, payload)
	}
}

// Step handles a received message. Malformed messages (Stats.Invalid) and
// messages from peers not in the View (Stats.Unknown) are ignored.
func (c *Core) Step(now time.Time, m Message) {
	c.advance(now)
	if !c.valid(m) {
		c.stats.Invalid++
		return
	}
	if !c.view.Has(m.From) {
		c.stats.Unknown++
		return
	}
	switch m.Kind {
	case KindGossip:
		c.stats.GossipReceived++
		switch m.Strategy {
		case Direct:
			c.onDirect(m)
		case Tree:
			c.onTree(m)
		default:
			c.onPlumGossip(m)
		}
	case KindIHave:
		if m.Ack {
			c.stats.AckReceived++
		} else {
			c.stats.IHaveReceived++
		}
		c.onIHave(m)
	case KindGraft:
		c.stats.GraftReceived++
		c.onGraft(m)
	case KindPrune:
		c.stats.PruneReceived++
		c.onPrune(m)
	}
}

// Tick runs the timers due at now: retention, grafts, re-announcements of
// unacknowledged offers, and the IHAVE flush.
func (c *Core) Tick(now time.Time) {
	c.advance(now)
	c.fireGrafts()
	c.retransmit()
	if !c.flushAt.IsZero() && !c.flushAt.After(c.now) {
		c.flush()
	}
	c.removeIdle()
}

// NextDeadline is the earliest time at which Tick has something to do, if
// any. The driver calls Tick then, and need not call it before.
func (c *Core) NextDeadline() (time.Time, bool) {
	var best time.Time
	ok := false
	consider := func(t time.Time) {
		if !ok || t.Before(best) {
			best, ok = t, true
		}
	}
	if !c.flushAt.IsZero() {
		consider(c.flushAt)
	}
	if t, has := c.grafts.deadline(); has {
		consider(t)
	}
	for _, l := range c.order {
		if !l.retryAt.IsZero() {
			consider(l.retryAt)
		}
	}
	if t, has := c.store.oldest(); has {
		// A slack of Retain/8 lets one Tick expire a batch.
		consider(t.Add(c.cfg.Retain + c.cfg.Retain/8))
	}
	return best, ok
}

// Ready drains the messages to send and the changes to deliver, in the
// order they were produced. The slices belong to the caller.
func (c *Core) Ready() (out []Message, delivered []Delivered) {
	out, delivered = c.out, c.delivered
	c.out, c.delivered = nil, nil
	return out, delivered
}

// Stats returns the counters.
func (c *Core) Stats() Stats { return c.stats }

// Retained is the number of messages retained (ids remembered).
func (c *Core) Retained() int { return c.store.len() }

// advance moves the core's clock to now (never back) and drops what Retain
// no longer covers.
func (c *Core) advance(now time.Time) {
	if now.After(c.now) {
		c.now = now
	}
	c.stats.Expired += uint64(c.store.expire(c.now.Add(-c.cfg.Retain)))
}

func (c *Core) retain(r record) {
	r.at = c.now
	if c.store.add(r, c.cfg.MaxRetained) {
		c.stats.Evicted++
	}
}

func (c *Core) deliver(d Delivered) {
	c.stats.Delivered++
	c.delivered = append(c.delivered, d)
}

// send queues m from this node.
func (c *Core) send(m Message) {
	m.From = c.cfg.Self
	switch m.Kind {
	case KindGossip:
		c.stats.GossipSent++
	case KindIHave:
		if m.Ack {
			c.stats.AckSent++
		} else {
			c.stats.IHaveSent++
			c.stats.IDsAnnounced += uint64(len(m.IDs))
		}
	case KindGraft:
		c.stats.GraftSent++
	case KindPrune:
		c.stats.PruneSent++
	}
	c.out = append(c.out, m)
}

// sendIDs sends ids to `to` in messages of at most MaxIDs ids.
func (c *Core) sendIDs(kind Kind, to string, ids []MsgID, wantAck, ack bool) {
	for len(ids) > 0 {
		n := min(len(ids), MaxIDs)
		c.send(Message{Kind: kind, To: to, IDs: ids[:n:n], WantAck: wantAck, Ack: ack})
		ids = ids[n:]
	}
}

func validName(s string) bool { return s != "" && len(s) <= MaxNameLen }

func validID(id MsgID) bool { return validName(id.Origin) }

// valid reports whether m is well formed and addressed to this node.
func (c *Core) valid(m Message) bool {
	if !validName(m.From) || m.From == c.cfg.Self || (m.To != "" && m.To != c.cfg.Self) {
		return false
	}
	switch m.Kind {
	case KindGossip:
		if !validID(m.ID) {
			return false
		}
		switch m.Strategy {
		case Direct, Plumtree:
			return len(m.RelayTo) == 0
		case Tree:
			return len(m.RelayTo) <= MaxRelayTo
		}
		return false
	case KindIHave, KindGraft, KindPrune:
		if len(m.IDs) > MaxIDs || (m.Kind != KindPrune && len(m.IDs) == 0) {
			return false
		}
		for _, id := range m.IDs {
			if !validID(id) {
				return false
			}
		}
		return true
	}
	return false
}

// nextRound is the Round a message received at round r is passed on with.
func nextRound(r uint16) uint16 {
	if r == ^uint16(0) {
		return r
	}
	return r + 1
}
