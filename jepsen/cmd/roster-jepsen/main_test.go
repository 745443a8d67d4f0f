package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roster-io/roster/jepsen/netns"
	"github.com/stretchr/testify/require"
)

// lastLine is the verdict line of a run's output.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestInProcRunAndAnalyze runs the suite in-process (no root) on three
// embedded nodes under partitions, kills and pauses, then re-checks the
// stored run with analyze: both print the same verdict, VALID, and the run
// left its files.
func TestInProcRunAndAnalyze(t *testing.T) {
	base := t.TempDir()
	var out, errOut bytes.Buffer
	// --grace 6s: a node restarted by the kill nemesis catches up in
	// 1.5-2 s here (seeds 1-40: no misses at a 2 s grace, 3 runs of 40
	// at 1.5 s); under -race in CI, beside other packages' builds, that
	// once went past the local profile's 3 s and was flagged a miss.
	code := run(context.Background(), []string{"test", "--inproc", "--nodes", "3", "--time", "6", "--seed", "3",
		"--workload", "join-leave", "--nemesis", "partition,kill,pause", "--every", "1s", "--min-hold", "500ms", "--max-hold", "2s",
		"--settle", "30s", "--rate", "200", "--grace", "6s", "--store", base}, &out, &errOut)
	require.Equal(t, 0, code, "%s\n%s", out.String(), errOut.String())
	require.Equal(t, "VALID", lastLine(out.String()))
	latest := filepath.Join(base, "latest")
	for _, f := range []string{"history.jsonl", "results.json", "summary.md", "latency.png", "timeline.html"} {
		_, err := os.Stat(filepath.Join(latest, f))
		require.NoError(t, err, f)
	}
	var again bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"analyze", latest}, &again, &errOut))
	require.Equal(t, "VALID", lastLine(again.String()))
}

// TestInProcCatchesCorruptHistory: analyze of a stored run whose history
// was tampered with (an acknowledged join removed from every final read)
// prints INVALID naming the lost join, with exit status 1: the checkers
// read the stored history, not a cached verdict.
func TestInProcCatchesCorruptHistory(t *testing.T) {
	base := t.TempDir()
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"test", "--inproc", "--nodes", "3", "--time", "3", "--seed", "5",
		"--workload", "join-set", "--nemesis", "none", "--rate", "100", "--settle", "20s", "--store", base}, &out, &errOut)
	require.Equal(t, 0, code, "%s\n%s", out.String(), errOut.String())
	latest := filepath.Join(base, "latest")
	path := filepath.Join(latest, "history.jsonl")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	// The first acknowledged join's id, then every final read without it.
	var id string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"type":"ok"`) && strings.Contains(line, `"f":"join"`) {
			i := strings.Index(line, `"id":"`) + len(`"id":"`)
			id = line[i : i+strings.IndexByte(line[i:], '"')]
			break
		}
	}
	require.NotEmpty(t, id)
	var kept []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"f":"final-read"`) {
			line = dropMember(line, id)
		}
		kept = append(kept, line)
	}
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(kept, "\n")), 0o644))
	var again bytes.Buffer
	code = run(context.Background(), []string{"analyze", latest}, &again, &errOut)
	require.Equal(t, 1, code, again.String())
	require.Contains(t, lastLine(again.String()), "INVALID")
	require.Contains(t, lastLine(again.String()), "lost")
}

// dropMember removes the member with id from a JSON history line's member
// list (the test's own crude edit: members are {"group":..,"id":..,...}).
func dropMember(line, id string) string {
	key := `"id":"` + id + `"`
	i := strings.Index(line, key)
	if i < 0 {
		return line
	}
	start := strings.LastIndex(line[:i], "{")
	end := i + strings.IndexByte(line[i:], '}') + 1
	if end < len(line) && line[end] == ',' {
		end++
	} else if start > 0 && line[start-1] == ',' {
		start--
	}
	return line[:start] + line[end:]
}

// TestProcessScenario is the process-level scenario CI runs: five real
// roster serve processes, built with the race detector, each in a network
// namespace, under the mixed nemesis for 75 s (local profile), must be
// VALID, hygiene included (no DATA RACE, panic or fatal error in their
// logs). It needs root, ip and iptables, and skips without them.
//
// The workload is join-leave, the one with the most to check (lost joins
// and resurrected leaves). It ran join-set for a while: a restarted node
// used to serve its warm cache of other owners before catching up, which
// could show a member left just before the kill (resurrected, found by
// this suite); restarted nodes now hide their cache until caught up with
// each owner (registry.Config.ConfirmGrace).
func TestProcessScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the process-level scenario takes minutes")
	}
	if err := netns.Available(); err != nil {
		t.Skipf("the process-level scenario needs root, ip and iptables: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "roster")
	build := exec.Command("go", "build", "-race", "-o", bin, "github.com/roster-io/roster/cmd/roster")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -race: %v\n%s", err, b)
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"test", "--bin", bin, "--nodes", "5", "--time", "75", "--seed", "1",
		"--profile", "local", "--workload", "join-leave", "--nemesis", "mixed", "--rate", "150", "--settle", "60s",
		"--store", filepath.Join(dir, "store")}, &out, &errOut)
	t.Logf("\n%s", out.String())
	if code != 0 {
		summary, _ := os.ReadFile(filepath.Join(dir, "store", "latest", "summary.md"))
		t.Fatalf("exit %d, verdict %q\n%s\n%s", code, lastLine(out.String()), errOut.String(), summary)
	}
	require.Equal(t, "VALID", lastLine(out.String()))
}
