package checker

import (
	"fmt"
	"slices"

	"github.com/roster-io/roster/jepsen/history"
)

// Set is Jepsen's set-full checker over members, keyed by (group, id,
// owner), with the owner's last operation deciding a member's fate: of
// the joins and leaves of one member, those that certainly completed
// before another was invoked are superseded by it, a fail never happened,
// and an info may have happened at any time after its invocation, so a
// member whose fate an info (or a concurrent op) leaves open is
// indeterminate and never flagged. A member is also indeterminate once
// its owner was wiped, an ephemeral member's owner restarted, or a
// session member's session may have ended (closed, a keep-alive that did
// not succeed, or a gap between renewals longer than its TTL).
//
// Anomalies:
//   - lost: certainly joined at the end, its owner live, and missing from
//     the last final read of some live node;
//   - resurrected: after an ok leave, a node showed the member, then
//     (without stopping in between) stopped showing it while reporting
//     the owner alive (or in a quiet spell, without peers), then showed
//     it again before any join of it was invoked, restarts included; or a
//     certainly left member is in a last final read;
//   - phantoms: a read showed a member no join of which (save failed
//     ones) had been invoked before the read completed, or with
//     metadata no such join wrote (when the joins record metadata);
//   - duplicates: one read listed the same member twice.
//
// Counts (not anomalies; reads on the far side of a partition are stale by
// design): stable, stale (some read invoked after the join's ack missed
// it), flutter (a node showed it, missed it, showed it again),
// never-read (no read after the ack: unknown), indeterminate. The
// distribution stable-latency is, per member present at the end, the time
// from the join's invocation to the end of the last read that missed it
// (0 when none did).
type Set struct{}

func (Set) Name() string { return "set" }

func (Set) Description() string {
	return "set-full over members: lost, resurrected, phantoms, duplicates; stale, never-read, stable latency"
}

func (Set) Applies([]history.Op, Options) string { return "" }

func (Set) Check(h []history.Op, o Options) Result {
	m := newModel(h, o)
	b := newBuilder("set")
	m.readAnomalies(b)
	fs := m.finalStart()
	if fs == never {
		b.unknownf("no ok final reads: lost and never-read not judged")
	}
	last := m.lastFinals()
	var lat []int64
	for _, k := range m.keyOrder {
		m.resurrections(b, k)
		if fs == never {
			continue
		}
		if j, ok := m.certainPresent(k, fs, m.end); ok {
			if !m.liveAtEnd(k.owner) {
				b.count("owner-down-at-end", 1)
				continue
			}
			var missing, readers []string
			for _, n := range sortedKeys(last) {
				for _, r := range last[n] {
					if r.covers(k.group) {
						readers = append(readers, n)
						if !r.has(k) {
							missing = append(missing, n)
						}
						break
					}
				}
			}
			if len(readers) == 0 {
				b.count("never-read", 1)
				b.unknownf("%s: no live node's final read shows group %q", k, k.group)
				continue
			}
			if len(missing) > 0 {
				b.flag("lost", fmt.Sprintf("%s joined (ok at %s), missing from the final reads of %v", k, at(j.cmp), missing))
				continue
			}
			d, ok := m.stableLatency(b, k, j)
			if ok {
				lat = append(lat, d)
			}
			b.count("stable", 1)
			continue
		}
		if l, ok := m.certainAbsent(k, fs, m.end); ok {
			for _, n := range sortedKeys(last) {
				for _, r := range last[n] {
					if r.covers(k.group) && r.has(k) {
						b.flag("resurrected", fmt.Sprintf("%s left (ok at %s), in the final read of %s", k, at(l.cmp), n))
					}
				}
			}
			continue
		}
		b.count("indeterminate", 1)
	}
	b.dist("stable-latency", lat)
	b.count("members", len(m.keyOrder))
	b.count("reads", len(m.reads))
	return b.done()
}

// lastFinals returns, per live node, its last final read of each group.
func (m *model) lastFinals() map[string][]*read {
	out := map[string][]*read{}
	for n, rs := range m.finalReads() {
		if !m.liveAtEnd(n) {
			continue
		}
		seen := map[string]bool{}
		for i := len(rs) - 1; i >= 0; i-- {
			if !seen[rs[i].group] {
				seen[rs[i].group] = true
				out[n] = append(out[n], rs[i])
			}
		}
	}
	return out
}

// readAnomalies flags duplicates and phantoms, read by read.
func (m *model) readAnomalies(b *builder) {
	phantom := map[key]bool{}
	for _, r := range m.reads {
		for _, k := range r.dups {
			b.flag("duplicates", fmt.Sprintf("%s listed twice by the read of %s at %s", k, r.node, at(r.inv)))
		}
		for _, k := range r.list {
			meta := r.members[k]
			if phantom[k] {
				continue
			}
			if why := m.phantom(k, meta, r.cmp); why != "" {
				phantom[k] = true
				b.flag("phantoms", fmt.Sprintf("%s in the read of %s at %s: %s", k, r.node, at(r.inv), why))
			}
		}
	}
}

// phantom says why k shown with meta by a read that completed at t was
// never written ("" if it may have been).
func (m *model) phantom(k key, meta map[string]string, t int64) string {
	var joins []*mop
	for _, op := range m.keys[k] {
		if op.join && !op.fail && op.inv < t {
			joins = append(joins, op)
		}
	}
	if len(joins) == 0 {
		return "no join of it invoked before"
	}
	for _, j := range joins {
		if j.meta == nil || sameMeta(j.meta, meta) {
			return ""
		}
	}
	return fmt.Sprintf("metadata %v never written", meta)
}

// stableLatency returns the time from the invocation of the join that made
// k present for good to the end of the last read that missed it, and
// counts stale, flutter and never-read.
func (m *model) stableLatency(b *builder, k key, j *mop) (int64, bool) {
	cutoff := int64(-1)
	for _, op := range m.keys[k] {
		if !op.join && op.ok && op.cmp <= j.inv {
			cutoff = max(cutoff, op.cmp)
		}
	}
	for _, w := range m.wipes[k.owner] {
		if w <= j.inv {
			cutoff = max(cutoff, w)
		}
	}
	first := j
	for _, op := range m.keys[k] {
		if op.join && op.ok && op.inv > cutoff && op.inv < first.inv {
			first = op
		}
	}
	lastMiss, read, stale := int64(-1), false, false
	shown := map[string]int{} // node -> 0 none, 1 shown, 2 shown then missed
	flutter := false
	for _, r := range m.reads {
		if r.inv <= first.inv || !r.covers(k.group) {
			continue
		}
		has := r.has(k)
		if !has {
			lastMiss = max(lastMiss, r.cmp)
		}
		if r.inv <= first.cmp {
			continue
		}
		read = true
		if !has && !r.final {
			stale = true
		}
		switch {
		case has && shown[r.node] == 2:
			flutter = true
		case has:
			shown[r.node] = 1
		case shown[r.node] == 1:
			shown[r.node] = 2
		}
	}
	if !read {
		b.count("never-read", 1)
		b.unknownf("%s never read after its join was acknowledged", k)
		return 0, false
	}
	if stale {
		b.count("stale", 1)
	}
	if flutter {
		b.count("flutter", 1)
	}
	if lastMiss < 0 {
		return 0, true
	}
	return max(0, lastMiss-first.inv), true
}

// resurrections flags, per ok leave of k, a node that showed k, learned
// of the leave (stopped showing it with the owner alive), and showed it
// again before any join of it was invoked.
func (m *model) resurrections(b *builder, k key) {
	ops := m.keys[k]
	for _, l := range ops {
		if l.join || !l.ok {
			continue
		}
		end, since, concurrent := int64(never), int64(-1), false
		for _, j := range ops {
			if !j.join || j.fail {
				continue
			}
			switch {
			case j.inv < l.inv && j.cmp > l.inv:
				concurrent = true
			case j.inv >= l.inv:
				end = min(end, j.inv)
			default:
				since = max(since, j.inv)
			}
		}
		if concurrent {
			continue
		}
		// learned: when a read of the node, after the leave, first
		// completed without the member. Only a read invoked after that
		// completion and showing it again is a resurrection: two reads of
		// one node that overlap in time may be served in either order.
		//
		// A node that stopped (killed, or left) since it last showed the
		// member has to show it again before a read without it counts: a
		// restarted node hides what it cached of an owner until it has
		// caught up with it (registry.Config.ConfirmGrace), so its first
		// reads may lack the member with the owner alive, and then show it
		// while the leave is still on its way. What it learned before it
		// stopped still counts: its cache must not bring the member back.
		hadAt, learned := map[string]int64{}, map[string]int64{}
		for _, r := range m.reads {
			if r.inv <= since || r.cmp >= end || !r.covers(k.group) {
				continue
			}
			has := r.has(k)
			t, gone := learned[r.node]
			shown, had := hadAt[r.node]
			switch {
			case has && gone && r.inv > t:
				b.flag("resurrected", fmt.Sprintf("%s left (ok at %s), gone from %s, back in its read at %s", k, at(l.cmp), r.node, at(r.inv)))
				delete(learned, r.node)
			case has:
				hadAt[r.node] = r.cmp
			case r.inv > l.cmp && had && !m.stoppedBetween(r.node, shown, r.inv) && m.ownerAlive(r, k.owner):
				if !gone || r.cmp < t {
					learned[r.node] = r.cmp
				}
			}
		}
	}
}

// stoppedBetween reports whether node was killed or left (a fault that
// ends its process) between from and to.
func (m *model) stoppedBetween(node string, from, to int64) bool {
	for _, f := range m.faults {
		if f.time > from && f.time < to && (f.kind == "kill" || f.kind == "leave") && slices.Contains(f.nodes, node) {
			return true
		}
	}
	return false
}

// ownerAlive reports whether, at read r, its node certainly saw owner o
// alive: from the read's peers if it has them, else from a quiet spell.
func (m *model) ownerAlive(r *read, o string) bool {
	if r.node == o {
		return true
	}
	if r.peers != nil {
		return r.peers[o] == "alive"
	}
	return m.quiet(r.node, o, r.inv)
}
