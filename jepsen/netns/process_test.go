package netns

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// standIn is a tiny executable accepting roster serve's flags: it counts
// its runs in its data directory, serves "NAME RUNS" on --http-addr, and
// leaves on SIGTERM.
const standIn = `package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "serve" {
		os.Exit(2)
	}
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	name := fs.String("name", "", "")
	data := fs.String("data-dir", "", "")
	addr := fs.String("http-addr", "", "")
	fs.String("gossip-addr", "", "")
	fs.String("join", "", "")
	fs.String("profile", "", "")
	fs.Bool("gossip-insecure", false, "")
	fs.Parse(os.Args[2:])
	f := filepath.Join(*data, "runs")
	b, _ := os.ReadFile(f)
	b = append(b, 'x')
	if err := os.WriteFile(f, b, 0o644); err != nil {
		panic(err)
	}
	fmt.Println("stand-in", *name, "run", len(b), "args", os.Args[1:])
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		panic(err)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %d", *name, len(b))
	}))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	fmt.Println("leaving")
}
`

var (
	standInOnce sync.Once
	standInBin  string
	standInErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if standInBin != "" {
		os.RemoveAll(filepath.Dir(standInBin))
	}
	os.Exit(code)
}

func buildStandIn(t *testing.T) string {
	t.Helper()
	standInOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rjepsen-standin-")
		if err != nil {
			standInErr = err
			return
		}
		src := filepath.Join(dir, "main.go")
		if standInErr = os.WriteFile(src, []byte(standIn), 0o644); standInErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "roster"), src)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			standInErr = errors.New(string(out))
			return
		}
		standInBin = filepath.Join(dir, "roster")
	})
	if standInErr != nil {
		t.Fatalf("building the stand-in: %v", standInErr)
	}
	return standInBin
}

func get(c *Cluster, url string, timeout time.Duration) (string, error) {
	cl := &http.Client{Transport: c.Transport(), Timeout: timeout}
	defer cl.CloseIdleConnections()
	resp, err := cl.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// getEventually retries while the node starts listening.
func getEventually(t *testing.T, c *Cluster, node string) string {
	t.Helper()
	url, err := c.URL(node)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		body, err := get(c, url, time.Second)
		if err == nil {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s from the control namespace: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestProcessLifecycle(t *testing.T) {
	needRoot(t)
	bin := buildStandIn(t)
	dir := t.TempDir()
	c := setup(t, 3, ServeConfig{Bin: bin, Dir: dir, Profile: "local", Args: []string{"--gossip-insecure"},
		LeaveTimeout: 5 * time.Second})
	ctx := context.Background()
	if err := c.StartAll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes() {
		if body := getEventually(t, c, n); body != n+" 1" {
			t.Errorf("%s answered %q", n, body)
		}
	}
	p := c.Process("n1")
	args := strings.Join(p.Args(), " ")
	for _, want := range []string{"serve --name n1 --data-dir " + filepath.Join(dir, "n1", "data"),
		"--gossip-addr 10.77.77.1:7946", "--http-addr 10.77.77.1:8080",
		"--join 10.77.77.2:7946,10.77.77.3:7946", "--profile local --gossip-insecure"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	if p.URL() != "http://10.77.77.1:8080" || p.GossipAddr() != "10.77.77.1:7946" {
		t.Errorf("url %s gossip %s", p.URL(), p.GossipAddr())
	}

	// An isolated node still answers the control namespace.
	if _, err := c.Partition(ctx, Grudge{"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"}}); err != nil {
		t.Fatal(err)
	}
	if body := getEventually(t, c, "n1"); body != "n1 1" {
		t.Errorf("isolated n1 answered %q", body)
	}

	// Pause: /proc says T, and the node does not answer; resume: it does.
	if err := c.Pause(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if st, err := procState(p.PID()); err != nil || st != 'T' || c.State("n1") != Paused {
		t.Errorf("paused n1: state %c %v %s", st, err, c.State("n1"))
	}
	if _, err := get(c, p.URL(), 300*time.Millisecond); err == nil {
		t.Error("paused n1 answered")
	}
	if err := c.Resume(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if st, _ := procState(p.PID()); st == 'T' || c.State("n1") != Running {
		t.Errorf("resumed n1: state %c", st)
	}
	getEventually(t, c, "n1")

	// Kill -9 (paused or not), restart with the same data.
	if err := c.Pause(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if c.State("n2") != Stopped || c.Process("n2").Wait() == nil {
		t.Errorf("killed n2: %s, %v", c.State("n2"), c.Process("n2").Wait())
	}
	if err := c.Kill(ctx, "n2"); !errors.Is(err, ErrProcess) {
		t.Errorf("killing a stopped node: %v", err)
	}
	if err := c.Restart(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, "n2"); !errors.Is(err, ErrProcess) {
		t.Errorf("restarting a running node: %v", err)
	}
	if body := getEventually(t, c, "n2"); body != "n2 2" {
		t.Errorf("restarted n2 answered %q", body)
	}

	// Graceful leave, amnesia, come back.
	if err := c.Wipe(ctx, "n3"); !errors.Is(err, ErrProcess) {
		t.Errorf("wiping a running node: %v", err)
	}
	if err := c.Leave(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	if err := c.Process("n3").Wait(); err != nil {
		t.Errorf("n3 left with %v", err)
	}
	if err := c.Wipe(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	if body := getEventually(t, c, "n3"); body != "n3 1" {
		t.Errorf("wiped n3 answered %q", body)
	}
	log, err := os.ReadFile(c.Process("n3").LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(log), "=== roster-jepsen: n3 start") != 2 || !strings.Contains(string(log), "leaving") ||
		strings.Count(string(log), "stand-in n3 run 1") != 2 {
		t.Errorf("n3's log:\n%s", log)
	}

	// A node added mid-run joins everyone, filters and probes included.
	n4, err := c.Add(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n4 != "n4" || len(c.Nodes()) != 4 {
		t.Fatalf("added %s: nodes %v", n4, c.Nodes())
	}
	if !strings.Contains(strings.Join(c.Process("n4").Args(), " "), "--join 10.77.77.1:7946,10.77.77.2:7946,10.77.77.3:7946") {
		t.Errorf("n4 args %v", c.Process("n4").Args())
	}
	if body := getEventually(t, c, "n4"); body != "n4 1" {
		t.Errorf("n4 answered %q", body)
	}
	if _, err := c.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if cut := probeCut(t, c); len(cut) != 0 {
		t.Errorf("after heal with n4: cut %v", cut)
	}
	if _, err := c.Partition(ctx, Grudge{"n4": {"n1"}}); err != nil {
		t.Fatal(err)
	}
	if cut := probeCut(t, c); !cut.Equal(Grudge{"n4": {"n1"}}) {
		t.Errorf("n4 drops n1: cut %v", cut)
	}

	// Close kills everything, paused included.
	if err := c.Pause(ctx, "n4"); err != nil {
		t.Fatal(err)
	}
	pids := []int{}
	for _, n := range c.Nodes() {
		pids = append(pids, c.Process(n).PID())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d survived Close", pid)
		}
	}
	if _, err := c.Start(ctx, "n1"); !errors.Is(err, ErrClosed) {
		t.Errorf("start after close: %v", err)
	}
}
