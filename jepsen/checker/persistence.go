package checker

import (
	"fmt"

	"github.com/roster-io/roster/jepsen/history"
)

// Persistence checks what survives a node's restart (SPEC guarantees 5
// and 7). For every restart of an owner (the end of a kill, or a wipe of a
// running node), over its reads from Options.Grace after the restart
// until its next kill, restart or wipe:
//
//   - lost-on-restart: a durable or session member acknowledged before the
//     kill, and certainly still a member through the read (no leave that
//     may have landed, session certainly alive), is missing from its
//     owner's read of its group;
//   - restored-leave: a member whose leave was acknowledged before the
//     kill, and certainly not joined since, is in its owner's read.
//
// After a wipe (amnesia) of a node, every member it was asked to join
// before the wipe, until a join of it is invoked again, must be gone:
// from the node's own reads after the restart, and from every other
// node's reads in quiet spells (no cut, both up, Options.Grace after the
// last fault ended), as they drop the old incarnation's entries.
//
//   - wiped-returned: such a member shown by a read.
//
// Skipped when the history has no kill, restart or wipe.
type Persistence struct{}

func (Persistence) Name() string { return "persistence" }

func (Persistence) Description() string {
	return "durable and session members survive their owner's restart, leaves stay left, wiped entries are gone"
}

func (Persistence) Applies(h []history.Op, _ Options) string {
	for i := range h {
		if f := h[i].Value.Fault; h[i].F == history.FNemesis && f != nil {
			switch f.Kind {
			case "kill", "restart", "wipe":
				return ""
			}
		}
	}
	return "no kill, restart or wipe"
}

// restart is one restart of a node: killed at kill, back at back.
type restart struct {
	node       string
	kill, back int64
	wiped      int64 // the wipe's time, or -1
	next       int64 // the next kill, restart or wipe of the node
}

func (m *model) restartsOf() []restart {
	var out []restart
	for _, n := range m.nodes {
		for _, s := range m.down[n] {
			if s.kind != "kill" || s.to == never {
				continue
			}
			r := restart{node: n, kill: s.from, back: s.to, wiped: -1}
			for _, w := range m.wipes[n] {
				if s.from <= w && w <= s.to {
					r.wiped = w
				}
			}
			out = append(out, r)
		}
		for _, w := range m.wipes[n] {
			if !m.isDown(n, w) {
				out = append(out, restart{node: n, kill: w, back: w, wiped: w})
			}
		}
	}
	for i := range out {
		out[i].next = never
		for _, t := range m.restarts[out[i].node] {
			if t > out[i].back && t < out[i].next {
				out[i].next = t
			}
		}
	}
	return out
}

func (Persistence) Check(h []history.Op, o Options) Result {
	m := newModel(h, o)
	b := newBuilder("persistence")
	for _, rs := range m.restartsOf() {
		b.count("restarts", 1)
		if rs.wiped >= 0 {
			b.count("wipes", 1)
			m.judgeWipe(b, rs)
			continue
		}
		m.judgeRestart(b, rs)
	}
	return b.done()
}

// judgeRestart judges the owner's own reads after a restart without a
// wipe.
func (m *model) judgeRestart(b *builder, rs restart) {
	flagged, judged := map[key]bool{}, map[key]bool{}
	for _, r := range m.reads {
		if r.node != rs.node || r.inv < rs.back+m.grace || r.cmp >= rs.next {
			continue
		}
		for _, k := range m.keyOrder {
			if k.owner != rs.node || !r.covers(k.group) || flagged[k] {
				continue
			}
			judged[k] = true
			if j, ok := m.certainPresent(k, r.inv, r.cmp); ok && j.cmp < rs.kill && (j.durable || j.session != "") && !r.has(k) {
				flagged[k] = true
				b.flag("lost-on-restart", fmt.Sprintf("%s joined ok at %s, %s killed at %s, back at %s, missing from its read at %s",
					k, at(j.cmp), rs.node, at(rs.kill), at(rs.back), at(r.inv)))
			}
			if l, ok := m.certainAbsent(k, r.inv, r.cmp); ok && l.cmp < rs.kill && r.has(k) {
				flagged[k] = true
				b.flag("restored-leave", fmt.Sprintf("%s left ok at %s, %s killed at %s, back at %s, in its read at %s",
					k, at(l.cmp), rs.node, at(rs.kill), at(rs.back), at(r.inv)))
			}
		}
	}
	b.count("members-checked", len(judged))
}

// judgeWipe flags the wiped node's old members in reads after its
// restart.
func (m *model) judgeWipe(b *builder, rs restart) {
	old := map[key]bool{}
	for _, k := range m.keyOrder {
		if k.owner != rs.node {
			continue
		}
		for _, op := range m.keys[k] {
			if op.join && !op.fail && op.inv < rs.wiped {
				old[k] = true
			}
		}
	}
	flagged := map[key]bool{}
	for _, r := range m.reads {
		if r.inv < rs.back || (r.node != rs.node && (r.inv < rs.back+m.grace || !m.quiet(r.node, rs.node, r.inv))) {
			continue
		}
		for _, k := range r.list {
			if !old[k] || flagged[k] {
				continue
			}
			rejoined := false
			for _, op := range m.keys[k] {
				if op.join && !op.fail && op.inv > rs.wiped && op.inv < r.cmp {
					rejoined = true
				}
			}
			if !rejoined {
				flagged[k] = true
				b.flag("wiped-returned", fmt.Sprintf("%s joined before %s was wiped at %s, in the read of %s at %s",
					k, rs.node, at(rs.wiped), r.node, at(r.inv)))
			}
		}
	}
}
