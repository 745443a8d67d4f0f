package gossip

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/stretchr/testify/require"
)

// eventLog collects events per node for assertions.
type eventLog struct {
	mu  sync.Mutex
	evs []crdt.Event
}

func (l *eventLog) sink(scope string, evs []crdt.Event) {
	l.mu.Lock()
	l.evs = append(l.evs, evs...)
	l.mu.Unlock()
}

func members(n *Node, scope, group string) []string {
	sc, _ := n.Scope(scope)
	var out []string
	sc.Read(func(st *crdt.State) {
		for _, m := range st.Members(group) {
			out = append(out, m.ID+"@"+m.Owner.Name)
		}
	})
	return out
}

// startNodes starts count nodes n0, n1, ... on loopback, each seeded with
// n0, tuned by tune (may be nil), and closes them when the test ends.
func startNodes(t *testing.T, count int, tune func(*Config)) []*Node {
	t.Helper()
	var nodes []*Node
	t.Cleanup(func() {
		for _, n := range nodes {
			require.NoError(t, n.Close(context.Background()))
		}
	})
	for i := range count {
		cfg := DefaultLocalConfig(fmt.Sprintf("n%d", i))
		cfg.Incarnation = uint64(100 + i)
		if i > 0 {
			cfg.Seeds = []string{nodes[0].Addr()}
		}
		if tune != nil {
			tune(&cfg)
		}
		n, err := New(cfg, (&eventLog{}).sink)
		require.NoError(t, err)
		nodes = append(nodes, n)
	}
	return nodes
}

func TestLoopbackThreeNodes(t *testing.T) {
	nodes := startNodes(t, 3, nil)
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if n.ml.NumMembers() != 3 {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, nodes[0].Join("default", "room", "a", ""))
	require.NoError(t, nodes[1].Join("default", "room", "b", ""))
	require.Eventually(t, func() bool {
		return len(members(nodes[2], "default", "room")) == 2
	}, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, nodes[0].Leave("default", "room", "a"))
	require.Eventually(t, func() bool {
		m := members(nodes[2], "default", "room")
		return len(m) == 1 && m[0] == "b@n1"
	}, 5*time.Second, 5*time.Millisecond)
}
