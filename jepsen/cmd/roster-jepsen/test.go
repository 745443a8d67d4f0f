package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"github.com/roster-io/roster/gossip"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/roster-io/roster/internal/bug"
	"github.com/roster-io/roster/jepsen/checker"
	"github.com/roster-io/roster/jepsen/history"
	"github.com/roster-io/roster/jepsen/nemesis"
	"github.com/roster-io/roster/jepsen/netns"
	"github.com/roster-io/roster/jepsen/runner"
	"github.com/roster-io/roster/jepsen/store"
	"github.com/roster-io/roster/jepsen/workload"
)

type testOptions struct {
	nodes, processes int
	seconds          float64
	seed             int64
	wl, nem, profile string
	bin, base, name  string
	rate             float64
	inproc           bool
	settle           time.Duration
	every            time.Duration
	minHold, maxHold time.Duration
	args             string
	bug              string
	shapes           string
	grace            time.Duration
	verbose          bool
}

func testFlags(o *testOptions, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.nodes, "nodes", 5, "nodes (3 to 15 or more)")
	fs.Float64Var(&o.seconds, "time", 60, "seconds of workload under faults (the final heal and reads come after)")
	fs.Int64Var(&o.seed, "seed", 1, "seed of the schedule, the clients' choices and (in-process) the network's faults")
	fs.StringVar(&o.wl, "workload", "join-set", "workload (see list)")
	fs.StringVar(&o.nem, "nemesis", "mixed", "comma-separated nemeses (see list), or none")
	fs.StringVar(&o.profile, "profile", "lan", "the nodes' gossip timings: lan (a deployment's) or local (fast failure detection)")
	fs.StringVar(&o.bin, "bin", "", "executable run as BIN serve ... (any that accepts roster serve's flags and speaks its API); empty: build ./cmd/roster")
	fs.StringVar(&o.args, "serve-args", "", "more flags for every node's serve, space-separated")
	fs.StringVar(&o.base, "store", store.DefaultBase, "results `directory`")
	fs.StringVar(&o.name, "name", "", "the run's name in the store (default: the workload)")
	fs.IntVar(&o.processes, "processes", 2, "client processes per node")
	fs.Float64Var(&o.rate, "rate", 500, "operations per second, all clients together (0: as fast as they go)")
	fs.BoolVar(&o.inproc, "inproc", false, "embedded nodes on an in-memory network with seeded faults (no root, no processes)")
	fs.DurationVar(&o.settle, "settle", 90*time.Second, "how long the final phase waits, at most, for the nodes to agree")
	fs.DurationVar(&o.every, "every", 10*time.Second, "mean time between faults")
	fs.DurationVar(&o.minHold, "min-hold", 5*time.Second, "shortest regular fault")
	fs.DurationVar(&o.maxHold, "max-hold", 30*time.Second, "longest regular fault")
	fs.StringVar(&o.shapes, "shapes", "", "comma-separated partition shapes to draw from (isolated, halves, one-way, bridge, ring, minority-third); empty: all")
	fs.DurationVar(&o.grace, "grace", 0, "how long a node may take to show a change it can learn of (checkers); 0: 3 s with --profile local, 10 s with lan")
	fs.StringVar(&o.bug, "bug", "", "build ./cmd/roster with a deliberate bug (see list) and run against it: the suite must fail")
	fs.BoolVar(&o.verbose, "v", false, "log the harness's progress to stderr")
	return fs
}

func runTest(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	var o testOptions
	fs := testFlags(&o, stderr)
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	if fs.NArg() > 0 {
		return 2, fmt.Errorf("%w: test takes no arguments, got %q", errUsage, fs.Args())
	}
	wl, err := workload.New(o.wl, workload.DefaultOptions())
	if err != nil {
		return 2, err
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if o.name == "" {
		o.name = o.wl
	}
	if o.inproc {
		o.profile = "local"
	}
	run := store.Run{Name: o.name, Workload: o.wl, Profile: o.profile, Nemesis: strings.Split(o.nem, ","), Nodes: o.nodes,
		Seed: o.seed, Grace: o.grace, Duration: time.Duration(o.seconds * float64(time.Second)), Args: append([]string{"roster-jepsen", "test"}, args...),
		Start: time.Now(), GoVersion: runtime.Version(), Commit: gitCommit()}
	cfg := runner.Config{Workload: wl, Scope: "default", Time: run.Duration, Processes: o.processes, Rate: o.rate,
		Settle: o.settle, Seed: o.seed, Logger: log, MetricsEvery: 2 * time.Second,
		FaultEvery: o.every, FaultMin: o.minHold, FaultMax: o.maxHold}
	var ops []history.Op
	var logs map[string]string
	var d *store.Dir
	if o.inproc {
		run.Bin = "in-process"
		if d, err = store.Create(o.base, run); err != nil {
			return 2, err
		}
		ops, err = testInProc(ctx, o, cfg, d, log)
	} else {
		ops, logs, d, err = testProcesses(ctx, o, cfg, run, log)
	}
	if err != nil {
		return 2, err
	}
	copts := checker.Options{Logs: logs, Grace: grace(o.grace, o.profile)}
	rep := checker.Check(ops, copts)
	if err := d.Save(ops, rep); err != nil {
		fmt.Fprintf(stderr, "roster-jepsen: saving the results: %v\n", err)
	}
	printReport(stdout, d.Path(), ops, rep)
	return rep.ExitCode(), nil
}

func testInProc(ctx context.Context, o testOptions, cfg runner.Config, d *store.Dir, log *slog.Logger) ([]history.Op, error) {
	work, err := os.MkdirTemp("", "roster-jepsen-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	c, err := runner.NewInProc(ctx, o.nodes, cfg.Scope, work, o.seed, nil, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	names := strings.Split(o.nem, ",")
	if o.nem == "mixed" {
		names = []string{"partition", "loss", "pause", "kill", "amnesia"}
	}
	if cfg.Faults, err = c.Faults(names...); err != nil {
		return nil, err
	}
	log.Info("running in-process", "nodes", o.nodes, "workload", o.wl, "faults", names, "store", d.Path())
	return runner.Run(ctx, c, cfg)
}

func testProcesses(ctx context.Context, o testOptions, cfg runner.Config, run store.Run, log *slog.Logger) ([]history.Op, map[string]string, *store.Dir, error) {
	if err := netns.Available(); err != nil {
		return nil, nil, nil, fmt.Errorf("%w (the process-level suite needs root, ip and iptables; --inproc runs without)", err)
	}
	work, err := os.MkdirTemp("", "roster-jepsen-")
	if err != nil {
		return nil, nil, nil, err
	}
	defer os.RemoveAll(work)
	if o.bin == "" {
		if o.bin, err = buildRoster(work, o.bug); err != nil {
			return nil, nil, nil, err
		}
	} else if o.bug != "" {
		return nil, nil, nil, fmt.Errorf("%w: --bug builds the binary; it does not go with --bin", errUsage)
	}
	run.Bin = o.bin
	if out, err := exec.Command(o.bin, "--version").CombinedOutput(); err == nil {
		run.BinVersion = strings.TrimSpace(string(out))
	}
	d, err := store.Create(o.base, run)
	if err != nil {
		return nil, nil, nil, err
	}
	// The nodes gossip on the namespaces' bridge, not loopback: they
	// need a key (as a deployment would have).
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keyFile := filepath.Join(work, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, nil, nil, err
	}
	serveArgs := []string{"--gossip-key-file", keyFile, "--log-level", "info"}
	if o.args != "" {
		serveArgs = append(serveArgs, strings.Fields(o.args)...)
	}
	c, err := netns.Setup(ctx, netns.Config{Nodes: o.nodes, Logger: log,
		Serve: netns.ServeConfig{Bin: o.bin, Dir: filepath.Join(work, "nodes"), Profile: o.profile, Args: serveArgs}})
	if err != nil {
		return nil, nil, d, err
	}
	defer c.Close()
	if err := c.StartAll(ctx); err != nil {
		return nil, nil, d, err
	}
	p := runner.NewProcess(c, "")
	if err := p.WaitReady(ctx, 60*time.Second); err != nil {
		return nil, nil, d, fmt.Errorf("the nodes did not get ready: %w", err)
	}
	var nopts nemesis.Options
	if o.shapes != "" {
		nopts.Shapes = strings.Split(o.shapes, ",")
	}
	nems, err := nemesis.Resolve(strings.Split(o.nem, ","), nopts)
	if err != nil {
		return nil, nil, d, err
	}
	if len(nems) > 0 {
		cfg.Nemesis = p.Schedule(nems, nemesis.PlanConfig{Duration: cfg.Time, Every: o.every, MinHold: o.minHold, MaxHold: o.maxHold,
			Timings: timings(o.profile, o.nodes)}, o.seed)
	}
	log.Info("running", "nodes", o.nodes, "workload", o.wl, "nemesis", o.nem, "profile", o.profile, "store", d.Path())
	ops, err := runner.Run(ctx, p, cfg)
	// Node logs into the results directory, for the record and hygiene.
	logs := map[string]string{}
	for _, n := range c.Nodes() {
		if pr := c.Process(n); pr != nil {
			if b, rerr := os.ReadFile(pr.LogPath()); rerr == nil {
				if werr := os.WriteFile(d.LogPath(n), b, 0o644); werr == nil {
					logs[n] = d.LogPath(n)
				}
			}
		}
	}
	return ops, logs, d, err
}

// grace is the checkers' grace for a profile: long enough for a node to
// learn of a change after a fault ends through memberlist and an
// anti-entropy round (LAN: probes every second, anti-entropy every 2 s; a
// full restart took up to 4 s to show every peer's members again).
func grace(flag time.Duration, profile string) time.Duration {
	switch {
	case flag > 0:
		return flag
	case profile == "local":
		return 3 * time.Second
	default:
		return 10 * time.Second
	}
}

// timings are the failure detector's for a profile and cluster size,
// from the presets the nodes run with.
func timings(profile string, n int) nemesis.Timings {
	cfg := gossip.DefaultLANConfig("x")
	if profile == "local" {
		cfg = gossip.DefaultLocalConfig("x")
	}
	ml := cfg.Memberlist
	return nemesis.Timings{
		Suspicion: ml.ProbeInterval + nemesis.SuspicionTimeout(ml.SuspicionMult, ml.ProbeInterval, n),
		DeadTime:  ml.GossipToTheDeadTime,
	}
}

func buildRoster(dir, bugName string) (string, error) {
	bin := filepath.Join(dir, "roster")
	args := []string{"build", "-o", bin}
	if bugName != "" {
		known := false
		for _, b := range bug.Names {
			known = known || b.Name == bugName
		}
		if !known {
			return "", fmt.Errorf("%w: no bug %q (see list)", errUsage, bugName)
		}
		args = append(args, "-tags", "rosterbug_"+bugName)
	}
	cmd := exec.Command("go", append(args, "./cmd/roster")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/roster (run roster-jepsen from the repository's root, or pass --bin): %v\n%s", err, out)
	}
	return bin, nil
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// printReport prints the run's directory, the counts, each checker's
// verdict, and the verdict last.
func printReport(w io.Writer, dir string, ops []history.Op, rep checker.Report) {
	counts := map[string]int{}
	for _, op := range ops {
		if op.Type != history.Invoke && op.F != history.FWatch && op.F != history.FNemesis && op.F != history.FMetrics {
			counts[op.F+" "+string(op.Type)]++
		}
	}
	fmt.Fprintf(w, "results: %s\n", dir)
	fmt.Fprintf(w, "operations: %d entries; joins ok %d fail %d info %d; reads ok %d; final reads %d\n", len(ops),
		counts["join ok"], counts["join fail"], counts["join info"], counts["read ok"], counts["final-read ok"])
	for _, r := range rep.Results {
		line := fmt.Sprintf("  %-17s %-8s", r.Checker, r.Valid)
		if len(r.Anomalies) > 0 {
			line += " " + strings.Join(r.Anomalies, ", ")
		}
		for _, q := range []string{"heal-to-agreement", "stable-latency", "hide-latency", "reappear-latency"} {
			if qs, ok := r.Quantiles[q]; ok {
				line += fmt.Sprintf(" %s p50 %s p99 %s ms", q, ms(qs["0.5"]), ms(qs["0.99"]))
			}
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, rep.Verdict())
}

func ms(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}
