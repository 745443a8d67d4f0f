package registry

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roster-io/roster/gossip"

	"github.com/roster-io/roster/gossip/memnet"
	"github.com/stretchr/testify/require"
)

// These tests run whole clusters in one process over memnet, the seeded
// fault-injecting in-memory transport. Each prints its seeds; replay one
// with -cluster.seed=N (see memnet.Config.Seed for what a seed pins down
// when memberlist sends from many goroutines).

var (
	clusterSeed   = flag.Int64("cluster.seed", 0, "replay the chaos test with this seed (0: the default seeds)")
	clusterRounds = flag.Int("cluster.rounds", 10, "partition rounds per chaos run")
	clusterRuns   = flag.Int("cluster.runs", 2, "chaos runs with consecutive default seeds")
)

type mkey struct{ group, id, owner string }

// model is the state a watcher builds from its snapshot and events. It
// records every event that does not fit what it already holds: a join of
// a member it has, a leave or update of one it does not.
type model struct {
	mu      sync.Mutex
	have    map[mkey]string // -> meta "v"
	errs    []string
	events  int
	reasons map[Reason]int
	byOwner map[string]int // owner/reason -> events
	history map[mkey][]string
}

func newModel(snap []Member) *model {
	m := &model{have: map[mkey]string{}, reasons: map[Reason]int{}, byOwner: map[string]int{}, history: map[mkey][]string{}}
	for _, x := range snap {
		m.have[mkey{x.Group, x.ID, x.Owner}] = x.Meta["v"]
	}
	return m
}

func (m *model) apply(e Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events++
	m.reasons[e.Reason]++
	m.byOwner[e.Member.Owner+"/"+string(e.Reason)]++
	if e.Type == EventResync {
		m.have = map[mkey]string{}
		for _, x := range e.Members {
			m.have[mkey{x.Group, x.ID, x.Owner}] = x.Meta["v"]
		}
		return
	}
	k := mkey{e.Member.Group, e.Member.ID, e.Member.Owner}
	_, ok := m.have[k]
	m.history[k] = append(m.history[k], fmt.Sprintf("%d:%s/%s/v%s/i%d", e.Seq, e.Type, e.Reason, e.Member.Meta["v"], e.Member.Incarnation))
	switch e.Type {
	case EventJoin:
		if ok {
			m.errs = append(m.errs, fmt.Sprintf("duplicate join %v (%s)", k, e.Reason))
		}
		m.have[k] = e.Member.Meta["v"]
	case EventUpdate:
		if !ok {
			m.errs = append(m.errs, fmt.Sprintf("update of absent %v", k))
		}
		m.have[k] = e.Member.Meta["v"]
	case EventLeave:
		if !ok {
			m.errs = append(m.errs, fmt.Sprintf("leave of absent %v (%s)", k, e.Reason))
		}
		delete(m.have, k)
	}
}

func (m *model) snapshot() (map[mkey]string, []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.have), slices.Clone(m.errs)
}

// simCluster is a set of registries on one memnet network, each with a
// watcher of its whole scope feeding a model.
type simCluster struct {
	t      *testing.T
	net    *memnet.Network
	regs   map[string]*Registry
	models map[string]*model
	names  []string
	wg     sync.WaitGroup
	tune   func(*Config)
}

func newSimCluster(t *testing.T, seed int64, size int, nc memnet.Config, tune func(*Config)) *simCluster {
	t.Helper()
	nc.Seed = seed
	c := &simCluster{t: t, net: memnet.New(nc), regs: map[string]*Registry{}, models: map[string]*model{}, tune: tune}
	for i := 0; i < size; i++ {
		c.names = append(c.names, fmt.Sprintf("n%d", i))
	}
	for _, name := range c.names {
		c.start(name, 1)
	}
	c.waitAlive(c.names...)
	return c
}

func (c *simCluster) start(name string, inc uint64) *Registry {
	c.t.Helper()
	tr, err := c.net.NewTransport(name)
	require.NoError(c.t, err)
	cfg := LocalConfig(name)
	cfg.Scopes = []string{"chat"}
	cfg.Incarnation = inc
	cfg.Tune(func(g *gossip.Config) { g.Transport = tr })
	cfg.WatchBuffer = 1 << 16
	for _, other := range c.names {
		if a := c.net.Addr(other); other != name && a != "" {
			cfg.Seeds = append(cfg.Seeds, a)
		}
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	r, err := Open(context.Background(), cfg)
	require.NoError(c.t, err)
	w, err := r.Watch(context.Background(), "chat", All())
	require.NoError(c.t, err)
	m := newModel(w.Snapshot)
	c.regs[name], c.models[name] = r, m
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for e := range w.C {
			m.apply(e)
		}
	}()
	return r
}

func (c *simCluster) close() {
	for _, r := range c.regs {
		require.NoError(c.t, r.Close(context.Background()))
	}
	c.wg.Wait()
	c.net.Shutdown()
}

// waitAlive waits until each named node sees every named node alive.
func (c *simCluster) waitAlive(names ...string) {
	c.t.Helper()
	eventually(c.t, "nodes alive: "+strings.Join(names, ","), func() bool {
		for _, n := range names {
			alive := map[string]bool{}
			for _, x := range c.regs[n].Nodes() {
				if x.State == "alive" {
					alive[x.Name] = true
				}
			}
			for _, m := range names {
				if !alive[m] {
					return false
				}
			}
		}
		return true
	})
}

// visible is what a node's reads show for the whole scope.
func visible(r *Registry) map[mkey]string {
	out := map[mkey]string{}
	gs, _ := r.Groups("chat")
	for _, g := range gs {
		ms, _ := r.Members("chat", g)
		for _, m := range ms {
			out[mkey{m.Group, m.ID, m.Owner}] = m.Meta["v"]
		}
	}
	return out
}

// converge waits until every node's reads and watcher model equal want,
// then checks that no watcher saw an event out of place.
func (c *simCluster) converge(what string, want map[mkey]string, within time.Duration) {
	c.t.Helper()
	var last string
	ok := waitFor(within, func() bool {
		for _, name := range c.names {
			got := visible(c.regs[name])
			if !maps.Equal(got, want) {
				last = fmt.Sprintf("%s reads: %s", name, diff(want, got))
				return false
			}
			seen, errs := c.models[name].snapshot()
			if !maps.Equal(seen, want) {
				last = fmt.Sprintf("%s watcher: %s; anomalies %v", name, diff(want, seen), errs)
				m := c.models[name]
				m.mu.Lock()
				for k := range want {
					if seen[k] != want[k] {
						last += fmt.Sprintf("\n  %v: %v", k, m.history[k])
					}
				}
				for k := range seen {
					if _, ok := want[k]; !ok {
						last += fmt.Sprintf("\n  %v: %v", k, m.history[k])
					}
				}
				m.mu.Unlock()
				return false
			}
		}
		return true
	})
	require.True(c.t, ok, "%s: not converged within %v (seed %d): %s", what, within, c.net.Seed(), last)
	for _, name := range c.names {
		_, errs := c.models[name].snapshot()
		require.Empty(c.t, errs, "%s: watcher on %s (seed %d)", what, name, c.net.Seed())
	}
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

func diff(want, got map[mkey]string) string {
	var out []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			out = append(out, fmt.Sprintf("missing %v", k))
		} else if g != v {
			out = append(out, fmt.Sprintf("%v meta %q want %q", k, g, v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("unexpected %v", k))
		}
	}
	slices.Sort(out)
	if len(out) > 8 {
		out = append(out[:8], fmt.Sprintf("... %d more", len(out)-8))
	}
	return strings.Join(out, "; ")
}

// partitionShapes are the nemesis' moves on a 5-node cluster.
var partitionShapes = []struct {
	name  string
	apply func(n *memnet.Network, names []string, rng *rand.Rand)
}{
	{"none", func(*memnet.Network, []string, *rand.Rand) {}},
	{"halves", func(n *memnet.Network, names []string, rng *rand.Rand) {
		p := slices.Clone(names)
		rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		n.Partition(p[:len(p)/2], p[len(p)/2:])
	}},
	{"isolate-one", func(n *memnet.Network, names []string, rng *rand.Rand) {
		n.Isolate(names[rng.IntN(len(names))])
	}},
	{"one-way", func(n *memnet.Network, names []string, rng *rand.Rand) {
		// One node stops hearing from two others; they still hear it.
		p := slices.Clone(names)
		rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		n.Cut(p[1], p[0])
		n.Cut(p[2], p[0])
	}},
	{"bridge", func(n *memnet.Network, names []string, rng *rand.Rand) {
		// Two sides that only one node (p[0]) can talk to.
		p := slices.Clone(names)
		rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		n.Partition(p[1:3], p[3:])
	}},
	{"ring", func(n *memnet.Network, names []string, rng *rand.Rand) {
		// Each node reaches only its two ring neighbours: every node sees
		// a majority (itself and two others), no two majorities agree.
		p := slices.Clone(names)
		rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		for i := range p {
			for j := i + 1; j < len(p); j++ {
				if d := j - i; d != 1 && d != len(p)-1 {
					n.CutBoth(p[i], p[j])
				}
			}
		}
	}},
}

// TestClusterChaos: 5 nodes, random joins, updates and leaves on every node
// while partitions of every shape come and go over a lossy, reordering,
// duplicating network. After the final heal every node's reads and every
// watcher converge to exactly the acknowledged operations: no acknowledged
// join of a live member missing, no acknowledged leave undone, and no
// watcher ever saw an event out of place.
func TestClusterChaos(t *testing.T) {
	seeds := []int64{*clusterSeed}
	if *clusterSeed == 0 {
		seeds = nil
		for i := 0; i < *clusterRuns; i++ {
			seeds = append(seeds, int64(1001+i))
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runChaos(t, seed, *clusterRounds)
		})
	}
}

func runChaos(t *testing.T, seed int64, rounds int) {
	t.Logf("replay with -cluster.seed=%d", seed)
	c := newSimCluster(t, seed, 5, memnet.Config{Loss: 0.05, Duplicate: 0.05, MaxDelay: 3 * time.Millisecond}, nil)
	defer c.close()
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	ctx := context.Background()
	want := map[mkey]string{}
	version := 0
	for round := 0; round < rounds; round++ {
		shape := partitionShapes[rng.IntN(len(partitionShapes))]
		c.net.HealAll()
		shape.apply(c.net, c.names, rng)
		t.Logf("round %d: %s, cuts %v", round, shape.name, c.net.Cuts())
		ops := 20 + rng.IntN(20)
		for i := 0; i < ops; i++ {
			owner := c.names[rng.IntN(len(c.names))]
			r := c.regs[owner]
			k := mkey{fmt.Sprintf("g%d", rng.IntN(4)), fmt.Sprintf("m%d", rng.IntN(8)), owner}
			if _, has := want[k]; has && rng.IntN(3) == 0 {
				require.NoError(t, r.Leave(ctx, "chat", k.group, k.id))
				delete(want, k)
			} else {
				version++
				v := fmt.Sprint(version)
				_, err := r.Join(ctx, "chat", k.group, k.id, Meta{"v": v})
				require.NoError(t, err)
				want[k] = v
			}
			time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(800)) * time.Millisecond)
	}
	c.net.HealAll()
	c.net.SetLoss(0.01)
	c.converge("after the final heal", want, 45*time.Second)
	c.waitAlive(c.names...)
}

// TestClusterLongPartitionHeals: a partition that outlasts memberlist's
// GossipToTheDeadTime, after which memberlist alone would never contact
// the other side again, heals by itself through the rejoin loop, and both
// sides' writes converge.
func TestClusterLongPartitionHeals(t *testing.T) {
	const seed = 77
	t.Logf("seed %d", seed)
	c := newSimCluster(t, seed, 5, memnet.Config{}, func(cfg *Config) {
		cfg.Tune(func(g *gossip.Config) {
			ml := *g.Memberlist
			ml.GossipToTheDeadTime = 300 * time.Millisecond
			g.Memberlist = &ml
			g.RejoinMaxInterval = 500 * time.Millisecond
		})
	})
	defer c.close()
	ctx := context.Background()
	left, right := c.names[:2], c.names[2:]
	c.net.Partition(left, right)
	// Each side sees the other dead, then long past GossipToTheDeadTime.
	eventually(t, "sides see each other down", func() bool {
		for _, n := range c.names {
			if len(aliveNames(c.regs[n])) > 3 {
				return false
			}
		}
		return true
	})
	want := map[mkey]string{}
	for i, n := range c.names {
		_, err := c.regs[n].Join(ctx, "chat", "room", fmt.Sprintf("during-%d", i), Meta{"v": "1"})
		require.NoError(t, err)
		want[mkey{"room", fmt.Sprintf("during-%d", i), n}] = "1"
	}
	time.Sleep(2 * time.Second)
	require.Len(t, visible(c.regs["n0"]), 2, "n0 sees only its side's members during the partition")
	require.Len(t, visible(c.regs["n4"]), 3, "n4 sees only its side's members during the partition")
	c.net.HealAll()
	c.waitAlive(c.names...)
	c.converge("after a long partition", want, 20*time.Second)
}

func aliveNames(r *Registry) []string {
	var out []string
	for _, n := range r.Nodes() {
		if n.State == "alive" {
			out = append(out, n.Name)
		}
	}
	return out
}

// TestClusterOwnerLiveness: an owner cut off from the others is hidden
// there within the failure-detection time (watchers: owner-down), and
// reappears with owner-up when the same incarnation is reachable again,
// without any state transfer. A restart under a new incarnation removes the
// old run's entries everywhere (owner-restarted).
func TestClusterOwnerLiveness(t *testing.T) {
	const seed = 5
	c := newSimCluster(t, seed, 5, memnet.Config{}, nil)
	defer c.close()
	ctx := context.Background()
	want := map[mkey]string{}
	for i, n := range c.names {
		for j := 0; j < 3; j++ {
			id := fmt.Sprintf("m%d-%d", i, j)
			_, err := c.regs[n].Join(ctx, "chat", "room", id, Meta{"v": "1"})
			require.NoError(t, err)
			want[mkey{"room", id, n}] = "1"
		}
	}
	c.converge("initial", want, 10*time.Second)

	without := maps.Clone(want)
	for k := range without {
		if k.owner == "n4" {
			delete(without, k)
		}
	}
	// Late repairs of the initial joins (digests that crossed the pushes)
	// may still be in flight: sample once nothing moved for a while.
	repairBefore := totalRepairBytes(c)
	for quiet := 0; quiet < 5; {
		time.Sleep(200 * time.Millisecond)
		if now := totalRepairBytes(c); now != repairBefore {
			repairBefore, quiet = now, 0
		} else {
			quiet++
		}
	}
	cut := time.Now()
	c.net.Isolate("n4")
	ok := waitFor(10*time.Second, func() bool {
		for _, n := range c.names[:4] {
			if !maps.Equal(visible(c.regs[n]), without) {
				return false
			}
		}
		return true
	})
	require.True(t, ok, "n4's members hidden on the others")
	t.Logf("n4 hidden on all four others %v after the cut (probe %v, suspicion mult %d)",
		time.Since(cut).Round(time.Millisecond), gossip.DefaultLocalConfig("").Memberlist.ProbeInterval, gossip.DefaultLocalConfig("").Memberlist.SuspicionMult)

	c.net.HealAll()
	c.converge("same incarnation back", want, 15*time.Second)
	require.Equal(t, repairBefore, totalRepairBytes(c), "coming back transferred state")
	// At least one owner-down and owner-up per member of n4 (more if a
	// loaded machine made the failure detector flap); the watcher model
	// already proved they fit the state.
	m0 := c.models["n0"]
	m0.mu.Lock()
	downs, ups := m0.byOwner["n4/owner-down"], m0.byOwner["n4/owner-up"]
	m0.mu.Unlock()
	require.GreaterOrEqual(t, downs, 3, "owner-down events for n4 on n0")
	require.Equal(t, downs, ups, "every owner-down of n4 matched by an owner-up")

	// Restart n4 with a new incarnation: the old entries go everywhere.
	c.regs["n4"].node.Crash()
	old := c.regs["n4"]
	delete(c.regs, "n4")
	_ = old.Close(ctx)
	r := c.start("n4", 2)
	_, err := r.Join(ctx, "chat", "room", "fresh", Meta{"v": "2"})
	require.NoError(t, err)
	after := maps.Clone(without)
	after[mkey{"room", "fresh", "n4"}] = "2"
	c.converge("after the restart", after, 15*time.Second)
	for _, n := range c.names[:4] {
		for _, m := range mustMembers(t, c.regs[n], "room") {
			if m.Owner == "n4" {
				require.Equal(t, uint64(2), m.Incarnation)
			}
		}
	}
}

func totalRepairBytes(c *simCluster) int64 {
	var n int64
	for _, r := range c.regs {
		n += r.Stats().RepairBytesSent
	}
	return n
}

func mustMembers(t *testing.T, r *Registry, group string) []Member {
	t.Helper()
	ms, err := r.Members("chat", group)
	require.NoError(t, err)
	return ms
}

// TestClusterOwnerOrder: over a network that delays and reorders packets
// (no loss), a watcher on another node sees one owner's joins in the order
// the owner made them, as pg delivers a sender's messages in order: deltas
// that overtake an earlier one wait for it (gossip.Config.HoldBack).
func TestClusterOwnerOrder(t *testing.T) {
	for _, hold := range []time.Duration{0, 200 * time.Millisecond} {
		t.Run(fmt.Sprintf("holdback=%v", hold), func(t *testing.T) {
			inOrder := ownerOrderRun(t, hold)
			if hold > 0 {
				require.True(t, inOrder, "joins seen out of their owner's order")
			} else {
				// Without hold-back the same network reorders them: the
				// check above can fail.
				t.Logf("without hold-back, in order: %v", inOrder)
			}
		})
	}
}

func ownerOrderRun(t *testing.T, hold time.Duration) bool {
	c := newSimCluster(t, 31, 3, memnet.Config{MaxDelay: 4 * time.Millisecond}, func(cfg *Config) {
		cfg.HoldBack = hold
		cfg.Tune(func(g *gossip.Config) { g.PiggybackQueue = 0 })
	})
	defer c.close()
	w, err := c.regs["n1"].Watch(context.Background(), "chat", Group("seq"))
	require.NoError(t, err)
	defer w.Close()
	const n = 150
	for i := 0; i < n; i++ {
		_, err := c.regs["n0"].Join(context.Background(), "chat", "seq", fmt.Sprintf("m%03d", i), nil)
		require.NoError(t, err)
		time.Sleep(200 * time.Microsecond)
	}
	var got []string
	for len(got) < n {
		select {
		case e := <-w.C:
			require.Equal(t, EventJoin, e.Type)
			got = append(got, e.Member.ID)
		case <-time.After(wait):
			t.Fatalf("only %d of %d joins seen", len(got), n)
		}
	}
	return slices.IsSorted(got)
}

// TestClusterFreshNodeFetchesOnce: a node joining a cluster that holds a
// large scope fetches it from one peer, not from every peer that greets it
// (each greeting invites a digest, and each digest a full transfer).
func TestClusterFreshNodeFetchesOnce(t *testing.T) {
	// Packets take 10-30 ms, so the newcomer's arrival spreads slowly and
	// the greetings come one by one while the transfer is under way.
	c := newSimCluster(t, 11, 4, memnet.Config{MinDelay: 10 * time.Millisecond, MaxDelay: 30 * time.Millisecond}, nil)
	defer c.close()
	ctx := context.Background()
	want := map[mkey]string{}
	for i := range 20000 {
		g, id := fmt.Sprintf("g%d", i%200), fmt.Sprintf("m%d", i)
		_, err := c.regs["n0"].Join(ctx, "chat", g, id, Meta{"v": "1"})
		require.NoError(t, err)
		want[mkey{g, id, "n0"}] = "1"
	}
	c.converge("filled", want, 20*time.Second)
	time.Sleep(300 * time.Millisecond) // let the last anti-entropy round settle
	before := map[string]int64{}
	for _, n := range c.names {
		before[n] = c.regs[n].Stats().RepairDeltasSent
	}
	c.names = append(c.names, "n4")
	c.start("n4", 1)
	c.converge("fresh node", want, 20*time.Second)
	time.Sleep(500 * time.Millisecond) // count late duplicates too
	var senders []string
	for n, b := range before {
		if c.regs[n].Stats().RepairDeltasSent > b {
			senders = append(senders, n)
		}
	}
	require.Len(t, senders, 1, "the scope was sent by %v", senders)
}

// TestWatchSnapshotOrder: a watch's snapshot, and a resync, list the
// members in (group, id, owner) order, across owners and groups.
func TestWatchSnapshotOrder(t *testing.T) {
	c := newSimCluster(t, 3, 3, memnet.Config{}, func(cfg *Config) { cfg.WatchBuffer = 8 })
	defer c.close()
	ctx := context.Background()
	want := map[mkey]string{}
	for _, n := range c.names {
		for _, g := range []string{"b", "a", "a/x", "c"} {
			for _, id := range []string{"z", "m", "a"} {
				_, err := c.regs[n].Join(ctx, "chat", g, id, Meta{"v": "1"})
				require.NoError(t, err)
				want[mkey{g, id, n}] = "1"
			}
		}
	}
	c.converge("filled", want, 10*time.Second)
	less := func(a, b Member) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Owner, b.Owner))
	}
	for _, sel := range []Selector{All(), Prefix("a"), Group("a")} {
		w, err := c.regs["n0"].Watch(ctx, "chat", sel)
		require.NoError(t, err)
		n := 0
		for k := range want {
			if sel.Matches(k.group) {
				n++
			}
		}
		require.Len(t, w.Snapshot, n)
		require.True(t, slices.IsSortedFunc(w.Snapshot, less), "snapshot out of order: %v", w.Snapshot)
		w.Close()
	}

	ms, err := c.regs["n0"].Members("chat", "a")
	require.NoError(t, err)
	require.Len(t, ms, 9)
	require.True(t, slices.IsSortedFunc(ms, less), "Members out of order: %v", ms)

	// A burst that a consumer not reading cannot hold (its channel, then
	// a backlog as large as what it holds): the watch resyncs, in order
	// too. The consumer only reads once the burst has merged.
	w, err := c.regs["n0"].Watch(ctx, "chat", All())
	require.NoError(t, err)
	defer w.Close()
	const burst = 600 // > 256 in the channel + (36 + 256) queued
	for i := range burst {
		id := fmt.Sprintf("m%03d", burst-1-i)
		_, err := c.regs["n1"].Join(ctx, "chat", "burst", id, nil)
		require.NoError(t, err)
		want[mkey{"burst", id, "n1"}] = ""
	}
	c.converge("burst", want, 10*time.Second)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-w.C:
			if e.Type != EventResync {
				continue
			}
			require.True(t, slices.IsSortedFunc(e.Members, less), "resync out of order")
			return
		case <-deadline:
			t.Fatalf("no resync after a burst of %d events into a buffer of 8", burst)
		}
	}
}

// TestClusterFanOutRelay: with Config.FanOut, a writer pushes each batch to
// FanOut peers and the rest of a 10-node cluster is reached by relays,
// over a lossy network; every node and watcher still ends with exactly the
// acknowledged state, and the writer sent far fewer messages than one per
// peer per batch.
func TestClusterFanOutRelay(t *testing.T) {
	const fanOut, joins = 3, 150
	c := newSimCluster(t, 21, 10, memnet.Config{Loss: 0.02}, func(cfg *Config) { cfg.FanOut = fanOut })
	defer c.close()
	ctx := context.Background()
	w := c.regs["n0"]
	before := w.Stats()
	want := map[mkey]string{}
	for i := range joins {
		id := fmt.Sprintf("m%d", i)
		_, err := w.Join(ctx, "chat", "room", id, Meta{"v": "1"})
		require.NoError(t, err)
		want[mkey{"room", id, "n0"}] = "1"
		time.Sleep(time.Millisecond) // one batch per join
	}
	c.converge("relayed", want, 20*time.Second)
	after := w.Stats()
	sent := (after.PacketsSent - before.PacketsSent) + (after.ReliableSent - before.ReliableSent)
	batches := after.DeltasSent - before.DeltasSent
	var relayed int64
	for _, n := range c.names[1:] {
		relayed += c.regs[n].Stats().Relayed
	}
	t.Logf("writer: %d messages for %d local deltas (full mesh: %d); relayed by the others: %d", sent, batches, 9*batches, relayed)
	require.Positive(t, relayed, "nobody relayed")
	require.Less(t, sent, 4*batches, "the writer sent about one message per peer per batch")
}
