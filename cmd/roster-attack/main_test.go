package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestAttacksLeaveTheVictimStanding runs every attack at a quarter of its
// size against a real roster serve built from this tree: each must leave
// the victim answering, listing its peer alive at its real incarnation and
// showing the peer's member, and the victim's peak resident set must stay
// within the bound. go run ./cmd/roster-attack runs them in full.
func TestAttacksLeaveTheVictimStanding(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts roster serve processes")
	}
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	code := run(options{scale: 0.25, hold: 2 * time.Second, maxRSS: 256}, out)
	b, _ := os.ReadFile(out.Name())
	t.Logf("\n%s", b)
	if code != 0 {
		t.Fatalf("exit status %d", code)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if last := lines[len(lines)-1]; !strings.HasSuffix(last, ": OK") {
		t.Fatalf("verdict %q", last)
	}
	for _, s := range steps {
		if !strings.Contains(string(b), s.name) {
			t.Errorf("attack %s did not run", s.name)
		}
	}
}
