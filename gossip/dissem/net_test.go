package dissem

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// setView is a node's View in tests: a sorted list of names.
type setView struct {
	names []string
	has   map[string]bool
}

func newSetView(names []string) *setView {
	v := &setView{has: map[string]bool{}}
	for _, n := range names {
		v.add(n)
	}
	return v
}

func (v *setView) Len() int             { return len(v.names) }
func (v *setView) At(i int) string      { return v.names[i] }
func (v *setView) Has(name string) bool { return v.has[name] }

func (v *setView) add(name string) {
	if v.has[name] {
		return
	}
	v.has[name] = true
	i, _ := slices.BinarySearch(v.names, name)
	v.names = slices.Insert(v.names, i, name)
}

func (v *setView) remove(name string) {
	if !v.has[name] {
		return
	}
	delete(v.has, name)
	i, _ := slices.BinarySearch(v.names, name)
	v.names = slices.Delete(v.names, i, i+1)
}

// fataler is what the harness needs of *testing.T, *testing.B and
// *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

type netNode struct {
	name    string
	core    *Core
	view    *setView
	crashed bool
}

// network is an instant in-test network of cores: messages wait in flight
// until a test delivers or drops them, and time moves only when told.
type network struct {
	tb        fataler
	t0, now   time.Time
	names     []string // sorted
	nodes     map[string]*netNode
	inflight  []Message
	cut       map[[2]string]bool
	delivered map[string]map[MsgID]int // node -> id -> times delivered
	payloads  map[string]int           // node -> Gossip messages received
	sent      int                      // messages sent, all kinds
	dropped   int
	log       func(string) // if set, every event, for determinism checks
}

var testEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// newNetwork builds one core per name, each viewing all the others.
func newNetwork(tb fataler, names []string, cfg func(self string) Config, seed uint64) *network {
	tb.Helper()
	n := &network{
		tb: tb, t0: testEpoch, now: testEpoch,
		names: slices.Sorted(slices.Values(names)),
		nodes: map[string]*netNode{}, cut: map[[2]string]bool{},
		delivered: map[string]map[MsgID]int{}, payloads: map[string]int{},
	}
	for i, name := range n.names {
		others := slices.DeleteFunc(slices.Clone(n.names), func(o string) bool { return o == name })
		v := newSetView(others)
		core, err := New(cfg(name), v, rand.New(rand.NewPCG(seed, uint64(i))))
		if err != nil {
			tb.Fatalf("New(%s): %v", name, err)
		}
		n.nodes[name] = &netNode{name: name, core: core, view: v}
		n.delivered[name] = map[MsgID]int{}
	}
	return n
}

func (n *network) node(tb fataler, name string) *netNode {
	tb.Helper()
	nd := n.nodes[name]
	if nd == nil {
		tb.Fatalf("unknown node %q", name)
	}
	return nd
}

func (n *network) emit(s string) {
	if n.log != nil {
		n.log(s)
	}
}

// collect drains a node's Ready: its messages go in flight; it returns the
// formatted deliveries.
func (n *network) collect(nd *netNode) []string {
	out, del := nd.core.Ready()
	var lines []string
	for _, m := range out {
		if nd.crashed {
			continue
		}
		n.sent++
		n.inflight = append(n.inflight, m)
		n.emit("send " + fmtMsg(m))
	}
	for _, d := range del {
		n.delivered[nd.name][d.ID]++
		s := fmt.Sprintf("%s delivers %s (from %s, round %d)", nd.name, d.ID, d.From, d.Round)
		n.emit(s)
		lines = append(lines, s)
	}
	return lines
}

func (n *network) broadcast(tb fataler, name string, id MsgID) ([]string, []string) {
	nd := n.node(tb, name)
	before := len(n.inflight)
	nd.core.Broadcast(n.now, id, []byte(id.String()))
	del := n.collect(nd)
	return fmtMsgs(n.inflight[before:]), del
}

// deliverAt delivers the in-flight message i (or drops it if its receiver
// is crashed or cut off) and returns what happened.
func (n *network) deliverAt(i int) (msg string, dels []string) {
	m := n.inflight[i]
	n.inflight = slices.Delete(n.inflight, i, i+1)
	to := n.nodes[m.To]
	if to == nil || to.crashed || n.cut[[2]string{m.From, m.To}] {
		n.dropped++
		n.emit("lost " + fmtMsg(m))
		return fmtMsg(m) + " (lost)", nil
	}
	if m.Kind == KindGossip {
		n.payloads[m.To]++
	}
	n.emit("recv " + fmtMsg(m))
	to.core.Step(n.now, m)
	return fmtMsg(m), n.collect(to)
}

// match reports whether m passes the optional from/to/kind filters.
type filter struct{ from, to, kind string }

func (f filter) match(m Message) bool {
	return (f.from == "" || m.From == f.from) && (f.to == "" || m.To == f.to) &&
		(f.kind == "" || kindName(m) == f.kind)
}

// deliverWaves delivers the matching messages in flight, in waves (what
// is in flight at the start of a wave, sorted), until none match or once.
func (n *network) deliverWaves(f filter, once bool) []string {
	var lines []string
	for {
		var wave []Message
		n.inflight = slices.DeleteFunc(n.inflight, func(m Message) bool {
			if f.match(m) {
				wave = append(wave, m)
				return true
			}
			return false
		})
		if len(wave) == 0 {
			return lines
		}
		slices.SortStableFunc(wave, func(a, b Message) int { return strings.Compare(fmtMsg(a), fmtMsg(b)) })
		for _, m := range wave {
			n.inflight = append(n.inflight, m)
			msg, dels := n.deliverAt(len(n.inflight) - 1)
			lines = append(lines, msg)
			for _, d := range dels {
				lines = append(lines, "  "+d)
			}
		}
		if once {
			return lines
		}
	}
}

// nextDeadline is the earliest deadline among live nodes.
func (n *network) nextDeadline() (time.Time, bool) {
	var best time.Time
	ok := false
	for _, name := range n.names {
		nd := n.nodes[name]
		if nd.crashed {
			continue
		}
		if t, has := nd.core.NextDeadline(); has && (!ok || t.Before(best)) {
			best, ok = t, true
		}
	}
	return best, ok
}

// advance moves time to `to`, ticking every node at each of its deadlines
// on the way (messages sent stay in flight). It returns the deliveries.
func (n *network) advance(to time.Time) []string {
	var lines []string
	for {
		t, ok := n.nextDeadline()
		if !ok || t.After(to) {
			break
		}
		if t.After(n.now) {
			n.now = t
		}
		lines = append(lines, n.tickDue()...)
	}
	if to.After(n.now) {
		n.now = to
	}
	return lines
}

// tickDue ticks, in name order, every live node with a deadline now.
func (n *network) tickDue() []string {
	var lines []string
	for _, name := range n.names {
		nd := n.nodes[name]
		if t, has := nd.core.NextDeadline(); !nd.crashed && has && !t.After(n.now) {
			nd.core.Tick(n.now)
			lines = append(lines, n.collect(nd)...)
			if t, has := nd.core.NextDeadline(); has && !t.After(n.now) {
				n.tb.Fatalf("%s: after Tick(%v) the next deadline is still %v", name, n.now.Sub(n.t0), t.Sub(n.t0))
			}
		}
	}
	return lines
}

// run alternates delivering everything in flight and firing the next
// timer, until time reaches `to` with nothing in flight.
func (n *network) run(to time.Time) {
	for {
		n.deliverWaves(filter{}, false)
		t, ok := n.nextDeadline()
		if !ok || t.After(to) {
			break
		}
		if t.After(n.now) {
			n.now = t
		}
		n.tickDue()
	}
	if to.After(n.now) {
		n.now = to
	}
}

// down makes observers drop name from their View and tell their core.
func (n *network) down(name string, observers []string) {
	for _, o := range observers {
		nd := n.nodes[o]
		nd.view.remove(name)
		nd.core.PeerDown(name)
		n.collect(nd)
	}
}

// up makes observers add name to their View and tell their core.
func (n *network) up(name string, observers []string) {
	for _, o := range observers {
		nd := n.nodes[o]
		nd.view.add(name)
		nd.core.PeerUp(name)
		n.collect(nd)
	}
}

func (n *network) others(name string) []string {
	return slices.DeleteFunc(slices.Clone(n.names), func(o string) bool { return o == name })
}

func kindName(m Message) string {
	if m.Kind == KindIHave && m.Ack {
		return "ack"
	}
	return m.Kind.String()
}

func fmtIDs(ids []MsgID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

func fmtMsg(m Message) string {
	head := fmt.Sprintf("%s->%s %s", m.From, m.To, kindName(m))
	var s string
	if m.Kind != KindGossip {
		s = head + " " + fmtIDs(m.IDs)
	} else {
		s = fmt.Sprintf("%s %s r%d %s", head, m.ID, m.Round, m.Strategy)
	}
	if len(m.RelayTo) > 0 {
		s += " relay=[" + strings.Join(m.RelayTo, " ") + "]"
	}
	if m.WantAck {
		s += " want-ack"
	}
	return s
}

func fmtMsgs(ms []Message) []string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = fmtMsg(m)
	}
	slices.Sort(s)
	return s
}
