package nemesis

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/roster-io/roster/jepsen/netns"
)

func nodeNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("n%d", i+1)
	}
	return out
}

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 1)) }

// sees returns the nodes x hears from (itself included).
func sees(g netns.Grudge, nodes []string, x string) []string {
	var out []string
	for _, y := range nodes {
		if !g.Drops(x, y) {
			out = append(out, y)
		}
	}
	return out
}

func symmetric(g netns.Grudge) bool {
	for x, peers := range g {
		for _, y := range peers {
			if !g.Drops(y, x) {
				return false
			}
		}
	}
	return true
}

func TestShapesDeterministic(t *testing.T) {
	for _, name := range Shapes() {
		shape, err := ShapeByName(name)
		if err != nil {
			t.Fatal(err)
		}
		nodes := nodeNames(7)
		rev := slices.Clone(nodes)
		slices.Reverse(rev)
		a, b := shape(nodes, seeded(42)), shape(rev, seeded(42))
		if !a.Equal(b) {
			t.Errorf("%s: seed 42 gave %v and %v", name, a, b)
		}
		differs := false
		for s := uint64(0); s < 20 && !differs; s++ {
			differs = !shape(nodes, seeded(s)).Equal(a)
		}
		if !differs {
			t.Errorf("%s: every seed gives %v", name, a)
		}
	}
	if _, err := ShapeByName("nope"); err == nil {
		t.Error("unknown shape accepted")
	}
}

func TestShapes(t *testing.T) {
	for n := 3; n <= 15; n++ {
		nodes := nodeNames(n)
		for seed := uint64(0); seed < 10; seed++ {
			name := fmt.Sprintf("n=%d seed=%d", n, seed)

			g := Isolated(nodes, seeded(seed))
			var alone []string
			for _, x := range nodes {
				if len(sees(g, nodes, x)) == 1 {
					alone = append(alone, x)
				}
			}
			if len(alone) != 1 || !symmetric(g) {
				t.Fatalf("isolated %s: %v", name, g)
			}
			for _, x := range nodes {
				if x != alone[0] && len(sees(g, nodes, x)) != n-1 {
					t.Errorf("isolated %s: %s sees %v", name, x, sees(g, nodes, x))
				}
			}

			g = Halves(nodes, seeded(seed))
			small := 0
			for _, x := range nodes {
				switch len(sees(g, nodes, x)) {
				case n / 2:
					small++
				case n - n/2:
				default:
					t.Errorf("halves %s: %s sees %v", name, x, sees(g, nodes, x))
				}
			}
			if !symmetric(g) || (n%2 == 1 && small != n/2) {
				t.Errorf("halves %s: %v", name, g)
			}

			g = OneWay(nodes, seeded(seed))
			deaf := 0
			for x, peers := range g {
				deaf++
				for _, y := range peers {
					if g.Drops(y, x) {
						t.Errorf("one-way %s: %s and %s drop each other", name, x, y)
					}
				}
			}
			if deaf != n/2 && deaf != n-n/2 {
				t.Errorf("one-way %s: %d deaf nodes: %v", name, deaf, g)
			}

			g = Bridge(nodes, seeded(seed))
			var bridges []string
			for _, x := range nodes {
				if len(sees(g, nodes, x)) == n {
					bridges = append(bridges, x)
				}
			}
			if len(bridges) != 1 || !symmetric(g) {
				t.Fatalf("bridge %s: bridges %v in %v", name, bridges, g)
			}
			for _, x := range nodes {
				// a half and the bridge: (n-1)/2 or n-1-(n-1)/2, plus one
				if v := sees(g, nodes, x); x != bridges[0] &&
					(!slices.Contains(v, bridges[0]) || (len(v) != (n-1)/2+1 && len(v) != n-(n-1)/2)) {
					t.Errorf("bridge %s: %s sees %v", name, x, v)
				}
			}

			g = MajoritiesRing(nodes, seeded(seed))
			views := map[string]bool{}
			for _, x := range nodes {
				v := sees(g, nodes, x)
				if len(v) != n/2+1 || !slices.Contains(v, x) {
					t.Errorf("ring %s: %s sees %v", name, x, v)
				}
				views[fmt.Sprint(v)] = true
			}
			if len(views) != n {
				t.Errorf("ring %s: %d distinct views: %v", name, len(views), g)
			}

			g = MinorityThird(nodes, seeded(seed))
			minority := 0
			for _, x := range nodes {
				if len(sees(g, nodes, x)) == max(1, n/3) {
					minority++
				}
			}
			if minority != max(1, n/3) || !symmetric(g) {
				t.Errorf("minority-third %s: %v", name, g)
			}
		}
	}
	for _, name := range Shapes() {
		shape, _ := ShapeByName(name)
		if g := shape([]string{"n1"}, seeded(1)); len(g) != 0 {
			t.Errorf("%s of one node: %v", name, g)
		}
	}
}
