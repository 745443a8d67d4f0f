package checker

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/roster-io/roster/jepsen/history"
)

// gen builds histories of a correct registry: every read shows the exact
// current state, every watcher sees every change once and in order, info
// operations take effect or not at random, and the run ends with a heal
// and two rounds of final reads.
type gen struct {
	ops     []history.Op
	now     int64
	state   map[key]map[string]string
	version map[key]int
	// sure are the members whose last operation was acknowledged
	// (present or absent for certain).
	sure map[key]bool
	// infoLeave are the members with a leave that may land at any time.
	infoLeave map[key]bool
	nodes     []string
	eventID   int
}

func (g *gen) add(typ history.Type, p int, node, f string, v history.Value, err string) {
	g.now += 5_000_000
	g.ops = append(g.ops, history.Op{Index: int64(len(g.ops)), Time: g.now, Type: typ, Process: p, Node: node, F: f, Value: v, Error: err})
}

func (g *gen) members(group string) []history.Member {
	var out []history.Member
	for k, meta := range g.state {
		if group == "" || k.group == group {
			out = append(out, history.Member{Group: k.group, ID: k.id, Owner: k.owner, Meta: meta})
		}
	}
	sort.Slice(out, func(i, j int) bool { return keyOf(out[i]).String() < keyOf(out[j]).String() })
	return out
}

func (g *gen) event(kind, reason string, m history.Member) {
	for i, n := range g.nodes {
		g.eventID++
		mm := m
		g.add(history.OK, 100+i, n, history.FWatch, history.Value{Event: &history.Event{
			Kind: kind, Reason: reason, ID: "r-" + strconv.Itoa(g.eventID), Member: &mm}}, "")
	}
}

func (g *gen) read(t *rapid.T, p int, node, f, group string) {
	g.add(history.Invoke, p, node, f, history.Value{Group: group}, "")
	peers := map[string]string{}
	for _, n := range g.nodes {
		peers[n] = "alive"
	}
	g.add(history.OK, p, node, f, history.Value{Group: group, Members: g.members(group), Peers: peers}, "")
}

func genHistory(t *rapid.T) (*gen, []history.Op) {
	g := &gen{state: map[key]map[string]string{}, version: map[key]int{}, sure: map[key]bool{}, infoLeave: map[key]bool{}, nodes: []string{"n1", "n2", "n3"}}
	for i, n := range g.nodes {
		g.add(history.OK, 100+i, n, history.FWatch, history.Value{Event: &history.Event{Kind: "snapshot", ID: "s-" + n, Members: []history.Member{}}}, "")
	}
	groups, ids := []string{"g1", "g2"}, []string{"a", "b", "c"}
	steps := rapid.IntRange(1, 60).Draw(t, "steps")
	for range steps {
		p := rapid.IntRange(0, 2).Draw(t, "node")
		node := g.nodes[p]
		switch rapid.IntRange(0, 5).Draw(t, "what") {
		case 0, 1: // join
			k := key{rapid.SampledFrom(groups).Draw(t, "group"), rapid.SampledFrom(ids).Draw(t, "id"), node}
			g.version[k]++
			meta := map[string]string{"v": strconv.Itoa(g.version[k])}
			v := history.Value{Group: k.group, ID: k.id, Meta: meta, Durable: true}
			g.add(history.Invoke, p, node, history.FJoin, v, "")
			outcome := rapid.SampledFrom([]history.Type{history.OK, history.OK, history.OK, history.Info, history.Fail}).Draw(t, "outcome")
			applied := outcome == history.OK || (outcome == history.Info && rapid.Bool().Draw(t, "applied"))
			if applied {
				old, in := g.state[k]
				g.state[k] = meta
				m := history.Member{Group: k.group, ID: k.id, Owner: k.owner, Meta: meta}
				switch {
				case !in:
					g.event("join", "joined", m)
				case !sameMeta(old, meta):
					g.event("update", "updated", m)
				}
			}
			g.sure[k] = outcome != history.Info && (g.sure[k] || outcome == history.OK)
			g.add(outcome, p, node, history.FJoin, v, map[history.Type]string{history.Info: "timeout", history.Fail: "500 refused"}[outcome])
		case 2: // leave one of the node's members
			var mine []key
			for k := range g.state {
				if k.owner == node {
					mine = append(mine, k)
				}
			}
			if len(mine) == 0 {
				continue
			}
			sort.Slice(mine, func(i, j int) bool { return mine[i].String() < mine[j].String() })
			k := rapid.SampledFrom(mine).Draw(t, "leave")
			v := history.Value{Group: k.group, ID: k.id}
			g.add(history.Invoke, p, node, history.FLeave, v, "")
			outcome := rapid.SampledFrom([]history.Type{history.OK, history.OK, history.Info}).Draw(t, "outcome")
			if outcome == history.OK || rapid.Bool().Draw(t, "applied") {
				g.event("leave", "left", history.Member{Group: k.group, ID: k.id, Owner: k.owner, Meta: g.state[k]})
				delete(g.state, k)
			}
			g.sure[k] = outcome == history.OK
			g.infoLeave[k] = g.infoLeave[k] || outcome == history.Info
			g.add(outcome, p, node, history.FLeave, v, map[history.Type]string{history.Info: "timeout"}[outcome])
		case 3, 4:
			g.read(t, p, node, history.FRead, rapid.SampledFrom([]string{"", "g1", "g2"}).Draw(t, "group"))
		case 5:
			kind := rapid.SampledFrom([]string{"partition", "heal"}).Draw(t, "fault")
			g.add(history.OK, history.NemesisProcess, "", history.FNemesis, history.Value{Fault: &history.Fault{
				Kind: kind, Grudge: map[string][]string{"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"}}}}, "")
		}
	}
	g.add(history.OK, history.NemesisProcess, "", history.FNemesis, history.Value{Fault: &history.Fault{Kind: "heal"}}, "")
	g.now += 5_000_000_000
	for range 2 {
		for i, n := range g.nodes {
			g.read(t, i, n, history.FFinalRead, "")
		}
	}
	require.NoError(t, history.Validate(g.ops))
	return g, g.ops
}

// TestCorrectHistoriesAreValid: a history of a correct registry is valid
// for every checker that applies (availability aside: its info
// operations are unavailability by design).
func TestCorrectHistoriesAreValid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		_, h := genHistory(t)
		for _, c := range All() {
			if c.Name() == "availability" || c.Applies(h, Options{}) != "" {
				continue
			}
			res := c.Check(h, Options{})
			if res.Valid != Valid {
				t.Fatalf("%s: %s %v %v %v", c.Name(), res.Valid, res.Anomalies, res.Examples, res.Notes)
			}
		}
	})
}

// TestLostIsFound: dropping a certainly present member from one node's
// last final read is lost (set) and diverged (convergence).
func TestLostIsFound(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		g, h := genHistory(t)
		var victims []key
		for k := range g.state {
			if g.sure[k] && !g.infoLeave[k] {
				victims = append(victims, k)
			}
		}
		if len(victims) == 0 {
			t.Skip("nothing certainly present")
		}
		sort.Slice(victims, func(i, j int) bool { return victims[i].String() < victims[j].String() })
		v := rapid.SampledFrom(victims).Draw(t, "victim")
		last := &h[len(h)-1] // the last final read's completion
		last.Value.Members = slices.DeleteFunc(slices.Clone(last.Value.Members), func(m history.Member) bool { return keyOf(m) == v })
		set := Set{}.Check(h, Options{})
		require.Equal(t, Invalid, set.Valid, "%v", set)
		require.Equal(t, []string{"lost"}, set.Anomalies, fmt.Sprint(set.Examples))
		conv := Convergence{}.Check(h, Options{})
		require.Contains(t, conv.Anomalies, "diverged")
	})
}
