package checker

import (
	"fmt"

	"github.com/roster-io/roster/jepsen/history"
)

// OwnerVisibility checks owner liveness (SPEC guarantee 5) on the reads
// that carry the node's view of its peers (Value.Peers):
//
//   - ghosts: a read shows a member whose owner the same node reports dead
//     or left;
//   - misses: a member certainly present through the read (acknowledged
//     before it, no leave that may have landed, lifetime intact) is
//     missing from a read of its group, although the reading node is its
//     owner (local reads see local writes at once, Options.Grace after a
//     restart of the owner) or reports the owner alive in a quiet spell:
//     no cut in force, neither node down, and at least Options.Grace since
//     the join's ack, since the last fault ended and since that node last
//     reported the owner not alive.
//
// It measures, per cut (a partition's grudges, a kill, pause or leave of
// an owner), for every observer that showed the owner's members just
// before it, the time until its first read of that group without them
// (hide-latency) and, after the cut ends, until its first read showing
// them again while the owner certainly has some (reappear-latency); cuts
// that never hid or never showed again are counted, not flagged (a
// one-way cut may go unnoticed; the next fault may come first).
//
// Skipped when no read carries peers.
type OwnerVisibility struct{}

func (OwnerVisibility) Name() string { return "owner-visibility" }

func (OwnerVisibility) Description() string {
	return "no members of owners reported dead, none of live owners missing; hide and reappear latency per cut"
}

func (OwnerVisibility) Applies(h []history.Op, _ Options) string {
	for i := range h {
		if h[i].Type == history.OK && h[i].Value.Peers != nil && (h[i].F == history.FRead || h[i].F == history.FFinalRead) {
			return ""
		}
	}
	return "no read carries the node's view of its peers"
}

func (OwnerVisibility) Check(h []history.Op, o Options) Result {
	m := newModel(h, o)
	b := newBuilder("owner-visibility")
	lastDown := map[string]map[string]int64{} // node -> owner -> last read end reporting it not alive
	for _, r := range m.reads {
		if r.peers == nil {
			continue
		}
		b.count("reads-with-peers", 1)
		for _, k := range r.list {
			if st := r.peers[k.owner]; k.owner != r.node && (st == "dead" || st == "left") {
				b.flag("ghosts", fmt.Sprintf("%s shown by %s at %s, which reports %s %s", k, r.node, at(r.inv), k.owner, st))
			}
		}
		for _, k := range m.keyOrder {
			if !r.covers(k.group) || r.has(k) {
				continue
			}
			if why := m.miss(r, k, lastDown[r.node]); why != "" {
				b.flag("misses", fmt.Sprintf("%s missing from the read of %s at %s: %s", k, r.node, at(r.inv), why))
			}
		}
		if lastDown[r.node] == nil {
			lastDown[r.node] = map[string]int64{}
		}
		for _, n := range m.nodes {
			if n != r.node && r.peers[n] != "alive" {
				lastDown[r.node][n] = r.cmp
			}
		}
	}
	m.cutLatencies(b)
	return b.done()
}

// miss says why k's absence from r is a miss ("" if it may be right).
func (m *model) miss(r *read, k key, lastDown map[string]int64) string {
	j, ok := m.certainPresent(k, r.inv, r.cmp)
	if !ok {
		return ""
	}
	if r.node == k.owner {
		if anyIn(m.restarts[k.owner], r.inv-m.grace, r.inv) || m.downDuring(k.owner, r.inv, r.cmp) {
			return ""
		}
		return fmt.Sprintf("its owner's own read, joined ok at %s", at(j.cmp))
	}
	if r.peers[k.owner] != "alive" || !m.quiet(r.node, k.owner, r.inv) {
		return ""
	}
	if r.inv < j.cmp+m.grace {
		return ""
	}
	if t, ok := lastDown[k.owner]; ok && r.inv < t+m.grace {
		return ""
	}
	return fmt.Sprintf("owner alive, joined ok at %s", at(j.cmp))
}

// cut is one observer's loss of sight of one owner.
type cut struct {
	observer, owner string
	from, to        int64
}

// cuts lists, per fault, the (observer, owner) pairs it separates and
// when it ends.
func (m *model) cutPairs() []cut {
	var out []cut
	endOf := func(i int, kinds ...string) int64 {
		f := m.faults[i]
		for _, g := range m.faults[i+1:] {
			for _, kind := range kinds {
				if g.kind != kind {
					continue
				}
				if kind == "heal" {
					return g.time
				}
				for _, n := range g.nodes {
					for _, fn := range f.nodes {
						if n == fn {
							return g.time
						}
					}
				}
			}
		}
		return never
	}
	for i, f := range m.faults {
		switch f.kind {
		case "partition":
			to := endOf(i, "heal")
			seen := map[[2]string]bool{}
			for x, ps := range f.grudge {
				for _, p := range ps {
					for _, pair := range [][2]string{{x, p}, {p, x}} {
						if !seen[pair] {
							seen[pair] = true
							out = append(out, cut{pair[0], pair[1], f.time, to})
						}
					}
				}
			}
		case "kill", "pause", "leave":
			end := map[string]string{"kill": "restart", "pause": "resume", "leave": "add"}[f.kind]
			to := endOf(i, end)
			for _, o := range f.nodes {
				for _, x := range m.nodes {
					if x != o {
						out = append(out, cut{x, o, f.time, to})
					}
				}
			}
		}
	}
	return out
}

// cutLatencies measures hide-latency and reappear-latency.
func (m *model) cutLatencies(b *builder) {
	var hide, back []int64
	notHidden, notBack := 0, 0
	for _, c := range m.cutPairs() {
		var before *read
		for _, r := range m.reads {
			if r.node == c.observer && r.cmp <= c.from {
				before = r
			}
		}
		if before == nil || !showsOwner(before, c.owner) {
			continue
		}
		hidden := false
		for _, r := range m.reads {
			if r.node == c.observer && r.group == before.group && r.inv >= c.from && r.cmp < c.to && !showsOwner(r, c.owner) {
				hide = append(hide, r.cmp-c.from)
				hidden = true
				break
			}
		}
		if !hidden {
			notHidden++
			continue
		}
		if c.to == never || !m.ownerHas(c.owner, before.group, c.to) {
			continue
		}
		next := int64(never)
		for _, f := range m.faults {
			if f.time > c.to && f.kind != "probe" && f.kind != "heal" {
				next = f.time
				break
			}
		}
		shown := false
		for _, r := range m.reads {
			if r.node == c.observer && r.group == before.group && r.inv >= c.to && r.cmp < next && showsOwner(r, c.owner) {
				back = append(back, r.cmp-c.to)
				shown = true
				break
			}
		}
		if !shown {
			notBack++
		}
	}
	b.dist("hide-latency", hide)
	b.dist("reappear-latency", back)
	if notHidden > 0 {
		b.count("cuts-never-hidden", notHidden)
	}
	if notBack > 0 {
		b.count("cuts-never-shown-again", notBack)
	}
}

// showsOwner reports whether r shows a member owned by o.
func showsOwner(r *read, o string) bool {
	for k := range r.members {
		if k.owner == o {
			return true
		}
	}
	return false
}

// ownerHas reports whether owner o certainly has a member in group g
// ("" any) at t.
func (m *model) ownerHas(o, g string, t int64) bool {
	for _, k := range m.keyOrder {
		if k.owner != o || (g != "" && k.group != g) {
			continue
		}
		if _, ok := m.certainPresent(k, t, t); ok {
			return true
		}
	}
	return false
}
