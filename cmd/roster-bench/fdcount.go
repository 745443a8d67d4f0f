package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
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

// count counts one record if it is a failure-detector message.
func (c *fdCounter) count(r slog.Record) {
	m := r.Message
	if !strings.Contains(m, "memberlist: ") {
		return
	}
	switch {
	case strings.Contains(m, "Failed UDP ping") && strings.Contains(m, "timeout reached"):
		c.probeTimeouts.Add(1)
	case strings.Contains(m, "memberlist: Suspect "):
		c.suspects.Add(1)
	case strings.Contains(m, "memberlist: Marking ") && strings.Contains(m, "as failed"):
		c.deaths.Add(1)
	case strings.Contains(m, "Refuting a suspect") || strings.Contains(m, "Refuting a dead"):
		c.refutes.Add(1)
	}
}

// allLevels makes a tapHandler see records of every level.
const allLevels = slog.Level(math.MinInt32)

// tapHandler shows see every record at min or above, and forwards to
// inner the records inner wants: the failure-detector count taps every
// level, the scale experiment's log tally warnings and errors.
type tapHandler struct {
	inner slog.Handler
	min   slog.Level
	see   func(slog.Record)
}

func (h *tapHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min || h.inner.Enabled(ctx, l)
}

func (h *tapHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= h.min {
		h.see(r)
	}
	if h.inner.Enabled(ctx, r.Level) {
		return h.inner.Handle(ctx, r)
	}
	return nil
}

func (h *tapHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &tapHandler{h.inner.WithAttrs(as), h.min, h.see}
}

func (h *tapHandler) WithGroup(g string) slog.Handler {
	return &tapHandler{h.inner.WithGroup(g), h.min, h.see}
}
