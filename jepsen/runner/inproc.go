package runner

import (
	"context"
	"errors"
	"fmt"
	"github.com/roster-io/roster/gossip"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/roster-io/roster/gossip/memnet"
	"github.com/roster-io/roster/jepsen/history"
	"github.com/roster-io/roster/jepsen/workload"
	"github.com/roster-io/roster/registry"
)

// InProc is a cluster of embedded registries on one memnet network, each
// with a data directory of its own (durable members survive a restart).
// Its faults are memnet's: partitions as grudges, packet loss, and the
// process faults emulated (a killed node is cut off, then closed; a paused
// node is cut off for the pause). Runs are seeded: the network's faults
// and the nemesis's choices replay from the seed (the goroutine schedule
// does not: see memnet.Config.Seed).
type InProc struct {
	net   *memnet.Network
	dir   string
	scope string
	log   *slog.Logger
	names []string
	tune  func(*registry.Config)

	mu     sync.Mutex
	regs   map[string]*registry.Registry
	paused map[string]bool
	wiped  map[string]bool
}

// NewInProc starts n nodes n1..nn serving scope, with data under dir,
// and waits until they see each other alive. tune may change each node's
// configuration (nil: LocalConfig).
func NewInProc(ctx context.Context, n int, scope, dir string, seed int64, log *slog.Logger, tune func(*registry.Config)) (*InProc, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &InProc{net: memnet.New(memnet.Config{Seed: seed, MaxDelay: time.Millisecond, KeepAddrs: true}), dir: dir, scope: scope, log: log, tune: tune,
		regs: map[string]*registry.Registry{}, paused: map[string]bool{}, wiped: map[string]bool{}}
	for i := 1; i <= n; i++ {
		c.names = append(c.names, "n"+strconv.Itoa(i))
	}
	for _, name := range c.names {
		if err := c.start(ctx, name); err != nil {
			c.Close()
			return nil, err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for !c.allAlive() {
		if time.Now().After(deadline) {
			c.Close()
			return nil, fmt.Errorf("%w: the in-process cluster did not form", ErrRun)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c, nil
}

func (c *InProc) allAlive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.regs {
		alive := 0
		for _, ni := range r.Nodes() {
			if ni.State == "alive" {
				alive++
			}
		}
		if alive < len(c.names) {
			return false
		}
	}
	return true
}

func (c *InProc) start(ctx context.Context, name string) error {
	tr, err := c.net.NewTransport(name)
	if err != nil {
		return err
	}
	cfg := registry.LocalConfig(name)
	cfg.Scopes = []string{c.scope}
	cfg.Tune(func(g *gossip.Config) { g.Transport = tr })
	cfg.DataDir = filepath.Join(c.dir, name)
	cfg.Logger = c.log.With("node", name)
	for _, other := range c.names {
		if a := c.net.Addr(other); other != name && a != "" {
			cfg.Seeds = append(cfg.Seeds, a)
		}
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	r, err := registry.Open(ctx, cfg)
	if err != nil {
		_ = tr.Shutdown()
		return err
	}
	c.mu.Lock()
	c.regs[name] = r
	c.mu.Unlock()
	return nil
}

// Close stops every node and the network.
func (c *InProc) Close() {
	c.mu.Lock()
	regs := c.regs
	c.regs = map[string]*registry.Registry{}
	c.mu.Unlock()
	for _, r := range regs {
		_ = r.Close(context.Background())
	}
	c.net.Shutdown()
}

func (c *InProc) Names() []string { return slices.Clone(c.names) }

func (c *InProc) Node(name string) workload.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.regs[name]
	if r == nil {
		return nil
	}
	return &regNode{name: name, r: r, paused: c.paused[name]}
}

func (c *InProc) Up(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.regs[name] != nil && !c.paused[name]
}

// Heal heals every link, resumes paused nodes and restarts killed ones.
func (c *InProc) Heal(ctx context.Context) ([]history.Fault, error) {
	var out []history.Fault
	c.net.HealAll()
	c.net.SetLoss(0)
	out = append(out, history.Fault{Kind: "heal", Name: "final"})
	c.mu.Lock()
	var down []string
	for _, name := range c.names {
		if c.regs[name] == nil {
			down = append(down, name)
		}
	}
	clear(c.paused)
	c.mu.Unlock()
	var errs []error
	for _, name := range down {
		if err := c.start(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, history.Fault{Kind: "restart", Nodes: []string{name}})
	}
	return out, errors.Join(errs...)
}

// kill cuts name off (so that its goodbye reaches nobody, as with a
// killed process) and closes it.
func (c *InProc) kill(name string) {
	c.mu.Lock()
	r := c.regs[name]
	delete(c.regs, name)
	c.mu.Unlock()
	if r == nil {
		return
	}
	c.net.Isolate(name)
	_ = r.Close(context.Background())
}

func (c *InProc) heal(name string) {
	for _, other := range c.names {
		if other != name {
			c.net.HealBoth(name, other)
		}
	}
}

// Faults returns the in-process nemesis's faults by name: partition,
// loss, pause, kill, amnesia.
func (c *InProc) Faults(names ...string) ([]Fault, error) {
	var out []Fault
	for _, n := range names {
		switch n {
		case "partition":
			out = append(out, &memPartition{c: c})
		case "loss":
			out = append(out, &memLoss{c: c})
		case "pause":
			out = append(out, &memPause{c: c})
		case "kill":
			out = append(out, &memKill{c: c})
		case "amnesia":
			out = append(out, &memKill{c: c, wipe: true})
		case "none", "":
		default:
			return nil, fmt.Errorf("%w: the in-process nemesis has no fault %q", ErrRun, n)
		}
	}
	return out, nil
}

// --- faults ----------------------------------------------------------------------

type memPartition struct {
	c      *InProc
	grudge map[string][]string
}

func (f *memPartition) Name() string { return "partition" }

// Start cuts one of the shapes: an isolated node, halves, one-way, or a
// bridge (two halves and a node that sees both).
func (f *memPartition) Start(_ context.Context, rng *rand.Rand) (history.Fault, error) {
	names := f.c.Names()
	rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	f.grudge = map[string][]string{}
	cut := func(from, to string) {
		f.c.net.Cut(from, to)
		f.grudge[to] = append(f.grudge[to], from) // to drops from's packets
	}
	shapes := []string{"isolated", "halves", "one-way", "bridge"}
	shape := shapes[rng.IntN(len(shapes))]
	half := len(names) / 2
	switch shape {
	case "isolated":
		for _, o := range names[1:] {
			cut(names[0], o)
			cut(o, names[0])
		}
	case "halves":
		for _, a := range names[:half] {
			for _, b := range names[half:] {
				cut(a, b)
				cut(b, a)
			}
		}
	case "one-way":
		for _, a := range names[:half] {
			for _, b := range names[half:] {
				cut(a, b)
			}
		}
	case "bridge":
		mid := names[0]
		rest := names[1:]
		h := len(rest) / 2
		for _, a := range rest[:h] {
			for _, b := range rest[h:] {
				cut(a, b)
				cut(b, a)
			}
		}
		_ = mid
	}
	for k := range f.grudge {
		slices.Sort(f.grudge[k])
	}
	return history.Fault{Kind: "partition", Name: shape, Grudge: f.grudge}, nil
}

func (f *memPartition) Stop(context.Context) (history.Fault, error) {
	for to, froms := range f.grudge {
		for _, from := range froms {
			f.c.net.Heal(from, to)
		}
	}
	return history.Fault{Kind: "heal", Name: "partition"}, nil
}

type memLoss struct{ c *InProc }

func (f *memLoss) Name() string { return "loss" }
func (f *memLoss) Start(_ context.Context, rng *rand.Rand) (history.Fault, error) {
	p := []float64{0.1, 0.3, 0.5}[rng.IntN(3)]
	f.c.net.SetLoss(p)
	return history.Fault{Kind: "loss", Loss: p, Nodes: f.c.Names()}, nil
}
func (f *memLoss) Stop(context.Context) (history.Fault, error) {
	f.c.net.SetLoss(0)
	return history.Fault{Kind: "heal", Name: "loss"}, nil
}

// memPause emulates SIGSTOP: the node neither sends nor receives, and its
// clients' operations wait (they time out as indeterminate).
type memPause struct {
	c    *InProc
	node string
}

func (f *memPause) Name() string { return "pause" }
func (f *memPause) Start(_ context.Context, rng *rand.Rand) (history.Fault, error) {
	names := f.c.Names()
	f.node = names[rng.IntN(len(names))]
	f.c.mu.Lock()
	f.c.paused[f.node] = true
	f.c.mu.Unlock()
	f.c.net.Isolate(f.node)
	return history.Fault{Kind: "pause", Nodes: []string{f.node}}, nil
}
func (f *memPause) Stop(context.Context) (history.Fault, error) {
	f.c.heal(f.node)
	f.c.mu.Lock()
	delete(f.c.paused, f.node)
	f.c.mu.Unlock()
	return history.Fault{Kind: "resume", Nodes: []string{f.node}}, nil
}

type memKill struct {
	c    *InProc
	wipe bool
	node string
}

func (f *memKill) Name() string {
	if f.wipe {
		return "amnesia"
	}
	return "kill"
}

func (f *memKill) Start(_ context.Context, rng *rand.Rand) (history.Fault, error) {
	names := f.c.Names()
	f.node = names[rng.IntN(len(names))]
	f.c.kill(f.node)
	return history.Fault{Kind: "kill", Nodes: []string{f.node}}, nil
}

func (f *memKill) Stop(ctx context.Context) (history.Fault, error) {
	kind := "restart"
	if f.wipe {
		kind = "wipe"
		if err := os.RemoveAll(filepath.Join(f.c.dir, f.node)); err != nil {
			return history.Fault{Kind: kind, Nodes: []string{f.node}}, err
		}
	}
	f.c.heal(f.node)
	err := f.c.start(ctx, f.node)
	return history.Fault{Kind: kind, Nodes: []string{f.node}}, err
}
