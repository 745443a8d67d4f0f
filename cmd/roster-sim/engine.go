package main

import (
	"container/heap"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip/dissem"
	"github.com/roster-io/roster/gossip/pace"
)

// design is a way of spreading a scope's changes, as dissem offers it.
type design struct {
	name     string
	strategy dissem.Strategy
	// digest is the anti-entropy digest it pairs with (background.go).
	digest digestKind
}

var designs = map[string]design{
	// before: today's default, direct push to every scope peer, and
	// anti-entropy digests with one counter per replica.
	"before": {"before", dissem.Direct, digestCounters},
	// tree: today's opt-in relay tree (gossip.Config.FanOut).
	"tree": {"tree", dissem.Tree, digestCounters},
	// after: direct push up to 32 peers, Plumtree above, and digests of
	// hashes over ranges of replicas.
	"after": {"after", dissem.Auto, digestRanges},
}

// rootMin is the pacer's RangeRootMin for the design: gossip's default
// (64 replicas) with range digests, never with counters.
func (d design) rootMin() int {
	if d.digest == digestRanges {
		return pace.DefaultRangeRootMin
	}
	return -1
}

// scenario is one simulated run.
type scenario struct {
	nodes    int
	design   design
	net      netModel
	loss     float64 // probability a packet is lost
	crashed  float64 // share of nodes crashed at the start, not yet detected
	flapping int     // nodes going down and up all along
	changes  int     // joins broadcast and measured, from random live writers
	// warmup joins are broadcast first, at the same rate, and not
	// measured: Plumtree's tree forms (prunes) over the first messages.
	warmup int
	rate   float64 // changes per second, cluster-wide
	seed   uint64
	crdt   bool // merge real crdt deltas on every node (memory: ~N×changes members)
	drain  time.Duration
	// digestEntry is the bytes per replica of a counters digest, measured
	// on the real crdt code (crdtCosts.digestEntry).
	digestEntry float64
	// graft and announce override dissem's GraftTimeout and
	// AnnounceEvery when set.
	graft, announce time.Duration
}

// result is what a run measured. Times are virtual.
type result struct {
	sc        scenario
	reached   float64 // percent of changes that reached every live node
	p50, p99  time.Duration
	max       time.Duration // time for a change to reach every live node
	copies    float64       // full copies (payload-carrying messages) received per live node but the writer, per change
	writerMsg float64       // messages sent by a change's writer for it, on average
	writerB   float64       // bytes of those
	busyMsg   float64       // messages sent by the busiest node, per change
	loadBps   float64       // bytes per second sent per node, on average, during the changes
	busyBps   float64       // the busiest node's bytes per second during the changes
	converged bool          // every live node's crdt digest equal at the end (with crdt)
	repaired  float64       // percent of (change, live node) deliveries made by anti-entropy
	events    int
	wall      time.Duration
}

type evKind uint8

const (
	evArrive  evKind = iota + 1 // a message reaches a node's NIC
	evProcess                   // the node's CPU has it
	evTick                      // a core's timer
	evChange                    // a writer broadcasts a change
	evFlap                      // a flapping node goes down or up
	evDetect                    // the failure detector removes a crashed node
	evAE                        // a node's anti-entropy round
	evRepair                    // changes repaired by anti-entropy reach a node
)

type event struct {
	at   time.Duration
	seq  uint64
	kind evKind
	node int32
	msg  dissem.Message
	ks   []int // evRepair: the changes repaired
}

type eventHeap []*event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(*event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// change is one broadcast and where it got to.
type change struct {
	origin int32
	at     time.Duration
	got    []time.Duration // per node: when delivered, -1 if not
}

type simNode struct {
	name     string
	core     *dissem.Core
	pace     *pace.Pacer // gossip's anti-entropy pacing: whom a round asks, root or digest
	state    *crdt.State
	down     bool // crashed, or a flapping node in its down phase
	crashed  bool
	flapping bool
	sendFree time.Duration // when its NIC is free
	recvFree time.Duration // when its CPU is free for the next message
	tickAt   time.Duration // the timer event queued, 0 if none
	sentMsgs int64
	sentB    int64
}

type sim struct {
	sc       scenario
	rng      *rand.Rand // the network's decisions and the schedule
	epoch    time.Time
	nodes    []*simNode
	index    map[string]int32
	members  *membership
	changes  []*change
	byID     map[dissem.MsgID]int
	q        eventHeap
	seq      uint64
	copies   int64 // payload-carrying messages processed by live nodes
	payloads [][]byte
	repaired int64 // (change, node) deliveries made by anti-entropy
	writerM  []float64
	writerB  []float64
	events   int
}

func nodeName(i int) string { return fmt.Sprintf("n%05d", i) }

func newSim(sc scenario) (*sim, error) {
	s := &sim{
		sc:    sc,
		rng:   rand.New(rand.NewPCG(sc.seed, 0x5eed)),
		epoch: time.Unix(1_800_000_000, 0),
		index: make(map[string]int32, sc.nodes),
		byID:  map[dissem.MsgID]int{},
	}
	names := make([]string, sc.nodes)
	for i := range names {
		names[i] = nodeName(i)
		s.index[names[i]] = int32(i)
	}
	s.members = newMembership(names)
	for i, name := range names {
		cfg := dissem.DefaultConfig(name)
		if sc.net.name == "wan" {
			cfg = dissem.WANConfig(name)
		}
		cfg.Strategy = sc.design.strategy
		// Runs last seconds: retaining payloads and ids for 30 s (the
		// default) would only cost memory at 10,000 cores.
		cfg.Retain = 5 * time.Second
		if sc.graft > 0 {
			cfg.GraftTimeout = sc.graft
		}
		if sc.announce > 0 {
			cfg.AnnounceEvery = sc.announce
		}
		c, err := dissem.New(cfg, nodeView{s.members, name}, rand.New(rand.NewPCG(sc.seed, uint64(i)+1)))
		if err != nil {
			return nil, err
		}
		n := &simNode{name: name, core: c, pace: pace.New(pace.Config{Interval: aeInterval, RangeRootMin: sc.design.rootMin()})}
		if sc.crdt {
			st, err := crdt.New(crdt.ReplicaID{Name: name, Incarnation: 1}, crdt.Options{LogCap: 64})
			if err != nil {
				return nil, err
			}
			n.state = st
		}
		s.nodes = append(s.nodes, n)
	}
	// Faults: crashed nodes are picked first, then flapping ones, among
	// all but node 0 (so a run always has a writer).
	perm := s.rng.Perm(sc.nodes - 1)
	nCrash := int(sc.crashed * float64(sc.nodes))
	for k, p := range perm {
		n := s.nodes[p+1]
		switch {
		case k < nCrash:
			n.crashed, n.down = true, true
			s.push(&event{at: detectDelay(s.rng, sc.nodes), kind: evDetect, node: int32(p + 1)})
		case k < nCrash+sc.flapping:
			n.flapping = true
			s.push(&event{at: flapPhase(s.rng), kind: evFlap, node: int32(p + 1)})
		}
	}
	for i := range s.nodes {
		s.push(&event{at: time.Duration(s.rng.Int64N(int64(aeInterval))), kind: evAE, node: int32(i)})
	}
	gap := time.Duration(float64(time.Second) / sc.rate)
	for k := range sc.warmup + sc.changes {
		s.push(&event{at: time.Duration(k)*gap + time.Duration(s.rng.Int64N(int64(gap)+1)), kind: evChange})
	}
	return s, nil
}

// detectDelay is how long memberlist takes to declare a crashed node dead
// with the LAN preset: up to one probe interval until someone probes it,
// then the suspicion timeout, SuspicionMult × log10(N) × ProbeInterval
// (4 × 4 × 1 s at 10,000 nodes).
func detectDelay(rng *rand.Rand, n int) time.Duration {
	scale := 1.0
	for x := n; x >= 10; x /= 10 {
		scale++
	}
	return time.Duration(rng.Int64N(int64(time.Second))) + time.Duration(4*scale*float64(time.Second))
}

// flapPhase is how long a flapping node stays up or down: 200 ms to 1 s,
// shorter than the suspicion timeout, so memberlist never marks it dead.
func flapPhase(rng *rand.Rand) time.Duration {
	return 200*time.Millisecond + time.Duration(rng.Int64N(int64(800*time.Millisecond)))
}

func (s *sim) push(e *event) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.q, e)
}

func (s *sim) now(at time.Duration) time.Time { return s.epoch.Add(at) }

// run executes the scenario to its end: every change broadcast, then
// the drain time for repairs to land.
func (s *sim) run() *result {
	start := time.Now()
	gap := time.Duration(float64(time.Second) / s.sc.rate)
	all := s.sc.warmup + s.sc.changes
	end := time.Duration(all)*gap + s.sc.drain
	for s.q.Len() > 0 {
		e := heap.Pop(&s.q).(*event)
		if e.at > end {
			break
		}
		s.events++
		s.handle(e)
	}
	r := s.measure(time.Duration(all) * gap)
	r.events = s.events
	r.wall = time.Since(start)
	return r
}

func (s *sim) handle(e *event) {
	n := s.nodes[e.node]
	switch e.kind {
	case evChange:
		s.broadcast(e.at)
	case evArrive:
		if n.down {
			return // lost: the node is not there
		}
		startAt := max(e.at, n.recvFree)
		n.recvFree = startAt + s.sc.net.recvCost
		s.push(&event{at: n.recvFree, kind: evProcess, node: e.node, msg: e.msg})
	case evProcess:
		if n.down {
			return
		}
		if e.msg.Kind == dissem.KindGossip && !n.flapping && !n.crashed {
			if k, ok := s.byID[e.msg.ID]; ok && k >= s.sc.warmup {
				s.copies++
			}
		}
		n.core.Step(s.now(e.at), e.msg)
		s.flush(e.node, e.at)
	case evTick:
		if n.tickAt != e.at || n.down {
			return // superseded, or frozen while down
		}
		n.tickAt = 0
		n.core.Tick(s.now(e.at))
		s.flush(e.node, e.at)
	case evFlap:
		n.down = !n.down
		if !n.down {
			n.tickAt = 0
			n.core.Tick(s.now(e.at)) // timers that fell due while down
			s.flush(e.node, e.at)
		}
		s.push(&event{at: e.at + flapPhase(s.rng), kind: evFlap, node: e.node})
	case evAE:
		if !n.down {
			s.antiEntropy(e.node, e.at)
		}
		s.push(&event{at: e.at + aeInterval, kind: evAE, node: e.node})
	case evRepair:
		if n.down {
			return
		}
		for _, k := range e.ks {
			if s.deliver(e.node, k, e.at) && !n.flapping && k >= s.sc.warmup {
				s.repaired++
			}
		}
	case evDetect:
		s.members.remove(n.name)
		for i, o := range s.nodes {
			if !o.down && int32(i) != e.node {
				o.core.PeerDown(n.name)
				s.flush(int32(i), e.at)
			}
		}
	}
}

// broadcast makes a random live writer join a member.
func (s *sim) broadcast(at time.Duration) {
	var w int32
	for {
		w = int32(s.rng.IntN(len(s.nodes)))
		if !s.nodes[w].down && !s.nodes[w].flapping {
			break
		}
	}
	n := s.nodes[w]
	k := len(s.changes)
	ch := &change{origin: w, at: at, got: make([]time.Duration, len(s.nodes))}
	for i := range ch.got {
		ch.got[i] = -1
	}
	s.changes = append(s.changes, ch)
	s.payloads = append(s.payloads, nil)
	s.writerM = append(s.writerM, 0)
	s.writerB = append(s.writerB, 0)
	id := dissem.MsgID{Origin: n.name, Seq: uint64(k + 1)}
	s.byID[id] = k
	payload := s.payload(n, k)
	s.payloads[k] = payload
	ch.got[w] = at
	n.core.Broadcast(s.now(at), id, payload)
	s.flush(w, at)
}

// joinPayloadBytes stands in for a join delta when real crdt state is
// off: the size EncodeDelta gives one join with a 20-byte address.
const joinPayloadBytes = 96

func (s *sim) payload(n *simNode, k int) []byte {
	if n.state == nil {
		return make([]byte, joinPayloadBytes)
	}
	d, err := n.state.Join(fmt.Sprintf("g%d", k%100), fmt.Sprintf("m%d", k), crdt.Meta{"addr": "10.0.0.1:4000"}, nil)
	if err != nil {
		panic(err) // names are ours and valid
	}
	return crdt.EncodeDelta(d)
}

// deliver records change k at node i, merging its delta into the node's
// crdt state, once.
func (s *sim) deliver(i int32, k int, at time.Duration) bool {
	ch, n := s.changes[k], s.nodes[i]
	if ch.got[i] >= 0 {
		return false
	}
	ch.got[i] = at
	if n.state != nil {
		if delta, err := crdt.DecodeDelta(s.payloads[k]); err == nil {
			n.state.MergeValidated(delta, nil)
		}
	}
	return true
}

// antiEntropy is node i's round: it exchanges digests with a random peer
// of its view and each sends the other the changes it lacks (both
// designs have it: the after design's digest is the root of its range
// summary while the two agree). Repairs travel through the sender's NIC
// like any message; what they carry is the changes' deltas.
func (s *sim) antiEntropy(i int32, at time.Duration) {
	n := s.nodes[i]
	v := nodeView{s.members, n.name}
	if v.Len() == 0 {
		return
	}
	// Every node is caught up and has nothing queued: the round sends the
	// root of its range digest where gossip would (design and size), else
	// its digest.
	d := n.pace.Round(s.epoch.Add(at), "s", pace.Facts{Peers: v.Len(), CaughtUp: true, Replicas: s.sc.nodes}, s.rng)
	if d.Action != pace.Root && d.Action != pace.Digest {
		return
	}
	kind := digestCounters
	if d.Action == pace.Root {
		kind = digestRanges
	}
	j := s.index[v.At(d.Peer)]
	p := s.nodes[j]
	if p.down {
		return // the digest is lost; the next round tries another peer
	}
	var toI, toJ []int
	origins := map[int32]bool{}
	for k, ch := range s.changes {
		hi, hj := ch.got[i] >= 0 && ch.got[i] <= at, ch.got[j] >= 0 && ch.got[j] <= at
		switch {
		case hj && !hi:
			toI = append(toI, k)
			origins[ch.origin] = true
		case hi && !hj:
			toJ = append(toJ, k)
			origins[ch.origin] = true
		}
	}
	sentI, sentJ := exchangeBytes(kind, s.sc.nodes, s.sc.digestEntry, len(origins))
	rtt := 2 * s.sc.net.oneWay(s.rng, int(i), int(j))
	s.account(i, int(sentI))
	if sentJ > 0 {
		s.account(j, int(sentJ)) // a root in step is not answered
	}
	for _, x := range []struct {
		from, to int32
		ks       []int
	}{{j, i, toI}, {i, j, toJ}} {
		if len(x.ks) == 0 {
			continue
		}
		size := 0
		for _, k := range x.ks {
			size += len(s.payloads[k])
		}
		done := s.transmit(x.from, at+rtt, size)
		s.push(&event{at: done + rtt/2, kind: evRepair, node: x.to, ks: x.ks})
	}
}

// account counts bytes a node sends outside dissem's messages.
func (s *sim) account(i int32, size int) {
	s.nodes[i].sentMsgs++
	s.nodes[i].sentB += int64(size)
}

// transmit queues size bytes on node i's NIC from at, and returns when
// they are out.
func (s *sim) transmit(i int32, at time.Duration, size int) time.Duration {
	n := s.nodes[i]
	startAt := max(at, n.sendFree)
	n.sendFree = startAt + s.sc.net.sendCost + time.Duration(float64(size)/s.sc.net.bytesPerSec*float64(time.Second))
	return n.sendFree
}

// flush takes a core's output: sends its messages through the network
// model, records its deliveries, and queues its next timer.
func (s *sim) flush(i int32, at time.Duration) {
	n := s.nodes[i]
	out, delivered := n.core.Ready()
	for _, d := range delivered {
		if k, ok := s.byID[d.ID]; ok {
			s.deliver(i, k, at)
		}
	}
	for _, m := range out {
		s.send(i, at, m)
	}
	if dl, ok := n.core.NextDeadline(); ok {
		t := dl.Sub(s.epoch)
		if t < at {
			t = at
		}
		if n.tickAt == 0 || t < n.tickAt {
			n.tickAt = t
			s.push(&event{at: t, kind: evTick, node: i})
		}
	}
}

func (s *sim) send(from int32, at time.Duration, m dissem.Message) {
	size := m.Size()
	s.account(from, size)
	s.attribute(from, m, size)
	to, ok := s.index[m.To]
	if !ok {
		return
	}
	out := s.transmit(from, at, size)
	if s.sc.loss > 0 && s.rng.Float64() < s.sc.loss {
		return
	}
	s.push(&event{at: out + s.sc.net.oneWay(s.rng, int(from), int(to)), kind: evArrive, node: to, msg: m})
}

// attribute counts a message its writer sent for its own change.
func (s *sim) attribute(from int32, m dissem.Message, size int) {
	ids := m.IDs
	if m.Kind == dissem.KindGossip {
		ids = []dissem.MsgID{m.ID}
	}
	for _, id := range ids {
		k, ok := s.byID[id]
		if !ok || s.changes[k].origin != from {
			continue
		}
		s.writerM[k] += 1 / float64(len(ids))
		s.writerB[k] += float64(size) / float64(len(ids))
	}
}

func (s *sim) measure(window time.Duration) *result {
	r := &result{sc: s.sc}
	var live []int
	for i, n := range s.nodes {
		if !n.crashed && !n.flapping {
			live = append(live, i)
		}
	}
	var times []time.Duration
	full := 0
	measured := s.changes[min(s.sc.warmup, len(s.changes)):]
	for _, ch := range measured {
		var worst time.Duration
		all := true
		for _, i := range live {
			if ch.got[i] < 0 {
				all = false
				break
			}
			worst = max(worst, ch.got[i]-ch.at)
		}
		if all {
			full++
			times = append(times, worst)
		}
	}
	if c := len(measured); c > 0 {
		r.reached = 100 * float64(full) / float64(c)
		// Per receiving node: the writer gets no copy of its own change.
		r.copies = float64(s.copies) / float64(c) / float64(max(len(live)-1, 1))
		for k := s.sc.warmup; k < len(s.changes); k++ {
			r.writerMsg += s.writerM[k]
			r.writerB += s.writerB[k]
		}
		r.writerMsg /= float64(c)
		r.writerB /= float64(c)
	}
	slices.Sort(times)
	r.p50, r.p99, r.max = quantile(times, 0.5), quantile(times, 0.99), quantile(times, 1)
	var total, busiest, busiestMsgs int64
	for _, n := range s.nodes {
		total += n.sentB
		busiest = max(busiest, n.sentB)
		busiestMsgs = max(busiestMsgs, n.sentMsgs)
	}
	if c := float64(len(s.changes)); c > 0 {
		r.busyMsg = float64(busiestMsgs) / c
	}
	if w := window.Seconds(); w > 0 {
		r.loadBps = float64(total) / float64(len(s.nodes)) / w
		r.busyBps = float64(busiest) / w
	}
	r.converged = s.converged(live)
	if d := len(measured) * len(live); d > 0 {
		r.repaired = 100 * float64(s.repaired) / float64(d)
	}
	return r
}

// converged compares the live nodes' crdt digests (true without crdt
// state only if every change reached every live node).
func (s *sim) converged(live []int) bool {
	if len(live) == 0 {
		return true
	}
	if s.nodes[live[0]].state == nil {
		for _, ch := range s.changes {
			for _, i := range live {
				if ch.got[i] < 0 {
					return false
				}
			}
		}
		return true
	}
	// A node's own slice is in its digest too: compare the remote
	// replicas each holds plus its own, as a set of (name, top).
	want := digestSet(s.nodes[live[0]].state)
	for _, i := range live[1:] {
		if !maps.Equal(want, digestSet(s.nodes[i].state)) {
			return false
		}
	}
	return true
}

func digestSet(st *crdt.State) map[string]uint64 {
	m := map[string]uint64{}
	for _, e := range st.Digest().Entries {
		if e.Top > 0 {
			m[e.Name] = e.Top
		}
	}
	return m
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)-1) + 0.5)
	return sorted[i]
}
