package store

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/roster-io/roster/jepsen/history"
)

const ms = time.Millisecond

func TestFaultWindows(t *testing.T) {
	var b builder
	b.fault(500*ms, history.Invoke, "partition", "halves") // not in force
	b.fault(time.Second, history.OK, "partition", "isolated", "n3")
	b.fault(1500*ms, history.Info, "loss", "", "n1")
	b.fault(1600*ms, history.OK, "probe", "")
	b.fault(2*time.Second, history.OK, "heal", "")
	b.fault(2100*ms, history.Fail, "pause", "", "n3") // failed: not in force
	b.fault(3*time.Second, history.OK, "pause", "", "n1", "n2")
	b.fault(3500*ms, history.OK, "resume", "", "n1")
	b.fault(4*time.Second, history.OK, "resume", "", "n2")
	b.fault(5*time.Second, history.OK, "kill", "", "n3")
	b.fault(5200*ms, history.OK, "wipe", "", "n3")
	b.fault(6*time.Second, history.OK, "restart", "")
	b.fault(7*time.Second, history.OK, "kill", "", "n1")
	b.read(0, "n2", "g", 7900*ms, 8*time.Second)
	got := FaultWindows(b.build())
	s := int64(time.Second)
	want := []Window{
		{Kind: "partition", Name: "isolated", Nodes: []string{"n3"}, Start: s, End: 2 * s},
		{Kind: "loss", Nodes: []string{"n1"}, Start: 1500 * 1e6, End: 2 * s},
		{Kind: "pause", Nodes: []string{"n1", "n2"}, Start: 3 * s, End: 4 * s},
		{Kind: "kill", Nodes: []string{"n3"}, Start: 5 * s, End: 6 * s},
		{Kind: "wipe", Nodes: []string{"n3"}, Start: 5200 * 1e6, End: 5200 * 1e6},
		{Kind: "kill", Nodes: []string{"n1"}, Start: 7 * s, End: 8 * s, Open: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FaultWindows:\n got %+v\nwant %+v", got, want)
	}
}

func TestThroughput(t *testing.T) {
	var b builder
	b.join(0, "n1", "g", "a", 50*ms, 100*ms, history.OK)
	b.read(1, "n1", "g", 400*ms, 500*ms, "a")
	b.join(0, "n1", "g", "b", 800*ms, 900*ms, history.Fail)
	b.join(0, "n1", "g", "c", 1100*ms, 1200*ms, history.OK)
	b.join(2, "n2", "g", "d", 1900*ms, 2*time.Second, history.OK) // at the bucket's start
	b.read(1, "n2", "g", 2600*ms, 2700*ms, "a", "c")
	b.join(3, "n3", "g", "e", 2800*ms, 0, history.Invoke) // never completes
	b.watch(1500*ms, 10, "n1", "join", "a")
	b.fault(3*time.Second, history.OK, "heal", "")
	got := Throughput(b.build(), time.Second)
	want := map[string][]int{"join": {1, 1, 1, 0}, "read": {1, 0, 1, 0}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Throughput = %v, want %v", got, want)
	}
	if got := Throughput(nil, time.Second); len(got) != 0 {
		t.Errorf("Throughput(nil) = %v", got)
	}
}

func TestDistinctStates(t *testing.T) {
	var b builder
	b.join(0, "n1", "g1", "a", 0, 10*ms, history.OK)
	b.join(0, "n1", "g2", "x", 20*ms, 30*ms, history.OK)
	b.read(1, "n1", "g1", 400*ms, 500*ms, "a")
	b.read(2, "n2", "g1", 600*ms, 700*ms)
	// n3 reads every group: g2, which it does not show, is empty to it.
	b.read(3, "n3", "", 1400*ms, 1500*ms, "g1/a")
	// A failed read and one that timed out change no view.
	b.op(2, "n2", history.FRead, 1600*ms, 1700*ms, history.Fail, history.Value{Group: "g1"}, history.Value{Group: "g1"}, "unavailable")
	b.op(2, "n2", history.FRead, 1800*ms, 1900*ms, history.Info, history.Value{Group: "g1"}, history.Value{Group: "g1", Members: memberList("g1", "b")}, "timeout")
	b.read(2, "n2", "g1", 2100*ms, 2200*ms, "a")
	// The same member with other metadata is another view.
	b.op(1, "n1", history.FRead, 3100*ms, 3200*ms, history.OK, history.Value{Group: "g1"},
		history.Value{Members: []history.Member{{Group: "g1", ID: "a", Owner: "n1", Meta: map[string]string{"v": "2"}}}}, "")
	b.read(4, "n1", "g2", 3300*ms, 3400*ms, "x")
	b.read(5, "n3", "g2", 3500*ms, 3600*ms, "x")
	b.fault(4*time.Second, history.OK, "heal", "")
	got := DistinctStates(b.build(), time.Second)
	// [0,1s): g1 n1{a} n2{} -> 2. [1s,2s): g1 n1{a} n2{} n3{a} -> 2,
	// g2 n3{} -> 1. [2s,3s): g1 all {a} -> 1. [3s,4s): g1 n1{a v2}
	// n2{a} n3{a} -> 2; g2 n1{x} n3{x} -> 1. [4s,5s): unchanged -> 2.
	want := []int{2, 2, 1, 2, 2}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DistinctStates = %v, want %v", got, want)
	}
	if got := DistinctStates(nil, time.Second); !reflect.DeepEqual(got, []int{0}) {
		t.Errorf("DistinctStates(nil) = %v", got)
	}
}

func TestStableLatencies(t *testing.T) {
	var b builder
	// a: n2 misses it at 50ms; stable from the read invoked at 100ms.
	b.join(0, "n1", "g1", "a", 0, 10*ms, history.OK)
	b.read(1, "n1", "g1", 20*ms, 30*ms, "a")
	b.read(2, "n2", "g1", 40*ms, 50*ms)
	b.read(3, "n3", "g1", 100*ms, 110*ms, "a")
	b.read(2, "n2", "g1", 200*ms, 210*ms, "a")
	// b: an all-groups read shows it 10ms after the join; the read that
	// misses it comes after its leave and does not count.
	b.join(0, "n1", "g1", "b", 300*ms, 305*ms, history.OK)
	b.read(1, "n1", "", 310*ms, 320*ms, "g1/a", "g1/b")
	b.leave(0, "n1", "g1", "b", 400*ms, 405*ms, history.OK)
	b.read(2, "n2", "g1", 500*ms, 510*ms, "a")
	// c failed: never counted.
	b.join(0, "n1", "g1", "c", 600*ms, 605*ms, history.Fail)
	// d: the last read misses it: never stable.
	b.join(0, "n1", "g1", "d", 700*ms, 705*ms, history.OK)
	b.read(1, "n1", "g1", 800*ms, 810*ms, "a", "d")
	b.read(2, "n2", "g1", 900*ms, 910*ms, "a")
	// e (an info join): the read invoked before the join does not count.
	b.join(0, "n1", "g1", "e", 1000*ms, 1005*ms, history.Info)
	b.read(3, "n3", "g1", 990*ms, 1010*ms, "a")
	b.read(1, "n1", "g1", 1020*ms, 1030*ms, "a", "e")
	// f in another group is unaffected by g1's reads; never read.
	b.join(4, "n2", "g2", "f", 1000*ms, 1005*ms, history.OK)
	got := StableLatencies(b.build())
	want := []time.Duration{10 * ms, 20 * ms, 100 * ms}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("StableLatencies = %v, want %v", got, want)
	}
}

func TestLatencies(t *testing.T) {
	var b builder
	b.join(0, "n1", "g", "a", 10*ms, 25*ms, history.OK)
	b.join(1, "n2", "g", "b", 20*ms, 120*ms, history.Info)
	b.join(2, "n3", "g", "c", 30*ms, 0, history.Invoke)
	b.watch(40*ms, 10, "n1", "join", "a")
	got := Latencies(b.build())
	want := []LatencyPoint{
		{T: int64(25 * ms), Latency: int64(15 * ms), F: "join", Outcome: history.OK},
		{T: int64(120 * ms), Latency: int64(100 * ms), F: "join", Outcome: history.Info},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Latencies = %+v, want %+v", got, want)
	}
}

func TestCheckerQuantiles(t *testing.T) {
	rep := testReport()
	got := checkerQuantiles(rep)
	want := []float64{0.5, 0.9, 0.99, 1}
	if len(got) != len(want) {
		t.Fatalf("checkerQuantiles = %v", got)
	}
	for i, xy := range got {
		if xy.Y != want[i] {
			t.Errorf("quantile %d = %v, want %v", i, xy.Y, want[i])
		}
	}
	if got[0].X != 20 || got[3].X != 900 {
		t.Errorf("checkerQuantiles = %v", got)
	}
}

// A big history: the timeline draws at most about maxBoxes boxes, every
// failure among them, and says it thinned the rest; the latency plot
// thins too.
func TestBigHistoryIsCapped(t *testing.T) {
	var b builder
	const n = 60000
	for i := 0; i < n; i++ {
		at := time.Duration(i) * 10 * ms
		typ := history.OK
		if i%1000 == 0 {
			typ = history.Fail
		}
		b.join(i%8, "n1", "g", "m", at, at+5*ms, typ)
	}
	b.fault(100*time.Second, history.OK, "partition", "halves", "n1")
	b.fault(200*time.Second, history.OK, "heal", "")
	ops := b.build()
	var out bytes.Buffer
	if err := writeTimeline(&out, "big", ops); err != nil {
		t.Fatal(err)
	}
	boxes := strings.Count(out.String(), `<div class="b `)
	if boxes > maxBoxes+100 || boxes < maxBoxes/2 {
		t.Errorf("%d boxes drawn", boxes)
	}
	if got := strings.Count(out.String(), `<div class="b fail"`); got != n/1000 {
		t.Errorf("%d failures drawn, want %d", got, n/1000)
	}
	if !strings.Contains(out.String(), "Only 1 in 4 ok operations is drawn") {
		t.Errorf("no note that ok operations were thinned")
	}
	xmlOK(t, "big timeline", bytes.NewReader(out.Bytes()))
	if out.Len() > 8<<20 {
		t.Errorf("timeline is %d bytes", out.Len())
	}
	p, err := latencyPlot(ops, FaultWindows(ops), lastTime(ops))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Title.Text, "1 in 3 ok operations drawn") {
		t.Errorf("latency plot title %q", p.Title.Text)
	}
}
