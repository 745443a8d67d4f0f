package dissem

// Direct and Tree: fire and forget. Neither repairs a lost message (the
// scope's anti-entropy does); both only remember ids, to drop duplicates.

// broadcastDirect sends one copy to every peer of the View.
func (c *Core) broadcastDirect(id MsgID, payload []byte) {
	c.retain(record{id: id})
	c.deliver(Delivered{ID: id, Payload: payload, From: c.cfg.Self})
	for i, n := 0, c.view.Len(); i < n; i++ {
		if p := c.view.At(i); p != c.cfg.Self {
			c.send(Message{Kind: KindGossip, To: p, ID: id, Payload: payload, Strategy: Direct})
		}
	}
}

// onDirect delivers a Direct message if it is new.
func (c *Core) onDirect(m Message) {
	if c.store.has(m.ID) || m.ID.Origin == c.cfg.Self {
		c.stats.Duplicates++
		return
	}
	c.retain(record{id: m.ID})
	c.deliver(Delivered{ID: m.ID, Payload: m.Payload, From: m.From, Round: m.Round})
}

// broadcastTree shuffles the View and deals it into a relay tree.
func (c *Core) broadcastTree(id MsgID, payload []byte) {
	c.retain(record{id: id})
	c.deliver(Delivered{ID: id, Payload: payload, From: c.cfg.Self})
	n := c.view.Len()
	names := make([]string, 0, n)
	for i := range n {
		if p := c.view.At(i); p != c.cfg.Self {
			names = append(names, p)
		}
	}
	c.rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	c.deal(id, payload, 0, names)
}

// onTree delivers a Tree message if it is new and covers its RelayTo: the
// names in this node's View, each once, not this node or the sender.
func (c *Core) onTree(m Message) {
	if c.store.has(m.ID) || m.ID.Origin == c.cfg.Self {
		c.stats.Duplicates++
		return
	}
	c.retain(record{id: m.ID})
	c.deliver(Delivered{ID: m.ID, Payload: m.Payload, From: m.From, Round: m.Round})
	if len(m.RelayTo) == 0 {
		return
	}
	names := make([]string, 0, len(m.RelayTo))
	seen := make(map[string]struct{}, len(m.RelayTo))
	for _, p := range m.RelayTo {
		if p == c.cfg.Self || p == m.From || len(p) > MaxNameLen || !c.view.Has(p) {
			continue
		}
		if _, dup := seen[p]; dup {
			continue
		}
		seen[p] = struct{}{}
		names = append(names, p)
	}
	c.deal(m.ID, m.Payload, nextRound(m.Round), names)
}

// deal sends to names through a tree of fan-out FanOut: names are dealt
// round-robin into FanOut groups (sizes differ by at most one); the first
// of each group gets the message with the rest of its group to cover. With
// FanOut names or fewer, each gets a copy directly. Every name gets one
// copy, each node sends at most FanOut, and the last is log_FanOut(N) hops
// from the origin.
func (c *Core) deal(id MsgID, payload []byte, round uint16, names []string) {
	k := c.cfg.FanOut
	if len(names) <= k {
		for _, p := range names {
			c.send(Message{Kind: KindGossip, To: p, ID: id, Round: round, Payload: payload, Strategy: Tree})
		}
		return
	}
	for g := range k {
		group := make([]string, 0, (len(names)+k-1)/k)
		for i := g; i < len(names); i += k {
			group = append(group, names[i])
		}
		var rest []string
		if len(group) > 1 {
			rest = group[1:]
		}
		c.send(Message{Kind: KindGossip, To: group[0], ID: id, Round: round, Payload: payload, Strategy: Tree, RelayTo: rest})
	}
}
