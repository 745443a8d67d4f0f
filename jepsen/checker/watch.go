package checker

import (
	"fmt"
	"strconv"

	"github.com/roster-io/roster/jepsen/history"
)

// Watch checks watch streams (SPEC guarantee 8). A stream is one watcher
// (node, process), across its reconnects; a snapshot (the start, a
// reconnect or a resync) resets its view.
//
// Anomalies:
//   - watch-duplicated: an SSE id delivered twice, the same event (kind,
//     member, metadata) twice for one member without a snapshot between,
//     or a member twice in one snapshot;
//   - watch-alternation: a join of a member the view holds with other
//     metadata, an update or a leave of one it does not hold (events of a
//     member must alternate join/leave, updates only while joined);
//   - watch-reordered: a member's version went back (Meta["v"], or else
//     the position of the join that wrote that metadata among the
//     owner's joins of it, when only one did);
//   - watch-dropped: a read on the watched node, while the stream was
//     connected, showed a member the stream never carried, or stopped
//     showing one the view held while the stream never removed it;
//   - watch-final-mismatch: a stream still open at the end on a live node
//     ends with a view other than that node's last final read;
//   - watch-disagree: two such streams end with different views of the
//     groups both follow.
//
// The group a stream follows is its events' Value.Group ("" all).
// Skipped when the history has no watch events.
type Watch struct{}

func (Watch) Name() string { return "watch" }

func (Watch) Description() string {
	return "watch streams: no duplicates, join/leave alternate, order kept, nothing dropped, end in the final state"
}

func (Watch) Applies(h []history.Op, _ Options) string {
	for i := range h {
		if h[i].F == history.FWatch && h[i].Value.Event != nil {
			return ""
		}
	}
	return "no watch events"
}

// stream is one watcher's events, replayed.
type stream struct {
	node    string
	process int
	group   string
	view    map[key]map[string]string
	ever    map[key]bool
	gains   map[key][]int64 // times the view took a member
	losses  map[key][]int64 // times the view dropped it
	periods []span          // connected
	open    bool
}

func (Watch) Check(h []history.Op, o Options) Result {
	m := newModel(h, o)
	b := newBuilder("watch")
	type sid struct {
		node    string
		process int
	}
	streams := map[sid]*stream{}
	var order []*stream
	for i := range h {
		op := &h[i]
		if op.F != history.FWatch || op.Value.Event == nil {
			continue
		}
		id := sid{op.Node, op.Process}
		if streams[id] == nil {
			streams[id] = &stream{node: op.Node, process: op.Process, group: op.Value.Group}
			order = append(order, streams[id])
		}
	}
	for _, s := range order {
		m.replay(b, s)
		m.dropped(b, s)
	}
	m.watchEnd(b, order)
	b.count("streams", len(order))
	return b.done()
}

// replay runs one stream's events through its view, flagging
// duplicates, broken alternation and reordering.
func (m *model) replay(b *builder, s *stream) {
	s.view, s.ever = map[key]map[string]string{}, map[key]bool{}
	s.gains, s.losses = map[key][]int64{}, map[key][]int64{}
	ids := map[string]bool{}
	last := map[key]string{}
	ver := map[key]int64{}
	from := int64(-1)
	checkVersion := func(k key, meta map[string]string, t int64) {
		v := m.version(k, meta)
		if v < 0 {
			return
		}
		if old, ok := ver[k]; ok && v < old {
			b.flag("watch-reordered", fmt.Sprintf("%s on %s at %s: version %d after %d", k, s.node, at(t), v, old))
		}
		ver[k] = max(ver[k], v)
	}
	name := fmt.Sprintf("watcher %d on %s", s.process, s.node)
	for i := range m.ops {
		op := &m.ops[i]
		if op.F != history.FWatch || op.Node != s.node || op.Process != s.process || op.Value.Event == nil {
			continue
		}
		e := op.Value.Event
		b.count("events", 1)
		if e.Reason != "" {
			b.count("reason:"+e.Reason, 1)
		}
		if e.ID != "" && e.Kind != "disconnected" {
			if ids[e.ID] {
				b.flag("watch-duplicated", fmt.Sprintf("%s: SSE id %q twice (at %s)", name, e.ID, at(op.Time)))
			}
			ids[e.ID] = true
		}
		if from < 0 && e.Kind != "disconnected" {
			from = op.Time
		}
		switch e.Kind {
		case "snapshot":
			if e.Reason == "resync" {
				b.count("resyncs", 1)
			}
			next := map[key]map[string]string{}
			for _, mem := range e.Members {
				k := keyOf(mem)
				if _, dup := next[k]; dup {
					b.flag("watch-duplicated", fmt.Sprintf("%s: %s twice in the snapshot at %s", name, k, at(op.Time)))
				}
				next[k] = mem.Meta
				checkVersion(k, mem.Meta, op.Time)
			}
			for k := range s.view {
				if _, ok := next[k]; !ok {
					s.losses[k] = append(s.losses[k], op.Time)
				}
			}
			for k := range next {
				if _, ok := s.view[k]; !ok {
					s.gains[k] = append(s.gains[k], op.Time)
				}
				s.ever[k] = true
			}
			s.view, last = next, map[key]string{}
		case "join", "update", "leave":
			if e.Member == nil {
				b.note("%s: %s event without a member at %s", name, e.Kind, at(op.Time))
				continue
			}
			k := keyOf(*e.Member)
			sig := e.Kind + " " + state(map[key]map[string]string{k: e.Member.Meta}, "")
			_, in := s.view[k]
			switch {
			case last[k] == sig:
				b.flag("watch-duplicated", fmt.Sprintf("%s: %s twice (at %s)", name, sig[:len(sig)-1], at(op.Time)))
			case e.Kind == "join" && in && !sameMeta(s.view[k], e.Member.Meta),
				e.Kind != "join" && !in:
				b.flag("watch-alternation", fmt.Sprintf("%s: %s %s while %s (at %s)", name, e.Kind, k, map[bool]string{true: "joined", false: "not joined"}[in], at(op.Time)))
			}
			last[k] = sig
			if e.Kind == "leave" {
				if in {
					s.losses[k] = append(s.losses[k], op.Time)
				}
				delete(s.view, k)
				continue
			}
			checkVersion(k, e.Member.Meta, op.Time)
			if !in {
				s.gains[k] = append(s.gains[k], op.Time)
			}
			s.view[k] = e.Member.Meta
			s.ever[k] = true
		case "disconnected":
			b.count("disconnects", 1)
			if from >= 0 {
				s.periods = append(s.periods, span{from, op.Time, "connected"})
			}
			from = -1
		default:
			b.note("%s: unknown event kind %q at %s", name, e.Kind, at(op.Time))
		}
	}
	if from >= 0 {
		s.periods = append(s.periods, span{from, never, "connected"})
		s.open = true
	}
}

// version is k's version as meta says: Meta["v"], else the position of
// the only join of k that wrote meta; -1 when unknown.
func (m *model) version(k key, meta map[string]string) int64 {
	if v, err := strconv.ParseInt(meta["v"], 10, 64); err == nil {
		return v
	}
	found := int64(-1)
	for i, op := range m.keys[k] {
		if op.join && op.meta != nil && sameMeta(op.meta, meta) {
			if found >= 0 {
				return -1
			}
			found = int64(i)
		}
	}
	return found
}

// follows reports whether stream s follows group g.
func (s *stream) follows(g string) bool { return s.group == "" || s.group == g }

// periodOf returns the start of the connected period holding [a, b].
func (s *stream) periodOf(a, b int64) (int64, bool) {
	for _, p := range s.periods {
		if p.from <= a && b < p.to {
			return p.from, true
		}
	}
	return 0, false
}

// had reports whether the view held k at t, and since when.
func (s *stream) had(k key, t int64) (int64, bool) {
	g, ok := int64(-1), false
	for _, x := range s.gains[k] {
		if x <= t && x > g {
			g, ok = x, true
		}
	}
	if !ok {
		return 0, false
	}
	for _, x := range s.losses[k] {
		if x > g && x <= t {
			return 0, false
		}
	}
	return g, true
}

// dropped flags changes reads on the watched node saw that the stream
// never carried.
func (m *model) dropped(b *builder, s *stream) {
	name := fmt.Sprintf("watcher %d on %s", s.process, s.node)
	flagged, ever := map[key]bool{}, sortedSet(s.ever)
	for _, r := range m.reads {
		if r.node != s.node {
			continue
		}
		from, ok := s.periodOf(r.inv, r.cmp)
		// A node killed or restarted since the period began cut the
		// stream, whatever the history says: a watcher only learns of it
		// when it reconnects (its client retries with backoff), and what
		// changed meanwhile comes as the resync's snapshot, not as events.
		if !ok || anyIn(m.restarts[s.node], from, r.cmp) {
			continue
		}
		for _, k := range r.list {
			if s.follows(k.group) && !s.ever[k] && !flagged[k] {
				flagged[k] = true
				b.flag("watch-dropped", fmt.Sprintf("%s: %s in the read at %s, never in the stream", name, k, at(r.inv)))
			}
		}
		for _, k := range ever {
			if !r.covers(k.group) || r.has(k) || flagged[k] {
				continue
			}
			g, ok := s.had(k, r.inv)
			if !ok {
				continue
			}
			removed := false
			for _, x := range s.losses[k] {
				if x > g {
					removed = true
				}
			}
			if !removed {
				flagged[k] = true
				b.flag("watch-dropped", fmt.Sprintf("%s: %s gone from the read at %s, never left in the stream", name, k, at(r.inv)))
			}
		}
	}
}

// watchEnd compares the views of the streams open at the end with their
// node's last final reads and with each other.
func (m *model) watchEnd(b *builder, streams []*stream) {
	last := m.lastFinals()
	var ends []*stream
	for _, s := range streams {
		if !s.open || !m.liveAtEnd(s.node) {
			continue
		}
		ends = append(ends, s)
		for _, r := range last[s.node] {
			if s.group != "" && r.group != "" && r.group != s.group {
				continue
			}
			g := r.group
			if g == "" {
				g = s.group
			}
			if v, f := state(s.view, g), state(r.members, g); v != f {
				b.flag("watch-final-mismatch", fmt.Sprintf("watcher %d on %s, group %q: %s", s.process, s.node, g, diff(f, v)))
			}
		}
	}
	for i, s := range ends {
		for _, t := range ends[i+1:] {
			if s.group != "" && t.group != "" && s.group != t.group {
				continue
			}
			g := s.group
			if g == "" {
				g = t.group
			}
			if a, c := state(s.view, g), state(t.view, g); a != c {
				b.flag("watch-disagree", fmt.Sprintf("watchers on %s and %s, group %q: %s", s.node, t.node, g, diff(a, c)))
			}
		}
	}
}
