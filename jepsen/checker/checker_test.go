package checker

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/roster-io/roster/jepsen/history"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the testdata/**/*.want golden results")

// cases are the hand-written histories of testdata/<dir>/<name>.jsonl,
// judged by the checker the directory names, with the verdict and the
// anomalies each must get. The full results are golden files next to
// them (<name>.want, go test -rewrite).
var cases = []struct {
	file      string
	valid     Validity
	anomalies []string
	opts      Options
}{
	{"convergence/converged", Valid, nil, Options{}},
	{"convergence/diverged", Invalid, []string{"diverged"}, Options{}},
	{"convergence/unstable", Invalid, []string{"unstable"}, Options{}},
	{"convergence/no-final-reads", Unknown, nil, Options{}},
	{"convergence/killed-node", Valid, nil, Options{}},
	// After the final heal, two nodes report a live peer dead for one
	// read (a suspicion begun under the cut ran out after it) and hide its
	// member, then show it again: settling, not unstable.
	{"convergence/settling", Valid, nil, Options{}},
	// The same flap while they report the peer alive: unstable.
	{"convergence/flap-alive", Invalid, []string{"unstable"}, Options{}},
	// Still reporting the peer dead in their last reads: judged, and the
	// last reads differ.
	{"convergence/settling-never", Invalid, []string{"diverged"}, Options{}},

	{"set/valid", Valid, nil, Options{}},
	// Two reads of one node that overlap: the later-invoked one may be
	// served first (it still shows the left member): no resurrection.
	{"set/overlapping-reads", Valid, nil, Options{}},
	{"set/never-read", Unknown, nil, Options{}},
	{"set/concurrent-read", Valid, nil, Options{}},
	{"set/phantom", Invalid, []string{"phantoms"}, Options{}},
	{"set/present-then-missing", Invalid, []string{"lost"}, Options{}},
	{"set/flutter", Valid, nil, Options{}},
	{"set/duplicate", Invalid, []string{"duplicates"}, Options{}},
	{"set/resurrected", Invalid, []string{"resurrected"}, Options{}},
	{"set/restart-catching-up", Valid, nil, Options{}},
	{"set/restart-cache-resurrected", Invalid, []string{"resurrected"}, Options{}},
	{"set/left-in-final", Invalid, []string{"resurrected"}, Options{}},
	{"set/indeterminate", Valid, nil, Options{}},
	{"set/rejoin", Valid, nil, Options{}},
	{"set/rejoin-lost", Invalid, []string{"lost"}, Options{}},
	{"set/session-expired", Valid, nil, Options{}},
	{"set/wiped", Valid, nil, Options{}},

	{"owner/valid", Valid, nil, Options{}},
	{"owner/ghost", Invalid, []string{"ghosts"}, Options{}},
	{"owner/miss", Invalid, []string{"misses"}, Options{}},
	{"owner/local-miss", Invalid, []string{"misses"}, Options{}},
	{"owner/grace", Valid, nil, Options{}},

	{"watch/valid", Valid, nil, Options{}},
	{"watch/reconnect", Valid, nil, Options{}},
	// The watched node restarted: the watcher learns of it only when it
	// reconnects (its disconnect is recorded then), and a member that came
	// and went meanwhile is in no event; the resync stands for it.
	{"watch/restart-gap", Valid, nil, Options{}},
	{"watch/duplicated-event", Invalid, []string{"watch-duplicated"}, Options{}},
	{"watch/dropped-event", Invalid, []string{"watch-dropped", "watch-final-mismatch"}, Options{}},
	{"watch/alternation", Invalid, []string{"watch-alternation"}, Options{}},
	{"watch/reordered", Invalid, []string{"watch-reordered"}, Options{}},
	{"watch/disagree", Invalid, []string{"watch-disagree"}, Options{}},

	{"persistence/valid", Valid, nil, Options{}},
	{"persistence/lost-on-restart", Invalid, []string{"lost-on-restart"}, Options{}},
	{"persistence/restored-leave", Invalid, []string{"restored-leave"}, Options{}},
	{"persistence/wiped-returned", Invalid, []string{"wiped-returned"}, Options{}},

	{"availability/valid", Valid, nil, Options{}},
	{"availability/unavailable", Invalid, []string{"unavailable"}, Options{}},

	{"hygiene/valid", Valid, nil, Options{Logs: map[string]string{"n1": "testdata/hygiene/logs/clean.log"}}},
	{"hygiene/goroutine-growth", Invalid, []string{"goroutine-growth"}, Options{}},
	{"hygiene/panic", Invalid, []string{"panic"}, Options{Logs: map[string]string{"n2": "testdata/hygiene/logs/panic.log"}}},
	{"hygiene/race-and-fatal", Invalid, []string{"data-race", "fatal-error"}, Options{LogText: map[string]string{
		"n1": "==================\nWARNING: DATA RACE\nWrite at 0x00c000 by goroutine 7:\n",
		"n2": "fatal error: concurrent map writes\n",
	}}},
}

// checkerFor maps a testdata directory to its checker.
var checkerFor = map[string]string{
	"convergence":  "convergence",
	"set":          "set",
	"owner":        "owner-visibility",
	"watch":        "watch",
	"persistence":  "persistence",
	"availability": "availability",
	"hygiene":      "hygiene",
}

func TestCases(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			h, err := history.ReadFile(filepath.Join("testdata", tc.file+".jsonl"))
			require.NoError(t, err)
			c, err := ByName(checkerFor[strings.Split(tc.file, "/")[0]])
			require.NoError(t, err)
			require.Empty(t, c.Applies(h, tc.opts), "the checker must apply")
			res := c.Check(h, tc.opts)
			assert.Equal(t, tc.valid, res.Valid, "notes: %v examples: %v", res.Notes, res.Examples)
			assert.ElementsMatch(t, tc.anomalies, res.Anomalies, "examples: %v", res.Examples)
			golden(t, filepath.Join("testdata", tc.file+".want"), res)
		})
	}
}

// golden compares v, as indented JSON, with the file at path (written
// under -rewrite).
func golden(t *testing.T, path string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	require.NoError(t, err)
	got = append(got, '\n')
	if *rewrite {
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -rewrite to create it")
	assert.JSONEq(t, string(want), string(got), "golden %s (go test -rewrite)", path)
}

// TestEveryCheckerFailsAndPasses keeps the testdata honest: every checker
// has a case it finds valid and one it finds invalid.
func TestEveryCheckerFailsAndPasses(t *testing.T) {
	seen := map[string]map[Validity]bool{}
	for _, tc := range cases {
		name := checkerFor[strings.Split(tc.file, "/")[0]]
		if seen[name] == nil {
			seen[name] = map[Validity]bool{}
		}
		seen[name][tc.valid] = true
	}
	for _, c := range All() {
		assert.True(t, seen[c.Name()][Valid], "%s has no valid case", c.Name())
		assert.True(t, seen[c.Name()][Invalid], "%s has no invalid case", c.Name())
	}
}

func TestAllNamesAndDescriptions(t *testing.T) {
	names := map[string]bool{}
	for _, c := range All() {
		assert.False(t, names[c.Name()], "duplicate checker %s", c.Name())
		names[c.Name()] = true
		assert.NotEmpty(t, c.Description())
		assert.NotContains(t, c.Description(), "\n")
	}
	_, err := ByName("nope")
	assert.ErrorIs(t, err, ErrChecker)
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	assert.Equal(t, 3*time.Second, o.Grace)
	assert.Equal(t, 2, o.StablePolls)
	o = Options{Grace: time.Second}.withDefaults()
	assert.Equal(t, time.Second, o.Grace)
}

func TestCheckSkipsWhatTheHistoryLacks(t *testing.T) {
	h, err := history.ReadFile("testdata/owner/valid.jsonl")
	require.NoError(t, err)
	r := Check(h, Options{})
	assert.Equal(t, Valid, r.Valid, "%+v", r)
	assert.Equal(t, "VALID", r.Verdict())
	assert.Equal(t, 0, r.ExitCode())
	var ran []string
	for _, res := range r.Results {
		ran = append(ran, res.Checker)
	}
	assert.Equal(t, []string{"convergence", "set", "owner-visibility", "persistence", "availability"}, ran)
	assert.Contains(t, r.Skipped, "watch")
	assert.Contains(t, r.Skipped, "hygiene")

	r = Check(h, Options{Checkers: []string{"set"}})
	require.Len(t, r.Results, 1)
	assert.Equal(t, "set", r.Results[0].Checker)
	assert.Empty(t, r.Skipped)

	h, err = history.ReadFile("testdata/set/rejoin-lost.jsonl")
	require.NoError(t, err)
	r = Check(h, Options{})
	assert.Equal(t, "INVALID: diverged, lost", r.Verdict())
	assert.Equal(t, 1, r.ExitCode())
}
