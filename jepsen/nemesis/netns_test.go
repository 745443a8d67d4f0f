package nemesis

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roster-io/roster/jepsen/history"
	"github.com/roster-io/roster/jepsen/netns"
)

// TestOnNamespaces runs every nemesis against real namespaces, with a
// stand-in node (a shell script that sleeps, whatever its flags): every
// probe must verify.
func TestOnNamespaces(t *testing.T) {
	if err := netns.Available(); err != nil {
		t.Skipf("skipping: %v (run as root with iproute2 and iptables installed)", err)
	}
	saved := startSettle
	startSettle = 100 * time.Millisecond
	t.Cleanup(func() { startSettle = saved })

	dir := t.TempDir()
	bin := filepath.Join(dir, "stand-in")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexec sleep 1000\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := netns.Setup(ctx, netns.Config{Nodes: 5, Serve: netns.ServeConfig{Bin: bin, Dir: dir, LeaveTimeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := c.StartAll(ctx); err != nil {
		t.Fatal(err)
	}
	rec := func(what string, faults []history.Fault, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for _, f := range faults {
			if f.Verified != nil && !*f.Verified {
				t.Errorf("%s: %+v did not verify", what, f)
			}
			if f.Kind == "partition" {
				for n := range f.Grudge {
					if !strings.Contains(f.Rules[n], "-j DROP") {
						t.Errorf("%s: %s's rules:\n%s", what, n, f.Rules[n])
					}
				}
			}
		}
		if len(faults) > 0 && faults[len(faults)-1].Kind != "probe" {
			t.Errorf("%s: %+v ends without a probe", what, faults)
		}
	}
	nems, err := Resolve([]string{"mixed"}, Options{Loss: []float64{0.3, 1}, MaxAdded: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nems {
		seeds := []uint64{1}
		if n.Name() == NamePartition || n.Name() == NameChurn || n.Name() == NameLoss {
			seeds = []uint64{1, 2, 3, 4}
		}
		for _, seed := range seeds {
			faults, err := n.Start(ctx, c, seeded(seed))
			rec(n.Name()+" start", faults, err)
			t.Logf("%s: %s %s %v %v loss %v", n.Name(), faults[0].Kind, faults[0].Name, faults[0].Nodes, faults[0].Grudge, faults[0].Loss)
			faults, err = n.Stop(ctx, c)
			rec(n.Name()+" stop", faults, err)
		}
	}
	if len(c.Nodes()) != 6 {
		t.Errorf("churn added no node: %v", c.Nodes())
	}
	// Leave a mess for Final.
	if _, err := c.Partition(ctx, netns.Grudge{"n1": {"n2"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Pause(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	faults, err := Final(ctx, c)
	rec("final", faults, err)
	for _, n := range c.Nodes() {
		if c.State(n) != netns.Running {
			t.Errorf("after final: %s is %s", n, c.State(n))
		}
	}
}
