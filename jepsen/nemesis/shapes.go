package nemesis

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/roster-io/roster/jepsen/netns"
)

// A Shape draws a partition of nodes as a grudge (node -> the peers whose
// packets it drops), with rng deciding who lands where: the same nodes and
// seed give the same grudge, whatever the order of nodes.
type Shape func(nodes []string, rng *rand.Rand) netns.Grudge

// The shapes, by name (history.Fault.Name).
const (
	ShapeIsolated      = "isolated"
	ShapeHalves        = "halves"
	ShapeOneWay        = "one-way"
	ShapeBridge        = "bridge"
	ShapeRing          = "ring"
	ShapeMinorityThird = "minority-third"
)

var shapes = map[string]Shape{
	ShapeIsolated:      Isolated,
	ShapeHalves:        Halves,
	ShapeOneWay:        OneWay,
	ShapeBridge:        Bridge,
	ShapeRing:          MajoritiesRing,
	ShapeMinorityThird: MinorityThird,
}

// Shapes lists the shapes' names in a fixed order.
func Shapes() []string {
	return []string{ShapeIsolated, ShapeHalves, ShapeOneWay, ShapeBridge, ShapeRing, ShapeMinorityThird}
}

// ShapeByName returns the named shape.
func ShapeByName(name string) (Shape, error) {
	s, ok := shapes[name]
	if !ok {
		return nil, fmt.Errorf("%w: shape %q (want one of %v)", ErrNemesis, name, Shapes())
	}
	return s, nil
}

// shuffled returns nodes sorted, then shuffled by rng.
func shuffled(nodes []string, rng *rand.Rand) []string {
	s := slices.Clone(nodes)
	slices.Sort(s)
	rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

// cut makes every node of a drop every node of b, and, if both, b drop a.
func cut(g netns.Grudge, a, b []string, both bool) {
	for _, x := range a {
		g[x] = append(g[x], b...)
	}
	if both {
		for _, y := range b {
			g[y] = append(g[y], a...)
		}
	}
}

// Isolated cuts one node off from all others, both ways.
func Isolated(nodes []string, rng *rand.Rand) netns.Grudge {
	g := netns.Grudge{}
	if len(nodes) < 2 {
		return g
	}
	s := shuffled(nodes, rng)
	cut(g, s[:1], s[1:], true)
	return g.Clone()
}

// Halves splits the nodes into two halves (the smaller one first, of
// n/2) that cannot reach each other.
func Halves(nodes []string, rng *rand.Rand) netns.Grudge {
	g := netns.Grudge{}
	if len(nodes) < 2 {
		return g
	}
	s := shuffled(nodes, rng)
	k := len(s) / 2
	cut(g, s[:k], s[k:], true)
	return g.Clone()
}

// OneWay splits the nodes into halves like Halves, and one half (which
// one is random) drops the other's packets while the other still gets
// its packets: A no longer hears B, B still hears A.
func OneWay(nodes []string, rng *rand.Rand) netns.Grudge {
	g := netns.Grudge{}
	if len(nodes) < 2 {
		return g
	}
	s := shuffled(nodes, rng)
	k := len(s) / 2
	a, b := s[:k], s[k:]
	if rng.IntN(2) == 1 {
		a, b = b, a
	}
	cut(g, a, b, false)
	return g.Clone()
}

// Bridge splits the nodes into two halves that cannot reach each other
// and one node that both halves reach and that reaches both (Jepsen's
// bridge). Below 3 nodes it is Halves.
func Bridge(nodes []string, rng *rand.Rand) netns.Grudge {
	if len(nodes) < 3 {
		return Halves(nodes, rng)
	}
	g := netns.Grudge{}
	s := shuffled(nodes, rng)
	rest := s[1:] // s[0] is the bridge
	k := len(rest) / 2
	cut(g, rest[:k], rest[k:], true)
	return g.Clone()
}

// MajoritiesRing gives every node a view of a majority of the nodes
// (itself included) and no two nodes the same one: the nodes are placed
// on a ring, and each sees the window of n/2+1 consecutive nodes around
// it and drops the others (Jepsen's majorities-ring). For an even n the
// windows are not centred and the grudge is not symmetric.
func MajoritiesRing(nodes []string, rng *rand.Rand) netns.Grudge {
	g := netns.Grudge{}
	n := len(nodes)
	if n < 3 {
		return Halves(nodes, rng)
	}
	s := shuffled(nodes, rng)
	m := n/2 + 1
	for start := 0; start < n; start++ {
		window := make([]string, m)
		for j := range m {
			window[j] = s[(start+j)%n]
		}
		center := window[m/2]
		for _, x := range s {
			if !slices.Contains(window, x) {
				g[center] = append(g[center], x)
			}
		}
	}
	return g.Clone()
}

// MinorityThird cuts a random third of the nodes (at least one) off from
// the rest, both ways.
func MinorityThird(nodes []string, rng *rand.Rand) netns.Grudge {
	g := netns.Grudge{}
	if len(nodes) < 2 {
		return g
	}
	s := shuffled(nodes, rng)
	k := max(1, len(s)/3)
	cut(g, s[:k], s[k:], true)
	return g.Clone()
}

// grudgeNodes lists the nodes a grudge mentions, sorted.
func grudgeNodes(g netns.Grudge) []string {
	var out []string
	for n, peers := range g {
		out = append(out, n)
		out = append(out, peers...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
