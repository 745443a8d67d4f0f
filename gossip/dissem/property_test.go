package dissem

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// scenario is a random run: n nodes, a strategy, message loss, crashes at
// random moments (noticed by the others some steps later), broadcasts at
// random moments, and a random delivery order.
type scenario struct {
	n          int
	strategy   Strategy
	loss       float64
	crashes    map[int]int    // node -> step at which it crashes
	pauses     map[int][2]int // node -> steps at which it stops and runs again (state kept)
	detect     int            // steps from a crash or pause to the others' PeerDown
	broadcasts [][2]int       // (step, node)
	steps      int
	seed       uint64
}

func drawScenario(t *rapid.T) scenario {
	s := scenario{
		n:        rapid.IntRange(2, 60).Draw(t, "n"),
		strategy: rapid.SampledFrom([]Strategy{Direct, Tree, Plumtree, Auto}).Draw(t, "strategy"),
		crashes:  map[int]int{},
		pauses:   map[int][2]int{},
		steps:    rapid.IntRange(50, 600).Draw(t, "steps"),
		seed:     rapid.Uint64().Draw(t, "seed"),
	}
	crashed := map[int]bool{}
	for range rapid.IntRange(0, s.n/4).Draw(t, "crashed") {
		crashed[rapid.IntRange(0, s.n-1).Draw(t, "crash")] = true
	}
	// Auto runs Plumtree only while the View stays above DirectMax.
	plum := s.strategy == Plumtree || (s.strategy == Auto && s.n-1-len(crashed) > DefaultDirectMax)
	if plum {
		s.loss = rapid.Float64Range(0, 0.29).Draw(t, "loss")
	}
	for _, node := range slices.Sorted(func(y func(int) bool) {
		for k := range crashed {
			if !y(k) {
				return
			}
		}
	}) {
		step := 0 // Direct and Tree do not repair: their crashes are known before any broadcast
		if plum {
			step = rapid.IntRange(0, s.steps).Draw(t, "crashStep")
		}
		s.crashes[node] = step
	}
	if plum {
		s.detect = rapid.IntRange(0, 100).Draw(t, "detect")
		// Paused nodes (a long GC pause, a partition of one): noticed down,
		// then up again, with their state; they must catch up.
		maxPaused := s.n / 4
		if s.strategy == Auto { // keep the View above DirectMax
			maxPaused = min(maxPaused, s.n-1-len(crashed)-DefaultDirectMax-1)
		}
		for range rapid.IntRange(0, maxPaused).Draw(t, "paused") {
			node := rapid.IntRange(0, s.n-1).Draw(t, "pause")
			if _, crashed := s.crashes[node]; crashed {
				continue
			}
			stop := rapid.IntRange(0, s.steps).Draw(t, "pauseStep")
			s.pauses[node] = [2]int{stop, stop + s.detect + rapid.IntRange(1, 300).Draw(t, "pauseLength")}
		}
	}
	for range rapid.IntRange(1, 8).Draw(t, "broadcasts") {
		step := rapid.IntRange(1, s.steps).Draw(t, "broadcastStep")
		s.broadcasts = append(s.broadcasts, [2]int{step, rapid.IntRange(0, s.n-1).Draw(t, "origin")})
	}
	return s
}

func propNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("n%02d", i)
	}
	return names
}

// run plays the scenario, then heals the network (no more loss, every
// crash noticed) and runs instant delivery and timers for a minute. It
// returns the network and the ids broadcast, by origin index.
func (s scenario) run(tb fataler, log func(string)) (*network, map[MsgID]int) {
	names := propNames(s.n)
	net := newNetwork(tb, names, func(self string) Config {
		return Config{Self: self, Strategy: s.strategy, Retain: 5 * time.Minute}
	}, s.seed)
	net.log = log
	rng := rand.New(rand.NewPCG(s.seed, 7))
	ids := map[MsgID]int{}
	noticed := map[int]bool{}
	notice := func(i int) {
		noticed[i] = true
		var live []string
		for _, o := range net.names {
			if !net.nodes[o].crashed {
				live = append(live, o)
			}
		}
		net.down(names[i], live)
	}
	// resume runs a paused node again: it learns of the crashes noticed
	// meanwhile, and everyone else sees it come up.
	resume := func(i int) {
		nd := net.nodes[names[i]]
		nd.crashed = false
		delete(noticed, i)
		for _, dead := range slices.Sorted(maps.Keys(noticed)) {
			if _, crashed := s.crashes[dead]; crashed && nd.view.Has(names[dead]) {
				net.down(names[dead], []string{names[i]})
			}
		}
		var live []string
		for _, o := range net.names {
			if o != names[i] && !net.nodes[o].crashed {
				live = append(live, o)
			}
		}
		net.up(names[i], live)
	}
	for step := 0; step <= s.steps; step++ {
		for node, at := range sortedCrashes(s.crashes) {
			if at == step {
				net.nodes[names[node]].crashed = true
			}
			if at+s.detect == step && !noticed[node] {
				notice(node)
			}
		}
		for _, node := range slices.Sorted(maps.Keys(s.pauses)) {
			p := s.pauses[node]
			if step == p[0] {
				net.nodes[names[node]].crashed = true
			}
			if step == p[0]+s.detect {
				notice(node)
			}
			if step == p[1] {
				resume(node)
			}
		}
		for _, b := range s.broadcasts {
			if b[0] == step && !net.nodes[names[b[1]]].crashed {
				id := MsgID{names[b[1]], uint64(step)}
				if _, dup := ids[id]; !dup {
					ids[id] = b[1]
					net.broadcast(tb, names[b[1]], id)
				}
			}
		}
		if len(net.inflight) > 0 && rng.Float64() < 0.85 {
			i := rng.IntN(len(net.inflight))
			if rng.Float64() < s.loss {
				net.emit("lost " + fmtMsg(net.inflight[i]))
				net.inflight = slices.Delete(net.inflight, i, i+1)
			} else {
				net.deliverAt(i)
			}
			continue
		}
		net.advance(net.now.Add(time.Duration(rng.IntN(30)) * time.Millisecond))
	}
	for node := range sortedCrashes(s.crashes) {
		if !noticed[node] {
			notice(node)
		}
	}
	for _, node := range slices.Sorted(maps.Keys(s.pauses)) {
		if p := s.pauses[node]; p[1] > s.steps {
			if !noticed[node] {
				notice(node)
			}
			resume(node)
		}
	}
	net.run(net.now.Add(time.Minute))
	return net, ids
}

// sortedCrashes iterates crashes in node order (determinism).
func sortedCrashes(m map[int]int) func(func(int, int) bool) {
	return func(yield func(int, int) bool) {
		for _, k := range slices.Sorted(func(y func(int) bool) {
			for k := range m {
				if !y(k) {
					return
				}
			}
		}) {
			if !yield(k, m[k]) {
				return
			}
		}
	}
}

// TestEventualDelivery: every message broadcast by a node that does not
// crash reaches every node that does not crash (paused ones included, once
// back), exactly once, once the network heals (Plumtree under loss below
// 30%; Direct and Tree without loss), whatever the delivery order.
func TestEventualDelivery(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := drawScenario(t)
		net, ids := s.run(t, nil)
		for id, origin := range ids {
			if _, crashed := s.crashes[origin]; crashed {
				continue
			}
			for i, name := range net.names {
				if _, crashed := s.crashes[i]; crashed {
					continue
				}
				if got := net.delivered[name][id]; got != 1 {
					t.Fatalf("%s delivered %s %d times, want once (n=%d %v loss=%.2f crashes=%v)",
						name, id, got, s.n, s.strategy, s.loss, s.crashes)
				}
			}
		}
	})
}

// TestPrunedTree: with no loss, under Plumtree, once the first broadcasts
// from an origin have pruned the eager links to a tree, a node receives
// about one full payload per message.
func TestPrunedTree(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 60).Draw(t, "n")
		seed := rapid.Uint64().Draw(t, "seed")
		names := propNames(n)
		net := newNetwork(t, names, func(self string) Config { return Config{Self: self, Strategy: Plumtree} }, seed)
		origin := names[rapid.IntRange(0, n-1).Draw(t, "origin")]
		const warm, measured = 3, 10
		var payloads int
		for i := range warm + measured {
			before := 0
			for _, c := range net.payloads {
				before += c
			}
			net.broadcast(t, origin, MsgID{origin, uint64(i)})
			net.run(net.now.Add(time.Second))
			after := 0
			for _, c := range net.payloads {
				after += c
			}
			if i >= warm {
				payloads += after - before
			}
		}
		perNode := float64(payloads) / float64(measured*(n-1))
		if perNode > 1.1 {
			t.Fatalf("n=%d: %.3f payloads per node per message after %d warm-up broadcasts, want <= 1.1", n, perNode, warm)
		}
		for _, name := range names {
			for i := range warm + measured {
				if got := net.delivered[name][MsgID{origin, uint64(i)}]; got != 1 {
					t.Fatalf("%s delivered %s/%d %d times", name, origin, i, got)
				}
			}
		}
	})
}

// TestDeterminism: the same scenario and seed give the same events, message
// for message.
func TestDeterminism(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := drawScenario(t)
		var a, b strings.Builder
		s.run(t, func(e string) { a.WriteString(e); a.WriteByte('\n') })
		s.run(t, func(e string) { b.WriteString(e); b.WriteByte('\n') })
		if a.String() != b.String() {
			t.Fatalf("two runs of the same scenario differ:\n%s", firstDiff(a.String(), b.String()))
		}
	})
}

func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return fmt.Sprintf("line %d:\n  %s\n  %s", i, la[i], lb[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(la), len(lb))
}
