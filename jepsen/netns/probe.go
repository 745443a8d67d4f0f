package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ProbeResult is what one probe round saw: how many datagrams each link
// carried out of Sent.
type ProbeResult struct {
	// Sent is the number of datagrams sent over each link.
	Sent int
	// Got maps a node to the senders it heard from (peers, and Control)
	// and how many of their datagrams arrived; every link probed is
	// present, with 0 when nothing arrived.
	Got map[string]map[string]int
}

// Cut returns the links that carried nothing, as a grudge: node -> the
// senders none of whose datagrams it received. Compare it with the grudge
// in force (Grudge.Equal) to verify a partition or a heal; Control never
// appears in it unless the control path is broken.
func (r ProbeResult) Cut() Grudge {
	g := Grudge{}
	for to, froms := range r.Got {
		for from, n := range froms {
			if n == 0 {
				g[to] = append(g[to], from)
			}
		}
	}
	return g.Clone()
}

// Received sums the datagrams received and sent over the links of g
// (node <- peer).
func (r ProbeResult) Received(g Grudge) (got, sent int) {
	for to, froms := range g {
		for _, from := range froms {
			if n, ok := r.Got[to][from]; ok {
				got += n
				sent += r.Sent
			}
		}
	}
	return got, sent
}

// probeWindow is how long a probe waits for its last datagrams after
// sending them: on a bridge between namespaces they take microseconds.
const probeWindow = 250 * time.Millisecond

// probePace separates a sender's rounds of datagrams when it sends many,
// so that no listener's socket buffer overflows and counts as loss.
const probePace = 2 * time.Millisecond

type link struct{ to, from string }

// prober keeps one UDP listener per node, in the node's namespace, and
// counts the current round's datagrams.
type prober struct {
	c   *Cluster
	run sync.Mutex // one probe at a time

	mu     sync.Mutex
	conns  map[string]*net.UDPConn
	round  uint64
	got    map[link]int
	closed bool
	wg     sync.WaitGroup
}

func newProber(c *Cluster) *prober {
	return &prober{c: c, conns: map[string]*net.UDPConn{}, got: map[link]int{}}
}

func (p *prober) listen(node string) error {
	ip, err := p.c.IP(node)
	if err != nil {
		return err
	}
	var conn *net.UDPConn
	err = p.c.In(node, func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: ip.AsSlice(), Port: ProbePort})
		return err
	})
	if err != nil {
		return fmt.Errorf("%w: probe listener on %s: %v", ErrSetup, node, err)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		conn.Close()
		return ErrClosed
	}
	p.conns[node] = conn
	p.wg.Add(1)
	p.mu.Unlock()
	go p.read(node, conn)
	return nil
}

// read counts the datagrams of the current round addressed to node. A
// datagram is "rjprobe <round> <from> <to>".
func (p *prober) read(node string, conn *net.UDPConn) {
	defer p.wg.Done()
	buf := make([]byte, 256)
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		f := strings.Fields(string(buf[:n]))
		if len(f) != 4 || f[0] != "rjprobe" || f[3] != node {
			continue
		}
		round, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		p.mu.Lock()
		if round == p.round {
			if _, ok := p.got[link{node, f[2]}]; ok {
				p.got[link{node, f[2]}]++
			}
		}
		p.mu.Unlock()
	}
}

func (p *prober) close() {
	p.mu.Lock()
	p.closed = true
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Probe sends count UDP datagrams from every node's namespace and from the
// control namespace to every other node's probe listener, and reports how
// many arrived on each link. It sees exactly what the filters do to the
// nodes' own traffic (they match on the source address only), whether or
// not the nodes' processes run. count of 3 is plenty to see a cut or a
// heal; measuring a loss rate wants 100 or so.
func (c *Cluster) Probe(ctx context.Context, count int) (ProbeResult, error) {
	if count < 1 {
		count = 1
	}
	p := c.probe
	p.run.Lock()
	defer p.run.Unlock()
	nodes := c.Nodes()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ProbeResult{}, ErrClosed
	}
	p.round++
	round := p.round
	p.got = map[link]int{}
	for _, to := range nodes {
		for _, from := range append([]string{Control}, nodes...) {
			if from != to {
				p.got[link{to, from}] = 0
			}
		}
	}
	p.mu.Unlock()

	dsts := make(map[string]*net.UDPAddr, len(nodes))
	for _, n := range nodes {
		ip, err := c.IP(n)
		if err != nil {
			return ProbeResult{}, err
		}
		dsts[n] = &net.UDPAddr{IP: ip.AsSlice(), Port: ProbePort}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(nodes)+1)
	for i, from := range append([]string{Control}, nodes...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.send(ctx, from, nodes, dsts, round, count)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return ProbeResult{}, err
	}
	select {
	case <-time.After(probeWindow):
	case <-ctx.Done():
		return ProbeResult{}, ctx.Err()
	}

	res := ProbeResult{Sent: count, Got: map[string]map[string]int{}}
	p.mu.Lock()
	p.round++ // late datagrams count for nothing
	for l, n := range p.got {
		if res.Got[l.to] == nil {
			res.Got[l.to] = map[string]int{}
		}
		res.Got[l.to][l.from] = n
	}
	p.mu.Unlock()
	return res, nil
}

// send sends count datagrams from namespace from to every other node.
func (c *Cluster) send(ctx context.Context, from string, nodes []string, dsts map[string]*net.UDPAddr, round uint64, count int) error {
	ip, err := c.IP(from)
	if err != nil {
		return err
	}
	var conn *net.UDPConn
	err = c.In(from, func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: ip.AsSlice()})
		return err
	})
	if err != nil {
		return fmt.Errorf("%w: probe sender in %s: %v", ErrCommand, from, err)
	}
	defer conn.Close()
	targets := slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == from })
	for i := 0; i < count; i++ {
		for _, to := range targets {
			msg := "rjprobe " + strconv.FormatUint(round, 10) + " " + from + " " + to
			// A send error (a full buffer) is a lost datagram, which is
			// what the probe measures anyway.
			_, _ = conn.WriteToUDP([]byte(msg), dsts[to])
		}
		if count > 1 {
			select {
			case <-time.After(probePace):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}
