package netns

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"
)

// TestRealRoster runs three real roster nodes in namespaces, when
// ROSTER_JEPSEN_BIN names a roster binary (go build -o /tmp/roster
// ./cmd/roster): they form a cluster over the bridge, answer the control
// namespace, and an isolated node is seen dead, then alive after the heal.
func TestRealRoster(t *testing.T) {
	needRoot(t)
	bin := os.Getenv("ROSTER_JEPSEN_BIN")
	if bin == "" {
		t.Skip("skipping: set ROSTER_JEPSEN_BIN to a roster binary")
	}
	c := setup(t, 3, ServeConfig{Bin: bin, Dir: t.TempDir(), Profile: "local", Args: []string{"--gossip-insecure"}})
	ctx := context.Background()
	if err := c.StartAll(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.Nodes() {
				b, _ := os.ReadFile(c.Process(n).LogPath())
				t.Logf("%s's log:\n%s", n, b)
			}
		}
	})
	cl := &http.Client{Transport: c.Transport(), Timeout: time.Second}
	defer cl.CloseIdleConnections()
	// states returns node -> state as node sees its peers.
	states := func(node string) map[string]string {
		url, _ := c.URL(node)
		resp, err := cl.Get(url + "/v1/nodes")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var out struct {
			Nodes []struct{ Name, State string }
		}
		if json.NewDecoder(resp.Body).Decode(&out) != nil {
			return nil
		}
		m := map[string]string{}
		for _, n := range out.Nodes {
			m[n.Name] = n.State
		}
		return m
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	allAlive := func(node string) func() bool {
		return func() bool {
			s := states(node)
			return s["n1"] == "alive" && s["n2"] == "alive" && s["n3"] == "alive"
		}
	}
	for _, n := range c.Nodes() {
		waitFor(n+" to see every node alive", allAlive(n))
	}
	if _, err := c.Partition(ctx, Grudge{"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"}}); err != nil {
		t.Fatal(err)
	}
	waitFor("n2 to see n1 gone", func() bool { s := states("n2"); return s != nil && s["n1"] != "alive" })
	if s := states("n1"); s == nil {
		t.Error("isolated n1 does not answer the control namespace")
	}
	if _, err := c.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor("n2 to see n1 back", allAlive("n2"))
	waitFor("n1 to see everyone back", allAlive("n1"))
}
