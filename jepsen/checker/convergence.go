package checker

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/roster-io/roster/jepsen/history"
)

// Convergence checks strong eventual convergence (SPEC guarantee 3): after
// the final heal every live node (up at the end: not killed without a
// restart, not paused, not out of the cluster) returns the same state in
// its last final read of every group, and that state is stable: each node
// ends with at least Options.StablePolls identical final reads and never
// leaves the common state once it has reached it.
//
// It also measures, for every heal record, the time until all up nodes'
// latest reads (taken after the heal) agree on every group, as the
// distribution heal-to-agreement; a heal followed by another fault before
// agreement is counted in heals-without-agreement, not judged: writes go
// on during the run, so agreement mid-run is a measure, not a promise.
//
// Anomalies: diverged (last final reads differ), unstable (a node's final
// reads still change at the end, or leave the common state; reads taken
// while the node reported a node that is up at the end as not alive are
// left out of this judgement, counted as settling-final-reads, unless the
// node's last read still does). Unknown when
// there are no final reads or a live node has none.
type Convergence struct{}

func (Convergence) Name() string { return "convergence" }

func (Convergence) Description() string {
	return "live nodes' final reads agree and stay put after the final heal; heal-to-agreement times"
}

func (Convergence) Applies([]history.Op, Options) string { return "" }

func (Convergence) Check(h []history.Op, o Options) Result {
	m := newModel(h, o)
	b := newBuilder("convergence")
	m.healToAgreement(b)
	finals := m.finalReads()
	if len(finals) == 0 {
		b.unknownf("no ok final reads")
		return b.done()
	}
	var live []string
	groups := map[string]bool{}
	for _, n := range m.nodes {
		if !m.liveAtEnd(n) {
			continue
		}
		if len(finals[n]) == 0 {
			b.unknownf("live node %s has no ok final read", n)
			continue
		}
		live = append(live, n)
		for _, r := range finals[n] {
			groups[r.group] = true
		}
	}
	b.count("live-nodes", len(live))
	for _, n := range live {
		b.count("final-reads", len(finals[n]))
	}
	for _, g := range sortedKeys(groups) {
		last := map[string]string{}
		for _, n := range live {
			var states, settled []string
			lastSettled := false
			for _, r := range finals[n] {
				if r.covers(g) {
					st := state(r.members, g)
					states = append(states, st)
					lastSettled = !m.settling(r)
					if lastSettled {
						settled = append(settled, st)
					}
				}
			}
			if len(states) == 0 {
				b.unknownf("live node %s has no final read of group %q", n, g)
				continue
			}
			last[n] = states[len(states)-1]
			if lastSettled && len(settled) < len(states) {
				// The failure detector was still settling during some of
				// these reads (a suspicion begun before the heal ran out
				// after it): those reads hid a live owner's members, as
				// they must, and are not judged for stability.
				b.count("settling-final-reads", len(states)-len(settled))
				states = settled
			}
			m.judgeStable(b, n, g, states)
		}
		if len(last) == 0 {
			continue
		}
		ns := sortedKeys(last)
		ref := last[ns[0]]
		if g == "" || !groups[""] {
			b.count("members", strings.Count(ref, "\n"))
		}
		for _, n := range ns[1:] {
			if last[n] != ref {
				b.flag("diverged", fmt.Sprintf("group %q: %s and %s differ: %s", g, ns[0], n, diff(ref, last[n])))
			}
		}
	}
	return b.done()
}

// settling reports whether final read r was taken while its node reported
// a node that is up at the end as not alive (memberlist still settling
// after the heal: a suspicion begun under a cut may run out after it, and
// the refutation follows). A node whose last final read still reports so
// has its reads judged all the same: its view never settled.
func (m *model) settling(r *read) bool {
	for p, st := range r.peers {
		if st != "alive" && m.liveAtEnd(p) && slices.Contains(m.nodes, p) {
			return true
		}
	}
	return false
}

// judgeStable flags a node whose final reads of g still change at the end
// or leave their last state after reaching it.
func (m *model) judgeStable(b *builder, n, g string, states []string) {
	final := states[len(states)-1]
	run := 0
	for i := len(states) - 1; i >= 0 && states[i] == final; i-- {
		run++
	}
	switch {
	case len(states) < m.o.StablePolls:
		b.note("%s: %d final read(s) of group %q, fewer than %d: stability not judged", n, len(states), g, m.o.StablePolls)
	case run < m.o.StablePolls:
		b.flag("unstable", fmt.Sprintf("%s group %q: only the last %d of %d final reads agree", n, g, run, len(states)))
	default:
		first := -1
		for i, s := range states {
			if s == final {
				first = i
				break
			}
		}
		for i := first; i < len(states); i++ {
			if states[i] != final {
				b.flag("unstable", fmt.Sprintf("%s group %q: final read %d leaves the state reached at read %d", n, g, i, first))
				break
			}
		}
	}
}

// healToAgreement measures, per heal, the time until the latest reads
// of every up node agree on every group.
func (m *model) healToAgreement(b *builder) {
	readers := map[string]map[string]bool{} // group -> nodes that ever read it
	for _, r := range m.reads {
		if readers[r.group] == nil {
			readers[r.group] = map[string]bool{}
		}
		readers[r.group][r.node] = true
	}
	var times []int64
	censored := 0
	for i, f := range m.faults {
		if f.kind != "heal" {
			continue
		}
		next := int64(never)
		for _, g := range m.faults[i+1:] {
			if g.kind != "heal" && g.kind != "probe" && g.kind != "resume" && g.kind != "restart" && g.kind != "add" {
				next = g.time
				break
			}
		}
		worst, ok := int64(0), true
		for g, nodes := range readers {
			t, agreed := m.agreement(f.time, next, g, nodes)
			if !agreed {
				ok = false
				break
			}
			worst = max(worst, t-f.time)
		}
		if ok && len(readers) > 0 {
			times = append(times, worst)
		} else {
			censored++
		}
	}
	b.dist("heal-to-agreement", times)
	b.count("heals", len(times)+censored)
	if censored > 0 {
		b.count("heals-without-agreement", censored)
	}
}

// agreement returns the first time in [from, until) at which the latest
// reads of group g (taken since from) of every node in nodes that is up
// agree.
func (m *model) agreement(from, until int64, g string, nodes map[string]bool) (int64, bool) {
	var rs []*read
	for _, r := range m.reads {
		if r.group == g && r.inv >= from && r.cmp < until {
			rs = append(rs, r)
		}
	}
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].cmp < rs[j].cmp })
	latest := map[string]string{}
	for _, r := range rs {
		latest[r.node] = state(r.members, "")
		agree, ref := true, ""
		for n := range nodes {
			if m.isDown(n, r.cmp) {
				continue
			}
			s, ok := latest[n]
			if !ok || (ref != "" && s != ref) {
				agree = false
				break
			}
			ref = s
		}
		if agree {
			return r.cmp, true
		}
	}
	return 0, false
}

// diff summarizes how two rendered states differ.
func diff(a, b string) string {
	in := func(s string) map[string]bool {
		out := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
			if l != "" {
				out[l] = true
			}
		}
		return out
	}
	as, bs := in(a), in(b)
	var only []string
	for _, l := range sortedKeys(as) {
		if !bs[l] {
			only = append(only, "-"+l)
		}
	}
	for _, l := range sortedKeys(bs) {
		if !as[l] {
			only = append(only, "+"+l)
		}
	}
	if len(only) > 4 {
		only = append(only[:4], fmt.Sprintf("... %d more", len(only)-4))
	}
	return strings.Join(only, " ")
}
