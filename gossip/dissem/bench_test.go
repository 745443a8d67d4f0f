package dissem

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

// sharedView is every name but self, read from one sorted list shared by
// all cores (so the benchmark's memory is the cores', not N views).
type sharedView struct {
	all  []string
	idx  map[string]int
	self int
}

func (v *sharedView) Len() int { return len(v.all) - 1 }

func (v *sharedView) At(i int) string {
	if i >= v.self {
		i++
	}
	return v.all[i]
}

func (v *sharedView) Has(name string) bool {
	i, ok := v.idx[name]
	return ok && i != v.self
}

// Next makes sharedView a SortedView.
func (v *sharedView) Next(name string) string {
	i, found := slices.BinarySearch(v.all, name)
	if found {
		i++
	}
	for range 2 {
		if i == len(v.all) {
			i = 0
		}
		if i != v.self {
			return v.all[i]
		}
		i++
	}
	return ""
}

// instantNet delivers every message at once, in FIFO order.
type instantNet struct {
	cores   []*Core
	byName  map[string]*Core
	now     time.Time
	queue   []Message
	msgs    int
	bytes   int
	payload int
}

func newInstantNet(tb fataler, n int, cfg Config) *instantNet {
	all := make([]string, n)
	idx := make(map[string]int, n)
	for i := range all {
		all[i] = fmt.Sprintf("node-%05d", i)
		idx[all[i]] = i
	}
	net := &instantNet{byName: make(map[string]*Core, n), now: testEpoch}
	for i, name := range all {
		c := cfg
		c.Self = name
		core, err := New(c, &sharedView{all, idx, i}, rand.New(rand.NewPCG(7, uint64(i))))
		if err != nil {
			tb.Fatalf("New: %v", err)
		}
		net.cores = append(net.cores, core)
		net.byName[name] = core
	}
	return net
}

func (net *instantNet) collect(c *Core) {
	out, _ := c.Ready()
	for _, m := range out {
		net.msgs++
		net.bytes += m.Size()
		if m.Kind == KindGossip {
			net.payload++
		}
	}
	net.queue = append(net.queue, out...)
}

func (net *instantNet) drain() {
	for len(net.queue) > 0 {
		m := net.queue[0]
		net.queue = net.queue[1:]
		c := net.byName[m.To]
		c.Step(net.now, m)
		net.collect(c)
	}
	net.queue = net.queue[:0:0]
}

// broadcast spreads one change from origin and lets two flush periods
// pass (the IHAVEs, then their acknowledgements), ticking the cores due.
func (net *instantNet) broadcast(origin int, seq uint64, payload []byte) {
	c := net.cores[origin]
	c.Broadcast(net.now, MsgID{c.cfg.Self, seq}, payload)
	net.collect(c)
	net.drain()
	for range 2 {
		net.now = net.now.Add(c.cfg.AnnounceEvery)
		for _, c := range net.cores {
			if at, ok := c.NextDeadline(); ok && !at.After(net.now) {
				c.Tick(net.now)
				net.collect(c)
			}
		}
		net.drain()
	}
}

// BenchmarkPlumtree measures one broadcast through N Plumtree cores on an
// instant network, after three warm-up broadcasts have pruned the tree:
// the cost per node is what the simulator pays per node per change. Its
// setup (N cores, the first broadcast with its sampling and ring scans)
// is logged, not timed. The View is a SortedView, as the simulator's can
// be (a plain View makes the first broadcast scan it at every core: about
// 1.3 s in all at 10,000 nodes). Retain is 2s so memory stays that of a steady
// state.
//
//	go test ./gossip/dissem -run '^$' -bench Plumtree -benchtime 50x
func BenchmarkPlumtree(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			cfg := Config{Strategy: Plumtree, Retain: 2 * time.Second}
			start := time.Now()
			net := newInstantNet(b, n, cfg)
			built := time.Since(start)
			rng := rand.New(rand.NewPCG(1, 1))
			payload := make([]byte, 100)
			seq := uint64(0)
			start = time.Now()
			net.broadcast(0, seq, payload)
			first := time.Since(start)
			for range 2 {
				seq++
				net.broadcast(rng.IntN(n), seq, payload)
			}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.Logf("%d cores built in %v; first broadcast (sampling, ring lookups) %v; heap %d B/core",
				n, built.Round(time.Millisecond), first.Round(time.Millisecond), ms.HeapAlloc/uint64(n))
			msgs, bytes, payloads := net.msgs, net.bytes, net.payload
			mallocs := ms.Mallocs
			b.ResetTimer()
			for range b.N {
				seq++
				net.broadcast(rng.IntN(n), seq, payload)
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms)
			per := float64(b.N) * float64(n)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/node")
			b.ReportMetric(float64(ms.Mallocs-mallocs)/per, "allocs/node")
			b.ReportMetric(float64(net.msgs-msgs)/per, "msgs/node")
			b.ReportMetric(float64(net.payload-payloads)/per, "payloads/node")
			b.ReportMetric(float64(net.bytes-bytes)/per, "B-sent/node")
			for i, c := range slices.Collect(func(y func(*Core) bool) {
				for _, c := range net.cores[:3] {
					if !y(c) {
						return
					}
				}
			}) {
				if got := c.Stats().Delivered; got != uint64(seq+1) {
					b.Fatalf("core %d delivered %d of %d", i, got, seq+1)
				}
			}
		})
	}
}
