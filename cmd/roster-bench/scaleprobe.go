package main

// What the scale experiment measures of its own process (heap, resident
// set, mutex wait, scheduling latency) and of the nodes' logs (warnings
// counted by message), split from scale.go by concern.

import (
	"log/slog"
	"os"
	"regexp"
	"runtime"
	"runtime/metrics"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// --- process measurements --------------------------------------------------------

// liveHeap is the Go heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// rssBytes is the process's resident set size (Linux; 0 elsewhere).
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// mutexWait is the time goroutines have spent waiting for a sync.Mutex
// or RWMutex since the process started (runtime/metrics).
func mutexWait() time.Duration {
	s := []metrics.Sample{{Name: "/sync/mutex/wait/total:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return time.Duration(s[0].Value.Float64() * float64(time.Second))
}

const schedMetric = "/sched/latencies:seconds"

// schedHist is a copy of the runtime's histogram of scheduling latencies
// (time goroutines spent runnable before running).
func schedHist() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: schedMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	h := s[0].Value.Float64Histogram()
	return &metrics.Float64Histogram{Counts: slices.Clone(h.Counts), Buckets: h.Buckets}
}

// schedQuantiles returns the p50 and p99 of the latencies recorded between
// two snapshots (each the upper bound of its bucket).
func schedQuantiles(a, b *metrics.Float64Histogram) (Dur, Dur) {
	if a == nil || b == nil || len(a.Counts) != len(b.Counts) {
		return 0, 0
	}
	d := make([]uint64, len(b.Counts))
	var total uint64
	for i := range d {
		d[i] = b.Counts[i] - a.Counts[i]
		total += d[i]
	}
	q := func(f float64) Dur {
		if total == 0 {
			return 0
		}
		want := uint64(f*float64(total) + 0.5)
		var seen uint64
		for i, c := range d {
			seen += c
			if seen >= max(want, 1) {
				hi := b.Buckets[i+1]
				if hi > 1e9 { // the last bucket is open-ended
					hi = b.Buckets[i]
				}
				return Dur(time.Duration(hi * float64(time.Second)))
			}
		}
		return 0
	}
	return q(0.50), q(0.99)
}

// --- logs ------------------------------------------------------------------

// logTally counts the warnings and errors the nodes log (memberlist's
// included), by line with names, addresses and numbers blanked out, to
// say what went wrong when a cluster does not form.
type logTally struct {
	mu     sync.Mutex
	counts map[string]int
}

func (t *logTally) wrap(h slog.Handler) slog.Handler {
	return &tapHandler{inner: h, min: slog.LevelWarn, see: t.add}
}

var (
	tallyNode   = regexp.MustCompile(`b\d+\.\d+\.n\d+`)
	tallyNumber = regexp.MustCompile(`[0-9][0-9.:]*`)
)

func (t *logTally) add(r slog.Record) {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			line += ": " + a.Value.String()
		}
		return true
	})
	line = tallyNumber.ReplaceAllString(tallyNode.ReplaceAllString(line, "NODE"), "#")
	if len(line) > 140 {
		line = line[:140] + "…"
	}
	t.mu.Lock()
	t.counts[line]++
	t.mu.Unlock()
}

// top returns how many lines were counted and the k most frequent kinds.
func (t *logTally) top(k int) (int, []Tally) {
	t.mu.Lock()
	defer t.mu.Unlock()
	total := 0
	var out []Tally
	for l, c := range t.counts {
		total += c
		out = append(out, Tally{l, c})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Line < out[j].Line
	})
	return total, out[:min(k, len(out))]
}
