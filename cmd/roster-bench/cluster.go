package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/roster-io/roster/gossip"
	"github.com/roster-io/roster/gossip/faultnet"
	"github.com/roster-io/roster/gossip/memnet"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-io/roster/registry"
)

const benchScope = "bench"

// nodeOpts says how to configure the nodes of a cluster.
type nodeOpts struct {
	lan    bool          // registry.DefaultConfig (LAN timings) instead of LocalConfig
	faults *faultnet.Net // non-nil: nodes use faultnet.Transports registered here
	// mem, when set, carries the nodes' gossip in memory (memnet
	// transports named after the nodes) instead of over sockets.
	mem    *memnet.Network
	logger *slog.Logger
	logOut io.Writer // memberlist transport log output
	// compression turns memberlist's LZW compression of every packet and
	// stream on (a diagnostic knob; the presets turn it off).
	compression bool
	fanOut      int // Config.FanOut
	// directMax is gossip.Config.DirectMax: past it a scope spreads
	// batches with Plumtree; 0 the default (32), -1 never.
	directMax int
	// cluster is Config.Cluster: each bench cluster has a name of its
	// own, so that none can join another (or another process's nodes on
	// 127.0.0.1) through a port reused since.
	cluster string
}

// cluster is a set of real registry nodes in this process.
type cluster struct {
	opts  nodeOpts
	nodes []*registry.Registry
	// trackers[i] follows nodes[i]'s scope (nil if not tracked).
	trackers []*tracker
	// transports[i] is nodes[i]'s faultnet.Transport (nil without faults).
	transports []*faultnet.Transport
	// severables are the nodes' memnet transports (with opts.mem), cut
	// off at once at teardown (memnet.Transport.Sever).
	severables []*memnet.Transport
	// fd counts the nodes' failure-detector events.
	fd *fdCounter
	// prefix makes node names unique on this machine.
	prefix string
}

var clusterSeq atomic.Int64

// nodeName is the name of the i-th node (0-based) of this cluster: "n1"
// and so on, prefixed with the process id and a cluster sequence number so
// that no other cluster on this machine (other test processes on
// 127.0.0.1, whose rejoin loops keep dialing the ephemeral ports of their
// departed peers) can share a name with ours.
func (c *cluster) nodeName(i int) string {
	return fmt.Sprintf("%sn%d", c.prefix, i+1)
}

// index maps a node name of this cluster to its index, -1 if foreign.
func (c *cluster) index(name string) int {
	rest, ok := strings.CutPrefix(name, c.prefix+"n")
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(rest)
	if err != nil {
		return -1
	}
	return i - 1
}

// short strips the cluster prefix from a node name.
func (c *cluster) short(name string) string { return strings.TrimPrefix(name, c.prefix) }

// foreign counts the nodes any of ours has seen that are not part of this
// cluster (they should never appear).
func (c *cluster) foreign() int {
	seen := map[string]bool{}
	for _, r := range c.nodes {
		for _, ni := range r.Nodes() {
			if c.index(ni.Name) < 0 {
				seen[ni.Name] = true
			}
		}
	}
	return len(seen)
}

// openNode opens node name, seeded with seeds, on its own transport.
func (c *cluster) openNode(ctx context.Context, name string, seeds []string, side int) (*registry.Registry, *faultnet.Transport, error) {
	cfg := nodeConfig(c.opts, name, seeds)
	var tr *faultnet.Transport
	var mt *memnet.Transport
	switch {
	case c.opts.mem != nil:
		var err error
		mt, err = c.opts.mem.NewTransport(name)
		if err != nil {
			return nil, nil, fmt.Errorf("transport for %s: %w", name, err)
		}
		c.severables = append(c.severables, mt)
		cfg.Tune(func(g *gossip.Config) { g.Transport = mt })
	case c.opts.faults != nil:
		var err error
		tr, err = faultnet.NewTransport(c.opts.faults, c.opts.logOut)
		if err != nil {
			return nil, nil, fmt.Errorf("transport for %s: %w", name, err)
		}
		c.opts.faults.Assign(tr.Addr(), side)
		cfg.Tune(func(g *gossip.Config) { g.Transport = tr })
	}
	r, err := registry.Open(ctx, cfg)
	if err != nil {
		if tr != nil {
			_ = tr.Shutdown()
		}
		if mt != nil {
			_ = mt.Shutdown()
		}
		return nil, nil, fmt.Errorf("open %s: %w", name, err)
	}
	return r, tr, nil
}

// nodeConfig is the configuration of a bench node (without faults).
func nodeConfig(o nodeOpts, name string, seeds []string) registry.Config {
	var cfg registry.Config
	if o.lan {
		cfg = registry.DefaultConfig(name)
		cfg.BindAddr = "127.0.0.1"
		cfg.BindPort = 0
	} else {
		cfg = registry.LocalConfig(name)
	}
	cfg.Scopes = []string{benchScope}
	cfg.Seeds = seeds
	cfg.FanOut = o.fanOut
	cfg.Cluster = o.cluster
	if o.directMax != 0 {
		cfg.Tune(func(g *gossip.Config) { g.DirectMax = o.directMax })
	}
	if o.compression {
		cfg.Tune(func(g *gossip.Config) {
			ml := *g.Memberlist
			ml.EnableCompression = true
			g.Memberlist = &ml
		})
	}
	cfg.Logger = o.logger
	return cfg
}

// startCluster opens n nodes n1..nN, seeds 2..N with node 1, and waits until
// every node sees every other one alive. sideOf gives each node's side of a
// later partition (only used with faults).
func startCluster(ctx context.Context, o nodeOpts, n int, sideOf func(i int) int) (*cluster, error) {
	c := newCluster(o, nil)
	for i := 0; i < n; i++ {
		side := 0
		if sideOf != nil {
			side = sideOf(i)
		}
		if err := c.add(ctx, side); err != nil {
			c.close()
			return nil, err
		}
	}
	if err := waitFor(ctx, 30*time.Second, func() bool { return c.meshAlive() }); err != nil {
		view := c.meshView() // before close changes it
		c.close()
		return nil, fmt.Errorf("cluster of %d did not form: %w (%s)", n, err, view)
	}
	return c, nil
}

// newCluster returns an empty cluster of its own name. Its nodes log to
// o.logger through the failure-detector counter, and through wrap when
// wrap is set (a handler that sees every record first).
func newCluster(o nodeOpts, wrap func(slog.Handler) slog.Handler) *cluster {
	c := &cluster{opts: o, fd: &fdCounter{}, prefix: fmt.Sprintf("b%d.%d.", os.Getpid(), clusterSeq.Add(1))}
	c.opts.cluster = "roster-bench:" + c.prefix
	base := o.logger
	if base == nil {
		base = slog.New(slog.DiscardHandler)
	}
	var h slog.Handler = &tapHandler{inner: base.Handler(), min: allLevels, see: c.fd.count}
	if wrap != nil {
		h = wrap(h)
	}
	c.opts.logger = slog.New(h)
	return c
}

// add opens the next node, seeded with the first one, on side side of a
// later partition (faultnet only).
func (c *cluster) add(ctx context.Context, side int) error {
	var seeds []string
	if len(c.nodes) > 0 {
		seeds = []string{c.nodes[0].Addr()}
	}
	r, tr, err := c.openNode(ctx, c.nodeName(len(c.nodes)), seeds, side)
	if err != nil {
		return err
	}
	c.nodes = append(c.nodes, r)
	c.transports = append(c.transports, tr)
	c.trackers = append(c.trackers, nil)
	return nil
}

// meshAlive reports whether every node sees every node of the cluster
// alive.
func (c *cluster) meshAlive() bool {
	for _, r := range c.nodes {
		alive := 0
		for _, ni := range r.Nodes() {
			if ni.State == registry.PeerAlive {
				alive++
			}
		}
		if alive < len(c.nodes) {
			return false
		}
	}
	return true
}

// meshView describes what each node sees that is not an alive peer: a
// missing node or its state, for an error ("all alive" if nothing).
func (c *cluster) meshView() string {
	var parts []string
	for _, r := range c.nodes {
		seen := map[string]registry.PeerState{}
		var self string
		for _, ni := range r.Nodes() {
			seen[ni.Name] = ni.State
			if ni.Self {
				self = ni.Name
			}
		}
		for _, o := range c.nodes {
			name := o.Nodes()[0].Name // a node lists itself first
			switch st, ok := seen[name]; {
			case !ok:
				parts = append(parts, fmt.Sprintf("%s does not know %s", c.short(self), c.short(name)))
			case st != registry.PeerAlive:
				parts = append(parts, fmt.Sprintf("%s sees %s %s", c.short(self), c.short(name), st))
			}
		}
	}
	if len(parts) == 0 {
		return "all alive"
	}
	return strings.Join(parts, "; ")
}

// track starts a tracker on node i.
func (c *cluster) track(ctx context.Context, i int) (*tracker, error) {
	t, err := newTracker(ctx, c.nodes[i], i)
	if err != nil {
		return nil, err
	}
	c.trackers[i] = t
	return t, nil
}

// close closes every node, newest first, and waits for the trackers.
//
// Nodes are closed one at a time with a 1 s budget each: Close blocks in
// memberlist's Leave until the leave broadcast went out, which never
// happens when every peer is leaving at the same time, and a Leave that
// blocks longer than GossipToTheDeadTime crashes the node (see
// gossip.Node.Addr: memberlist drops the left self from its node map and
// LocalNode returns a pointer into a nil state).
func (c *cluster) close() {
	for i := len(c.nodes) - 1; i >= 0; i-- {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.nodes[i].Close(ctx)
		cancel()
	}
	for _, t := range c.trackers {
		if t != nil {
			t.close()
		}
	}
}

// tracker follows one node's scope through a watch and keeps the number of
// visible members (joins - leaves; a resync resets it to the snapshot). It
// records when the count first reaches a target, and can report every join
// event to a hook (for latency).
type tracker struct {
	node int
	w    *registry.Watch
	done chan struct{}

	mu        sync.Mutex
	count     int
	events    int
	resyncs   int
	downs     int // leave events with reason owner-down (failure detector flaps)
	target    int
	reachedAt time.Time
	onJoin    func(node int, id string, at time.Time)
}

func newTracker(ctx context.Context, r *registry.Registry, node int) (*tracker, error) {
	w, err := r.Watch(ctx, benchScope, registry.All())
	if err != nil {
		return nil, err
	}
	t := &tracker{node: node, w: w, done: make(chan struct{}), count: len(w.Snapshot), target: -1}
	go t.run()
	return t, nil
}

func (t *tracker) run() {
	defer close(t.done)
	for ev := range t.w.C {
		now := time.Now()
		t.mu.Lock()
		t.events++
		switch ev.Type {
		case registry.EventJoin:
			t.count++
		case registry.EventLeave:
			t.count--
			if ev.Reason == registry.ReasonOwnerDown {
				t.downs++
			}
		case registry.EventResync:
			t.resyncs++
			t.count = len(ev.Members)
		}
		if t.count == t.target && t.reachedAt.IsZero() {
			t.reachedAt = now
		}
		hook := t.onJoin
		t.mu.Unlock()
		if hook != nil && ev.Type == registry.EventJoin {
			hook(t.node, ev.Member.ID, now)
		}
	}
}

// setTarget arms the tracker: reached reports when count first equals n.
func (t *tracker) setTarget(n int) {
	t.mu.Lock()
	t.target, t.reachedAt = n, time.Time{}
	if t.count == n {
		t.reachedAt = time.Now()
	}
	t.mu.Unlock()
}

func (t *tracker) reached() (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reachedAt, !t.reachedAt.IsZero()
}

func (t *tracker) snapshot() (count, events, resyncs int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.count, t.events, t.resyncs
}

// ownerDowns is how many members this node hid because their owner was
// declared down.
func (t *tracker) ownerDowns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.downs
}

func (t *tracker) setHook(h func(node int, id string, at time.Time)) {
	t.mu.Lock()
	t.onJoin = h
	t.mu.Unlock()
}

func (t *tracker) close() {
	t.w.Close()
	<-t.done
}

// waitReached waits until every tracker in ts reached its target and
// returns the latest time one did.
func waitReached(ctx context.Context, timeout time.Duration, ts []*tracker) (time.Time, error) {
	var last time.Time
	err := waitFor(ctx, timeout, func() bool {
		last = time.Time{}
		for _, t := range ts {
			at, ok := t.reached()
			if !ok {
				return false
			}
			if at.After(last) {
				last = at
			}
		}
		return true
	})
	if err != nil {
		var parts []string
		for _, t := range ts {
			c, _, _ := t.snapshot()
			t.mu.Lock()
			parts = append(parts, fmt.Sprintf("n%d=%d/%d", t.node+1, c, t.target))
			t.mu.Unlock()
		}
		return last, fmt.Errorf("%w (counts %v)", err, parts)
	}
	return last, nil
}

var errTimeout = errors.New("timed out")

// waitFor polls cond every 500 µs until it holds, ctx ends or timeout.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %v", errTimeout, timeout)
		}
		time.Sleep(500 * time.Microsecond)
	}
	return nil
}
