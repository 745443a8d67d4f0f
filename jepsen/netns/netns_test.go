package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// needRoot skips tests that build namespaces when this machine cannot.
func needRoot(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("skipping: %v (run as root with iproute2 and iptables installed)", err)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func setup(t *testing.T, n int, serve ServeConfig) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Setup(ctx, Config{Nodes: n, Serve: serve, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// rootState is what must not change in the root namespace.
func rootState(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	for _, args := range [][]string{
		{"ip", "-o", "link", "show"},
		{"ip", "-o", "addr", "show"},
		{"ip", "route", "show", "table", "all"},
		{"iptables-save"},
		{"sysctl", "net.ipv4.ip_forward", "net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"},
	} {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil && args[0] != "sysctl" {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(line, "#") { // iptables-save's dated comments
				b.WriteString(line + "\n")
			}
		}
	}
	return b.String()
}

func mustNamespaces(t *testing.T) []string {
	t.Helper()
	ns, err := namespaces(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func TestSetupTeardownLeavesNothing(t *testing.T) {
	needRoot(t)
	before, root := mustNamespaces(t), rootState(t)
	c, err := Setup(context.Background(), Config{Nodes: 3, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var mine []string
	for _, ns := range mustNamespaces(t) {
		if strings.HasPrefix(ns, c.Prefix()+"-") {
			mine = append(mine, ns)
		}
	}
	slices.Sort(mine)
	p := c.Prefix()
	if want := []string{p + "-br", p + "-ctl", p + "-n1", p + "-n2", p + "-n3"}; !slices.Equal(mine, want) {
		t.Errorf("namespaces %v, want %v", mine, want)
	}
	if got := rootState(t); got != root {
		t.Errorf("root namespace changed during the run:\nbefore:\n%s\nduring:\n%s", root, got)
	}
	// The control namespace has its address; the test's own thread not.
	var addrs []net.Addr
	if err := c.InControl(func() (err error) { addrs, err = net.InterfaceAddrs(); return err }); err != nil {
		t.Fatal(err)
	}
	if !containsAddr(addrs, c.ControlIP().String()) {
		t.Errorf("control namespace addresses %v lack %s", addrs, c.ControlIP())
	}
	if own, _ := net.InterfaceAddrs(); containsAddr(own, c.ControlIP().String()) {
		t.Errorf("the root namespace has %s", c.ControlIP())
	}
	out, err := c.Exec(context.Background(), "n2", "ip", "-o", "addr", "show", "eth0")
	if err != nil || !strings.Contains(string(out), "10.77.77.2/24") {
		t.Errorf("n2 eth0: %s %v", out, err)
	}
	if out, err := c.Exec(context.Background(), "n2", "ip", "route"); err != nil || strings.Contains(string(out), "default") {
		t.Errorf("n2 routes: %s %v", out, err)
	}
	if out, err := c.Exec(context.Background(), "n2", "ip", "-6", "addr"); err != nil || strings.Contains(string(out), "inet6") {
		t.Errorf("n2 has IPv6: %s %v", out, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if after := mustNamespaces(t); !slices.Equal(after, before) {
		t.Errorf("namespaces after teardown %v, before %v", after, before)
	}
	if got := rootState(t); got != root {
		t.Errorf("root namespace changed after the run:\nbefore:\n%s\nafter:\n%s", root, got)
	}
}

func containsAddr(addrs []net.Addr, ip string) bool {
	for _, a := range addrs {
		if strings.HasPrefix(a.String(), ip+"/") {
			return true
		}
	}
	return false
}

func probeCut(t *testing.T, c *Cluster) Grudge {
	t.Helper()
	r, err := c.Probe(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	return r.Cut()
}

func TestGrudgeCutsExactlyItsDirection(t *testing.T) {
	needRoot(t)
	c := setup(t, 3, ServeConfig{})
	ctx := context.Background()
	if cut := probeCut(t, c); len(cut) != 0 {
		t.Fatalf("fresh cluster: cut %v", cut)
	}
	for _, g := range []Grudge{
		{"n1": {"n2"}}, // one-way: n1 drops n2, n2 still hears n1
		{"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"}}, // n1 isolated
		{"n1": {"n3"}, "n3": {"n1"}, "n2": {"n3"}},
	} {
		rules, err := c.Partition(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		for n := range g {
			if !strings.Contains(rules[n], "-j "+Chain) || !strings.Contains(rules[n], "-j DROP") ||
				!strings.Contains(rules[n], "-s "+c.ControlIP().String()+"/32 -j RETURN") {
				t.Errorf("grudge %v: %s's rules:\n%s", g, n, rules[n])
			}
		}
		if cut := probeCut(t, c); !cut.Equal(g) {
			t.Errorf("grudge %v: probe saw %v cut", g, cut)
		}
	}
	rules, err := c.Heal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 3 || strings.Contains(rules["n1"], "DROP") {
		t.Errorf("healed rules: %v", rules)
	}
	if cut := probeCut(t, c); len(cut) != 0 {
		t.Errorf("after heal: cut %v", cut)
	}
	if _, err := c.Partition(ctx, Grudge{"n1": {"n9"}}); !errors.Is(err, ErrNode) {
		t.Errorf("unknown node: %v", err)
	}
}

func TestFifteenNodes(t *testing.T) {
	needRoot(t)
	start := time.Now()
	c := setup(t, 15, ServeConfig{})
	t.Logf("15 nodes set up in %v", time.Since(start))
	if cut := probeCut(t, c); len(cut) != 0 {
		t.Fatalf("fresh cluster: cut %v", cut)
	}
	g := Grudge{}
	for _, n := range c.Nodes()[:7] {
		g[n] = c.Nodes()[7:]
	}
	start = time.Now()
	if _, err := c.Partition(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	t.Logf("partitioned in %v", time.Since(start))
	if cut := probeCut(t, c); !cut.Equal(g) {
		t.Errorf("cut %v, want %v", cut, g)
	}
}

func TestLoss(t *testing.T) {
	needRoot(t)
	c := setup(t, 3, ServeConfig{})
	ctx := context.Background()
	all := Grudge{"n1": {"n2", "n3"}, "n2": {"n1", "n3"}, "n3": {"n1", "n2"}}
	rules, err := c.Loss(ctx, all, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rules["n2"], "--mode random --probability 1") {
		t.Errorf("n2's rules:\n%s", rules["n2"])
	}
	if cut := probeCut(t, c); !cut.Equal(all) {
		t.Errorf("loss p=1: cut %v, want %v", cut, all)
	}
	if _, err := c.Loss(ctx, Grudge{"n1": {"n2"}}, 0.5); err != nil {
		t.Fatal(err)
	}
	r, err := c.Probe(ctx, 200)
	if err != nil {
		t.Fatal(err)
	}
	got, sent := r.Received(Grudge{"n1": {"n2"}})
	if sent != 200 || got < 50 || got > 150 {
		t.Errorf("loss p=0.5: %d of %d arrived", got, sent)
	}
	if got, sent := r.Received(Grudge{"n2": {"n1"}, "n1": {"n3", Control}}); got != sent {
		t.Errorf("unaffected links: %d of %d arrived", got, sent)
	}
	if _, err := c.Loss(ctx, all, 0); err == nil {
		t.Error("loss 0 accepted")
	}
}

// TestCrashHelper is the crashed harness of TestCleanupAfterCrash: it
// builds a run, starts a process inside it and exits without Close.
func TestCrashHelper(t *testing.T) {
	if os.Getenv("NETNS_CRASH_HELPER") != "1" {
		t.Skip("helper process of TestCleanupAfterCrash")
	}
	c, err := Setup(context.Background(), Config{Nodes: 3})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	cmd, err := c.Command(context.Background(), "n1", "sleep", "1000")
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Println("PREFIX", c.Prefix(), cmd.Process.Pid)
	os.Exit(0) // the crash: no Close
}

func TestCleanupAfterCrash(t *testing.T) {
	needRoot(t)
	before := mustNamespaces(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "NETNS_CRASH_HELPER=1")
	out, err := cmd.CombinedOutput()
	var prefix string
	var pid int
	for _, line := range strings.Split(string(out), "\n") {
		if _, err := fmt.Sscanf(line, "PREFIX %s %d", &prefix, &pid); err == nil {
			break
		}
	}
	if err != nil || prefix == "" {
		t.Fatalf("helper: %v: %s", err, out)
	}
	if !alive(pid) {
		t.Fatalf("the helper's sleep %d is not running", pid)
	}
	left, err := Leftovers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(left, func(l Leftover) bool { return l.Prefix == prefix })
	if i < 0 || left[i].Alive || len(left[i].Namespaces) != 5 {
		t.Fatalf("leftovers %+v lack dead run %s with 5 namespaces", left, prefix)
	}
	if err := Cleanup(context.Background(), "rjepsen", nil); !errors.Is(err, ErrPrefix) {
		t.Errorf("cleanup of a bare marker: %v", err)
	}
	if err := Cleanup(context.Background(), "n1", nil); !errors.Is(err, ErrPrefix) {
		t.Errorf("cleanup of a foreign prefix: %v", err)
	}
	done, err := CleanupStale(context.Background(), false, testLogger(t))
	if err != nil || !slices.Contains(done, prefix) {
		t.Fatalf("stale cleanup removed %v (%v), not %s", done, err, prefix)
	}
	if alive(pid) {
		t.Errorf("sleep %d survived the cleanup", pid)
	}
	if after := mustNamespaces(t); !slices.Equal(after, before) {
		t.Errorf("namespaces after cleanup %v, before %v", after, before)
	}
	if err := Cleanup(context.Background(), prefix, nil); err != nil {
		t.Errorf("second cleanup: %v", err)
	}
}

func TestGrudgeAndNames(t *testing.T) {
	g := Grudge{"a": {"c", "b", "b"}, "x": nil}
	if !g.Equal(Grudge{"a": {"b", "c"}}) || g.Equal(Grudge{"a": {"b"}}) || !g.Drops("a", "c") || g.Drops("c", "a") {
		t.Errorf("grudge %v", g.Clone())
	}
	p, pid, ok := splitName("rjepsen-42-ab12-n13")
	if !ok || p != "rjepsen-42-ab12" || pid != 42 {
		t.Errorf("splitName: %q %d %v", p, pid, ok)
	}
	for _, bad := range []string{"rjepsen-x-ab-n1", "other-42-ab-n1", "rjepsen-42"} {
		if _, _, ok := splitName(bad); ok {
			t.Errorf("splitName(%q) accepted", bad)
		}
	}
	if pr := NewPrefix(); !strings.HasPrefix(pr, Marker) {
		t.Errorf("prefix %q", pr)
	} else if got, _, ok := splitName(pr + "-n1"); !ok || got != pr {
		t.Errorf("prefix %q does not round-trip: %q", pr, got)
	}
	r := ProbeResult{Sent: 3, Got: map[string]map[string]int{"n1": {"n2": 0, Control: 3}, "n2": {"n1": 1}}}
	if !r.Cut().Equal(Grudge{"n1": {"n2"}}) {
		t.Errorf("cut %v", r.Cut())
	}
}
