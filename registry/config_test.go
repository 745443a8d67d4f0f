package registry

import (
	"context"
	"testing"
	"time"

	"github.com/roster-io/roster/gossip"
	"github.com/stretchr/testify/require"
)

// TestPresets: each preset carries its profile and the gossip preset's
// timings, and Open builds the gossip configuration from the profile,
// the Config's fields and then Tuning, whose adjustments compose.
func TestPresets(t *testing.T) {
	lan, wan, local := DefaultConfig("n"), WANConfig("n"), LocalConfig("n")
	require.Equal(t, ProfileLAN, lan.Profile)
	require.Equal(t, ProfileWAN, wan.Profile)
	require.Equal(t, ProfileLocal, local.Profile)
	require.Equal(t, []string{"default"}, lan.Scopes)
	require.Equal(t, "0.0.0.0", lan.BindAddr)
	require.Equal(t, 7946, lan.BindPort)
	require.Equal(t, "127.0.0.1", local.BindAddr)
	require.Equal(t, 2*time.Second, lan.AntiEntropyInterval)
	require.Equal(t, 200*time.Millisecond, local.AntiEntropyInterval)

	g, err := wan.gossipConfig()
	require.NoError(t, err)
	lg, err := lan.gossipConfig()
	require.NoError(t, err)
	require.Greater(t, g.Memberlist.ProbeInterval, lg.Memberlist.ProbeInterval, "WAN probes more slowly")

	c := LocalConfig("n")
	c.Scopes, c.Seeds, c.Cluster, c.FanOut, c.HoldBack = []string{"a", "b"}, []string{"x:1"}, "blue", 4, time.Second
	c.Tune(func(g *gossip.Config) { g.PiggybackQueue = 7 })
	c.Tune(func(g *gossip.Config) { g.PiggybackQueue++; g.HoldBack = 2 * time.Second })
	g, err = c.gossipConfig()
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, g.Scopes)
	require.Equal(t, []string{"x:1"}, g.Seeds)
	require.Equal(t, "blue", g.Cluster)
	require.Equal(t, 4, g.FanOut)
	require.Equal(t, 8, g.PiggybackQueue, "both adjustments ran, in order")
	require.Equal(t, 2*time.Second, g.HoldBack, "Tuning runs after the fields")
}

// TestConfigErrors: an unknown profile and a gossip key of a wrong size
// are refused by Open with ErrConfig; a keyring given as GossipKeys can
// be listed and rotated.
func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	c := LocalConfig("n")
	c.Profile = "moon"
	_, err := Open(ctx, c)
	require.ErrorIs(t, err, ErrConfig)
	require.ErrorContains(t, err, `Profile "moon"`)

	c = LocalConfig("n")
	c.GossipKeys = [][]byte{make([]byte, 15)}
	_, err = Open(ctx, c)
	require.ErrorIs(t, err, ErrConfig)
	require.ErrorContains(t, err, "GossipKeys")

	k1, k2 := make([]byte, 16), make([]byte, 32)
	k2[0] = 1
	c = LocalConfig("n")
	c.GossipKeys = [][]byte{k1, k2}
	r, err := Open(ctx, c)
	require.NoError(t, err)
	defer func() { require.NoError(t, r.Close(ctx)) }()
	keys, err := r.GossipKeys()
	require.NoError(t, err)
	require.Equal(t, []KeyInfo{{Fingerprint: gossip.Fingerprint(k1), Primary: true}, {Fingerprint: gossip.Fingerprint(k2)}}, keys)
	require.NoError(t, r.UseGossipKey(k2, ""))
	require.ErrorIs(t, r.RemoveGossipKey(k2, ""), ErrPrimaryKey)
}
