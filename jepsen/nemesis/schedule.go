package nemesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/roster-io/roster/jepsen/history"
	"github.com/roster-io/roster/jepsen/netns"
)

// Timings are the failure detector's, from the gossip profile the nodes
// run with: the caller passes them (this package knows no memberlist
// values).
type Timings struct {
	// Suspicion is how long a silent node takes to be declared dead: a
	// probe interval to notice, then the suspicion timeout (see
	// SuspicionTimeout).
	Suspicion time.Duration
	// DeadTime is memberlist's GossipToTheDeadTime: how long the others
	// keep gossiping to a node declared dead (and accept it back on the
	// spot).
	DeadTime time.Duration
}

// SuspicionTimeout is memberlist's suspicion timeout for a cluster of n
// nodes: mult × max(1, log10 n) × probeInterval.
func SuspicionTimeout(mult int, probeInterval time.Duration, n int) time.Duration {
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	return time.Duration(float64(mult) * scale * float64(probeInterval))
}

// The hold classes of a step.
const (
	// ClassRegular: MinHold to MaxHold.
	ClassRegular = "regular"
	// ClassBlip: shorter than Suspicion; the cluster must not notice.
	ClassBlip = "blip"
	// ClassMid: between Suspicion and DeadTime: declared dead, and back
	// while still gossiped to.
	ClassMid = "mid"
	// ClassLong: well beyond DeadTime (at least twice it, and MinHold).
	ClassLong = "long"
)

// PlanConfig is a schedule's parameters.
type PlanConfig struct {
	// Duration is the length of the fault phase; no step ends after it.
	Duration time.Duration
	// Every is the mean quiet time before each fault (uniform in half to
	// one and a half of it); 0: 10 s.
	Every time.Duration
	// MinHold and MaxHold bound a regular fault's duration; 0: 5 s and
	// 30 s.
	MinHold, MaxHold time.Duration
	// Timings, when set, add the classes that straddle the failure
	// detector (blip, mid, long), drawn as often as regular.
	Timings Timings
}

// Step is one fault of a schedule.
type Step struct {
	// At is when it starts, from the start of the schedule.
	At time.Duration
	// Hold is how long it lasts before Stop.
	Hold time.Duration
	// Class is the hold's class (ClassBlip, …).
	Class   string
	Nemesis Nemesis
}

// Plan draws a schedule: one fault at a time, each of a nemesis drawn
// from nems, after a quiet gap of about Every, held for a duration of a
// drawn class. The same nems, config and seed give the same schedule.
func Plan(nems []Nemesis, cfg PlanConfig, rng *rand.Rand) []Step {
	if len(nems) == 0 || cfg.Duration <= 0 {
		return nil
	}
	if cfg.Every <= 0 {
		cfg.Every = 10 * time.Second
	}
	if cfg.MinHold <= 0 {
		cfg.MinHold = 5 * time.Second
	}
	if cfg.MaxHold < cfg.MinHold {
		cfg.MaxHold = max(cfg.MinHold, 30*time.Second)
	}
	classes := []string{ClassRegular}
	if s, d := cfg.Timings.Suspicion, cfg.Timings.DeadTime; s > 0 {
		classes = append(classes, ClassBlip)
		if d > s {
			classes = append(classes, ClassMid)
		}
		if d > 0 {
			classes = append(classes, ClassLong)
		}
	}
	var steps []Step
	at := time.Duration(0)
	for {
		at += uniform(rng, cfg.Every/2, cfg.Every*3/2)
		// A class whose hold does not fit in what is left is drawn again
		// among the others (a long fault does not fit a short run, and
		// ending the schedule there left 60 s runs without a fault).
		var class string
		var hold time.Duration
		fits := false
		for try := 0; try < 4*len(classes) && !fits; try++ {
			class = classes[rng.IntN(len(classes))]
			hold = holdFor(class, cfg, rng)
			fits = at+hold <= cfg.Duration
		}
		n := nems[rng.IntN(len(nems))]
		if !fits {
			return steps
		}
		steps = append(steps, Step{At: at, Hold: hold, Class: class, Nemesis: n})
		at += hold
	}
}

func holdFor(class string, cfg PlanConfig, rng *rand.Rand) time.Duration {
	s, d := cfg.Timings.Suspicion, cfg.Timings.DeadTime
	switch class {
	case ClassBlip:
		return uniform(rng, s/4, s*3/4)
	case ClassMid:
		margin := (d - s) / 10
		return uniform(rng, s+margin, d-margin)
	case ClassLong:
		lo := max(cfg.MinHold, 2*d)
		return uniform(rng, lo, max(cfg.MaxHold, 3*d, lo))
	}
	return uniform(rng, cfg.MinHold, cfg.MaxHold)
}

// uniform draws a duration in [lo, hi], at millisecond resolution.
func uniform(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return (lo + time.Duration(rng.Int64N(int64(hi-lo)+1))).Round(time.Millisecond)
}

// Recorder records one fault; err says the action failed (record it as
// info). A fault that did not verify has Verified false: record it with
// Type(f).
type Recorder func(f history.Fault, err error)

// startKind and stopKind name what a nemesis was doing when it failed
// before recording anything.
var startKind = map[string]string{NamePartition: "partition", NameLoss: "loss", NamePause: "pause",
	NameKill: "kill", NameRestartAll: "kill", NameAmnesia: "kill", NameChurn: "leave"}
var stopKind = map[string]string{NamePartition: "heal", NameLoss: "heal", NamePause: "resume",
	NameKill: "restart", NameRestartAll: "restart", NameAmnesia: "restart", NameChurn: "restart"}

func record(rec Recorder, name, kind string, faults []history.Fault, err error) {
	if err != nil && len(faults) == 0 {
		faults = []history.Fault{{Kind: kind, Name: name}}
	}
	for i, f := range faults {
		if i == len(faults)-1 {
			rec(f, err)
		} else {
			rec(f, nil)
		}
	}
}

// Run carries out a schedule against t, recording every fault as it
// goes: it waits for each step's start (from the call), starts it, holds
// it and stops it. When ctx ends it stops the fault in progress and
// returns; failures are recorded and logged, and do not end the run.
// The final phase is Final's.
func Run(ctx context.Context, t Target, steps []Step, rng *rand.Rand, rec Recorder, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	act := context.WithoutCancel(ctx) // a fault once begun is carried through
	for _, s := range steps {
		if sleep(ctx, time.Until(start.Add(s.At))) != nil {
			return
		}
		name := s.Nemesis.Name()
		log.Info("nemesis: start", "nemesis", name, "class", s.Class, "hold", s.Hold)
		faults, err := s.Nemesis.Start(act, t, rng)
		if err != nil {
			log.Warn("nemesis: start failed", "nemesis", name, "err", err)
		}
		record(rec, name, startKind[name], faults, err)
		_ = sleep(ctx, s.Hold)
		faults, err = s.Nemesis.Stop(act, t)
		if err != nil {
			log.Warn("nemesis: stop failed", "nemesis", name, "err", err)
		}
		record(rec, name, stopKind[name], faults, err)
		log.Info("nemesis: stopped", "nemesis", name)
		if ctx.Err() != nil {
			return
		}
	}
}

// Final is the final phase: it heals every link (and checks that all
// carry), resumes every paused node, restarts every stopped one, and
// checks that all run. It carries on past failures and returns them
// joined, after the faults it recorded.
func Final(ctx context.Context, t Target) ([]history.Fault, error) {
	var errs []error
	out, err := heal(ctx, t, "final")
	if err != nil {
		errs = append(errs, err)
	}
	nodes := slices.Sorted(slices.Values(t.Nodes()))
	var paused, stopped, resumed, restarted []string
	for _, n := range nodes {
		switch t.State(n) {
		case netns.Paused:
			paused = append(paused, n)
		case netns.Stopped:
			stopped = append(stopped, n)
		}
	}
	for _, n := range paused {
		if err := t.Resume(ctx, n); err != nil {
			errs = append(errs, err)
			continue
		}
		resumed = append(resumed, n)
	}
	if len(paused) > 0 {
		out = append(out, history.Fault{Kind: "resume", Name: "final", Nodes: resumed})
	}
	for _, n := range stopped {
		if err := t.Restart(ctx, n); err != nil {
			errs = append(errs, err)
			continue
		}
		restarted = append(restarted, n)
	}
	if len(stopped) > 0 {
		out = append(out, history.Fault{Kind: "restart", Name: "final", Nodes: restarted})
	}
	pf, err := verifyState(ctx, t, "final", nodes, netns.Running)
	if err != nil {
		errs = append(errs, err)
	} else {
		out = append(out, pf)
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("%w: final phase: %w", ErrNemesis, err)
	}
	return out, nil
}
