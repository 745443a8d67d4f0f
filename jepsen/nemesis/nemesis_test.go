package nemesis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roster-io/roster/jepsen/history"
	"github.com/roster-io/roster/jepsen/netns"
)

// fake is an in-memory Target: filters are a grudge and a loss rate that
// the probe reads back exactly (unless broken), processes a state map.
type fake struct {
	mu     sync.Mutex
	nodes  []string
	g      netns.Grudge
	p      float64
	state  map[string]netns.State
	wiped  map[string]bool
	broken bool // filters are recorded but do nothing
	log    []string
}

func TestMain(m *testing.M) {
	startSettle = time.Millisecond // the fake's processes do not die
	os.Exit(m.Run())
}

func newFake(n int) *fake {
	f := &fake{nodes: nodeNames(n), state: map[string]netns.State{}, wiped: map[string]bool{}}
	for _, x := range f.nodes {
		f.state[x] = netns.Running
	}
	return f
}

func (f *fake) did(format string, args ...any) { f.log = append(f.log, fmt.Sprintf(format, args...)) }

func (f *fake) Nodes() []string { f.mu.Lock(); defer f.mu.Unlock(); return slices.Clone(f.nodes) }

func (f *fake) rules() map[string]string {
	out := map[string]string{}
	for n, peers := range f.g {
		out[n] = "drop " + strings.Join(peers, ",")
	}
	return out
}

func (f *fake) Partition(_ context.Context, g netns.Grudge) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.g, f.p = g.Clone(), 0
	f.did("partition %v", f.g)
	return f.rules(), nil
}

func (f *fake) Loss(_ context.Context, g netns.Grudge, p float64) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.g, f.p = g.Clone(), p
	f.did("loss %v", p)
	return f.rules(), nil
}

func (f *fake) Heal(context.Context) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.g, f.p = nil, 0
	f.did("heal")
	return map[string]string{"n1": "healed"}, nil
}

func (f *fake) Probe(_ context.Context, count int) (netns.ProbeResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := netns.ProbeResult{Sent: count, Got: map[string]map[string]int{}}
	for _, to := range f.nodes {
		r.Got[to] = map[string]int{netns.Control: count}
		for _, from := range f.nodes {
			if from == to {
				continue
			}
			got := count
			if f.g.Drops(to, from) && !f.broken {
				got = 0
				if f.p > 0 {
					got = int(float64(count)*(1-f.p) + 0.5)
				}
			}
			r.Got[to][from] = got
		}
	}
	return r, nil
}

func (f *fake) State(n string) netns.State { f.mu.Lock(); defer f.mu.Unlock(); return f.state[n] }

func (f *fake) set(n string, from []netns.State, to netns.State, what string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Contains(from, f.state[n]) {
		return fmt.Errorf("%w: %s %s: it is %s", netns.ErrProcess, what, n, f.state[n])
	}
	f.state[n] = to
	f.did("%s %s", what, n)
	return nil
}

func (f *fake) Pause(_ context.Context, n string) error {
	return f.set(n, []netns.State{netns.Running}, netns.Paused, "pause")
}
func (f *fake) Resume(_ context.Context, n string) error {
	return f.set(n, []netns.State{netns.Paused}, netns.Running, "resume")
}
func (f *fake) Kill(_ context.Context, n string) error {
	return f.set(n, []netns.State{netns.Running, netns.Paused}, netns.Stopped, "kill")
}
func (f *fake) Leave(_ context.Context, n string) error {
	return f.set(n, []netns.State{netns.Running, netns.Paused}, netns.Stopped, "leave")
}
func (f *fake) Restart(_ context.Context, n string) error {
	return f.set(n, []netns.State{netns.Stopped}, netns.Running, "restart")
}
func (f *fake) Wipe(_ context.Context, n string) error {
	if err := f.set(n, []netns.State{netns.Stopped}, netns.Stopped, "wipe"); err != nil {
		return err
	}
	f.mu.Lock()
	f.wiped[n] = true
	f.mu.Unlock()
	return nil
}
func (f *fake) Add(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := fmt.Sprintf("n%d", len(f.nodes)+1)
	f.nodes = append(f.nodes, n)
	f.state[n] = netns.Running
	f.did("add %s", n)
	return n, nil
}

func (f *fake) allRunning() bool {
	for _, n := range f.Nodes() {
		if f.State(n) != netns.Running {
			return false
		}
	}
	return true
}

// checkFaults checks that faults end with a probe that verified.
func checkFaults(t *testing.T, what string, faults []history.Fault) {
	t.Helper()
	if len(faults) < 2 {
		t.Fatalf("%s: faults %+v: want an action and a probe", what, faults)
	}
	last := faults[len(faults)-1]
	if last.Kind != "probe" || last.Verified == nil || !*last.Verified || Type(last) != history.OK {
		t.Errorf("%s: probe %+v did not verify", what, last)
	}
}

func TestEveryNemesisStartsAndStops(t *testing.T) {
	ctx := context.Background()
	for _, info := range All() {
		if info.Name == NameMixed || info.Name == NameNone {
			continue
		}
		for seed := uint64(0); seed < 8; seed++ {
			f := newFake(5)
			n, err := New(info.Name, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if n.Name() != info.Name {
				t.Errorf("%s is named %s", info.Name, n.Name())
			}
			if faults, err := n.Stop(ctx, f); err != nil || len(faults) != 0 {
				t.Errorf("%s: Stop before Start: %v %v", info.Name, faults, err)
			}
			what := fmt.Sprintf("%s seed %d", info.Name, seed)
			faults, err := n.Start(ctx, f, seeded(seed))
			if err != nil {
				t.Fatalf("%s: start: %v", what, err)
			}
			checkFaults(t, what+" start", faults)
			act := faults[0]
			switch info.Name {
			case NamePartition:
				if act.Kind != "partition" || !slices.Contains(Shapes(), act.Name) || len(act.Grudge) == 0 || len(act.Rules) == 0 ||
					!netns.Grudge(act.Grudge).Equal(f.g) {
					t.Errorf("%s: %+v", what, act)
				}
			case NameLoss:
				if act.Kind != "loss" || act.Loss <= 0 || !netns.Grudge(act.Grudge).Equal(f.g) || f.p != act.Loss {
					t.Errorf("%s: %+v", what, act)
				}
			case NamePause:
				if act.Kind != "pause" || len(act.Nodes) == 0 || len(act.Nodes) > 2 || f.State(act.Nodes[0]) != netns.Paused {
					t.Errorf("%s: %+v", what, act)
				}
			case NameKill:
				if act.Kind != "kill" || len(act.Nodes) == 0 || len(act.Nodes) > 2 || f.State(act.Nodes[0]) != netns.Stopped {
					t.Errorf("%s: %+v", what, act)
				}
			case NameRestartAll:
				if act.Kind != "kill" || len(act.Nodes) != 5 {
					t.Errorf("%s: %+v", what, act)
				}
			case NameAmnesia:
				if act.Kind != "kill" || len(act.Nodes) != 1 || faults[1].Kind != "wipe" || !f.wiped[act.Nodes[0]] {
					t.Errorf("%s: %+v", what, faults)
				}
			case NameChurn:
				if (act.Kind != "leave" && act.Kind != "add") || len(act.Nodes) != 1 {
					t.Errorf("%s: %+v", what, act)
				}
			}
			faults, err = n.Stop(ctx, f)
			if err != nil {
				t.Fatalf("%s: stop: %v", what, err)
			}
			if !(info.Name == NameChurn && act.Kind == "add") {
				checkFaults(t, what+" stop", faults)
			}
			if len(f.g) != 0 || !f.allRunning() {
				t.Errorf("%s: after stop: grudge %v, states %v", what, f.g, f.state)
			}
			if faults, err := n.Stop(ctx, f); err != nil || len(faults) != 0 {
				t.Errorf("%s: second Stop: %v %v", what, faults, err)
			}
		}
	}
}

func TestUnverifiedCutIsInfo(t *testing.T) {
	f := newFake(3)
	f.broken = true
	n, _ := New(NamePartition, Options{Shapes: []string{ShapeIsolated}})
	faults, err := n.Start(context.Background(), f, seeded(1))
	if err != nil {
		t.Fatal(err)
	}
	probe := faults[len(faults)-1]
	if probe.Kind != "probe" || probe.Verified == nil || *probe.Verified || Type(probe) != history.Info || len(probe.Grudge) != 0 {
		t.Errorf("a partition that cuts nothing verified: %+v", probe)
	}
	if Type(faults[0]) != history.OK {
		t.Errorf("action type %s", Type(faults[0]))
	}
	f.broken = false
	f.mu.Lock()
	f.g = netns.Grudge{"n1": {"n2"}} // a heal that heals nothing
	f.mu.Unlock()
	pf, err := verifyCut(context.Background(), f, "heal", nil)
	if err != nil || *pf.Verified || !netns.Grudge(pf.Grudge).Equal(netns.Grudge{"n1": {"n2"}}) {
		t.Errorf("heal probe: %+v %v", pf, err)
	}
}

func TestChurnAddsAtMostMaxAdded(t *testing.T) {
	f := newFake(3)
	n, _ := New(NameChurn, Options{MaxAdded: 1})
	adds := 0
	for seed := uint64(0); seed < 20; seed++ {
		faults, err := n.Start(context.Background(), f, seeded(seed))
		if err != nil {
			t.Fatal(err)
		}
		if faults[0].Kind == "add" {
			adds++
		}
		if _, err := n.Stop(context.Background(), f); err != nil {
			t.Fatal(err)
		}
	}
	if adds != 1 || len(f.Nodes()) != 4 {
		t.Errorf("%d adds, nodes %v", adds, f.Nodes())
	}
}

func TestResolveAndAll(t *testing.T) {
	names := map[string]bool{}
	for _, i := range All() {
		if i.Description == "" || strings.Contains(i.Description, "\n") {
			t.Errorf("%s: description %q", i.Name, i.Description)
		}
		names[i.Name] = true
	}
	for _, want := range []string{"partition", "loss", "pause", "kill", "restart-all", "amnesia", "churn", "mixed", "none"} {
		if !names[want] {
			t.Errorf("All lacks %s", want)
		}
	}
	nems, err := Resolve([]string{"mixed", "kill"}, Options{})
	if err != nil || len(nems) != 7 {
		t.Errorf("mixed: %d nemeses, %v", len(nems), err)
	}
	if nems, err := Resolve([]string{"none"}, Options{}); err != nil || len(nems) != 0 {
		t.Errorf("none: %v %v", nems, err)
	}
	if _, err := Resolve([]string{"partition", "flood"}, Options{}); !errors.Is(err, ErrNemesis) {
		t.Errorf("unknown nemesis: %v", err)
	}
	if _, err := New(NameLoss, Options{Loss: []float64{1.5}}); !errors.Is(err, ErrNemesis) {
		t.Errorf("loss 1.5: %v", err)
	}
	if _, err := New(NamePartition, Options{Shapes: []string{"square"}}); !errors.Is(err, ErrNemesis) {
		t.Errorf("shape square: %v", err)
	}
}

func TestPlan(t *testing.T) {
	nems, _ := Resolve([]string{"mixed"}, Options{})
	cfg := PlanConfig{Duration: time.Hour, Timings: Timings{Suspicion: 4 * time.Second, DeadTime: 30 * time.Second}}
	a, b := Plan(nems, cfg, seeded(7)), Plan(nems, cfg, seeded(7))
	if len(a) < 20 || len(a) != len(b) {
		t.Fatalf("%d and %d steps", len(a), len(b))
	}
	classes := map[string]int{}
	end := time.Duration(0)
	for i, s := range a {
		if s != b[i] {
			t.Errorf("step %d: %+v vs %+v", i, s, b[i])
		}
		if s.At-end < 5*time.Second || s.At-end > 15*time.Second {
			t.Errorf("step %d: gap %v", i, s.At-end)
		}
		end = s.At + s.Hold
		classes[s.Class]++
		var lo, hi time.Duration
		switch s.Class {
		case ClassRegular:
			lo, hi = 5*time.Second, 30*time.Second
		case ClassBlip:
			lo, hi = time.Second, 3*time.Second
		case ClassMid:
			lo, hi = 4*time.Second, 30*time.Second
		case ClassLong:
			lo, hi = 60*time.Second, 90*time.Second
		}
		if s.Hold < lo || s.Hold > hi {
			t.Errorf("step %d: %s hold %v not in [%v, %v]", i, s.Class, s.Hold, lo, hi)
		}
	}
	if end > time.Hour || len(classes) != 4 {
		t.Errorf("ends at %v; classes %v", end, classes)
	}
	if c := Plan(nems, cfg, seeded(8)); len(c) == len(a) && c[0] == a[0] && c[1] == a[1] {
		t.Error("seeds 7 and 8 plan alike")
	}
	if got := Plan(nems, PlanConfig{Duration: time.Hour}, seeded(1)); len(got) == 0 || got[0].Class != ClassRegular {
		t.Errorf("no timings: %+v", got)
	}
	if got := Plan(nil, cfg, seeded(1)); got != nil {
		t.Errorf("no nemeses: %v", got)
	}
	if d := SuspicionTimeout(4, time.Second, 100); d != 8*time.Second {
		t.Errorf("suspicion of 100 nodes: %v", d)
	}
	if d := SuspicionTimeout(3, 200*time.Millisecond, 5); d != 600*time.Millisecond {
		t.Errorf("suspicion of 5 nodes: %v", d)
	}
}

func TestRunAndFinal(t *testing.T) {
	f := newFake(5)
	nems, _ := Resolve([]string{"partition", "kill", "pause"}, Options{})
	steps := Plan(nems, PlanConfig{Duration: 400 * time.Millisecond, Every: 20 * time.Millisecond,
		MinHold: 10 * time.Millisecond, MaxHold: 30 * time.Millisecond}, seeded(3))
	if len(steps) < 4 {
		t.Fatalf("%d steps", len(steps))
	}
	var mu sync.Mutex
	var got []history.Fault
	rec := func(fl history.Fault, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Errorf("fault %+v: %v", fl, err)
		}
		got = append(got, fl)
	}
	start := time.Now()
	Run(context.Background(), f, steps, seeded(3), rec, nil)
	last := steps[len(steps)-1]
	if el := time.Since(start); el < last.At+last.Hold {
		t.Errorf("ran %v, schedule ends at %v", el, last.At+last.Hold)
	}
	probes := 0
	for _, fl := range got {
		if fl.Kind == "probe" {
			probes++
			if !*fl.Verified {
				t.Errorf("unverified %+v", fl)
			}
		}
	}
	if probes != 2*len(steps) {
		t.Errorf("%d probes for %d steps: %+v", probes, len(steps), got)
	}

	// Cancelled in the middle of a hold: the fault is still stopped.
	ctx, cancel := context.WithCancel(context.Background())
	long := []Step{{At: 0, Hold: time.Hour, Nemesis: nems[1]}}
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	Run(ctx, f, long, seeded(1), rec, nil)
	if !f.allRunning() {
		t.Errorf("states after a cancelled run: %v", f.state)
	}

	// Final heals, resumes and restarts whatever is left.
	_, _ = f.Partition(context.Background(), netns.Grudge{"n1": {"n2"}})
	_ = f.Pause(context.Background(), "n3")
	_ = f.Kill(context.Background(), "n4")
	faults, err := Final(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, fl := range faults {
		kinds = append(kinds, fl.Kind)
	}
	if strings.Join(kinds, ",") != "heal,probe,resume,restart,probe" || !f.allRunning() || len(f.g) != 0 {
		t.Errorf("final: %v; states %v; grudge %v", faults, f.state, f.g)
	}
	if !slices.Equal(faults[2].Nodes, []string{"n3"}) || !slices.Equal(faults[3].Nodes, []string{"n4"}) {
		t.Errorf("final: %+v", faults)
	}
	for _, i := range []int{1, 4} {
		if !*faults[i].Verified {
			t.Errorf("final probe %+v", faults[i])
		}
	}
}
