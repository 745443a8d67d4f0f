package workload

import (
	"sync"
	"time"

	"github.com/roster-io/roster/jepsen/history"
)

// Recorder collects a run's history from many goroutines: each entry gets
// the next index and the time since the recorder was made (monotonic).
type Recorder struct {
	mu    sync.Mutex
	start time.Time
	ops   []history.Op
}

// NewRecorder starts a history now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Start is when the history began.
func (r *Recorder) Start() time.Time { return r.start }

// Since is the history time of t.
func (r *Recorder) Since(t time.Time) int64 { return int64(t.Sub(r.start)) }

// Add records op (its Index and Time are set here) and returns it.
func (r *Recorder) Add(op history.Op) history.Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	op.Index = int64(len(r.ops))
	op.Time = int64(time.Since(r.start))
	r.ops = append(r.ops, op)
	return op
}

// Ops returns a copy of the history so far.
func (r *Recorder) Ops() []history.Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]history.Op(nil), r.ops...)
}

// Len is the number of entries so far.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops)
}
