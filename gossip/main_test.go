package gossip

import (
	"testing"

	"go.uber.org/goleak"
)

// memberlist's Shutdown does not wait for a probe already in flight; that
// goroutine ends on its own within a probe interval. Everything else the
// nodes start must be gone.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}
