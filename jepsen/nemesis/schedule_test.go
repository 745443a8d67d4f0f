package nemesis

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestPlanFitsShortRuns: a 60 s run with LAN timings (a long fault needs
// 60 s or more) still gets faults: a class that does not fit is drawn
// again, where the schedule used to end at the first one.
func TestPlanFitsShortRuns(t *testing.T) {
	nems := []Nemesis{&partition{shapes: Shapes()}}
	for seed := uint64(1); seed <= 20; seed++ {
		steps := Plan(nems, PlanConfig{Duration: 60 * time.Second,
			Timings: Timings{Suspicion: 5 * time.Second, DeadTime: 30 * time.Second}}, rand.New(rand.NewPCG(seed, 0)))
		if len(steps) < 2 {
			t.Fatalf("seed %d: %d steps in 60 s", seed, len(steps))
		}
		for _, s := range steps {
			if s.At+s.Hold > 60*time.Second {
				t.Fatalf("seed %d: a step ends at %v", seed, s.At+s.Hold)
			}
		}
	}
}
