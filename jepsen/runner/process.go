package runner

import (
	"context"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/roster-io/roster/jepsen/history"
	"github.com/roster-io/roster/jepsen/nemesis"
	"github.com/roster-io/roster/jepsen/netns"
	"github.com/roster-io/roster/jepsen/workload"
)

// Process is a cluster of real roster serve processes, one per network
// namespace (package netns); the clients reach them over HTTP from the
// control namespace, whose traffic the nemesis never cuts.
type Process struct {
	c  *netns.Cluster
	hc *http.Client

	mu    sync.Mutex
	nodes map[string]*workload.HTTPNode
}

// NewProcess wraps a started netns cluster. token is the nodes' API token
// ("" for none).
func NewProcess(c *netns.Cluster, token string) *Process {
	return &Process{c: c, hc: &http.Client{Transport: c.Transport()}, nodes: map[string]*workload.HTTPNode{}}
}

func (p *Process) Names() []string {
	ns := p.c.Nodes()
	slices.Sort(ns)
	return ns
}

func (p *Process) Node(name string) workload.Node {
	if p.c.State(name) == netns.Stopped {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := p.nodes[name]; n != nil {
		return n
	}
	url, err := p.c.URL(name)
	if err != nil {
		return nil
	}
	n, err := workload.NewHTTPNode(name, url, "", p.hc)
	if err != nil {
		return nil
	}
	p.nodes[name] = n
	return n
}

func (p *Process) Up(name string) bool { return p.c.State(name) == netns.Running }

// Heal is the final phase: every link healed (and probed), paused nodes
// resumed, stopped ones restarted.
func (p *Process) Heal(ctx context.Context) ([]history.Fault, error) {
	return nemesis.Final(ctx, p.c)
}

// Schedule returns a Config.Nemesis that carries out a schedule of the
// given nemeses (package nemesis's Plan: one fault at a time, about every
// every, held for a duration of a class drawn among regular and those that
// straddle the failure detector's timings).
func (p *Process) Schedule(nems []nemesis.Nemesis, cfg nemesis.PlanConfig, seed int64) func(context.Context, func(history.Fault, history.Type, error)) {
	return func(ctx context.Context, record func(history.Fault, history.Type, error)) {
		rng := rand.New(rand.NewPCG(uint64(seed), 0x6e656d))
		steps := nemesis.Plan(nems, cfg, rng)
		nemesis.Run(ctx, p.c, steps, rng, func(f history.Fault, err error) {
			record(f, nemesis.Type(f), err)
		}, nil)
	}
}

// WaitReady waits until every node answers /readyz.
func (p *Process) WaitReady(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for _, name := range p.Names() {
		url, err := p.c.URL(name)
		if err != nil {
			return err
		}
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
			resp, err := p.hc.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}
