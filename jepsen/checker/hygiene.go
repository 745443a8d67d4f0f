package checker

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/roster-io/roster/jepsen/history"
)

// Hygiene checks the nodes themselves (SPEC guarantee 9: nothing crashes a
// node):
//
//   - panic, fatal-error, data-race: a node's log (Options.Logs, a path,
//     or Options.LogText, the contents) has a line containing "panic:",
//     "fatal error:" or "DATA RACE";
//   - goroutine-growth, memory-growth: over one process lifetime of a
//     node (between its restarts) with at least minSamples metrics
//     samples, the peak of go_goroutines (process_resident_memory_bytes)
//     in the last quarter of the lifetime exceeds Options.Growth (default
//     2) times the first quarter's peak plus Options.GoroutineSlack
//     (default 50) (Options.MemorySlack, default 64 MiB). The slack keeps
//     an idle node that warms up from counting as a leak; a leak of a
//     goroutine or a buffer per operation still doubles over a run.
//
// A log that cannot be read makes the result unknown. Skipped when there
// are neither logs nor metrics samples.
type Hygiene struct{}

// minSamples is the fewest metrics samples a lifetime needs to be judged
// (two per quarter).
const minSamples = 8

func (Hygiene) Name() string { return "hygiene" }

func (Hygiene) Description() string {
	return "no panic, fatal error or data race in node logs; goroutines and memory bounded over the run"
}

func (Hygiene) Applies(h []history.Op, o Options) string {
	if len(o.Logs)+len(o.LogText) > 0 {
		return ""
	}
	for i := range h {
		if h[i].F == history.FMetrics && len(h[i].Value.Metrics) > 0 {
			return ""
		}
	}
	return "no node logs and no metrics samples"
}

func (Hygiene) Check(h []history.Op, o Options) Result {
	m := newModel(h, o)
	b := newBuilder("hygiene")
	for _, n := range sortedKeys(o.Logs) {
		f, err := os.Open(o.Logs[n])
		if err != nil {
			b.unknownf("cannot read the log of %s: %v", n, err)
			continue
		}
		if err := scanLog(b, n, f); err != nil {
			b.unknownf("cannot read the log of %s: %v", n, err)
		}
		f.Close()
	}
	for _, n := range sortedKeys(o.LogText) {
		if err := scanLog(b, n, strings.NewReader(o.LogText[n])); err != nil {
			b.unknownf("cannot read the log of %s: %v", n, err)
		}
	}
	m.judgeMetrics(b)
	return b.done()
}

// logPatterns are the lines that betray a crash or a race.
var logPatterns = []struct{ needle, anomaly string }{
	{"panic:", "panic"},
	{"fatal error:", "fatal-error"},
	{"DATA RACE", "data-race"},
}

func scanLog(b *builder, node string, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		for _, p := range logPatterns {
			if strings.Contains(text, p.needle) {
				if len(text) > 200 {
					text = text[:200] + "..."
				}
				b.flag(p.anomaly, fmt.Sprintf("%s log line %d: %s", node, line, text))
			}
		}
	}
	b.count("log-lines", line)
	return sc.Err()
}

// sample is one metrics sample of a node.
type sample struct {
	t int64
	v map[string]float64
}

// judgeMetrics bounds goroutines and resident memory per lifetime.
func (m *model) judgeMetrics(b *builder) {
	byNode := map[string][]sample{}
	for i := range m.ops {
		op := &m.ops[i]
		if op.F == history.FMetrics && len(op.Value.Metrics) > 0 {
			byNode[op.Node] = append(byNode[op.Node], sample{op.Time, op.Value.Metrics})
		}
	}
	judged := 0
	for _, n := range sortedKeys(byNode) {
		ss := byNode[n]
		b.count("metrics-samples", len(ss))
		sort.SliceStable(ss, func(i, j int) bool { return ss[i].t < ss[j].t })
		cuts := append([]int64(nil), m.restarts[n]...)
		sort.Slice(cuts, func(i, j int) bool { return cuts[i] < cuts[j] })
		start := 0
		for i := 0; i <= len(ss); i++ {
			if i < len(ss) && !anyIn(cuts, ss[max(i-1, 0)].t, ss[i].t) {
				continue
			}
			for _, lim := range []struct {
				metric, anomaly string
				slack           float64
			}{
				{"go_goroutines", "goroutine-growth", m.o.GoroutineSlack},
				{"process_resident_memory_bytes", "memory-growth", m.o.MemorySlack},
			} {
				if m.growth(b, n, ss[start:i], lim.metric, lim.anomaly, lim.slack) {
					judged++
				}
			}
			start = i
		}
	}
	if judged == 0 && len(byNode) > 0 {
		b.note("no process lifetime has %d metrics samples: growth not judged", minSamples)
	}
}

// growth judges one metric over one lifetime's samples; it reports
// whether there were enough to judge.
func (m *model) growth(b *builder, n string, ss []sample, metric, anomaly string, slack float64) bool {
	var xs []sample
	for _, s := range ss {
		if _, ok := s.v[metric]; ok {
			xs = append(xs, s)
		}
	}
	if len(xs) < minSamples {
		return false
	}
	t0, t1 := xs[0].t, xs[len(xs)-1].t
	q := (t1 - t0) / 4
	first, last := 0.0, 0.0
	for _, s := range xs {
		if s.t <= t0+q {
			first = max(first, s.v[metric])
		}
		if s.t >= t1-q {
			last = max(last, s.v[metric])
		}
	}
	if bound := m.o.Growth*first + slack; last > bound {
		b.flag(anomaly, fmt.Sprintf("%s %s: last-quarter peak %.0f over %.0f (first-quarter peak %.0f) between %s and %s",
			n, metric, last, bound, first, at(t0), at(t1)))
	}
	return true
}
