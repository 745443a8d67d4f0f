package registry

import "github.com/roster-io/roster/gossip"

// Tuning is the escape hatch for experts: when set in Config.Tuning, Open
// calls it with the gossip layer's configuration, built from the profile's
// preset and the Config's fields, before starting the node. It may change
// anything there: memberlist's own configuration (probe timings, a
// keyring), a custom transport (an in-memory network in tests), packet and
// chunk sizes, the CRDT's options. What it sets is not checked by the
// registry beyond what the gossip layer checks, and a Config field set
// alongside is overridden by what Tuning writes.
type Tuning func(*gossip.Config)

// Tune adds f to c.Tuning, to run after what is there already, so that
// several adjustments (a transport, memberlist timings) compose.
func (c *Config) Tune(f func(*gossip.Config)) {
	prev := c.Tuning
	c.Tuning = func(g *gossip.Config) {
		if prev != nil {
			prev(g)
		}
		f(g)
	}
}
