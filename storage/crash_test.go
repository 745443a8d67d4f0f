package storage

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
)

// crashConfig is one shape of crash run.
type crashConfig struct {
	name    string
	workers int
	mode    SyncMode
	// inline makes the single worker also take crash points itself between
	// operations, where nothing is in flight.
	inline bool
}

var crashConfigs = []crashConfig{
	{name: "concurrent", workers: 8, mode: SyncAlways},
	{name: "sequential", workers: 1, mode: SyncAlways, inline: true},
	{name: "many-writers", workers: 24, mode: SyncAlways},
	{name: "interval", workers: 4, mode: SyncInterval},
}

const crashPointsPerRun = 20

// TestCrash runs random operations from concurrent and sequential writers
// against a store on a crashable in-memory file system, takes crash-
// consistent copies of it at random moments while the writers run (keeping
// a random share of unsynced data), and checks each copy after reopening
// it: acknowledged operations are all there, in-flight ones entirely there
// or entirely absent, nothing is half-applied, and the next incarnation is
// higher than every one handed out. In SyncInterval mode acknowledged
// operations may be lost, but only as a suffix: the state must still be a
// prefix of each writer's operations. -storage.crashpoints sets the number
// of crash points, -storage.seed replays a seed.
func TestCrash(t *testing.T) {
	seed := testSeed(t)
	runs := max(1, (*crashPoints+crashPointsPerRun-1)/crashPointsPerRun)
	checked := 0
	for run := range runs {
		cfg := crashConfigs[run%len(crashConfigs)]
		ok := t.Run(fmt.Sprintf("%d-%s", run, cfg.name), func(t *testing.T) {
			checked += crashRun(t, cfg, seed+uint64(run))
		})
		if !ok {
			t.Logf("failed run %d with seed %d", run, seed)
			break
		}
	}
	t.Logf("checked %d crash points", checked)
	require.GreaterOrEqual(t, checked, *crashPoints)
}

func crashRun(t *testing.T, cfg crashConfig, seed uint64) int {
	mem := vfs.NewCrashableMem()
	s, err := Open("/db", Options{FS: mem, Sync: cfg.mode, SyncInterval: time.Millisecond, memTableSize: 64 << 10})
	require.NoError(t, err)
	wl := newWorkload(t, s, cfg.workers)

	var mu sync.Mutex
	var points []crashPoint
	full := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(points) >= crashPointsPerRun
	}
	if cfg.inline {
		rng := rand.New(rand.NewPCG(seed, 1<<32))
		wl.between = func(int) {
			if rng.IntN(6) == 0 && !full() {
				cp := wl.crash(mem, rng, "crash point between operations")
				mu.Lock()
				points = append(points, cp)
				mu.Unlock()
			}
		}
	}
	stop := make(chan struct{})
	wg := wl.run(seed, stop)
	rng := rand.New(rand.NewPCG(seed, 1<<33))
	for !full() && !t.Failed() {
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Microsecond)
		cp := wl.crash(mem, rng, "crash point during operations")
		mu.Lock()
		points = append(points, cp)
		mu.Unlock()
	}
	close(stop)
	wg.Wait()
	require.NoError(t, s.Close())
	require.False(t, t.Failed())

	var ops int64
	for w := range wl.logs {
		ops += wl.acked[w].Load()
	}
	for i, cp := range points {
		cp.desc = fmt.Sprintf("seed %d, %s #%d: %s", seed, cfg.name, i, cp.desc)
		wl.verify(t, cp, cfg.mode == SyncInterval)
	}
	// After a clean Close everything acknowledged is there, in every mode.
	clean := crashPoint{fs: mem, maxInc: wl.maxInc.Load(), desc: fmt.Sprintf("seed %d, %s: after Close", seed, cfg.name)}
	for w := range wl.logs {
		clean.acked = append(clean.acked, wl.acked[w].Load())
		clean.started = append(clean.started, wl.started[w].Load())
	}
	wl.verify(t, clean, false)
	t.Logf("%d operations, %d crash points", ops, len(points))
	return len(points)
}
