package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip/dissem"
	"github.com/vmihailenco/msgpack/v5"
)

// Dissemination in large scopes: past Config.DirectMax scope peers, a
// node's batches go out through a dissem.Core running Plumtree (eager
// push down a spanning tree, lazy announcements, grafts and prunes), so
// a writer sends a handful of messages per batch rather than one per
// peer, and every node receives about one copy. The core decides; this
// file drives it: the view of the scope's alive peers, the clock (a
// ticker), memberlist's peer events, and the wire.

// defaultDirectMax is Config.DirectMax's default: dissem's.
const defaultDirectMax = 32

// plumScope is one scope's core and what it needs.
type plumScope struct {
	mu   sync.Mutex
	core *dissem.Core
	view peerView
	seq  uint64
}

// peerView is a dissem.View over the scope's alive peers, rebuilt when
// the peer table has changed since it was taken (Node.peersVer).
type peerView struct {
	ver   uint64
	names []string
	set   map[string]struct{}
}

func (v *peerView) Len() int          { return len(v.names) }
func (v *peerView) At(i int) string   { return v.names[i] }
func (v *peerView) Has(n string) bool { _, ok := v.set[n]; return ok }

// directMax resolves Config.DirectMax: 0 is the default.
func directMax(c int) int {
	if c == 0 {
		return defaultDirectMax
	}
	return c
}

// newPlumScopes makes a core per scope. The sequence numbers of this
// run's batches start at the clock, so those of a restarted node do not
// repeat ids its peers still remember (dissem's Retain).
func (n *Node) newPlumScopes() error {
	n.plum = make(map[string]*plumScope, len(n.order))
	for i, s := range n.order {
		cfg := dissem.DefaultConfig(n.self.Name)
		cfg.Strategy = dissem.Plumtree
		if n.cfg.PlumtreeTuning != nil {
			n.cfg.PlumtreeTuning(&cfg)
			cfg.Self, cfg.Strategy = n.self.Name, dissem.Plumtree
		}
		ps := &plumScope{seq: uint64(time.Now().UnixNano())}
		n.rngMu.Lock()
		seed := n.rng.Uint64()
		n.rngMu.Unlock()
		core, err := dissem.New(cfg, &ps.view, rand.New(rand.NewPCG(seed, uint64(i))))
		if err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		ps.core = core
		n.plum[s] = ps
	}
	return nil
}

// refresh brings the view up to date with the peer table. The caller
// holds ps.mu.
func (n *Node) refresh(scope string, ps *plumScope) {
	ver := n.peersVer.Load()
	if ps.view.set != nil && ps.view.ver == ver {
		return
	}
	names := ps.view.names[:0]
	for _, p := range n.scopePeers(scope) {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	set := make(map[string]struct{}, len(names))
	for _, name := range names {
		set[name] = struct{}{}
	}
	ps.view = peerView{ver: ver, names: names, set: set}
}

// drive runs one call on a scope's core with its view up to date, then
// sends what the core wants sent, wakes plumLoop if the call set an
// earlier deadline, and returns the core's deliveries.
func (n *Node) drive(scope string, ps *plumScope, call func(c *dissem.Core)) []dissem.Delivered {
	ps.mu.Lock()
	n.refresh(scope, ps)
	call(ps.core)
	out, delivered := ps.core.Ready()
	dl, ok := ps.core.NextDeadline()
	ps.mu.Unlock()
	n.kickPlum(dl, ok)
	n.sendPlum(scope, out)
	return delivered
}

// plumBroadcast spreads one packed deltas message of a local batch (its
// own delivery is dropped: the batch is merged already).
func (n *Node) plumBroadcast(scope string, msg []byte) {
	ps := n.plum[scope]
	n.drive(scope, ps, func(c *dissem.Core) {
		ps.seq++ // under ps.mu
		c.Broadcast(time.Now(), dissem.MsgID{Origin: n.self.Name, Seq: ps.seq}, msg)
	})
}

// plumStep takes a received Plumtree message: the core's answers go out,
// and the batches it delivers for the first time are merged as any
// received deltas message (their owners vouched for, held back on gaps).
func (n *Node) plumStep(scope string, m dissem.Message) {
	ps, ok := n.plum[scope]
	if !ok {
		return
	}
	for _, d := range n.drive(scope, ps, func(c *dissem.Core) { c.Step(time.Now(), m) }) {
		inner, err := decodeMessage(d.Payload)
		if err != nil || inner.kind != msgDeltas || inner.scope != scope {
			n.stats.decodeErrors.Add(1)
			continue
		}
		n.mergeDeltas(scope, inner.payloads, nil)
	}
}

// plumPeer tells the cores that a peer came up (those of the scopes it
// serves) or went down (all of them).
func (n *Node) plumPeer(name string, up bool, scopes []string) {
	for _, s := range n.order {
		if up && !slices.Contains(scopes, s) {
			continue
		}
		n.drive(s, n.plum[s], func(c *dissem.Core) {
			if up {
				c.PeerUp(name)
			} else {
				c.PeerDown(name)
			}
		})
	}
}

// plumLoop runs the cores' timers (announcements flushed, grafts sent,
// retention expired) at their deadlines: it sleeps until the earliest
// one, and is woken (plumKick) when a step sets an earlier one. An idle
// node with no deadline does not wake at all.
func (n *Node) plumLoop() {
	defer n.wg.Done()
	n.plumNext.Store(math.MaxInt64)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-n.plumKick:
		case <-t.C:
		}
		// While it looks, every step kicks it (its deadline is before
		// this): one set meanwhile is seen on the next pass at once.
		n.plumNext.Store(math.MaxInt64)
		now := time.Now()
		next := now.Add(time.Hour)
		for _, s := range n.order {
			ps := n.plum[s]
			ps.mu.Lock()
			dl, ok := ps.core.NextDeadline()
			if ok && !now.Before(dl) {
				n.refresh(s, ps)
				ps.core.Tick(now)
				out, _ := ps.core.Ready()
				dl, ok = ps.core.NextDeadline()
				ps.mu.Unlock()
				n.sendPlum(s, out)
			} else {
				ps.mu.Unlock()
			}
			if ok && dl.Before(next) {
				next = dl
			}
		}
		// A deadline already due (set while sending) is taken at once.
		n.plumNext.Store(next.UnixNano())
		t.Reset(max(time.Until(next), 0))
	}
}

// kickPlum wakes plumLoop if a core the caller just stepped has a
// deadline earlier than the one the loop sleeps until.
func (n *Node) kickPlum(dl time.Time, ok bool) {
	if !ok || dl.UnixNano() >= n.plumNext.Load() {
		return
	}
	select {
	case n.plumKick <- struct{}{}:
	default:
	}
}

// sendPlum sends a core's messages: as packets, or as a stream when a
// batch does not fit one.
func (n *Node) sendPlum(scope string, out []dissem.Message) {
	for _, m := range out {
		to := n.peerNode(m.To)
		if to == nil {
			continue // gone since the core chose it; its grafts route around
		}
		msg := encodePlum(scope, n.self.Name, m)
		kind := KindSync // announcements, grafts, prunes
		if m.Kind == dissem.KindGossip {
			kind = KindDeltas
			n.stats.plumPayloads.Add(1)
		}
		n.sendTo(to, kind, msg)
	}
}

// Plumtree wire message (msgPlum):
//
//	[1, 6, scope, from, kind, flags, round, origin, seq, payload, [origin, seq, ...]]
//
// kind is dissem's; flags bit 0 WantAck, bit 1 Ack; origin, seq and
// payload are a Gossip's change (empty otherwise); the list is the ids of
// an IHave, Graft or Prune.
const (
	plumWantAck = 1 << iota
	plumAck
)

func encodePlum(scope, from string, m dissem.Message) []byte {
	var buf bytes.Buffer
	buf.Grow(64 + len(m.Payload) + 24*len(m.IDs))
	enc := msgpack.NewEncoder(&buf)
	_ = enc.EncodeArrayLen(11)
	_ = enc.EncodeUint(wireVersion)
	_ = enc.EncodeUint(msgPlum)
	_ = enc.EncodeString(scope)
	_ = enc.EncodeString(from)
	_ = enc.EncodeUint(uint64(m.Kind))
	flags := uint64(0)
	if m.WantAck {
		flags |= plumWantAck
	}
	if m.Ack {
		flags |= plumAck
	}
	_ = enc.EncodeUint(flags)
	_ = enc.EncodeUint(uint64(m.Round))
	_ = enc.EncodeString(m.ID.Origin)
	_ = enc.EncodeUint(m.ID.Seq)
	_ = enc.EncodeBytes(m.Payload)
	_ = enc.EncodeArrayLen(2 * len(m.IDs))
	for _, id := range m.IDs {
		_ = enc.EncodeString(id.Origin)
		_ = enc.EncodeUint(id.Seq)
	}
	return buf.Bytes()
}

// plum reads a msgPlum's fields after its kind; the caller checked
// the field count.
func (r *reader) plum(m *message) {
	m.scope = r.str("scope")
	m.from = r.str("from")
	p := dissem.Message{From: m.from, Strategy: dissem.Plumtree}
	k := r.Uint("plumtree kind")
	flags := r.Uint("flags")
	round := r.Uint("round")
	if r.OK() && (k < uint64(dissem.KindGossip) || k > uint64(dissem.KindPrune) || flags > plumWantAck|plumAck || round > 1<<16-1) {
		r.Fail("message", fmt.Errorf("plumtree kind %d, flags %d, round %d", k, flags, round))
	}
	p.Kind, p.Round = dissem.Kind(k), uint16(round)
	p.WantAck, p.Ack = flags&plumWantAck != 0, flags&plumAck != 0
	origin := r.String("origin")
	seq := r.Uint("seq")
	payload := r.Bytes("payload")
	if r.OK() && p.Kind == dissem.KindGossip {
		if err := crdt.ValidName(origin); err != nil {
			r.Fail("origin", err)
		}
		if payload == nil {
			r.Fail("payload", errors.New("a gossip without a payload"))
		}
		p.ID = dissem.MsgID{Origin: origin, Seq: seq}
		p.Payload = payload
	}
	n := r.ArrayLen("ids", 2)
	if r.OK() && (n%2 != 0 || n > 2*dissem.MaxIDs) {
		r.Fail("message", fmt.Errorf("%d id fields, want pairs, at most %d ids", n, dissem.MaxIDs))
	}
	for i := 0; i < n/2 && r.OK(); i++ {
		p.IDs = append(p.IDs, dissem.MsgID{Origin: r.str("id origin"), Seq: r.Uint("id seq")})
	}
	m.plum = p
}

// plumDisseminate packs a local batch into deltas messages, each small
// enough to travel as a packet with Plumtree's envelope when it can, and
// spreads each with the scope's core.
func (n *Node) plumDisseminate(scope string, ds [][]byte) {
	msgs := packAll(scope, nil, ds, n.cfg.MaxPacketBytes-plumOverhead)
	if msgs == nil {
		msgs = packAll(scope, nil, ds, n.push.StreamBytes) // a delta too large for a packet: streams
	}
	for _, msg := range msgs {
		n.plumBroadcast(scope, msg)
	}
}

// plumOverhead bounds the bytes encodePlum adds around a payload: the
// array and field headers, the scope, the sender and the origin (names
// of at most 255 bytes), the kind, flags, round and sequence number.
const plumOverhead = 32 + 3*(255+3)
