// Package runner drives a partition-suite run: it starts the clients of a
// workload against a cluster's nodes, lets a nemesis inject faults on a
// schedule, ends with a phase that heals everything, waits for the nodes
// to agree, takes the final reads, and returns the history.
//
// The cluster is either real processes in network namespaces (Process,
// built on packages netns and nemesis) or embedded registries on one
// in-memory network with seeded faults (InProc, no root: part of the
// default test run). It owns the run's sequencing only; the judging is
// package checker's, the results directory package store's.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/roster-io/roster/jepsen/history"
	"github.com/roster-io/roster/jepsen/workload"
)

// ErrRun reports a run that could not be carried out (not an anomaly: a
// harness failure, exit status 2).
var ErrRun = errors.New("runner: run failed")

// Cluster is the nodes under test.
type Cluster interface {
	// Names lists every node that may take part, sorted.
	Names() []string
	// Node returns the node's current handle, or nil while it is down
	// (killed, or not started yet).
	Node(name string) workload.Node
	// Heal ends every fault: links healed, paused nodes resumed, killed
	// nodes restarted. It returns what it did, for the history.
	Heal(ctx context.Context) ([]history.Fault, error)
	// Up reports whether the node is up and not paused (a client's
	// operations on it count for availability).
	Up(name string) bool
}

// Fault is one kind of nemesis action: Start injects it (chosen with
// rng), Stop ends it. Each returns what it did, for the history.
type Fault interface {
	Name() string
	Start(ctx context.Context, rng *rand.Rand) (history.Fault, error)
	Stop(ctx context.Context) (history.Fault, error)
}

// Config is one run.
type Config struct {
	Workload workload.Workload
	Scope    string
	// Time is how long the clients run with faults (the final phase
	// comes after).
	Time time.Duration
	// Processes per node; each is bound to its node.
	Processes int
	// Rate bounds the operations per second of all processes together.
	Rate float64
	// OpTimeout bounds one operation; past it the outcome is unknown.
	OpTimeout time.Duration
	// Nemesis, when set, injects the faults for the run (until its ctx
	// ends, ending any fault it started), recording each action with
	// record: the process-level runs' schedule (package nemesis). Else
	// Faults are drawn by the runner's own loop.
	Nemesis func(ctx context.Context, record func(f history.Fault, t history.Type, err error))
	// Faults are the nemesis's choices; none: no faults.
	Faults []Fault
	// FaultEvery is the mean time between faults and FaultFor the range
	// of their durations.
	FaultEvery         time.Duration
	FaultMin, FaultMax time.Duration
	// Settle is how long the final phase waits, at most, for the nodes to
	// agree; Polls is how many agreeing rounds of final reads it takes.
	Settle time.Duration
	Polls  int
	// MetricsEvery samples each node's figures (0: never).
	MetricsEvery time.Duration
	Seed         int64
	Logger       *slog.Logger
	// Recorder, when set, is where the history goes (a caller that
	// records its own entries, e.g. the cluster's start); nil: a new one.
	Recorder *workload.Recorder
}

func (c *Config) defaults() {
	if c.Scope == "" {
		c.Scope = "default"
	}
	if c.Processes <= 0 {
		c.Processes = 2
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = 2 * time.Second
	}
	if c.FaultEvery <= 0 {
		c.FaultEvery = 10 * time.Second
	}
	if c.FaultMin <= 0 {
		c.FaultMin = 5 * time.Second
	}
	if c.FaultMax < c.FaultMin {
		c.FaultMax = 6 * c.FaultMin
	}
	if c.Settle <= 0 {
		c.Settle = 60 * time.Second
	}
	if c.Polls <= 0 {
		c.Polls = 3
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Run performs a run and returns its history.
func Run(ctx context.Context, cl Cluster, cfg Config) ([]history.Op, error) {
	cfg.defaults()
	if cfg.Workload == nil {
		return nil, fmt.Errorf("%w: no workload", ErrRun)
	}
	rec := cfg.Recorder
	if rec == nil {
		rec = workload.NewRecorder()
	}
	names := cl.Names()
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6a65707365))

	// Setup: each node's static operations, before any fault.
	for i, name := range names {
		nd := cl.Node(name)
		if nd == nil {
			continue
		}
		for _, op := range cfg.Workload.Setup(name) {
			op.Process = i * cfg.Processes
			inv, comp := workload.Exec(ctx, rec, nd, cfg.Scope, op, cfg.OpTimeout)
			cfg.Workload.Done(inv, comp)
		}
	}

	runCtx, stopRun := context.WithTimeout(ctx, cfg.Time)
	defer stopRun()
	var wg sync.WaitGroup
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var watchWG sync.WaitGroup
	if cfg.Workload.Watchers() {
		for i, name := range names {
			watchWG.Add(1)
			go func() {
				defer watchWG.Done()
				workload.Watcher(watchCtx, rec, func() workload.Node { return cl.Node(name) }, cfg.Scope, 10000+i)
			}()
		}
	}
	procs := len(names) * cfg.Processes
	for p := range procs {
		name := names[p/cfg.Processes]
		prng := rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(p+1)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			client(runCtx, ctx, rec, cl, name, p, prng, cfg, procs)
		}()
	}
	if cfg.MetricsEvery > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sampleMetrics(runCtx, rec, cl, names, cfg.MetricsEvery)
		}()
	}
	switch {
	case cfg.Nemesis != nil:
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg.Nemesis(runCtx, func(f history.Fault, t history.Type, err error) {
				op := history.Op{Type: t, Process: history.NemesisProcess, F: history.FNemesis, Value: history.Value{Fault: &f}}
				if err != nil {
					op.Type, op.Error = history.Info, err.Error()
				}
				rec.Add(op)
			})
		}()
	case len(cfg.Faults) > 0:
		wg.Add(1)
		go func() {
			defer wg.Done()
			faultLoop(runCtx, rec, cfg, rng)
		}()
	}
	wg.Wait()

	// Final phase: heal everything, then read until the nodes agree.
	faults, err := cl.Heal(ctx)
	for _, f := range faults {
		f := f
		t := history.OK
		if f.Verified != nil && !*f.Verified {
			t = history.Info // a probe that did not see the heal hold
		}
		rec.Add(history.Op{Type: t, Process: history.NemesisProcess, F: history.FNemesis, Value: history.Value{Fault: &f}})
	}
	if err != nil {
		rec.Add(history.Op{Type: history.Info, Process: history.NemesisProcess, F: history.FNemesis, Error: err.Error(),
			Value: history.Value{Fault: &history.Fault{Kind: "heal", Name: "final"}}})
	}
	finalReads(ctx, rec, cl, cl.Names(), cfg) // nodes added meanwhile included
	stopWatch()
	watchWG.Wait()
	return rec.Ops(), nil
}

// client is process p: it asks the workload for operations on its node
// and performs them, at its share of the rate, until ctx ends. While its
// node is down it waits. Operations run under opCtx: the end of the run
// lets the last ones complete (cutting them would record timeouts that
// say nothing about the nodes).
func client(ctx, opCtx context.Context, rec *workload.Recorder, cl Cluster, name string, p int, rng *rand.Rand, cfg Config, procs int) {
	var gap time.Duration
	if cfg.Rate > 0 {
		gap = time.Duration(float64(time.Second) * float64(procs) / cfg.Rate)
	}
	next := time.Now()
	for ctx.Err() == nil {
		if gap > 0 {
			next = next.Add(gap)
			if d := time.Until(next); d > 0 {
				workload.Sleep(ctx, d)
			} else if d < -time.Second {
				next = time.Now() // do not burst to catch up after a stall
			}
		}
		nd := cl.Node(name)
		if nd == nil {
			workload.Sleep(ctx, 50*time.Millisecond)
			continue
		}
		op, ok := cfg.Workload.Next(p, name, rng)
		if !ok {
			workload.Sleep(ctx, 20*time.Millisecond)
			continue
		}
		op.Process = p
		inv, comp := workload.Exec(opCtx, rec, nd, cfg.Scope, op, cfg.OpTimeout)
		cfg.Workload.Done(inv, comp)
	}
}

func faultLoop(ctx context.Context, rec *workload.Recorder, cfg Config, rng *rand.Rand) {
	record := func(f history.Fault, err error) {
		op := history.Op{Type: history.OK, Process: history.NemesisProcess, F: history.FNemesis, Value: history.Value{Fault: &f}}
		if err != nil {
			op.Type, op.Error = history.Info, err.Error()
		}
		rec.Add(op)
	}
	for {
		wait := time.Duration(float64(cfg.FaultEvery) * (0.5 + rng.Float64()))
		if !workload.Sleep(ctx, wait) {
			return
		}
		f := cfg.Faults[rng.IntN(len(cfg.Faults))]
		hold := cfg.FaultMin + time.Duration(rng.Int64N(int64(cfg.FaultMax-cfg.FaultMin)+1))
		cfg.Logger.Info("nemesis: start", "fault", f.Name(), "for", hold)
		rf, err := f.Start(context.WithoutCancel(ctx), rng)
		record(rf, err)
		workload.Sleep(ctx, hold)
		sf, err := f.Stop(context.WithoutCancel(ctx))
		record(sf, err)
	}
}

func sampleMetrics(ctx context.Context, rec *workload.Recorder, cl Cluster, names []string, every time.Duration) {
	for workload.Sleep(ctx, every) {
		for _, name := range names {
			nd := cl.Node(name)
			if nd == nil || !cl.Up(name) {
				continue
			}
			mctx, cancel := context.WithTimeout(ctx, time.Second)
			m, err := nd.Metrics(mctx)
			cancel()
			if err == nil && len(m) > 0 {
				rec.Add(history.Op{Type: history.OK, Process: history.NemesisProcess - 1, Node: name, F: history.FMetrics, Value: history.Value{Metrics: m}})
			}
		}
	}
}

// finalReads reads every group of the workload on every node, round
// after round, until Polls consecutive rounds agree across the nodes (and
// with the round before) or Settle runs out.
func finalReads(ctx context.Context, rec *workload.Recorder, cl Cluster, names []string, cfg Config) {
	deadline := time.Now().Add(cfg.Settle)
	groups := cfg.Workload.Groups()
	agreeing := 0
	var prev string
	for round := 0; ; round++ {
		states := map[string]string{}
		for i, name := range names {
			nd := cl.Node(name)
			if nd == nil {
				continue
			}
			var sig []string
			for _, g := range groups {
				op := history.Op{F: history.FFinalRead, Process: 20000 + i, Value: history.Value{Group: g}}
				_, comp := workload.Exec(ctx, rec, nd, cfg.Scope, op, cfg.OpTimeout)
				if comp.Type != history.OK {
					sig = append(sig, "error")
					continue
				}
				for _, m := range comp.Value.Members {
					sig = append(sig, m.Group+"/"+m.ID+"@"+m.Owner+"#"+m.Meta["v"])
				}
			}
			slices.Sort(sig)
			states[name] = fmt.Sprint(sig)
		}
		same := len(states) > 0
		var one string
		for _, s := range states {
			if one == "" {
				one = s
			}
			same = same && s == one
		}
		if same && one == prev {
			agreeing++
		} else if same {
			agreeing = 1
		} else {
			agreeing = 0
		}
		prev = one
		if agreeing >= cfg.Polls || time.Now().After(deadline) || ctx.Err() != nil {
			return
		}
		workload.Sleep(ctx, 500*time.Millisecond)
	}
}
