package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/roster-io/roster/gossip/memnet"
	"github.com/roster-io/roster/registry"
)

// --- scale ---------------------------------------------------------------------
//
// N real memberlist + roster nodes in this process, their gossip carried
// by gossip/memnet with a small one-way delay, all serving one scope:
// how long membership takes to converge, how long a join takes to reach
// every node, what an idle node sends and costs, and where this machine
// stops.

// scaleOpts are the sizes and windows of the scale experiment.
type scaleOpts struct {
	sizes  []int // cluster sizes, in order; stops at the first that does not form
	fanOut int   // Config.FanOut of every node: 0 direct push, >0 relay tree
	// directMax is gossip.Config.DirectMax of every node: 0 its default
	// (Plumtree past 32 peers), -1 the direct push at any size.
	directMax int
	joins     int // joins, one at a time, each by a random node
	// gap separates a join held everywhere from the next one, so that no
	// two go out in one batch.
	gap time.Duration
	// joinTimeout: a join not held by every node by then did not reach.
	joinTimeout time.Duration
	// formTimeout: a cluster whose nodes do not all see each other alive
	// this long after the last one started did not form.
	formTimeout time.Duration
	// settle is waited after forming and after the joins, before the next
	// window (so memberlist's retransmissions of the joins' alive messages
	// and the last repairs are not counted as idle traffic).
	settle time.Duration
	idle   time.Duration // the quiet window
	// poll is the pause between two sweeps of the delivery poller.
	poll time.Duration
	// minDelay and maxDelay bound memnet's one-way packet delay (uniform).
	minDelay, maxDelay time.Duration
	seed               int64
}

func defaultScaleOpts() scaleOpts {
	return scaleOpts{
		sizes: []int{100, 300, 1000}, joins: 200, gap: 20 * time.Millisecond,
		joinTimeout: 10 * time.Second, formTimeout: 60 * time.Second,
		settle: 3 * time.Second, idle: 10 * time.Second, poll: 200 * time.Microsecond,
		minDelay: 100 * time.Microsecond, maxDelay: 500 * time.Microsecond, seed: 1,
	}
}

// check rejects sizes the experiment cannot run.
func (so scaleOpts) check() error {
	if len(so.sizes) == 0 {
		return fmt.Errorf("%w: -scale-nodes lists no size", errFlag)
	}
	for _, n := range so.sizes {
		if n < 2 {
			return fmt.Errorf("%w: -scale-nodes: %d nodes (need at least 2)", errFlag, n)
		}
	}
	if so.joins < 1 {
		return fmt.Errorf("%w: -scale-joins %d (need at least 1)", errFlag, so.joins)
	}
	if so.fanOut != 0 && (so.fanOut < 2 || so.fanOut > 64) {
		return fmt.Errorf("%w: -scale-fanout %d (0, or 2 to 64)", errFlag, so.fanOut)
	}
	if so.directMax < -1 {
		return fmt.Errorf("%w: -scale-direct-max %d (-1, 0, or a peer count)", errFlag, so.directMax)
	}
	if so.idle <= 0 || so.formTimeout <= 0 {
		return fmt.Errorf("%w: -scale-idle and -scale-timeout must be positive", errFlag)
	}
	return nil
}

// parseSizes reads "100,300,1000".
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%w: -scale-nodes: %q is not a number", errFlag, f)
		}
		out = append(out, n)
	}
	return out, nil
}

// ScaleResult is one cluster size of the scale experiment.
type ScaleResult struct {
	Nodes  int    `json:"nodes"`
	Preset string `json:"preset"`
	FanOut int    `json:"fan_out"`
	// OpenAll: from the first node's Open to the last one's return.
	OpenAll Dur `json:"open_all_us"`
	// Formed: every node saw every node alive within the timeout; Form is
	// the time from the last node's Open call until then.
	Formed bool `json:"formed"`
	Form   Dur  `json:"form_us"`
	// Form50, Form90 and Form99: from the last node's Open until half,
	// 90 % and 99 % of the nodes had first seen all alive (looked at
	// every 2 s, so to 2 s; -1 µs: not within the timeout).
	Form50 Dur `json:"form_50_us"`
	Form90 Dur `json:"form_90_us"`
	Form99 Dur `json:"form_99_us"`
	// FormCores is the process's CPU time during the opening and forming,
	// divided by their wall time: 2.0 is both of this machine's cores.
	FormCores float64 `json:"form_cpu_cores"`
	// FormSched is the Go scheduler's latency (goroutine runnable → running)
	// over the same span, p50 and p99: it grows when the CPUs are saturated.
	FormSchedP50 Dur `json:"form_sched_p50_us"`
	FormSchedP99 Dur `json:"form_sched_p99_us"`
	// FormMutexWait is the time goroutines spent waiting for a
	// sync.Mutex over the same span, per second of it: how many were
	// queued on a lock, on average.
	FormMutexWait float64 `json:"form_mutex_wait"`
	// Opened is how many nodes were opened: fewer than Nodes when opening
	// them all took longer than the form timeout.
	Opened int `json:"opened"`
	// Stall says what the nodes saw when the cluster did not form.
	Stall *Stall `json:"stall,omitempty"`

	// Delivery: Joins joins, one at a time, each by a random node; Reached
	// of them were held by every node within the join timeout. The
	// percentiles are over those, from the Join call until the last node
	// held the member. NodeShare is the share of (join, node) pairs held.
	Joins     int     `json:"joins"`
	Reached   int     `json:"joins_reached_all"`
	NodeShare float64 `json:"node_share"`
	P50       Dur     `json:"p50_us"`
	P99       Dur     `json:"p99_us"`
	Max       Dur     `json:"max_us"`
	// Poll is the mean time between two looks at the same node: the
	// resolution of the delivery times.
	Poll Dur `json:"poll_us"`
	// JoinRate is joins per second over the delivery phase.
	JoinRate float64 `json:"joins_per_s"`

	// Idle window: bytes sent per node per second, roster's own messages
	// (registry Stats.BytesSent) and the rest of what memnet carried
	// (memberlist's probes, gossip, push/pull, and its framing of
	// roster's messages).
	IdleWindow                 Dur     `json:"idle_window_us"`
	IdleRosterBytesPerNode     float64 `json:"idle_roster_bytes_per_node_s"`
	IdleMemberlistBytesPerNode float64 `json:"idle_memberlist_bytes_per_node_s"`
	// IdleRosterMsgsPerNode is roster's messages per node per second.
	IdleRosterMsgsPerNode float64 `json:"idle_roster_messages_per_node_s"`

	// CPU seconds per node per wall second (getrusage of the process),
	// idle and during the joins (the poller's own thread subtracted).
	CPUIdlePerNode float64 `json:"cpu_idle_per_node"`
	CPULoadPerNode float64 `json:"cpu_load_per_node"`
	// IdleSchedP99: scheduler latency p99 over the idle window.
	IdleSchedP99 Dur `json:"idle_sched_p99_us"`
	// Memory per node: live Go heap after a collection, resident set
	// size, and goroutines, each over what the process had before the
	// cluster started, divided by the nodes. The heap includes memnet's
	// own (its per-link counters grow with the square of the nodes).
	HeapPerNodeKB     float64 `json:"heap_per_node_kb"`
	RSSPerNodeKB      float64 `json:"rss_per_node_kb"`
	GoroutinesPerNode float64 `json:"goroutines_per_node"`
	FD                FD      `json:"failure_detector"`
	Warnings          int     `json:"warnings"`
	TopWarnings       []Tally `json:"top_warnings,omitempty"`
	PacketsOverflow   uint64  `json:"memnet_packets_overflow"`
	StreamsRefused    uint64  `json:"memnet_streams_refused"`
	// RosterDropped counts packets the nodes' inboxes dropped (registry
	// Stats.PacketsDropped).
	RosterDropped    int64  `json:"roster_packets_dropped"`
	SkippedLarger    []int  `json:"skipped_larger,omitempty"`
	LoadAvgAfterForm string `json:"loadavg_after_form"`
}

// Stall is what a cluster that did not form looked like at the deadline.
type Stall struct {
	// Alive seen by each node (itself included): min, median, max, and
	// how many nodes saw all.
	AliveMin    int `json:"alive_min"`
	AliveMedian int `json:"alive_median"`
	AliveMax    int `json:"alive_max"`
	SeeAll      int `json:"nodes_seeing_all"`
	// Over every node's view: peers it does not list at all, and peers
	// it lists as dead, left, or unknown (known from replicated state
	// only). memberlist's suspicions show in FD, not here: a suspect peer
	// is still alive to roster.
	Missing int `json:"missing_entries"`
	Dead    int `json:"dead_entries"`
	Left    int `json:"left_entries"`
	Unknown int `json:"unknown_entries"`
	// Goroutines is the process's goroutine count, and Blocked where the
	// most of them were, by the first function outside the runtime and
	// the sync package (" on a mutex" when they waited for one).
	Goroutines int     `json:"goroutines"`
	Blocked    []Tally `json:"blocked,omitempty"`
	// Examples are the first few gaps: "n12 does not know n480".
	Examples []string `json:"examples,omitempty"`
}

// Tally is one kind of log line and how often it was logged.
type Tally struct {
	Line  string `json:"line"`
	Count int    `json:"count"`
}

func runScale(ctx context.Context, o *options) ([]*ScaleResult, error) {
	so := o.scale
	if err := so.check(); err != nil {
		return nil, err
	}
	var out []*ScaleResult
	for i, n := range so.sizes {
		r, err := scaleOne(ctx, o, n)
		if err != nil {
			return out, fmt.Errorf("scale: %d nodes: %w", n, err)
		}
		out = append(out, r)
		if !r.Formed {
			// A larger cluster only has more to converge on fewer cycles.
			r.SkippedLarger = so.sizes[i+1:]
			break
		}
	}
	return out, nil
}

// scaleOne runs one cluster size.
func scaleOne(ctx context.Context, o *options, n int) (*ScaleResult, error) {
	so := o.scale
	res := &ScaleResult{Nodes: n, Preset: "local", FanOut: so.fanOut, Joins: so.joins}
	if o.lanPreset {
		res.Preset = "lan"
	}
	settle()
	debug.FreeOSMemory()
	heap0, rss0, g0 := liveHeap(), rssBytes(), runtime.NumGoroutine()

	mem := memnet.New(memnet.Config{Seed: so.seed, MinDelay: so.minDelay, MaxDelay: so.maxDelay})
	no := o.nodeOpts()
	no.mem, no.fanOut, no.directMax = mem, so.fanOut, so.directMax
	tally := &logTally{counts: map[string]int{}}
	c := newCluster(no, tally.wrap)
	defer closeScale(c, mem)

	// Open the nodes one after the other, each seeded with the first.
	// Opening them all may take no longer than forming may (two are
	// always opened: a stall needs someone to describe).
	o.logf("scale: opening %d nodes (%s preset, FanOut %d)", n, res.Preset, so.fanOut)
	cpu0, sched0, mw0, t0 := cpuTime(), schedHist(), mutexWait(), time.Now()
	var lastStart time.Time
	for i := 0; i < n && (i < 2 || time.Since(t0) < so.formTimeout); i++ {
		lastStart = time.Now()
		if err := c.add(ctx, 0); err != nil {
			return nil, err
		}
		if (i+1)%100 == 0 && i+1 < n {
			o.logf("scale: %d of %d nodes open after %v", i+1, n, fmtDur(time.Since(t0)))
		}
	}
	res.Opened = len(c.nodes)
	res.OpenAll = Dur(time.Since(t0))
	var formedAt time.Time
	formed := false
	res.Form50, res.Form90, res.Form99 = -1, -1, -1
	if res.Opened == n {
		var firstAll []time.Duration
		formedAt, formed, firstAll = c.waitFormed(ctx, lastStart, lastStart.Add(so.formTimeout))
		// firstAll is in order; nodes that never saw all count as never.
		share := func(q float64) Dur {
			k := int(q*float64(n)+0.999999) - 1
			if k >= len(firstAll) {
				return -1
			}
			return Dur(firstAll[max(0, k)])
		}
		res.Form50, res.Form90, res.Form99 = share(0.50), share(0.90), share(0.99)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	wall := time.Since(t0).Seconds()
	res.FormCores = (cpuTime() - cpu0).Seconds() / wall
	res.FormMutexWait = (mutexWait() - mw0).Seconds() / wall
	res.FormSchedP50, res.FormSchedP99 = schedQuantiles(sched0, schedHist())
	res.LoadAvgAfterForm = loadAvg()
	res.Formed = formed
	if !formed {
		res.Form = Dur(so.formTimeout)
		res.Stall = c.stall()
		res.fill(c, mem, tally)
		o.logf("scale: %d nodes did not form within %v (%d opened)", n, so.formTimeout, res.Opened)
		return res, nil
	}
	res.Form = Dur(formedAt.Sub(lastStart))
	o.logf("scale: %d nodes formed %v after the last one started", n, res.Form)
	time.Sleep(so.settle)

	// Delivery.
	if err := c.deliver(ctx, so, res); err != nil {
		return nil, err
	}
	o.logf("scale: %d of %d joins reached all %d nodes, p50 %v p99 %v", res.Reached, res.Joins, n, res.P50, res.P99)
	time.Sleep(so.settle)

	// Idle window.
	bytes0, rb0, rm0 := memnetBytes(mem), sumStat(c.nodes, rosterBytes), sumStat(c.nodes, rosterMsgs)
	cpu0, sched0, t0 = cpuTime(), schedHist(), time.Now()
	select {
	case <-time.After(so.idle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	secs := time.Since(t0).Seconds()
	cpu := cpuTime() - cpu0
	_, res.IdleSchedP99 = schedQuantiles(sched0, schedHist())
	dAll := float64(memnetBytes(mem) - bytes0)
	dRoster := float64(sumStat(c.nodes, rosterBytes) - rb0)
	res.IdleWindow = Dur(time.Duration(secs * float64(time.Second)))
	res.IdleRosterBytesPerNode = dRoster / float64(n) / secs
	res.IdleMemberlistBytesPerNode = (dAll - dRoster) / float64(n) / secs
	res.IdleRosterMsgsPerNode = float64(sumStat(c.nodes, rosterMsgs)-rm0) / float64(n) / secs
	res.CPUIdlePerNode = cpu.Seconds() / float64(n) / secs

	settle()
	res.HeapPerNodeKB = float64(liveHeap()-heap0) / 1024 / float64(n)
	res.RSSPerNodeKB = float64(rssBytes()-rss0) / 1024 / float64(n)
	res.GoroutinesPerNode = float64(runtime.NumGoroutine()-g0) / float64(n)
	res.fill(c, mem, tally)
	return res, nil
}

// fill copies the counters kept over the whole run.
func (res *ScaleResult) fill(c *cluster, mem *memnet.Network, t *logTally) {
	res.FD = c.fd.snapshot()
	res.Warnings, res.TopWarnings = t.top(5)
	ms := mem.Stats()
	res.PacketsOverflow, res.StreamsRefused = ms.PacketsOverflow, ms.StreamsRefused
	res.RosterDropped = sumStat(c.nodes, packetsDropped)
}

func rosterBytes(s registry.Stats) int64 { return s.BytesSent }
func rosterMsgs(s registry.Stats) int64  { return s.PacketsSent + s.ReliableSent }

func memnetBytes(n *memnet.Network) uint64 {
	s := n.Stats()
	return s.PacketBytesSent + s.StreamBytesSent
}

// closeScale tears a scale cluster down quickly: every node's transport
// is severed first, so that no node waits for its leave to be gossiped
// (memberlist's Leave blocks until then, or for its timeout) and no
// leave message queues on the network's lock (a thousand nodes each
// telling a thousand peers took minutes); then every node is closed, a
// few at a time, and the network shut down.
func closeScale(c *cluster, mem *memnet.Network) {
	for _, s := range c.severables {
		s.Sever()
	}
	defer mem.Shutdown()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, r := range c.nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			_ = r.Close(ctx)
			cancel()
		}()
	}
	wg.Wait()
	c.nodes = nil
}

// seesAll reports whether node i sees every node of the cluster alive.
func (c *cluster) seesAll(i int) bool {
	alive := 0
	for _, ni := range c.nodes[i].Nodes() {
		if ni.State == registry.PeerAlive {
			alive++
		}
	}
	return alive == len(c.nodes)
}

// waitFormed polls until every node sees every node alive (at one sweep),
// or deadline, and returns when. Each sweep starts at the node that held
// the previous one up and stops at the first that does not see all, so
// the polling costs little while the cluster is far from formed. Every
// two seconds it also looks at the nodes that have not seen all yet, and
// records in firstAll when each first did (it is not checked again: a
// node that stops seeing all later is held up by the sweep, not here).
func (c *cluster) waitFormed(ctx context.Context, start, deadline time.Time) (at time.Time, formed bool, firstAll []time.Duration) {
	next := 0
	done := make([]bool, len(c.nodes))
	var mark time.Time
	for ctx.Err() == nil {
		now := time.Now()
		if now.Sub(mark) >= 2*time.Second {
			mark = now
			for i := range c.nodes {
				if !done[i] && c.seesAll(i) {
					done[i] = true
					firstAll = append(firstAll, now.Sub(start))
				}
			}
		}
		ok := true
		for k := range c.nodes {
			i := (next + k) % len(c.nodes)
			if !c.seesAll(i) {
				next, ok = i, false
				break
			}
		}
		if ok {
			for i := range c.nodes {
				if !done[i] {
					firstAll = append(firstAll, now.Sub(start))
				}
			}
			return now, true, firstAll
		}
		if now.After(deadline) {
			return time.Time{}, false, firstAll
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, false, firstAll
}

// stall describes every node's view of the cluster.
func (c *cluster) stall() *Stall {
	s := &Stall{}
	alive := make([]int, len(c.nodes))
	for i, r := range c.nodes {
		listed := 0
		seen := make([]bool, len(c.nodes))
		for _, ni := range r.Nodes() {
			j := c.index(ni.Name)
			if j < 0 || j >= len(c.nodes) {
				continue
			}
			listed++
			seen[j] = true
			if ni.State != registry.PeerAlive && len(s.Examples) < 5 {
				s.Examples = append(s.Examples, fmt.Sprintf("n%d sees n%d %s", i+1, j+1, ni.State))
			}
			switch ni.State {
			case registry.PeerAlive:
				alive[i]++
			case registry.PeerUnknown:
				s.Unknown++
			case registry.PeerDead:
				s.Dead++
			case registry.PeerLeft:
				s.Left++
			}
		}
		s.Missing += len(c.nodes) - listed
		for j, ok := range seen {
			if !ok && len(s.Examples) < 5 {
				s.Examples = append(s.Examples, fmt.Sprintf("n%d does not know n%d", i+1, j+1))
			}
		}
		if alive[i] == len(c.nodes) {
			s.SeeAll++
		}
	}
	slices.Sort(alive)
	s.AliveMin, s.AliveMedian, s.AliveMax = alive[0], alive[len(alive)/2], alive[len(alive)-1]
	s.Goroutines = runtime.NumGoroutine()
	s.Blocked = blockedIn(8)
	return s
}

// blockedIn groups the process's goroutines by the first function of
// their stack outside the runtime, sync and time packages, and returns
// the k largest groups.
func blockedIn(k int) []Tally {
	var b strings.Builder
	if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
		return nil
	}
	counts := map[string]int{}
	// debug=1: blocks of "N @ pc pc ..." followed by "#\tpc\tfunc+off\tfile:line".
	for _, block := range strings.Split(b.String(), "\n\n") {
		lines := strings.Split(block, "\n")
		var n int
		if _, err := fmt.Sscanf(lines[0], "%d @", &n); err != nil {
			continue
		}
		label, mutex := "", false
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			if len(f) < 3 || f[0] != "#" {
				continue
			}
			fn := f[2]
			if i := strings.LastIndex(fn, "+0x"); i > 0 {
				fn = fn[:i]
			}
			if strings.HasPrefix(fn, "sync.(*Mutex).Lock") || strings.HasPrefix(fn, "internal/sync.(*Mutex).lockSlow") {
				mutex = true
			}
			if !strings.HasPrefix(fn, "runtime.") && !strings.HasPrefix(fn, "internal/") && !strings.HasPrefix(fn, "sync.") && !strings.HasPrefix(fn, "time.") {
				label = fn
				break
			}
		}
		if label == "" {
			label = "the runtime"
		}
		if mutex {
			label += " on a mutex"
		}
		counts[label] += n
	}
	var out []Tally
	for l, c := range counts {
		out = append(out, Tally{l, c})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Line < out[j].Line
	})
	return out[:min(k, len(out))]
}

// deliver makes so.joins joins, one at a time, each by a random node, and
// times each until every other node holds it. It polls Owners (a lookup of
// one member) on the nodes that do not hold it yet rather than watching:
// a watch on every node would build and queue an event per join on each,
// and cost a goroutine and a buffer per node. The poller runs on a thread
// of its own whose CPU time is left out of CPULoadPerNode.
func (c *cluster) deliver(ctx context.Context, so scaleOpts, res *ScaleResult) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n := len(c.nodes)
	rng := rand.New(rand.NewPCG(uint64(so.seed), uint64(n)))
	var lat []time.Duration
	var held, sweeps int
	var polling time.Duration
	pending := make([]int, 0, n)
	cpu0, th0, t0 := cpuTime(), threadCPU(), time.Now()
	for k := 0; k < so.joins; k++ {
		w := rng.IntN(n)
		group, id := "g"+strconv.Itoa(k%8), "s"+strconv.Itoa(k)
		start := time.Now()
		if _, err := c.nodes[w].Join(ctx, benchScope, group, id, nil); err != nil {
			return fmt.Errorf("join %s on %s: %w", id, c.short(c.nodes[w].Name()), err)
		}
		pending = pending[:0]
		for i := range n {
			if i != w {
				pending = append(pending, i)
			}
		}
		var last time.Time
		deadline := start.Add(so.joinTimeout)
		for {
			sweeps++
			kept := pending[:0]
			for _, i := range pending {
				if owners, err := c.nodes[i].Owners(benchScope, group, id); err == nil && len(owners) > 0 {
					last = time.Now()
				} else {
					kept = append(kept, i)
				}
			}
			pending = kept
			if len(pending) == 0 || time.Now().After(deadline) {
				break
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			time.Sleep(so.poll)
		}
		polling += time.Since(start)
		held += n - 1 - len(pending)
		if len(pending) == 0 {
			lat = append(lat, last.Sub(start))
		}
		time.Sleep(so.gap)
	}
	secs := time.Since(t0).Seconds()
	cpu := cpuTime() - cpu0 - (threadCPU() - th0)
	slices.Sort(lat)
	res.Reached = len(lat)
	res.NodeShare = float64(held) / float64(so.joins*(n-1))
	res.P50, res.P99, res.Max = pct(lat, 0.50), pct(lat, 0.99), pct(lat, 1)
	res.Poll = Dur(polling / time.Duration(max(1, sweeps)))
	res.JoinRate = float64(so.joins) / secs
	res.CPULoadPerNode = cpu.Seconds() / float64(n) / secs
	return nil
}

// --- output ----------------------------------------------------------------

func printScale(w io.Writer, rs []*ScaleResult, so scaleOpts) {
	if len(rs) == 0 {
		return
	}
	r0 := rs[0]
	mode := "direct push up to 32 peers, Plumtree past them"
	if so.directMax < 0 {
		mode = "direct push at every size (DirectMax -1)"
	}
	if r0.FanOut > 0 {
		mode = fmt.Sprintf("relay tree, FanOut %d", r0.FanOut)
	}
	fmt.Fprintf(w, "\n== scale: real memberlist + roster nodes in one process over memnet (one-way delay %v-%v uniform), %s preset, %s, one scope ==\n",
		fmtDur(so.minDelay), fmtDur(so.maxDelay), r0.Preset, mode)
	t := &table{}
	t.add("nodes", "open all", "form 99%", "form", "form CPU", "sched p99", "mutex q", "reached", "p50", "p99", "max", "poll", "idle roster B/s/node", "idle memberlist B/s/node",
		"CPU idle/node", "CPU load/node", "heap/node", "RSS/node", "gor/node", "FD")
	for _, r := range rs {
		if !r.Formed {
			t.add(fmt.Sprint(r.Nodes), r.OpenAll.String(), fmtShare(r.Form99), "> "+r.Form.String(), fmt.Sprintf("%.2f cores", r.FormCores), r.FormSchedP99.String(), fmt.Sprintf("%.1f", r.FormMutexWait),
				"-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", r.FD.String())
			continue
		}
		t.add(fmt.Sprint(r.Nodes), r.OpenAll.String(), fmtShare(r.Form99), r.Form.String(), fmt.Sprintf("%.2f cores", r.FormCores), r.FormSchedP99.String(), fmt.Sprintf("%.1f", r.FormMutexWait),
			fmt.Sprintf("%d/%d", r.Reached, r.Joins), r.P50.String(), r.P99.String(), r.Max.String(), r.Poll.String(),
			fmt.Sprintf("%.0f", r.IdleRosterBytesPerNode), fmt.Sprintf("%.0f", r.IdleMemberlistBytesPerNode),
			fmt.Sprintf("%.2f ms/s", 1e3*r.CPUIdlePerNode), fmt.Sprintf("%.2f ms/s", 1e3*r.CPULoadPerNode),
			fmt.Sprintf("%.0f KB", r.HeapPerNodeKB), fmt.Sprintf("%.0f KB", r.RSSPerNodeKB), fmt.Sprintf("%.1f", r.GoroutinesPerNode), r.FD.String())
	}
	t.print(w)
	fmt.Fprintf(w, "  (form: from the last node's Open until every node sees all alive; form 99%%: until 99%% of them\n")
	fmt.Fprintf(w, "   first did (looked at every 2 s). Form CPU, sched p99, mutex q: the process's CPU, the Go scheduler's\n")
	fmt.Fprintf(w, "   latency, and the goroutines waiting for a mutex on average, while opening and forming.\n")
	fmt.Fprintf(w, "   Delivery: %d joins one at a time, each by a random node, %v apart; time until every other node's\n", r0.Joins, fmtDur(so.gap))
	fmt.Fprintf(w, "   Owners lists it, polled on a thread of its own (not watched); poll: mean time between two looks at\n")
	fmt.Fprintf(w, "   a node; percentiles over the joins that reached every node within %v.\n", fmtDur(so.joinTimeout))
	fmt.Fprintf(w, "   Idle: a %v window %v after the joins; roster = its messages' bytes (registry Stats), memberlist =\n", fmtDur(so.idle), fmtDur(so.settle))
	fmt.Fprintf(w, "   the rest of memnet's bytes. CPU: process CPU per node, ms per s, the poller's thread left out.\n")
	fmt.Fprintf(w, "   Memory: over the process before the cluster, per node, memnet's share included)\n")
	for _, r := range rs {
		fmt.Fprintln(w, r.keyValues())
	}
	for _, r := range rs {
		if !r.Formed {
			printStall(w, r)
		} else if r.Warnings > 0 || r.PacketsOverflow > 0 || r.RosterDropped > 0 {
			fmt.Fprintf(w, "  %d nodes: %d warnings, memnet overflow %d, streams refused %d, roster packets dropped %d; most frequent:\n",
				r.Nodes, r.Warnings, r.PacketsOverflow, r.StreamsRefused, r.RosterDropped)
			for _, l := range r.TopWarnings {
				fmt.Fprintf(w, "    %6d  %s\n", l.Count, l.Line)
			}
		}
	}
}

// keyValues is the result on one line of key=value pairs, for scripts.
func (r *ScaleResult) keyValues() string {
	kv := []string{
		"scale:", "nodes=" + strconv.Itoa(r.Nodes), "preset=" + r.Preset, "fanout=" + strconv.Itoa(r.FanOut),
		"formed=" + strconv.FormatBool(r.Formed), fmt.Sprintf("form_s=%.3f", time.Duration(r.Form).Seconds()),
		"form99_s=" + fmtSeconds(r.Form99),
	}
	if r.Formed {
		kv = append(kv,
			fmt.Sprintf("reached=%.1f", 100*float64(r.Reached)/float64(max(1, r.Joins))),
			fmt.Sprintf("p50_ms=%.3f", ms(r.P50)), fmt.Sprintf("p99_ms=%.3f", ms(r.P99)), fmt.Sprintf("max_ms=%.3f", ms(r.Max)),
			fmt.Sprintf("idle_roster_bytes_per_node_s=%.0f", r.IdleRosterBytesPerNode),
			fmt.Sprintf("idle_memberlist_bytes_per_node_s=%.0f", r.IdleMemberlistBytesPerNode),
			fmt.Sprintf("cpu_per_node=%.6f", r.CPUIdlePerNode), fmt.Sprintf("cpu_load_per_node=%.6f", r.CPULoadPerNode),
			fmt.Sprintf("heap_per_node_kb=%.0f", r.HeapPerNodeKB), fmt.Sprintf("rss_per_node_kb=%.0f", r.RSSPerNodeKB))
	} else if r.Stall != nil {
		kv = append(kv, fmt.Sprintf("alive_min=%d", r.Stall.AliveMin), fmt.Sprintf("alive_median=%d", r.Stall.AliveMedian),
			fmt.Sprintf("nodes_seeing_all=%d", r.Stall.SeeAll))
	}
	kv = append(kv, fmt.Sprintf("opened=%d", r.Opened), fmt.Sprintf("form_cpu_cores=%.2f", r.FormCores), fmt.Sprintf("form_mutex_wait=%.1f", r.FormMutexWait))
	return strings.Join(kv, " ")
}

func ms(d Dur) float64 { return float64(d) / 1e6 }

// fmtSeconds formats a Form50/90/99 figure in seconds for scripts (-1:
// never).
func fmtSeconds(d Dur) string {
	if d < 0 {
		return "-1"
	}
	return fmt.Sprintf("%.3f", time.Duration(d).Seconds())
}

// fmtShare formats a Form50/90/99 figure ("never" for -1).
func fmtShare(d Dur) string {
	if d < 0 {
		return "never"
	}
	return d.String()
}

func printStall(w io.Writer, r *ScaleResult) {
	s := r.Stall
	if r.Opened < r.Nodes {
		fmt.Fprintf(w, "  %d nodes did not form: only %d could be opened within %v\n", r.Nodes, r.Opened, r.Form)
	} else {
		fmt.Fprintf(w, "  %d nodes did not form within %v of the last node's start:\n", r.Nodes, r.Form)
	}
	fmt.Fprintf(w, "    alive seen per node min/median/max %d/%d/%d of %d; %d nodes saw all; over all views %d peers missing, %d dead, %d left, %d unknown\n",
		s.AliveMin, s.AliveMedian, s.AliveMax, r.Opened, s.SeeAll, s.Missing, s.Dead, s.Left, s.Unknown)
	if len(s.Examples) > 0 {
		fmt.Fprintf(w, "    for example: %s\n", strings.Join(s.Examples, "; "))
	}
	if r.Opened == r.Nodes {
		fmt.Fprintf(w, "    after the last node's start, half the nodes had seen all alive at %s, 90%% at %s, 99%% at %s\n",
			fmtShare(r.Form50), fmtShare(r.Form90), fmtShare(r.Form99))
	}
	fmt.Fprintf(w, "    opening took %v; while opening and forming: CPU %.2f cores of %d, scheduler latency p50/p99 %v/%v,\n",
		r.OpenAll, r.FormCores, runtime.NumCPU(), r.FormSchedP50, r.FormSchedP99)
	fmt.Fprintf(w, "    %.0f goroutines waiting for a mutex on average; load average after %s\n", r.FormMutexWait, r.LoadAvgAfterForm)
	fmt.Fprintf(w, "    %d goroutines at the deadline; the most of them in:\n", s.Goroutines)
	for _, l := range s.Blocked {
		fmt.Fprintf(w, "    %6d  %s\n", l.Count, l.Line)
	}
	fmt.Fprintf(w, "    failure detector (probe timeouts/suspicions/dead/refutations) %s; memnet overflow drops %d, streams refused %d; roster packets dropped %d\n",
		r.FD, r.PacketsOverflow, r.StreamsRefused, r.RosterDropped)
	fmt.Fprintf(w, "    %d warnings logged; most frequent:\n", r.Warnings)
	for _, l := range r.TopWarnings {
		fmt.Fprintf(w, "    %6d  %s\n", l.Count, l.Line)
	}
	if len(r.SkippedLarger) > 0 {
		fmt.Fprintf(w, "    not tried: %v nodes\n", r.SkippedLarger)
	}
}
