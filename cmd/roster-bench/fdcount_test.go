package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestTapHandlers: the failure-detector count sees memberlist's lines at
// every level, even those the inner handler drops; the log tally sees
// warnings and errors only; both forward what the inner handler wants.
func TestTapHandlers(t *testing.T) {
	var buf bytes.Buffer
	inner := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})
	var fd fdCounter
	tally := &logTally{counts: map[string]int{}}
	log := slog.New(tally.wrap(&tapHandler{inner: inner, min: allLevels, see: fd.count})).With("node", "n1")
	log.Debug("[DEBUG] memberlist: Suspect n2 has failed, no acks received")
	log.Info("[INFO] memberlist: Marking n3 as failed, suspect timeout reached")
	log.Warn("peer failed", "err", "boom")
	log.Info("ordinary")
	if got := fd.snapshot(); got != (FD{Suspects: 1, Deaths: 1}) {
		t.Fatalf("fd counts %+v", got)
	}
	total, top := tally.top(5)
	if total != 1 || len(top) != 1 || !strings.Contains(top[0].Line, "peer failed") {
		t.Fatalf("tally %d %+v", total, top)
	}
	out := buf.String()
	if strings.Contains(out, "Suspect") || !strings.Contains(out, "Marking n3") || !strings.Contains(out, "ordinary") || !strings.Contains(out, "node=n1") {
		t.Fatalf("forwarded:\n%s", out)
	}
}
