package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/roster-io/roster/internal/bug"
	"github.com/roster-io/roster/jepsen/checker"
	"github.com/roster-io/roster/jepsen/history"
	"github.com/roster-io/roster/jepsen/nemesis"
	"github.com/roster-io/roster/jepsen/netns"
	"github.com/roster-io/roster/jepsen/store"
	"github.com/roster-io/roster/jepsen/workload"
)

// runAnalyze re-checks a stored run: the checkers on its history.jsonl
// (and node logs), results and summary rewritten. No root needed.
func runAnalyze(args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("analyze", flag.ContinueOnError)
	fs.SetOutput(stderr)
	graceFlag := fs.Duration("grace", 0, "the checkers' grace; 0: the run's own (its --grace, else its profile's: 3 s local, 10 s lan)")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	if fs.NArg() != 1 {
		return 2, fmt.Errorf("%w: analyze takes one results directory, e.g. jepsen/store/latest", errUsage)
	}
	d, run, err := store.Open(fs.Arg(0))
	if err != nil {
		return 2, err
	}
	ops, err := d.ReadHistory()
	if err != nil {
		return 2, err
	}
	logs := map[string]string{}
	for _, n := range nodesOf(ops) {
		if _, err := os.Stat(d.LogPath(n)); err == nil {
			logs[n] = d.LogPath(n)
		}
	}
	g := *graceFlag
	if g <= 0 {
		g = run.Grace // the run's own, if it was given one
	}
	rep := checker.Check(ops, checker.Options{Logs: logs, Grace: grace(g, run.Profile)})
	if err := d.Save(ops, rep); err != nil {
		fmt.Fprintf(stderr, "roster-jepsen: saving the results: %v\n", err)
	}
	fmt.Fprintf(stdout, "run %s (%s, %d nodes, seed %d)\n", run.Name, run.Workload, run.Nodes, run.Seed)
	printReport(stdout, d.Path(), ops, rep)
	return rep.ExitCode(), nil
}

func runList(w io.Writer) error {
	fmt.Fprintln(w, "workloads (--workload):")
	for _, d := range workload.All() {
		fmt.Fprintf(w, "  %-17s %s\n", d.Name, d.Description)
	}
	fmt.Fprintln(w, "nemeses (--nemesis, comma-separated):")
	for _, n := range nemesis.All() {
		fmt.Fprintf(w, "  %-17s %s\n", n.Name, n.Description)
	}
	fmt.Fprintln(w, "deliberate bugs (--bug: a build the suite must fail):")
	for _, b := range bug.Names {
		fmt.Fprintf(w, "  %-17s %s; caught by %s\n", b.Name, b.Breaks, b.Caught)
	}
	fmt.Fprintln(w, "checkers (every run; each valid, invalid or unknown):")
	for _, c := range checker.All() {
		fmt.Fprintf(w, "  %-17s %s\n", c.Name(), c.Description())
	}
	return nil
}

func runCleanup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	all := fs.Bool("all", false, "also remove runs whose harness still seems alive")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := netns.Available(); err != nil {
		return err
	}
	removed, err := netns.CleanupStale(ctx, *all, nil)
	fmt.Fprintf(stdout, "removed %d runs: %s\n", len(removed), strings.Join(removed, " "))
	return err
}

func nodesOf(ops []history.Op) []string {
	seen := map[string]bool{}
	for _, op := range ops {
		if op.Node != "" {
			seen[op.Node] = true
		}
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
