package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// memberlist's Shutdown does not wait for a probe already in flight; that
// goroutine ends on its own within a probe interval. Everything else must
// be gone.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild()) // the transfer experiment's fresh node process
	}
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

// tinyOptions are sizes small enough for the race detector: 3 nodes,
// 50 joins, 500 members, partition with the local preset only; fan-out on
// 6 nodes with FanOut 2 (a two-level relay tree).
func tinyOptions() *options {
	return &options{
		nodes: 3, joins: 50, latencyGroups: 4, warmup: 5,
		members: 500, groups: 50, single: 200, transfer: 500, partJoins: 200,
		fanoutNodes: 6, fanOut: 2, fanoutJoins: 30,
		lan:    false,
		logger: slog.New(slog.DiscardHandler), logOut: io.Discard,
	}
}

func TestQuickRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	o := tinyOptions()
	res, out := runExperiments(ctx, t, o, "all")

	l := res.Latency
	if l == nil || l.Joins != 50 || l.AllP50 <= 0 || l.AllP50 > l.AllP99 || l.AllP99 > l.AllMax || l.OneP50 <= 0 || l.OneP50 > l.AllP50 {
		t.Errorf("latency not sane: %+v", l)
	}
	if len(res.Throughput) != 4 || res.Throughput[0].Watched || !res.Throughput[1].Watched {
		t.Fatalf("throughput: %d results", len(res.Throughput))
	}
	for _, r := range res.Throughput {
		if r.Rate <= 0 || r.LocalRate < r.Rate || r.Elapsed < r.LocalElapsed {
			t.Errorf("throughput %s not sane: %+v", r.Name, r)
		}
	}
	if len(res.Transfer) != 4 {
		t.Fatalf("transfer: %+v", res.Transfer)
	}
	for i, tr := range res.Transfer {
		if tr.OwnProcess != (i >= 2) || tr.Watched != (i%2 == 1) {
			t.Errorf("transfer %d: own process %v, watched %v", i, tr.OwnProcess, tr.Watched)
		}
		if tr.Open <= 0 || tr.Held < tr.Open || tr.Members != 500 || tr.RepairDeltas == 0 {
			t.Errorf("transfer not sane: %+v", tr)
		}
		if tr.Watched != (tr.Elapsed > 0) || (tr.Watched && tr.Elapsed < tr.Open) {
			t.Errorf("transfer watch figure not sane: %+v", tr)
		}
	}
	if len(res.Partition) != 1 {
		t.Fatalf("partition: %d results", len(res.Partition))
	}
	p := res.Partition[0]
	if p.Preset != "local" || !p.DetectComplete || p.HealToConverged <= 0 || p.HealToAlive <= 0 || len(p.SideA) != 1 || len(p.SideB) != 2 {
		t.Errorf("partition not sane: %+v", p)
	}
	if p.FD.Deaths == 0 {
		t.Errorf("partition: no node was declared dead: %+v", p.FD)
	}

	if len(res.FanOut) != 2 {
		t.Fatalf("fanout: %d results", len(res.FanOut))
	}
	mesh, tree := res.FanOut[0], res.FanOut[1]
	if mesh.FanOut != 0 || tree.FanOut != 2 || mesh.Nodes != 6 || tree.AllP50 <= 0 {
		t.Errorf("fanout not sane: %+v / %+v", mesh, tree)
	}
	// The full-mesh writer sends a message to each of 5 peers per join;
	// the relay-tree writer to 2. Anti-entropy adds a little to both, and
	// a join batched with another or a failed send takes a little off, so
	// the bounds leave room either way.
	if mesh.WriterMsgs < 4.5 || tree.WriterMsgs > mesh.WriterMsgs-2 {
		t.Errorf("fanout: writer messages per join: full mesh %.1f, tree %.1f", mesh.WriterMsgs, tree.WriterMsgs)
	}

	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"all_p50_us"`, `"joins_per_s"`, `"heal_to_converged_us"`, `"num_cpu"`} {
		if !bytes.Contains(b, []byte(k)) {
			t.Errorf("JSON lacks %s", k)
		}
	}
	for _, s := range []string{"== latency", "== throughput", "== transfer", "== partition", "== fan-out", "vs pg"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q", s)
		}
	}
}

func TestParseRun(t *testing.T) {
	r, err := parseRun("latency, partition")
	if err != nil || !r["latency"] || !r["partition"] || r["throughput"] {
		t.Fatalf("parseRun: %v %v", r, err)
	}
	if _, err := parseRun("bogus"); err == nil {
		t.Fatal("unknown experiment accepted")
	}
	if _, err := parseRun(""); err == nil {
		t.Fatal("empty list accepted")
	}
}

// TestMeshView: a formed cluster is "all alive"; a node that never joined
// it is reported as unknown to the others (what a "did not form" error
// then says).
func TestMeshView(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := startCluster(ctx, nodeOpts{}, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if got := c.meshView(); got != "all alive" {
		t.Fatalf("formed cluster: %q", got)
	}
	lone, _, err := c.openNode(ctx, c.nodeName(2), nil, 0) // no seeds: never joins
	if err != nil {
		t.Fatal(err)
	}
	c.nodes = append(c.nodes, lone)
	c.transports = append(c.transports, nil)
	c.trackers = append(c.trackers, nil)
	got := c.meshView()
	for _, want := range []string{"n1 does not know n3", "n2 does not know n3", "n3 does not know n1"} {
		if !strings.Contains(got, want) {
			t.Fatalf("view %q lacks %q", got, want)
		}
	}
}

// TestScaleRun runs the scale experiment on 8 nodes with short windows:
// the cluster forms, every join reaches every node, both kinds of idle
// traffic and the per-node costs are measured, and the key=value line
// carries every figure a script compares.
func TestScaleRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 8 LAN-preset nodes (~10 s)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	o := tinyOptions()
	o.lanPreset = true
	o.scale = defaultScaleOpts()
	o.scale.sizes, o.scale.joins = []int{8}, 20
	o.scale.settle, o.scale.idle, o.scale.formTimeout = 300*time.Millisecond, 3*time.Second, 20*time.Second
	res, out := runExperiments(ctx, t, o, "scale")
	if len(res.Scale) != 1 {
		t.Fatalf("scale: %d results", len(res.Scale))
	}
	r := res.Scale[0]
	if !r.Formed || r.Form <= 0 || r.OpenAll <= 0 || r.Stall != nil {
		t.Fatalf("did not form: %+v", r)
	}
	if r.Nodes != 8 || r.Preset != "lan" || r.Joins != 20 || r.Reached != 20 || r.NodeShare != 1 {
		t.Errorf("delivery: %d nodes, preset %s, %d of %d joins reached all, node share %v", r.Nodes, r.Preset, r.Reached, r.Joins, r.NodeShare)
	}
	// The one-way delay alone is at least 100 µs.
	if r.P50 < Dur(100*time.Microsecond) || r.P50 > r.P99 || r.P99 > r.Max || r.Poll <= 0 || r.JoinRate <= 0 {
		t.Errorf("latency not sane: p50 %v p99 %v max %v poll %v rate %.0f/s", r.P50, r.P99, r.Max, r.Poll, r.JoinRate)
	}
	// Idle, every node sends an anti-entropy digest (roster) every 2 s and
	// probes a peer (memberlist) every second.
	if r.IdleRosterBytesPerNode <= 0 || r.IdleMemberlistBytesPerNode <= 0 || r.IdleRosterMsgsPerNode <= 0 {
		t.Errorf("idle traffic: roster %.0f B/s (%.2f msgs/s), memberlist %.0f B/s per node", r.IdleRosterBytesPerNode, r.IdleRosterMsgsPerNode, r.IdleMemberlistBytesPerNode)
	}
	if r.CPUIdlePerNode <= 0 || r.CPULoadPerNode <= 0 || r.HeapPerNodeKB <= 0 || r.GoroutinesPerNode < 1 || r.FormCores <= 0 {
		t.Errorf("costs: CPU idle %v load %v per node, heap %.0f KB, %.1f goroutines per node, form %.2f cores",
			r.CPUIdlePerNode, r.CPULoadPerNode, r.HeapPerNodeKB, r.GoroutinesPerNode, r.FormCores)
	}
	line := r.keyValues()
	if r.Form99 <= 0 || r.Form99 > r.Form || !strings.Contains(line, "form99_s=") {
		t.Errorf("form 99%%: %v (form %v): %s", r.Form99, r.Form, line)
	}
	for _, k := range []string{"nodes=8 ", "formed=true ", "form_s=", "reached=100.0 ", "p50_ms=", "p99_ms=", "max_ms=",
		"idle_roster_bytes_per_node_s=", "idle_memberlist_bytes_per_node_s=", "cpu_per_node=", "heap_per_node_kb="} {
		if !strings.Contains(line, k) {
			t.Errorf("key=value line lacks %q: %s", k, line)
		}
	}
	if !strings.Contains(out.String(), line) || !strings.Contains(out.String(), "== scale") {
		t.Errorf("output lacks the table or the key=value line")
	}
}

// TestScaleStall: a size that cannot be opened within the form timeout
// is reported as not formed, with what its nodes saw and where the
// process's goroutines were, and the larger sizes are not tried.
func TestScaleStall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts LAN-preset nodes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := tinyOptions()
	o.lanPreset = true
	o.scale = defaultScaleOpts()
	o.scale.sizes, o.scale.formTimeout = []int{6, 8}, time.Nanosecond
	rs, err := runScale(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("%d results, want 1 (8 nodes not tried)", len(rs))
	}
	r := rs[0]
	if r.Formed || r.Opened != 2 || r.Stall == nil || !slices.Equal(r.SkippedLarger, []int{8}) || r.Form99 != -1 {
		t.Fatalf("not a stall of 2 opened nodes: %+v", r)
	}
	if r.Stall.AliveMax > 2 || r.Stall.Goroutines == 0 || len(r.Stall.Blocked) == 0 || r.Stall.Blocked[0].Count == 0 {
		t.Errorf("stall: %+v", r.Stall)
	}
	var out bytes.Buffer
	printScale(&out, rs, o.scale)
	for _, want := range []string{"formed=false", "opened=2", "form99_s=-1", "6 nodes did not form: only 2 could be opened", "not tried: [8] nodes"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestScaleFlags: sizes and settings the experiment cannot run are
// refused with errFlag before anything starts.
func TestScaleFlags(t *testing.T) {
	sizes, err := parseSizes("100, 300,1000")
	if err != nil || !slices.Equal(sizes, []int{100, 300, 1000}) {
		t.Fatalf("parseSizes: %v %v", sizes, err)
	}
	if _, err := parseSizes("100,many"); !errors.Is(err, errFlag) {
		t.Fatalf("non-number: %v", err)
	}
	for name, f := range map[string]func(*scaleOpts){
		"no size":      func(s *scaleOpts) { s.sizes = nil },
		"one node":     func(s *scaleOpts) { s.sizes = []int{100, 1} },
		"no join":      func(s *scaleOpts) { s.joins = 0 },
		"fan-out of 1": func(s *scaleOpts) { s.fanOut = 1 },
		"no window":    func(s *scaleOpts) { s.idle = 0 },
	} {
		so := defaultScaleOpts()
		f(&so)
		if err := so.check(); !errors.Is(err, errFlag) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := defaultScaleOpts().check(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if _, err := parseRun("scale"); err != nil {
		t.Errorf("scale is not runnable: %v", err)
	}
	if r, _ := parseRun("all"); r["scale"] {
		t.Errorf("all includes scale")
	}
}

// runExperiments runs the named experiments with o (progress on stderr
// under -v), logs what they printed and returns their results and output.
func runExperiments(ctx context.Context, t *testing.T, o *options, names string) (*Results, *bytes.Buffer) {
	t.Helper()
	if testing.Verbose() {
		o.progress = os.Stderr
	}
	run, err := parseRun(names)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := runAll(ctx, o, run, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	return res, &out
}
