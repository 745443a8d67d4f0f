package main

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func small(n int, d string) scenario {
	return scenario{nodes: n, design: designs[d], net: lanModel(), changes: 30, rate: 1000,
		seed: 7, crdt: true, drain: 5 * time.Second, digestEntry: 20}
}

func runScenario(t *testing.T, sc scenario) *result {
	t.Helper()
	s, err := newSim(sc)
	require.NoError(t, err)
	return s.run()
}

// TestDirectReachesEveryNodeOnce: with no faults, today's direct push
// reaches every node with exactly one copy, and the writer sends one
// message per peer: N-1, as pg does.
func TestDirectReachesEveryNodeOnce(t *testing.T) {
	r := runScenario(t, small(40, "before"))
	require.Equal(t, 100.0, r.reached)
	require.True(t, r.converged)
	require.InDelta(t, 1.0, r.copies, 1e-9)
	require.InDelta(t, 39.0, r.writerMsg, 1e-9)
	require.Greater(t, r.p99, time.Duration(0))
}

// TestTreeWriterSendsFanOut: under the relay tree the writer sends one
// message per subtree, and every node still gets one copy.
func TestTreeWriterSendsFanOut(t *testing.T) {
	r := runScenario(t, small(100, "tree"))
	require.Equal(t, 100.0, r.reached)
	require.InDelta(t, 4.0, r.writerMsg, 1e-9)
	require.InDelta(t, 1.0, r.copies, 1e-9)
}

// TestPlumtreeSurvivesLossCrashesAndFlaps: above DirectMax the after
// design spreads by Plumtree; with 2% loss, 3% of the nodes crashed (in
// its eager sets, not detected) and flapping nodes, every change still
// reaches every live node, the crdt states agree, and the writer sends
// a handful of messages, not N-1.
func TestPlumtreeSurvivesLossCrashesAndFlaps(t *testing.T) {
	sc := small(300, "after")
	sc.loss, sc.crashed, sc.flapping, sc.changes = 0.02, 0.03, 5, 60
	r := runScenario(t, sc)
	require.Equal(t, 100.0, r.reached)
	require.True(t, r.converged)
	require.Less(t, r.writerMsg, 20.0)
	require.Less(t, r.copies, 2.2)
	require.Greater(t, r.copies, 0.9)
}

// TestSimDeterministic: a seed replays a run exactly; another seed does
// not.
func TestSimDeterministic(t *testing.T) {
	sc := small(120, "after")
	sc.loss, sc.crashed, sc.flapping = 0.05, 0.02, 3
	a, b := runScenario(t, sc), runScenario(t, sc)
	// The scenario holds functions, which never compare equal: compare
	// what was measured.
	a.wall, b.wall = 0, 0
	a.sc, b.sc = scenario{}, scenario{}
	require.Equal(t, a, b)
	sc.seed++
	c := runScenario(t, sc)
	require.NotEqual(t, a.events, c.events)
}

// TestLossRepairedByAntiEntropyUnderDirect: direct push has no repair of
// its own; under heavy loss anti-entropy repairs what was lost, seconds
// later, so every change still arrives but the tail is an anti-entropy
// interval long, where Plumtree's grafts repair in milliseconds.
func TestLossRepairedByAntiEntropyUnderDirect(t *testing.T) {
	sc := small(300, "before")
	sc.loss = 0.2
	before := runScenario(t, sc)
	require.Equal(t, 100.0, before.reached)
	require.True(t, before.converged)
	require.Greater(t, before.repaired, 5.0)
	require.Greater(t, before.max, 200*time.Millisecond)

	sc.design = designs["after"]
	after := runScenario(t, sc)
	require.Equal(t, 100.0, after.reached)
	require.Less(t, after.repaired, before.repaired/2, "Plumtree repairs most of its own losses")
}

func TestMembershipView(t *testing.T) {
	m := newMembership([]string{"a", "b", "c", "d"})
	v := nodeView{m, "b"}
	require.Equal(t, 3, v.Len())
	var got []string
	for i := range v.Len() {
		got = append(got, v.At(i))
	}
	require.ElementsMatch(t, []string{"a", "c", "d"}, got)
	require.False(t, v.Has("b"))
	m.remove("a")
	require.Equal(t, 2, v.Len())
	require.False(t, v.Has("a"))
	got = got[:0]
	for i := range v.Len() {
		got = append(got, v.At(i))
	}
	require.ElementsMatch(t, []string{"c", "d"}, got)
	m.remove("b") // self down: the view is everyone left
	require.Equal(t, 2, v.Len())
	m.add("a")
	require.True(t, v.Has("a"))
}

// TestIdleTraffic: counter digests grow with N; range digests do not;
// memberlist's push/pull interval at 10,000 nodes is 300 s, as its docs
// say.
func TestIdleTraffic(t *testing.T) {
	require.Equal(t, 300*time.Second, pushPullScale(pushPullInterval, 10_000))
	require.Equal(t, 30*time.Second, pushPullScale(pushPullInterval, 32))
	c100, c10k := idleTraffic(digestCounters, 100, 20), idleTraffic(digestCounters, 10_000, 20)
	require.InDelta(t, 100, c10k.roster/c100.roster, 5)
	r100, r10k := idleTraffic(digestRanges, 100, 20), idleTraffic(digestRanges, 10_000, 20)
	require.Equal(t, r100.roster, r10k.roster)
	require.Less(t, r10k.roster, 100.0)
	require.Greater(t, c10k.memberlist, c100.memberlist)
}

// TestExchangeBytes: a round whose roots differ by one replica's changes
// costs the root, the bucket sums and a digest of about n/256 replicas
// each way, far below the full digest at 10,000 replicas; when changes
// came from every replica it costs about the full digest plus the sums.
func TestExchangeBytes(t *testing.T) {
	const n, entry = 10_000, 19.0
	full := syncHeader + n*entry
	ci, ca := exchangeBytes(digestCounters, n, entry, 1)
	require.Equal(t, full, ci)
	require.Equal(t, full, ca)
	ri, ra := exchangeBytes(digestRanges, n, entry, 0)
	require.Equal(t, float64(rangeRoot), ri)
	require.Zero(t, ra, "a root in step is not answered")
	ni, na := exchangeBytes(digestRanges, n, entry, 1)
	require.Less(t, ni, full/100)
	require.InDelta(t, rangeSums+syncHeader+bucketEntry+n*entry/rangeBuckets, na, 1)
	wi, wa := exchangeBytes(digestRanges, n, entry, 100_000)
	require.InDelta(t, full+rangeRoot+rangeBuckets*bucketEntry, wi, 2)
	require.InDelta(t, full+rangeSums+rangeBuckets*bucketEntry, wa, 2)
}

func TestWANDelays(t *testing.T) {
	require.Equal(t, wanRTT(0, 5), wanRTT(5, 0))
	require.Greater(t, wanRTT(0, 9), 190*time.Millisecond)
	require.Less(t, wanRTT(0, 1), 40*time.Millisecond)
	rng := rand.New(rand.NewPCG(1, 2))
	w := wanModel()
	require.Less(t, w.oneWay(rng, 0, 19), 2*time.Millisecond, "same region")
	require.Greater(t, w.oneWay(rng, 0, 9), 95*time.Millisecond, "far regions")
}

func TestMeasureCrdtAndHeal(t *testing.T) {
	c, err := measureCrdt(20_000, 100)
	require.NoError(t, err)
	require.Equal(t, 20_000, c.members)
	require.Greater(t, c.bytesPerMember, 10.0)
	require.Less(t, c.bytesPerMember, 200.0)
	require.Greater(t, c.digestEntry, 5.0)
	h := simulateHeal(rand.New(rand.NewPCG(1, 1)), lanModel(), digestRanges, 1000, 1_000_000, c)
	require.Greater(t, h.bytes, h.difference)
	require.Less(t, h.bytes/h.difference, 1.05)
	require.Greater(t, h.took, aliveSpread(1000)/2)
}

// TestCommandSummaryLine: the command's last line sums up the run as
// key=value pairs a script can compare.
func TestCommandSummaryLine(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"-nodes", "40,80", "-changes", "20", "-members", "20000", "-designs", "before,after"}, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	for _, k := range []string{"nodes=80 ", "design=after ", "reached=", "p99_ms=", "copies_per_node=", "background_bytes_per_node_s=", "heal_s=", "converged=true"} {
		require.Contains(t, last, k)
	}
	require.Contains(t, out.String(), "before")
}

func TestCommandRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-nodes", "1"}, {"-model", "moon"}, {"-designs", "best"}, {"-loss", "1"}, {"-crdt", "maybe"}} {
		var out, errb bytes.Buffer
		require.Equal(t, 2, run(args, &out, &errb), "%v", args)
		require.Contains(t, errb.String(), "roster-sim: bad flags")
	}
}

func TestPlotsDrawn(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	code := run([]string{"-nodes", "40,80", "-changes", "10", "-members", "10000", "-plots", dir}, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	for _, f := range figures {
		require.FileExists(t, dir+"/"+f.file)
	}
}

// TestWarmupNotMeasured: the first broadcasts, over which Plumtree's
// tree is pruned into shape, are left out of the figures when asked:
// the measured copies then drop toward one per node.
func TestWarmupNotMeasured(t *testing.T) {
	sc := small(300, "after")
	sc.changes = 40
	cold := runScenario(t, sc)
	sc.warmup = 60
	warm := runScenario(t, sc)
	require.Equal(t, 100.0, warm.reached)
	require.Less(t, warm.copies, cold.copies)
	require.Less(t, warm.copies, 1.1)
}
