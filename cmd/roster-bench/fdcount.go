package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
)

// fdCounter counts memberlist's failure-detector log lines across a
// cluster: how often a node suspected a peer, declared one dead, or had to
// refute a suspicion about itself. On a healthy loopback cluster all three
// should be zero outside of the partition experiment.
type fdCounter struct {
	probeTimeouts, suspects, deaths, refutes atomic.Int64
}

// FD is a snapshot of an fdCounter.
type FD struct {
	ProbeTimeouts int64 `json:"probe_timeouts"`
	Suspects      int64 `json:"suspicions"`
	Deaths        int64 `json:"declared_dead"`
	Refutes       int64 `json:"refutations"`
}

func (c *fdCounter) snapshot() FD {
	return FD{c.probeTimeouts.Load(), c.suspects.Load(), c.deaths.Load(), c.refutes.Load()}
}

func (f FD) String() string {
	return fmt.Sprintf("%d/%d/%d/%d", f.ProbeTimeouts, f.Suspects, f.Deaths, f.Refutes)
}

// countingHandler counts failure-detector messages and forwards records
// to inner when inner wants them.
type countingHandler struct {
	inner slog.Handler
	c     *fdCounter
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	m := r.Message
	if strings.Contains(m, "memberlist: ") {
		switch {
		case strings.Contains(m, "Failed UDP ping") && strings.Contains(m, "timeout reached"):
			h.c.probeTimeouts.Add(1)
		case strings.Contains(m, "memberlist: Suspect "):
			h.c.suspects.Add(1)
		case strings.Contains(m, "memberlist: Marking ") && strings.Contains(m, "as failed"):
			h.c.deaths.Add(1)
		case strings.Contains(m, "Refuting a suspect") || strings.Contains(m, "Refuting a dead"):
			h.c.refutes.Add(1)
		}
	}
	if h.inner.Enabled(ctx, r.Level) {
		return h.inner.Handle(ctx, r)
	}
	return nil
}

func (h *countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &countingHandler{h.inner.WithAttrs(as), h.c}
}

func (h *countingHandler) WithGroup(g string) slog.Handler {
	return &countingHandler{h.inner.WithGroup(g), h.c}
}
