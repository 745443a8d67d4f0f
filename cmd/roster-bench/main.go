// Command roster-bench runs real roster nodes in one process, on
// 127.0.0.1 over real UDP/TCP sockets (gossip.NetTransport), and compares replication
// latency, throughput, state transfer and partition healing with the
// figures of Erlang/OTP pg.
//
//	go run ./cmd/roster-bench                     # everything (~2 minutes)
//	go run ./cmd/roster-bench -run=latency -joins=5000
//	go run ./cmd/roster-bench -quick -json        # 10x smaller, plus JSON
//	go run ./cmd/roster-bench -cpuprofile=cpu.out -run=throughput
//
// Experiments (-run, comma separated; default all):
//
//	latency     join on node 1 → join event on the watchers of all other
//	            nodes, one join at a time
//	throughput  one writer on node 1 until every other node holds every
//	            member: 100k members over 1,000 groups, and 10k in one group;
//	            each twice, held (Count polled) and watched (a watch
//	            consumer on every other node counts the join events)
//	transfer    a fresh node joins a cluster holding a 100k-member scope, in
//	            this process and then in a child process of its own
//	partition   {n1,n2} | {n3,n4,n5}, 10k joins on each side, heal; with the
//	            local preset and with the LAN preset (-lan=false skips it)
//	fanout      one join at a time to every node of 16, direct push against
//	            the relay tree (Config.FanOut)
//
// Run only when named (-run=scale):
//
//	scale       100, 300 and 1,000 nodes (-scale-nodes) in one process over
//	            gossip/memnet with a 0.1-0.5 ms one-way delay: membership
//	            convergence, delivery of 200 joins by random writers to
//	            every node, idle bytes per node (roster's and memberlist's),
//	            CPU, heap and RSS per node, and why the first size that does
//	            not form within 60 s does not; -scale-fanout picks the
//	            direct push (0) or the relay tree
//
// The other experiments run the LAN preset (registry.DefaultConfig), as a
// deployment would; -preset=local runs them with the tests' short timers,
// whose extra background gossip shows in the latency tail.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"time"
)

// Results is everything one run measured (the -json output).
type Results struct {
	Machine    Machine             `json:"machine"`
	Latency    *LatencyResult      `json:"latency,omitempty"`
	Throughput []*ThroughputResult `json:"throughput,omitempty"`
	Transfer   []*TransferResult   `json:"transfer,omitempty"`
	Partition  []*PartitionResult  `json:"partition,omitempty"`
	FanOut     []*LatencyResult    `json:"fanout,omitempty"`
	Scale      []*ScaleResult      `json:"scale,omitempty"`
	Total      Dur                 `json:"total_us"`
}

// Machine describes where the figures come from.
type Machine struct {
	CPU        string `json:"cpu,omitempty"`
	LoadAvg    string `json:"loadavg_at_start,omitempty"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
}

func machine() Machine {
	m := Machine{
		NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
	}
	m.LoadAvg = loadAvg()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// loadAvg returns the 1, 5 and 15 minute load averages (Linux), to show
// whether something else competed for the CPUs.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

var allExperiments = []string{"latency", "throughput", "transfer", "partition", "fanout"}

// extraExperiments run only when named: they take minutes and most of the
// machine's memory.
var extraExperiments = []string{"scale"}

// errFlag is a command line this program cannot run.
var errFlag = errors.New("roster-bench: invalid flag")

func main() {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild()) // the fresh node of the transfer experiment
	}
	var (
		runList    = flag.String("run", strings.Join(allExperiments, ","), "experiments to run, comma separated: "+strings.Join(allExperiments, ",")+" (all), or "+strings.Join(extraExperiments, ","))
		nodes      = flag.Int("nodes", 5, "nodes per cluster")
		joins      = flag.Int("joins", 1000, "latency: joins, one at a time")
		members    = flag.Int("members", 100_000, "throughput: members over -groups groups")
		groups     = flag.Int("groups", 1000, "throughput and transfer: groups")
		single     = flag.Int("single", 10_000, "throughput: members in one group")
		transfer   = flag.Int("transfer", 100_000, "transfer: scope size")
		partJoins  = flag.Int("partition-joins", 10_000, "partition: joins on each side")
		fanNodes   = flag.Int("fanout-nodes", 16, "fanout: cluster size")
		fanOut     = flag.Int("fanout", 3, "fanout: the Config.FanOut compared with the full mesh")
		fanJoins   = flag.Int("fanout-joins", 300, "fanout: joins, one at a time")
		lan        = flag.Bool("lan", true, "partition: also run with the LAN preset (takes ~20-40 s)")
		preset     = flag.String("preset", "lan", "latency, throughput, transfer and fan-out: node preset, lan (registry.DefaultConfig, as deployed) or local (registry.LocalConfig: the tests' short timers, more background gossip)")
		quick      = flag.Bool("quick", false, "shrink every size 10x (smoke run)")
		jsonOut    = flag.Bool("json", false, "also print the results as JSON")
		verbose    = flag.Bool("v", false, "print node logs (info level) to stderr")
		cpuprofile = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
		memprofile = flag.String("memprofile", "", "write a heap profile (allocations of the whole run) to this file at the end")
		mutexprof  = flag.String("mutexprofile", "", "write a profile of sync.Mutex contention (1 event in 100) to this file at the end")
		traceOut   = flag.String("trace", "", "write a runtime execution trace of the whole run to this file")
		compress   = flag.Bool("compression", false, "turn memberlist's LZW compression on (diagnostic; the presets turn it off)")
		scaleNodes = flag.String("scale-nodes", "100,300,1000", "scale: cluster sizes, comma separated, in order (stops at the first that does not form)")
		scaleFan   = flag.Int("scale-fanout", 0, "scale: Config.FanOut of every node: 0 the direct push, 2-64 the relay tree")
		scaleDMax  = flag.Int("scale-direct-max", 0, "scale: gossip DirectMax of every node: 0 the default (Plumtree past 32 peers), -1 the direct push at every size")
		scaleJoins = flag.Int("scale-joins", 200, "scale: joins, one at a time, each by a random node")
		scaleIdle  = flag.Duration("scale-idle", 10*time.Second, "scale: the quiet window traffic and CPU are measured over")
		scaleForm  = flag.Duration("scale-timeout", 60*time.Second, "scale: how long after the last node starts the cluster may take to form")
	)
	flag.Parse()

	o := &options{
		nodes: *nodes, joins: *joins, latencyGroups: 8, warmup: 20,
		members: *members, groups: *groups, single: *single, transfer: *transfer,
		partJoins: *partJoins, lan: *lan, compression: *compress,
		fanoutNodes: *fanNodes, fanOut: *fanOut, fanoutJoins: *fanJoins,
		logger: slog.New(slog.DiscardHandler), logOut: io.Discard, progress: os.Stderr,
	}
	o.scale = defaultScaleOpts()
	o.scale.fanOut, o.scale.joins, o.scale.idle, o.scale.formTimeout = *scaleFan, *scaleJoins, *scaleIdle, *scaleForm
	o.scale.directMax = *scaleDMax
	sizes, err := parseSizes(*scaleNodes)
	if err == nil {
		o.scale.sizes = sizes
		err = o.scale.check()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch *preset {
	case "lan":
		o.lanPreset = true
	case "local":
	default:
		fmt.Fprintf(os.Stderr, "roster-bench: -preset must be lan or local, not %q\n", *preset)
		os.Exit(2)
	}
	if *quick {
		o.shrink(10)
	}
	if *verbose {
		o.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		o.logOut = os.Stderr
	}
	run, err := parseRun(*runList)
	if err != nil {
		fmt.Fprintln(os.Stderr, "roster-bench:", err)
		os.Exit(2)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "roster-bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "roster-bench:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}

	if *traceOut != "" {
		f, err := os.Create(*traceOut)
		if err == nil {
			err = trace.Start(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "roster-bench:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer trace.Stop()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *memprofile != "" {
		runtime.MemProfileRate = 64 << 10
	}
	if *mutexprof != "" {
		runtime.SetMutexProfileFraction(100)
	}
	res, err := runAll(ctx, o, run, os.Stdout)
	writeProfile(*memprofile, "allocs")
	writeProfile(*mutexprof, "mutex")
	if err == nil && *jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(res)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "roster-bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// writeProfile writes the named runtime profile to file, if file is set.
func writeProfile(file, name string) {
	if file == "" {
		return
	}
	f, err := os.Create(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "roster-bench:", err)
		return
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		fmt.Fprintln(os.Stderr, "roster-bench:", err)
	}
	_ = f.Close()
}

func (o *options) shrink(f int) {
	o.joins = max(1, o.joins/f)
	o.members = max(1, o.members/f)
	o.single = max(1, o.single/f)
	o.transfer = max(1, o.transfer/f)
	o.partJoins = max(1, o.partJoins/f)
	o.groups = max(1, min(o.groups, o.members/10))
	o.fanoutNodes = min(o.fanoutNodes, 6)
	o.fanOut = min(o.fanOut, 2)
	o.fanoutJoins = max(1, o.fanoutJoins/f)
	o.scale.joins = max(1, o.scale.joins/f)
}

func parseRun(s string) (map[string]bool, error) {
	run := map[string]bool{}
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if e == "all" {
			for _, x := range allExperiments {
				run[x] = true
			}
			continue
		}
		if !slices.Contains(allExperiments, e) && !slices.Contains(extraExperiments, e) {
			return nil, fmt.Errorf("unknown experiment %q (want %s, or %s)", e, strings.Join(allExperiments, ","), strings.Join(extraExperiments, ","))
		}
		run[e] = true
	}
	if len(run) == 0 {
		return nil, errors.New("no experiment selected")
	}
	return run, nil
}

// runAll runs the selected experiments in a fixed order, printing each
// table to w as soon as it is done.
func runAll(ctx context.Context, o *options, run map[string]bool, w io.Writer) (*Results, error) {
	start := time.Now()
	res := &Results{Machine: machine()}
	printMachine(w, res.Machine, o, len(run) == 1 && run["scale"])
	if run["latency"] {
		o.logf("latency: %d nodes, %d joins", o.nodes, o.joins)
		r, err := runLatency(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("latency: %w", err)
		}
		res.Latency = r
		printLatency(w, r)
	}
	if run["throughput"] {
		for _, wl := range []struct {
			name      string
			n, groups int
			pgRate    float64
			factor    int
		}{
			{fmt.Sprintf("%s members / %s groups", count(o.members), count(o.groups)), o.members, o.groups, pgRateMany, targetManyFactor},
			{fmt.Sprintf("%s members / 1 group", count(o.single)), o.single, 1, pgRateOne, targetOneFactor},
		} {
			for _, watched := range []bool{false, true} {
				name := wl.name + ", held"
				if watched {
					name = wl.name + ", watched"
				}
				r, err := runThroughput(ctx, o, name, wl.n, wl.groups, wl.pgRate, wl.factor, watched)
				if err != nil {
					return nil, fmt.Errorf("throughput: %w", err)
				}
				res.Throughput = append(res.Throughput, r)
			}
		}
		printThroughput(w, res.Throughput)
	}
	if run["transfer"] {
		o.logf("transfer: %d members", o.transfer)
		rs, err := runTransfer(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("transfer: %w", err)
		}
		res.Transfer = rs
		printTransfer(w, rs)
	}
	if run["partition"] {
		presets := []bool{false}
		if o.lan {
			presets = append(presets, true)
		}
		for _, lan := range presets {
			r, err := runPartition(ctx, o, lan)
			if err != nil {
				return nil, fmt.Errorf("partition: %w", err)
			}
			res.Partition = append(res.Partition, r)
		}
		printPartition(w, res.Partition)
	}
	if run["fanout"] {
		rs, err := runFanOut(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("fanout: %w", err)
		}
		res.FanOut = rs
		printFanOut(w, rs)
	}
	if run["scale"] {
		rs, err := runScale(ctx, o)
		res.Scale = rs
		printScale(w, rs, o.scale)
		if err != nil {
			return nil, err
		}
	}
	res.Total = Dur(time.Since(start))
	fmt.Fprintln(w, "\nFD legend: memberlist events summed over the cluster during the experiment:")
	fmt.Fprintln(w, "  probe timeouts / suspicions / declared dead / refutations (0/0/0/0 on a healthy cluster)")
	fmt.Fprintf(w, "total %v, load average at the end %s\n", fmtDur(time.Duration(res.Total)), loadAvg())
	return res, nil
}

// --- output -----------------------------------------------------------------------

func printMachine(w io.Writer, m Machine, o *options, scaleOnly bool) {
	if scaleOnly {
		fmt.Fprintf(w, "roster-bench: scale, %v nodes in one process over gossip/memnet\n", o.scale.sizes)
	} else {
		fmt.Fprintf(w, "roster-bench: %d nodes in one process, 127.0.0.1, real UDP/TCP sockets (gossip.NetTransport)\n", o.nodes)
	}
	fmt.Fprintf(w, "machine: %s, NumCPU=%d GOMAXPROCS=%d, %s %s/%s, load average %s\n", orUnknown(m.CPU), m.NumCPU, m.GOMAXPROCS, m.GoVersion, m.OS, m.Arch, m.LoadAvg)
	preset := "LAN (registry.DefaultConfig)"
	if !o.lanPreset {
		preset = "local (registry.LocalConfig: the tests' short timers)"
	}
	fmt.Fprintf(w, "preset: %s (-preset); partition runs the local preset, then the LAN one (-lan)\n", preset)
	if o.compression {
		fmt.Fprintln(w, "memberlist compression: on (-compression)")
	}
	fmt.Fprintf(w, "reference: Erlang/OTP 25 pg, 5 nodes; \"vs pg\" > 1x means roster is better\n")
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown CPU"
	}
	return s
}

type table struct {
	rows [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) print(w io.Writer) {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for k, r := range t.rows {
		var b strings.Builder
		b.WriteString("  ")
		for i, c := range r {
			pad := widths[i] - len([]rune(c))
			if i == 0 {
				b.WriteString(c + strings.Repeat(" ", pad))
			} else {
				b.WriteString("  " + strings.Repeat(" ", pad) + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if k == 0 {
			total := 2
			for i, wd := range widths {
				total += wd
				if i > 0 {
					total += 2
				}
			}
			fmt.Fprintln(w, "  "+strings.Repeat("-", total-2))
		}
	}
}

// vsTime compares durations: pg/ours, > 1 when roster is faster.
func vsTime(ours, pg time.Duration) string {
	if ours <= 0 || pg <= 0 {
		return "-"
	}
	return ratio(float64(pg) / float64(ours))
}

// vsRate compares rates: ours/pg.
func vsRate(ours, pg float64) string {
	if ours <= 0 || pg <= 0 {
		return "-"
	}
	return ratio(ours / pg)
}

func ratio(r float64) string {
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0fx", r)
	case r >= 10:
		return fmt.Sprintf("%.1fx", r)
	default:
		return fmt.Sprintf("%.2fx", r)
	}
}

func printLatency(w io.Writer, r *LatencyResult) {
	fmt.Fprintf(w, "\n== latency: join on n1 → join event on every other node (%d nodes, %d joins one at a time, %d groups) ==\n", r.Nodes, r.Joins, r.Groups)
	t := &table{}
	t.add("metric", "roster", "pg", "vs pg")
	t.add(fmt.Sprintf("all %d watchers p50", r.Nodes-1), r.AllP50.String(), fmtDur(pgLatencyP50), vsTime(time.Duration(r.AllP50), pgLatencyP50))
	t.add(fmt.Sprintf("all %d watchers p90", r.Nodes-1), r.AllP90.String(), "", "")
	t.add(fmt.Sprintf("all %d watchers p99", r.Nodes-1), r.AllP99.String(), fmtDur(pgLatencyP99), vsTime(time.Duration(r.AllP99), pgLatencyP99))
	t.add(fmt.Sprintf("all %d watchers max", r.Nodes-1), r.AllMax.String(), "", "")
	t.add("one watcher (n2) p50", r.OneP50.String(), "", "")
	t.add("one watcher (n2) p99", r.OneP99.String(), "", "")
	t.add("Join call p50 / p99", r.CallP50.String()+" / "+r.CallP99.String(), "", "")
	t.add("failure detector (see legend)", r.FD.String(), "", "")
	t.print(w)
	if r.Foreign > 0 {
		fmt.Fprintf(w, "  WARNING: %d node(s) from outside this cluster joined it\n", r.Foreign)
	}
}

func printFanOut(w io.Writer, rs []*LatencyResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n== fan-out: join on n1 → every other node, %d nodes, %d joins one at a time: full mesh vs Config.FanOut ==\n", rs[0].Nodes, rs[0].Joins)
	t := &table{}
	t.add("mode", "writer msgs/join", "all msgs/join", "all p50", "all p99", "FD")
	for _, r := range rs {
		mode := "full mesh (FanOut 0)"
		if r.FanOut > 0 {
			mode = fmt.Sprintf("relay tree, FanOut %d", r.FanOut)
		}
		t.add(mode, fmt.Sprintf("%.1f", r.WriterMsgs), fmt.Sprintf("%.1f", r.AllMsgs), r.AllP50.String(), r.AllP99.String(), r.FD.String())
	}
	t.print(w)
	fmt.Fprintln(w, "  (messages: roster's packets and streams, anti-entropy included; memberlist's own gossip not counted)")
}

func printThroughput(w io.Writer, rs []*ThroughputResult) {
	fmt.Fprintf(w, "\n== throughput: one writer on n1, until all %d other nodes hold every member ==\n", rs[0].Nodes-1)
	t := &table{}
	t.add("workload", "replicated", "elapsed", "local only", "pg", "vs pg", "target", "met", "CPU/member", "GC share", "GCs", "pkts/TCP/MB sent", "drops", "resyncs", "FD")
	for _, r := range rs {
		met := "no"
		if r.Rate >= r.TargetRate {
			met = "yes"
		}
		t.add(r.Name, fmtRate(r.Rate), r.Elapsed.String(), fmtRate(r.LocalRate), fmtRate(r.PgRate), vsRate(r.Rate, r.PgRate),
			fmtRate(r.TargetRate), met, fmt.Sprintf("%.1f µs", float64(time.Duration(r.CPU).Microseconds())/float64(max(r.Members, 1))), pct0(float64(r.GCCPU), float64(r.CPU)), fmt.Sprint(r.GCs),
			fmt.Sprintf("%d/%d/%.1f", r.PacketsSent, r.ReliableSent, float64(r.BytesSent)/1e6), fmt.Sprint(r.Dropped), fmt.Sprint(r.Resyncs), r.FD.String())
	}
	t.print(w)
	fmt.Fprintln(w, "  (held: until Count shows every member on every other node, polled every 500 µs; watched: until")
	fmt.Fprintln(w, "   a watch consumer on each of them has counted every join event, which costs those nodes more;")
	fmt.Fprintln(w, "   CPU/member: the process's CPU time over the run, all 5 nodes, per member; GC share: the runtime's")
	fmt.Fprintln(w, "   estimate of the part of it the garbage collector took; GCs: collections meanwhile)")
	for _, r := range rs {
		if r.Foreign > 0 {
			fmt.Fprintf(w, "  WARNING: %s: %d node(s) from outside this cluster joined it\n", r.Name, r.Foreign)
		}
	}
}

// pct0 formats part/whole as a percentage ("-" when whole is 0).
func pct0(part, whole float64) string {
	if whole <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*part/whole)
}

func printTransfer(w io.Writer, rs []*TransferResult) {
	r0 := rs[0]
	fmt.Fprintf(w, "\n== transfer: fresh node joins %d nodes holding %s members in %s groups ==\n", r0.Nodes, count(r0.Members), count(r0.Groups))
	t := &table{}
	t.add("fresh node / metric", "roster", "pg", "vs pg")
	for _, r := range rs {
		where := "in this process"
		if r.OwnProcess {
			where = "own process"
		}
		if r.Watched {
			where += ", watched"
			t.add(where+": Open → all members held (Count)", r.Held.String(), fmtDur(pgTransfer), vsTime(time.Duration(r.Held), pgTransfer))
			t.add(where+": Open → all members seen by the watch", r.Elapsed.String(), fmtDur(pgTransfer), vsTime(time.Duration(r.Elapsed), pgTransfer))
			t.add(where+": watch resyncs", fmt.Sprint(r.Resyncs), "", "")
		} else {
			t.add(where+": Open → all members held (Count)", r.Held.String(), fmtDur(pgTransfer), vsTime(time.Duration(r.Held), pgTransfer))
		}
		t.add(where+": Open call alone", r.Open.String(), "", "")
		t.add(where+": repair sent by old nodes", fmt.Sprintf("%d deltas, %.1f MB from %d node(s)", r.RepairDeltas, float64(r.RepairBytes)/1e6, r.Senders), "", "")
		t.add(where+": failure detector", r.FD.String(), "", "")
	}
	t.print(w)
	fmt.Fprintln(w, "  (in this process the fresh node shares one Go heap with the others; in its own process it")
	fmt.Fprintln(w, "   starts from an empty one, as a new pg node starts a VM of its own. Each placement runs")
	fmt.Fprintln(w, "   twice, a fresh node each time: with nobody watching it (Count polled every 200 µs), and")
	fmt.Fprintln(w, "   with a watch from the start, whose events the node then builds and delivers as well)")
}

func printPartition(w io.Writer, rs []*PartitionResult) {
	r0 := rs[0]
	fmt.Fprintf(w, "\n== partition: %v | %v, %s joins on each side, then heal ==\n", r0.SideA, r0.SideB, count(r0.JoinsPerSide))
	t := &table{}
	t.add("preset / metric", "roster", "pg", "vs pg")
	pg := fmtDur(pgPartitionFast) + "-" + fmtDur(pgPartitionSlow)
	for _, r := range rs {
		detect := r.Detect.String()
		if !r.DetectComplete {
			detect += " (incomplete)"
		}
		t.add(r.Preset+": cut → other side not alive", detect, "", "")
		t.add(r.Preset+": heal → all nodes alive", r.HealToAlive.String(), "", "")
		vs := vsTime(time.Duration(r.AliveToConverged), pgPartitionSlow)
		if r.AliveToConverged <= 0 {
			vs = "converged first"
		}
		t.add(r.Preset+": reconnection → convergence", r.AliveToConverged.String(), pg, vs)
		t.add(r.Preset+": heal → convergence", r.HealToConverged.String(), pg, vsTime(time.Duration(r.HealToConverged), pgPartitionSlow))
		t.add(r.Preset+": failure detector (see legend)", r.FD.String(), "", "")
		if !r.Stable {
			t.add(r.Preset+": NOT STABLE 200 ms later", strings.Join(r.Unstable, " "), "", "")
		}
	}
	t.print(w)
	fmt.Fprintln(w, "  (vs pg uses pg's slower figure, 259 ms; a negative reconnection → convergence means every")
	fmt.Fprintln(w, "   node held every member before the last non-writer pair saw each other alive)")
}

func fmtDur(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d < time.Millisecond:
		s = fmt.Sprintf("%d µs", d.Microseconds())
	case d < 100*time.Millisecond:
		s = fmt.Sprintf("%.1f ms", float64(d)/1e6)
	case d < 10*time.Second:
		s = fmt.Sprintf("%.0f ms", float64(d)/1e6)
	default:
		s = fmt.Sprintf("%.1f s", d.Seconds())
	}
	if neg {
		s = "-" + s
	}
	return s
}

func fmtRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM/s", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1fk/s", r/1e3)
	default:
		return fmt.Sprintf("%.0f/s", r)
	}
}

func count(n int) string {
	switch {
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	default:
		return fmt.Sprint(n)
	}
}
