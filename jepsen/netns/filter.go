package netns

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Grudge maps a node to the peers whose packets it drops (as Jepsen's
// grudges and history.Fault.Grudge): {"n1": ["n2"]} cuts n2 -> n1 only.
type Grudge map[string][]string

// Clone returns a deep copy of g with every peer list sorted and without
// duplicates or empty lists.
func (g Grudge) Clone() Grudge {
	out := Grudge{}
	for n, peers := range g {
		if len(peers) == 0 {
			continue
		}
		p := slices.Clone(peers)
		slices.Sort(p)
		out[n] = slices.Compact(p)
	}
	return out
}

// Equal reports whether g and h drop the same links.
func (g Grudge) Equal(h Grudge) bool {
	a, b := g.Clone(), h.Clone()
	if len(a) != len(b) {
		return false
	}
	for n, p := range a {
		if !slices.Equal(p, b[n]) {
			return false
		}
	}
	return true
}

// Drops reports whether node drops peer's packets under g.
func (g Grudge) Drops(node, peer string) bool {
	return slices.Contains(g[node], peer)
}

// filterPar bounds the iptables commands run at once.
const filterPar = 4

// initFilter creates the node's chain, jumped to from INPUT, holding only
// the control address's RETURN.
func (c *Cluster) initFilter(ctx context.Context, node string) error {
	rules := "*filter\n:" + Chain + " - [0:0]\n-I INPUT 1 -j " + Chain + "\n" + c.chainRules(nil, 0) + "COMMIT\n"
	_, err := c.restore(ctx, node, rules)
	return err
}

// chainRules returns the chain's rules: RETURN for the control address,
// then one DROP per peer, matched at random with probability p when p > 0
// (so that loss at p = 1 exercises the same rule as any other loss).
func (c *Cluster) chainRules(peers []string, p float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "-A %s -s %s/32 -j RETURN\n", Chain, c.ControlIP())
	for _, peer := range peers {
		ip, _ := c.IP(peer)
		if p > 0 {
			fmt.Fprintf(&b, "-A %s -s %s/32 -m statistic --mode random --probability %s -j DROP\n",
				Chain, ip, strconv.FormatFloat(p, 'f', -1, 64))
		} else {
			fmt.Fprintf(&b, "-A %s -s %s/32 -j DROP\n", Chain, ip)
		}
	}
	return b.String()
}

// restore loads rules into a node's filter table without flushing
// anything else (declaring the chain flushes it).
func (c *Cluster) restore(ctx context.Context, node, rules string) ([]byte, error) {
	ns, err := c.NS(node)
	if err != nil {
		return nil, err
	}
	return run(ctx, strings.NewReader(rules), "ip", "netns", "exec", ns, "iptables-restore", "-w", "--noflush")
}

// Rules returns what iptables-save prints for a node's filter table.
func (c *Cluster) Rules(ctx context.Context, node string) (string, error) {
	out, err := c.Exec(ctx, node, "iptables-save", "-t", "filter")
	return string(out), err
}

// Partition makes g the whole of the run's filtering: every node's chain
// is rewritten, to drop the packets of the peers g lists for it and
// nothing else. It returns the rules in force on the nodes g lists
// (iptables-save output), for the record.
func (c *Cluster) Partition(ctx context.Context, g Grudge) (map[string]string, error) {
	return c.apply(ctx, g, 0)
}

// Loss is Partition with every listed link dropping packets at random
// with probability p (0 < p <= 1) instead of always.
func (c *Cluster) Loss(ctx context.Context, g Grudge, p float64) (map[string]string, error) {
	if !(p > 0 && p <= 1) {
		return nil, fmt.Errorf("%w: loss probability %v: want 0 < p <= 1", ErrCommand, p)
	}
	return c.apply(ctx, g, p)
}

// Heal flushes every node's chain back to the control address's RETURN
// and returns every node's rules.
func (c *Cluster) Heal(ctx context.Context) (map[string]string, error) {
	if _, err := c.apply(ctx, nil, 0); err != nil {
		return nil, err
	}
	return c.rulesOf(ctx, c.Nodes())
}

func (c *Cluster) apply(ctx context.Context, g Grudge, p float64) (map[string]string, error) {
	nodes := c.Nodes()
	for n, peers := range g {
		for _, x := range append([]string{n}, peers...) {
			if !slices.Contains(nodes, x) {
				return nil, fmt.Errorf("%w: %q in grudge", ErrNode, x)
			}
		}
	}
	g = g.Clone()
	err := c.each(ctx, nodes, func(node string) error {
		rules := "*filter\n:" + Chain + " - [0:0]\n" + c.chainRules(g[node], p) + "COMMIT\n"
		_, err := c.restore(ctx, node, rules)
		return err
	})
	if err != nil {
		return nil, err
	}
	affected := make([]string, 0, len(g))
	for n := range g {
		affected = append(affected, n)
	}
	slices.Sort(affected)
	c.log.Info("filters set", "grudge", g, "loss", p)
	return c.rulesOf(ctx, affected)
}

func (c *Cluster) rulesOf(ctx context.Context, nodes []string) (map[string]string, error) {
	var mu sync.Mutex
	out := make(map[string]string, len(nodes))
	err := c.each(ctx, nodes, func(node string) error {
		r, err := c.Rules(ctx, node)
		mu.Lock()
		out[node] = r
		mu.Unlock()
		return err
	})
	return out, err
}

// each runs fn for every node, filterPar at a time, and joins the errors.
func (c *Cluster) each(ctx context.Context, nodes []string, fn func(string) error) error {
	sem := make(chan struct{}, filterPar)
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			errs[i] = fn(n)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
