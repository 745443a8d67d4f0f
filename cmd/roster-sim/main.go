// Command roster-sim runs thousands of roster dissemination cores
// (gossip/dissem, the same code a node drives) under virtual time, over
// a simulated network, and reports how changes spread as the cluster
// grows: the question roster exists to answer.
//
//	go run ./cmd/roster-sim                           # the table at 100, 1,000, 10,000 nodes
//	go run ./cmd/roster-sim -nodes 10000 -seed 1      # one size; the last line sums it up
//	go run ./cmd/roster-sim -nodes 100,1000,10000,40000 -model lan,wan -plots docs/scale
//
// Each run broadcasts -warmup joins (not measured: Plumtree's tree forms
// over them), then -changes joins, from random writers at -rate per
// second cluster-wide, with -loss of packets lost, -crashed of the nodes
// crashed at the start (not yet detected by memberlist, which takes
// 4 × log10(N) seconds), and -flapping nodes going down and up every
// 0.2–1 s. Designs (-designs): before (today's direct push to every scope
// peer, counter digests), tree (today's relay tree, FanOut 4), after
// (direct push up to 32 peers, Plumtree eager/lazy push above, range
// digests). With -crdt every node merges the real crdt deltas and the
// run checks that the live nodes' states agree at the end.
//
// Figures that cannot be simulated node by node at 10,000 nodes with 1M
// members (a partition heal, a fresh node's transfer) are built from
// costs measured on the real crdt code at the start (crdtcost.go), and
// background traffic from the protocols' message sizes (background.go).
//
// The last line of stdout is one run's summary as key=value pairs (the
// largest size, design after, first model), for scripts to compare.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

type options struct {
	nodes    []int
	designs  []design
	models   []netModel
	loss     float64
	crashed  float64
	flapping int
	changes  int
	warmup   int
	rate     float64
	seed     uint64
	crdt     string
	members  int
	plots    string
	drain    time.Duration
	graft    time.Duration
	announce time.Duration
	stats    bool
}

var errUsage = errors.New("roster-sim: bad flags")

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("roster-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		nodes    = fs.String("nodes", "100,1000,10000", "cluster sizes, comma separated")
		des      = fs.String("designs", "before,after", "designs: before, tree, after")
		models   = fs.String("model", "lan", "network models: lan, wan (19 regions)")
		loss     = fs.Float64("loss", 0.01, "probability that a packet is lost")
		crashed  = fs.Float64("crashed", 0.02, "share of nodes crashed at the start")
		flap     = fs.Int("flapping", 10, "nodes going down and up all along")
		changes  = fs.Int("changes", 200, "joins broadcast and measured per run")
		warmup   = fs.Int("warmup", 100, "joins broadcast first and not measured (Plumtree's tree forms over them)")
		rate     = fs.Float64("rate", 1000, "changes per second, cluster-wide")
		seed     = fs.Uint64("seed", 1, "seed of every random decision")
		crdtOn   = fs.String("crdt", "auto", "merge real crdt deltas on every node: on, off, auto (on up to 4M deliveries)")
		members  = fs.Int("members", 1_000_000, "members of the scope in the heal and fresh-node figures")
		plots    = fs.String("plots", "", "directory to draw PNG plots into (needs at least two sizes)")
		graft    = fs.Duration("graft-timeout", 0, "Plumtree's GraftTimeout (0: dissem's preset, DefaultConfig for lan, WANConfig for wan)")
		announce = fs.Duration("announce-every", 0, "Plumtree's AnnounceEvery (0: dissem's preset, DefaultConfig for lan, WANConfig for wan)")
		stats    = fs.Bool("core-stats", false, "print every run's dissem core stats, summed, per change (stderr)")
		drain    = fs.Duration("drain", 5*time.Second, "virtual time after the last change for repairs to land")
	)
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	o := &options{loss: *loss, crashed: *crashed, flapping: *flap, changes: *changes, warmup: *warmup, rate: *rate,
		seed: *seed, crdt: *crdtOn, members: *members, plots: *plots, drain: *drain, graft: *graft, announce: *announce, stats: *stats}
	for _, s := range strings.Split(*nodes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 || n > 100_000 {
			return nil, fmt.Errorf("%w: -nodes %q: each size must be a number from 2 to 100000", errUsage, s)
		}
		o.nodes = append(o.nodes, n)
	}
	for _, s := range strings.Split(*des, ",") {
		d, ok := designs[strings.TrimSpace(s)]
		if !ok {
			return nil, fmt.Errorf("%w: -designs %q: want before, tree or after", errUsage, s)
		}
		o.designs = append(o.designs, d)
	}
	for _, s := range strings.Split(*models, ",") {
		m, ok := modelByName(strings.TrimSpace(s))
		if !ok {
			return nil, fmt.Errorf("%w: -model %q: want lan or wan", errUsage, s)
		}
		o.models = append(o.models, m)
	}
	switch {
	case o.loss < 0 || o.loss >= 1:
		return nil, fmt.Errorf("%w: -loss %v: want [0, 1)", errUsage, o.loss)
	case o.crashed < 0 || o.crashed > 0.5:
		return nil, fmt.Errorf("%w: -crashed %v: want [0, 0.5]", errUsage, o.crashed)
	case o.changes < 1 || o.rate <= 0 || o.warmup < 0:
		return nil, fmt.Errorf("%w: -changes and -rate must be positive, -warmup not negative", errUsage)
	case o.crdt != "on" && o.crdt != "off" && o.crdt != "auto":
		return nil, fmt.Errorf("%w: -crdt %q: want on, off or auto", errUsage, o.crdt)
	case o.members < 1000:
		return nil, fmt.Errorf("%w: -members %d: want at least 1000", errUsage, o.members)
	}
	return o, nil
}

// row is one line of the table: a run plus the modelled figures for the
// same size and design.
type row struct {
	model string
	res   *result
	bg    background
	heal  healResult
	fresh time.Duration
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, err)
			return 2
		}
		return 0
	}
	fmt.Fprintf(stderr, "measuring the crdt's costs on %d members...\n", o.members)
	costs, err := measureCrdt(o.members, 1000)
	if err != nil {
		fmt.Fprintln(stderr, "roster-sim:", err)
		return 1
	}
	var rows []row
	for _, nm := range o.models {
		for _, n := range o.nodes {
			for _, d := range o.designs {
				sc := scenario{nodes: n, design: d, net: nm, loss: o.loss, crashed: o.crashed,
					flapping: min(o.flapping, n/4), changes: o.changes, warmup: o.warmup, rate: o.rate, seed: o.seed,
					crdt: o.crdt == "on" || (o.crdt == "auto" && n*(o.changes+o.warmup) <= 4_000_000), drain: o.drain,
					digestEntry: costs.digestEntry, graft: o.graft, announce: o.announce}
				s, err := newSim(sc)
				if err != nil {
					fmt.Fprintln(stderr, "roster-sim:", err)
					return 1
				}
				res := s.run()
				if o.stats {
					printCoreStats(stderr, fmt.Sprintf("%s %s %d nodes", nm.name, d.name, n), s.coreStats(), o.changes)
					fmt.Fprintln(stderr, s.treeShape())
				}
				rng := rand.New(rand.NewPCG(o.seed, uint64(n)))
				rw := row{model: nm.name, res: res, bg: idleTraffic(d.digest, n, costs.digestEntry),
					heal: simulateHeal(rng, nm, d.digest, n, o.members, costs), fresh: freshNode(nm, costs)}
				rows = append(rows, rw)
				fmt.Fprintf(stderr, "%s %s %d nodes: %d events in %v\n", nm.name, d.name, n, res.events, res.wall.Round(time.Millisecond))
			}
		}
	}
	printTable(stdout, rows, costs)
	if o.plots != "" {
		if err := drawPlots(o.plots, rows); err != nil {
			fmt.Fprintln(stderr, "roster-sim:", err)
			return 1
		}
	}
	fmt.Fprintln(stdout, summary(pickSummary(rows, o)))
	return 0
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) }

func printTable(w io.Writer, rows []row, c crdtCosts) {
	fmt.Fprintf(w, "crdt, measured: %d members over %d owners: transfer %.1f MB (%.1f B/member), decode+merge %v on one core, digest %.1f B/replica\n\n",
		c.members, c.owners, float64(c.snapshotBytes)/1e6, c.bytesPerMember, c.decodeMerge.Round(time.Millisecond), c.digestEntry)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tdesign\tnodes\treached %\trepaired %\tp50 ms\tp99 ms\tmax ms\tcopies/node\twriter msgs\twriter KB\tbusiest msgs\tload B/s/node\tbusiest KB/s\tidle roster B/s\tidle memberlist B/s\theal s\theal bytes/diff\tfresh 1M s\tconverged\t")
	for _, r := range rows {
		x := r.res
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%.2f\t%s\t%s\t%s\t%.2f\t%.1f\t%.1f\t%.1f\t%.0f\t%.1f\t%.0f\t%.0f\t%.1f\t%.3f\t%.1f\t%v\t\n",
			r.model, x.sc.design.name, x.sc.nodes, x.reached, x.repaired, ms(x.p50), ms(x.p99), ms(x.max), x.copies,
			x.writerMsg, x.writerB/1e3, x.busyMsg, x.loadBps, x.busyBps/1e3, r.bg.roster, r.bg.memberlist,
			r.heal.took.Seconds(), r.heal.bytes/r.heal.difference, r.fresh.Seconds(), x.converged)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// pickSummary is the run the last line sums up: design after (else the
// last design), the largest size, the first model.
func pickSummary(rows []row, o *options) row {
	best := rows[len(rows)-1]
	bestN := -1
	for _, r := range rows {
		if r.model != o.models[0].name {
			continue
		}
		if r.res.sc.design.name == "after" && r.res.sc.nodes > bestN {
			best, bestN = r, r.res.sc.nodes
		}
	}
	return best
}

func summary(r row) string {
	x := r.res
	return fmt.Sprintf("nodes=%d design=%s model=%s seed=%d reached=%.2f repaired=%.2f p50_ms=%s p99_ms=%s max_ms=%s copies_per_node=%.3f writer_msgs=%.1f busiest_msgs=%.1f load_bytes_per_node_s=%.0f background_bytes_per_node_s=%.0f memberlist_bytes_per_node_s=%.0f heal_s=%.2f heal_bytes_ratio=%.3f fresh_s=%.2f converged=%v",
		x.sc.nodes, x.sc.design.name, r.model, x.sc.seed, x.reached, x.repaired, ms(x.p50), ms(x.p99), ms(x.max), x.copies,
		x.writerMsg, x.busyMsg, x.loadBps, r.bg.roster, r.bg.memberlist, r.heal.took.Seconds(),
		r.heal.bytes/r.heal.difference, r.fresh.Seconds(), x.converged)
}
