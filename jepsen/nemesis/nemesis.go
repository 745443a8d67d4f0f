package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/roster-io/roster/jepsen/history"
	"github.com/roster-io/roster/jepsen/netns"
)

// ErrNemesis reports an unknown nemesis or shape, or a fault that could
// not be injected or ended.
var ErrNemesis = errors.New("nemesis: failed")

// Target is the cluster a nemesis acts on: *netns.Cluster, or a fake.
type Target interface {
	// Nodes lists the nodes, added ones included.
	Nodes() []string
	// Partition makes g the whole of the filtering; Loss does with
	// random drops at probability p; Heal removes all filtering. Each
	// returns the rules in force afterwards per affected node.
	Partition(ctx context.Context, g netns.Grudge) (map[string]string, error)
	Loss(ctx context.Context, g netns.Grudge, p float64) (map[string]string, error)
	Heal(ctx context.Context) (map[string]string, error)
	// Probe sends count datagrams over every link and counts arrivals.
	Probe(ctx context.Context, count int) (netns.ProbeResult, error)
	// State is a node's process state.
	State(node string) netns.State
	Pause(ctx context.Context, node string) error
	Resume(ctx context.Context, node string) error
	Kill(ctx context.Context, node string) error
	// Leave stops a node gracefully (SIGTERM).
	Leave(ctx context.Context, node string) error
	// Restart starts a stopped node again with its data directory.
	Restart(ctx context.Context, node string) error
	// Wipe removes a stopped node's data directory.
	Wipe(ctx context.Context, node string) error
	// Add creates and starts a new node and returns its name.
	Add(ctx context.Context) (string, error)
}

var _ Target = (*netns.Cluster)(nil)

// Nemesis is one kind of fault. Start injects it (choices drawn from
// rng), Stop ends it; each returns what it did, in order, for the history:
// the action, then a probe (Kind "probe", Verified set) checking that it
// took. A nemesis is used by one goroutine, Start and Stop alternating;
// Stop without a Start, or a second Stop, does nothing.
type Nemesis interface {
	Name() string
	Start(ctx context.Context, t Target, rng *rand.Rand) ([]history.Fault, error)
	Stop(ctx context.Context, t Target) ([]history.Fault, error)
}

// Type is the history type to record f with: Info for a probe that did
// not verify, OK otherwise.
func Type(f history.Fault) history.Type {
	if f.Verified != nil && !*f.Verified {
		return history.Info
	}
	return history.OK
}

// Info names a nemesis for roster-jepsen list.
type Info struct {
	Name        string
	Description string
}

// The names --nemesis accepts.
const (
	NamePartition  = "partition"
	NameLoss       = "loss"
	NamePause      = "pause"
	NameKill       = "kill"
	NameRestartAll = "restart-all"
	NameAmnesia    = "amnesia"
	NameChurn      = "churn"
	NameMixed      = "mixed"
	NameNone       = "none"
)

// All lists every nemesis name with a one-line description.
func All() []Info {
	return []Info{
		{NamePartition, "iptables grudges of a random shape (isolated, halves, one-way, bridge, ring, minority-third); healed after"},
		{NameLoss, "random packet loss (p in 0.05, 0.2, 0.5, 1) on all links or one node's; healed after"},
		{NamePause, "SIGSTOP one node or a minority; SIGCONT after"},
		{NameKill, "SIGKILL one node or a minority; restarted with the same data directory after"},
		{NameRestartAll, "SIGKILL every node; all restarted with their data after"},
		{NameAmnesia, "SIGKILL one node and wipe its data directory; restarted after (a new node with an old name)"},
		{NameChurn, "graceful leave (SIGTERM) of one node, back after; or a node added mid-run"},
		{NameMixed, "all of the above, one at a time, chosen at random"},
		{NameNone, "no faults"},
	}
}

// Options tune the nemeses.
type Options struct {
	// Shapes the partition nemesis draws from; empty: all.
	Shapes []string
	// Loss are the probabilities the loss nemesis draws from; empty:
	// 0.05, 0.2, 0.5, 1.
	Loss []float64
	// MaxAdded bounds the nodes churn adds in a run; 0: 2, negative:
	// none.
	MaxAdded int
}

// New returns a fresh nemesis by name (not mixed nor none: see Resolve).
func New(name string, o Options) (Nemesis, error) {
	switch name {
	case NamePartition:
		shapes := o.Shapes
		if len(shapes) == 0 {
			shapes = Shapes()
		}
		for _, s := range shapes {
			if _, err := ShapeByName(s); err != nil {
				return nil, err
			}
		}
		return &partition{shapes: shapes}, nil
	case NameLoss:
		ps := o.Loss
		if len(ps) == 0 {
			ps = []float64{0.05, 0.2, 0.5, 1}
		}
		for _, p := range ps {
			if !(p > 0 && p <= 1) {
				return nil, fmt.Errorf("%w: loss probability %v: want 0 < p <= 1", ErrNemesis, p)
			}
		}
		return &loss{ps: ps}, nil
	case NamePause:
		return &procFault{name: name, kind: "pause", undo: "resume", minority: true}, nil
	case NameKill:
		return &procFault{name: name, kind: "kill", undo: "restart", minority: true}, nil
	case NameRestartAll:
		return &procFault{name: name, kind: "kill", undo: "restart", all: true}, nil
	case NameAmnesia:
		return &procFault{name: name, kind: "kill", undo: "restart", wipe: true}, nil
	case NameChurn:
		maxAdded := o.MaxAdded
		if maxAdded == 0 {
			maxAdded = 2
		}
		return &churn{maxAdded: max(0, maxAdded)}, nil
	}
	return nil, fmt.Errorf("%w: unknown nemesis %q (see roster-jepsen list)", ErrNemesis, name)
}

// Resolve turns --nemesis names into nemeses: mixed stands for every
// fault, none for nothing; duplicates count once.
func Resolve(names []string, o Options) ([]Nemesis, error) {
	var want []string
	for _, n := range names {
		switch n {
		case NameNone, "":
		case NameMixed:
			want = append(want, NamePartition, NameLoss, NamePause, NameKill, NameRestartAll, NameAmnesia, NameChurn)
		default:
			want = append(want, n)
		}
	}
	var out []Nemesis
	seen := map[string]bool{}
	for _, n := range want {
		if seen[n] {
			continue
		}
		seen[n] = true
		nem, err := New(n, o)
		if err != nil {
			return nil, err
		}
		out = append(out, nem)
	}
	return out, nil
}

// probeCount is the datagrams per link when verifying a cut or a heal;
// lossCount when measuring a loss rate.
const (
	probeCount = 3
	lossCount  = 100
)

// verifyCut probes until the links cut are exactly want (a heal: none),
// up to three times, and returns the probe's record: what it saw cut in
// Grudge, Verified whether that was want.
func verifyCut(ctx context.Context, t Target, name string, want netns.Grudge) (history.Fault, error) {
	var cut netns.Grudge
	for attempt := 0; ; attempt++ {
		r, err := t.Probe(ctx, probeCount)
		if err != nil {
			return history.Fault{}, fmt.Errorf("%w: probe: %w", ErrNemesis, err)
		}
		cut = r.Cut()
		if cut.Equal(want) || attempt == 2 {
			break
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return history.Fault{}, err
		}
	}
	ok := cut.Equal(want)
	return history.Fault{Kind: "probe", Name: name, Grudge: orNil(cut), Verified: &ok}, nil
}

// verifyLoss measures the loss on g's links (expected p, within four
// standard deviations and 5 points) and checks that every other link
// carries traffic.
func verifyLoss(ctx context.Context, t Target, g netns.Grudge, p float64) (history.Fault, error) {
	r, err := t.Probe(ctx, lossCount)
	if err != nil {
		return history.Fault{}, fmt.Errorf("%w: probe: %w", ErrNemesis, err)
	}
	got, sent := r.Received(g)
	ok := sent > 0
	observed := 0.0
	if sent > 0 {
		observed = 1 - float64(got)/float64(sent)
		tol := 4*math.Sqrt(p*(1-p)/float64(sent)) + 0.05
		ok = math.Abs(observed-p) <= tol
	}
	cut := r.Cut()
	for to, froms := range cut {
		for _, from := range froms {
			if !g.Drops(to, from) {
				ok = false
			}
		}
	}
	return history.Fault{Kind: "probe", Name: NameLoss, Grudge: orNil(cut), Loss: observed, Verified: &ok}, nil
}

// startSettle is how long a started process must survive to count as
// running.
var startSettle = 100 * time.Millisecond

// verifyState checks that every node is in state want (after waiting a
// little for a process that would die at once).
func verifyState(ctx context.Context, t Target, name string, nodes []string, want netns.State) (history.Fault, error) {
	if want == netns.Running {
		if err := sleep(ctx, startSettle); err != nil {
			return history.Fault{}, err
		}
	}
	ok := true
	for _, n := range nodes {
		if t.State(n) != want {
			ok = false
		}
	}
	return history.Fault{Kind: "probe", Name: name, Nodes: slices.Clone(nodes), Verified: &ok}, nil
}

func orNil(g netns.Grudge) map[string][]string {
	if len(g) == 0 {
		return nil
	}
	return g
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// heal flushes every filter and verifies that every link carries again.
func heal(ctx context.Context, t Target, name string) ([]history.Fault, error) {
	rules, err := t.Heal(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: heal: %w", ErrNemesis, err)
	}
	out := []history.Fault{{Kind: "heal", Name: name, Rules: rules}}
	pf, err := verifyCut(ctx, t, "heal", nil)
	if err != nil {
		return out, err
	}
	return append(out, pf), nil
}

// filterFault is a fault made of packet filters (a partition, loss): it
// is ended by healing every link.
type filterFault struct{ active bool }

func (f *filterFault) stop(ctx context.Context, t Target, name string) ([]history.Fault, error) {
	if !f.active {
		return nil, nil
	}
	f.active = false
	return heal(ctx, t, name)
}

// partition cuts links along a random shape.
type partition struct {
	filterFault
	shapes []string
}

func (p *partition) Name() string { return NamePartition }

func (p *partition) Start(ctx context.Context, t Target, rng *rand.Rand) ([]history.Fault, error) {
	name := p.shapes[rng.IntN(len(p.shapes))]
	shape, _ := ShapeByName(name)
	g := shape(t.Nodes(), rng)
	p.active = true
	rules, err := t.Partition(ctx, g)
	if err != nil {
		return nil, fmt.Errorf("%w: partition %s: %w", ErrNemesis, name, err)
	}
	out := []history.Fault{{Kind: "partition", Name: name, Nodes: grudgeNodes(g), Grudge: orNil(g), Rules: rules}}
	pf, err := verifyCut(ctx, t, name, g)
	if err != nil {
		return out, err
	}
	return append(out, pf), nil
}

func (p *partition) Stop(ctx context.Context, t Target) ([]history.Fault, error) {
	return p.stop(ctx, t, NamePartition)
}

// loss drops packets at random on all links, or on one node's (both
// ways).
type loss struct {
	filterFault
	ps []float64
}

func (l *loss) Name() string { return NameLoss }

func (l *loss) Start(ctx context.Context, t Target, rng *rand.Rand) ([]history.Fault, error) {
	p := l.ps[rng.IntN(len(l.ps))]
	nodes := slices.Sorted(slices.Values(t.Nodes()))
	g := netns.Grudge{}
	name := "all"
	if rng.IntN(2) == 0 && len(nodes) > 1 {
		x := nodes[rng.IntN(len(nodes))]
		name = "node"
		for _, y := range nodes {
			if y != x {
				g[x] = append(g[x], y)
				g[y] = append(g[y], x)
			}
		}
	} else {
		for _, x := range nodes {
			for _, y := range nodes {
				if y != x {
					g[x] = append(g[x], y)
				}
			}
		}
	}
	g = g.Clone()
	l.active = true
	rules, err := t.Loss(ctx, g, p)
	if err != nil {
		return nil, fmt.Errorf("%w: loss: %w", ErrNemesis, err)
	}
	out := []history.Fault{{Kind: "loss", Name: name, Nodes: grudgeNodes(g), Grudge: orNil(g), Loss: p, Rules: rules}}
	pf, err := verifyLoss(ctx, t, g, p)
	if err != nil {
		return out, err
	}
	return append(out, pf), nil
}

func (l *loss) Stop(ctx context.Context, t Target) ([]history.Fault, error) {
	return l.stop(ctx, t, NameLoss)
}

// procFault pauses or kills (and wipes) nodes, and undoes it.
type procFault struct {
	name     string
	kind     string // pause or kill
	undo     string // resume or restart
	minority bool   // one node or a minority
	all      bool   // every running node
	wipe     bool   // one node, data wiped
	nodes    []string
}

func (f *procFault) Name() string { return f.name }

// pick draws the nodes to act on among the running ones.
func (f *procFault) pick(t Target, rng *rand.Rand) []string {
	var up []string
	for _, n := range slices.Sorted(slices.Values(t.Nodes())) {
		if t.State(n) == netns.Running {
			up = append(up, n)
		}
	}
	if f.all || len(up) == 0 {
		return up
	}
	rng.Shuffle(len(up), func(i, j int) { up[i], up[j] = up[j], up[i] })
	k := 1
	if f.minority && rng.IntN(2) == 1 {
		k = max(1, (len(t.Nodes())-1)/2)
	}
	picked := up[:min(k, len(up))]
	slices.Sort(picked)
	return picked
}

func (f *procFault) Start(ctx context.Context, t Target, rng *rand.Rand) ([]history.Fault, error) {
	nodes := f.pick(t, rng)
	if len(nodes) == 0 {
		return nil, nil
	}
	f.nodes = nodes
	var done []string
	var errs []error
	for _, n := range nodes {
		var err error
		if f.kind == "pause" {
			err = t.Pause(ctx, n)
		} else {
			err = t.Kill(ctx, n)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, n)
	}
	out := []history.Fault{{Kind: f.kind, Name: f.name, Nodes: done}}
	want := netns.Paused
	if f.kind == "kill" {
		want = netns.Stopped
	}
	if f.wipe {
		var wiped []string
		for _, n := range done {
			if err := t.Wipe(ctx, n); err != nil {
				errs = append(errs, err)
				continue
			}
			wiped = append(wiped, n)
		}
		out = append(out, history.Fault{Kind: "wipe", Name: f.name, Nodes: wiped})
	}
	pf, err := verifyState(ctx, t, f.name, nodes, want)
	if err != nil {
		errs = append(errs, err)
	} else {
		out = append(out, pf)
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("%w: %s: %w", ErrNemesis, f.name, err)
	}
	return out, nil
}

func (f *procFault) Stop(ctx context.Context, t Target) ([]history.Fault, error) {
	nodes := f.nodes
	f.nodes = nil
	if len(nodes) == 0 {
		return nil, nil
	}
	var done []string
	var errs []error
	for _, n := range nodes {
		var err error
		if f.undo == "resume" {
			err = t.Resume(ctx, n)
		} else {
			err = t.Restart(ctx, n)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, n)
	}
	out := []history.Fault{{Kind: f.undo, Name: f.name, Nodes: done}}
	pf, err := verifyState(ctx, t, f.name, nodes, netns.Running)
	if err != nil {
		errs = append(errs, err)
	} else {
		out = append(out, pf)
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("%w: %s: %w", ErrNemesis, f.name, err)
	}
	return out, nil
}

// churn makes a node leave gracefully and come back, or adds a node.
type churn struct {
	maxAdded int
	added    int
	left     string
}

func (c *churn) Name() string { return NameChurn }

func (c *churn) Start(ctx context.Context, t Target, rng *rand.Rand) ([]history.Fault, error) {
	c.left = ""
	if c.added < c.maxAdded && rng.IntN(2) == 0 {
		c.added++
		n, err := t.Add(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: churn: add: %w", ErrNemesis, err)
		}
		out := []history.Fault{{Kind: "add", Name: NameChurn, Nodes: []string{n}}}
		pf, err := verifyState(ctx, t, NameChurn, []string{n}, netns.Running)
		if err != nil {
			return out, err
		}
		return append(out, pf), nil
	}
	var up []string
	for _, n := range slices.Sorted(slices.Values(t.Nodes())) {
		if t.State(n) == netns.Running {
			up = append(up, n)
		}
	}
	if len(up) == 0 {
		return nil, nil
	}
	n := up[rng.IntN(len(up))]
	c.left = n
	if err := t.Leave(ctx, n); err != nil {
		return nil, fmt.Errorf("%w: churn: leave %s: %w", ErrNemesis, n, err)
	}
	out := []history.Fault{{Kind: "leave", Name: NameChurn, Nodes: []string{n}}}
	pf, err := verifyState(ctx, t, NameChurn, []string{n}, netns.Stopped)
	if err != nil {
		return out, err
	}
	return append(out, pf), nil
}

func (c *churn) Stop(ctx context.Context, t Target) ([]history.Fault, error) {
	n := c.left
	c.left = ""
	if n == "" {
		return nil, nil
	}
	if err := t.Restart(ctx, n); err != nil {
		return nil, fmt.Errorf("%w: churn: come back %s: %w", ErrNemesis, n, err)
	}
	out := []history.Fault{{Kind: "restart", Name: NameChurn, Nodes: []string{n}}}
	pf, err := verifyState(ctx, t, NameChurn, []string{n}, netns.Running)
	if err != nil {
		return out, err
	}
	return append(out, pf), nil
}
