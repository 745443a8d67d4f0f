package registry

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/stretchr/testify/require"
)

// helperNodeEnv makes the test binary run one registry node (see
// runHelperNode) instead of the tests: a real process to kill -9.
const helperNodeEnv = "ROSTER_TEST_HELPER_NODE"

// runHelperNode runs a node with DataDir from the environment, optionally
// joins members, prints "READY <incarnation> <addr>" and waits to be killed.
func runHelperNode() {
	cfg := LocalConfig(os.Getenv("ROSTER_NAME"))
	cfg.Scopes = []string{"chat"}
	cfg.DataDir = os.Getenv("ROSTER_DATA_DIR")
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if s := os.Getenv("ROSTER_SEEDS"); s != "" {
		cfg.Seeds = strings.Split(s, ",")
	}
	ctx := context.Background()
	r, err := Open(ctx, cfg)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	if os.Getenv("ROSTER_JOIN") == "1" {
		s, err := r.CreateSession(ctx, time.Hour)
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(2)
		}
		for i := 0; i < 10; i++ {
			if _, err := r.Join(ctx, "chat", "room", fmt.Sprintf("d%d", i), Meta{"i": strconv.Itoa(i)}, Durable()); err != nil {
				fmt.Println("ERROR", err)
				os.Exit(2)
			}
		}
		_, err = r.Join(ctx, "chat", "room", "s0", nil, InSession(s.ID))
		if err == nil {
			_, err = r.Join(ctx, "chat", "room", "p0", nil) // in-process: gone with the process
		}
		if err == nil {
			// Joined and then left: must stay gone after the restart.
			_, err = r.Join(ctx, "chat", "room", "gone", nil, Durable())
			if err == nil {
				err = r.Leave(ctx, "chat", "room", "gone")
			}
		}
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(2)
		}
	}
	fmt.Println("READY", r.Incarnation(), r.Addr())
	select {}
}

func startHelper(t *testing.T, name, dir string, join bool, seeds ...string) (*exec.Cmd, uint64) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperNodeEnv+"=1", "ROSTER_NAME="+name, "ROSTER_DATA_DIR="+dir,
		"ROSTER_SEEDS="+strings.Join(seeds, ","), "ROSTER_JOIN="+map[bool]string{true: "1", false: "0"}[join])
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(out)
	lines := make(chan string, 1)
	go func() {
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case l := <-lines:
		f := strings.Fields(l)
		require.Equal(t, "READY", f[0], "helper node: %s", l)
		inc, err := strconv.ParseUint(f[1], 10, 64)
		require.NoError(t, err)
		return cmd, inc
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		t.Fatal("helper node did not start")
	}
	return nil, 0
}

// TestDurableMembersSurviveKill9: a node process owning durable and
// session members is killed with SIGKILL and restarted on the same data
// directory, without seeds: it rejoins through its persisted peers, its
// durable and session members come back under the new incarnation, its
// in-process and left members do not, and the other node keeps nothing of
// the old incarnation.
func TestDurableMembersSurviveKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	ctx := context.Background()
	a := openLocal(t, "a", 1)
	defer func() { require.NoError(t, a.Close(ctx)) }()
	dir := filepath.Join(t.TempDir(), "b")

	b1, inc1 := startHelper(t, "b", dir, true, a.Addr())
	want := "d0@b,d1@b,d2@b,d3@b,d4@b,d5@b,d6@b,d7@b,d8@b,d9@b,p0@b,s0@b"
	eventually(t, "a sees b's members", func() bool { return membersOf(a, "room") == want })
	// Let b persist its peer list (CacheInterval) before killing it.
	time.Sleep(a.cfg.CacheInterval + 500*time.Millisecond)
	require.NoError(t, b1.Process.Signal(syscall.SIGKILL))
	_ = b1.Wait()
	eventually(t, "b's members hidden after the kill", func() bool { return membersOf(a, "room") == "" })

	b2, inc2 := startHelper(t, "b", dir, false) // no seeds: persisted peers only
	defer func() {
		_ = b2.Process.Kill()
		_ = b2.Wait()
	}()
	require.Greater(t, inc2, inc1, "a restart takes a new, higher incarnation")
	eventually(t, "durable and session members back, under the new incarnation", func() bool {
		return membersOf(a, "room") == "d0@b,d1@b,d2@b,d3@b,d4@b,d5@b,d6@b,d7@b,d8@b,d9@b,s0@b"
	})
	ms, err := a.Members("chat", "room")
	require.NoError(t, err)
	for _, m := range ms {
		require.Equal(t, inc2, m.Incarnation, "%s", m.ID)
		require.True(t, m.Confirmed)
	}
	require.Equal(t, "1", ms[1].Meta["i"])
	sc, _ := a.node.Scope("chat")
	sc.Read(func(st *crdt.State) {
		for _, rep := range st.Replicas() {
			require.NotEqual(t, crdt.ReplicaID{Name: "b", Incarnation: inc1}, rep.ID, "old incarnation kept")
		}
	})
}

// TestRestartFromCache: a node whose cache holds 100,000 remote entries
// restarts; after missing 1,000 changes while down it catches up by
// transferring about those changes, not the scope, and never shows what
// left meanwhile.
func TestRestartFromCache(t *testing.T) {
	if testing.Short() {
		t.Skip("100k members")
	}
	ctx := context.Background()
	const total, groups = 100_000, 1000
	owner := openLocal(t, "owner", 1)
	defer func() { require.NoError(t, owner.Close(ctx)) }()
	for i := 0; i < total; i++ {
		_, err := owner.Join(ctx, "chat", fmt.Sprintf("g%03d", i%groups), fmt.Sprintf("m%06d", i), nil)
		require.NoError(t, err)
	}
	count := func(r *Registry) int {
		n := 0
		sc, _ := r.node.Scope("chat")
		sc.Read(func(st *crdt.State) {
			for _, g := range st.Groups() {
				n += st.Visible(g)
			}
		})
		return n
	}

	dir := t.TempDir()
	open := func() *Registry {
		cfg := LocalConfig("cache")
		cfg.Scopes = []string{"chat", "games"}
		cfg.DataDir = dir
		cfg.Seeds = []string{owner.Addr()}
		r, err := Open(ctx, cfg)
		require.NoError(t, err)
		return r
	}
	c := open()
	require.Eventually(t, func() bool { return count(c) == total }, time.Minute, 10*time.Millisecond, "cache node receives the scope")
	require.NoError(t, c.Close(ctx))

	// 1,000 changes while it is down: 500 leaves, 500 joins.
	for i := 0; i < 500; i++ {
		require.NoError(t, owner.Leave(ctx, "chat", fmt.Sprintf("g%03d", i%groups), fmt.Sprintf("m%06d", i)))
		_, err := owner.Join(ctx, "chat", "new", fmt.Sprintf("n%03d", i), nil)
		require.NoError(t, err)
	}
	fullBytes := 0
	sc, _ := owner.node.Scope("chat")
	sc.Locked(func(st *crdt.State) {
		for _, d := range st.Snapshot(crdt.DefaultChunkBytes) {
			fullBytes += len(crdt.EncodeDelta(d))
		}
	})
	before := owner.Stats().RepairBytesSent
	beforeN := owner.Stats().RepairDeltasSent

	start := time.Now()
	c = open()
	defer func() { require.NoError(t, c.Close(ctx)) }()
	// Hidden until caught up with the owner (ConfirmGrace 0): m000000,
	// left while the node was down, is never shown again.
	eventually(t, "caught up", func() bool {
		for _, m := range mustMembers(t, c, "g000") {
			require.NotEqual(t, "m000000", m.ID, "a member left before the restart shown")
		}
		return count(c) == total && membersOf(c, "new") != "" && len(mustMembers(t, c, "new")) == 500
	})
	caughtUp := time.Since(start)
	moved := owner.Stats().RepairBytesSent - before
	t.Logf("repair deltas sent: %d", owner.Stats().RepairDeltasSent-beforeN)
	t.Logf("restart caught up with %d changes in %v moving %d repair bytes (full scope: %d bytes, %.1f%%)",
		1000, caughtUp.Round(time.Millisecond), moved, fullBytes, 100*float64(moved)/float64(fullBytes))
	require.Less(t, moved, int64(fullBytes)/20, "catch-up moved more than 5% of the full scope")
	ms, err := c.Members("chat", "g500")
	require.NoError(t, err)
	require.NotEmpty(t, ms)
	require.True(t, ms[0].Confirmed)
}

// BenchmarkDurableJoin measures fsynced durable joins on one node with 1
// and 64 concurrent writers (group commit shares fsyncs).
func BenchmarkDurableJoin(b *testing.B) {
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			cfg := LocalConfig("bench")
			cfg.DataDir = b.TempDir()
			r, err := Open(context.Background(), cfg)
			require.NoError(b, err)
			defer func() { require.NoError(b, r.Close(context.Background())) }()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						if _, err := r.Join(context.Background(), "default", "g", fmt.Sprintf("m%d", i), nil, Durable()); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "joins/s")
		})
	}
}
