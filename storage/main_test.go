package storage

import (
	"flag"
	"testing"

	"go.uber.org/goleak"
)

var (
	crashPoints = flag.Int("storage.crashpoints", 200, "number of crash points the crash tests check")
	seedFlag    = flag.Uint64("storage.seed", 0, "seed for the randomized tests (0: derived from the clock); printed on failure")
)

// TestMain checks that no test leaks goroutines: Pebble starts several per
// open database, and a Store that is not closed would leak them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
