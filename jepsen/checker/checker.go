package checker

import (
	"errors"
	"fmt"
	"time"

	"github.com/roster-io/roster/jepsen/history"
)

// ErrChecker reports a checker that cannot run (an unknown name).
var ErrChecker = errors.New("checker: invalid checker")

// Options tune the checkers. The zero value is usable: every field has a
// documented default.
type Options struct {
	// Grace is how long a node may take to reflect a change it can learn
	// of: after a join is acknowledged, after a fault ends (heal, resume,
	// restart, add), after a node last reported an owner down. Default
	// 3 s.
	Grace time.Duration
	// StablePolls is how many final reads in a row each live node must
	// return unchanged for its state to count as stable. Default 2.
	StablePolls int
	// MaxUnavailable is the share of operations of one type, in one phase
	// (or the whole run), on nodes that were up, allowed not to succeed
	// (fail or info) before availability flags it. Default 0.05.
	MaxUnavailable float64
	// MinUnavailable is the number of operations that must fail before a
	// share counts at all (a single timeout in a phase of ten reads is
	// noise). Default 3.
	MinUnavailable int
	// Growth bounds resource growth in hygiene: the last quarter's peak
	// of goroutines (resident memory) may be at most Growth times the
	// first quarter's plus GoroutineSlack (MemorySlack). Default 2.
	Growth float64
	// GoroutineSlack and MemorySlack are the absolute allowances added
	// to Growth's bound (defaults 50 goroutines and 64 MiB).
	GoroutineSlack float64
	MemorySlack    float64
	// Logs maps a node to the path of its log file; LogText maps a node
	// to its log's contents (in-process runs, tests). Hygiene reads both.
	Logs    map[string]string
	LogText map[string]string
	// Checkers restricts Check to these checker names (all when empty).
	Checkers []string
}

// withDefaults fills the zero fields of o.
func (o Options) withDefaults() Options {
	if o.Grace <= 0 {
		o.Grace = 3 * time.Second
	}
	if o.StablePolls <= 0 {
		o.StablePolls = 2
	}
	if o.MaxUnavailable <= 0 {
		o.MaxUnavailable = 0.05
	}
	if o.MinUnavailable <= 0 {
		o.MinUnavailable = 3
	}
	if o.Growth <= 0 {
		o.Growth = 2
	}
	if o.GoroutineSlack <= 0 {
		o.GoroutineSlack = 50
	}
	if o.MemorySlack <= 0 {
		o.MemorySlack = 64 << 20
	}
	return o
}

// Checker judges one aspect of a history.
type Checker interface {
	// Name is the checker's name (Result.Checker), e.g. "set".
	Name() string
	// Description is one line for `roster-jepsen list`.
	Description() string
	// Applies says why the checker has nothing to judge in h ("" when
	// it has): Check skips it then and records the reason.
	Applies(h []history.Op, o Options) string
	// Check judges h.
	Check(h []history.Op, o Options) Result
}

// All returns every checker, in the order Check runs them.
func All() []Checker {
	return []Checker{
		Convergence{}, Set{}, OwnerVisibility{}, Watch{},
		Persistence{}, Availability{}, Hygiene{},
	}
}

// ByName returns the checker called name.
func ByName(name string) (Checker, error) {
	for _, c := range All() {
		if c.Name() == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: no checker named %q", ErrChecker, name)
}

// Check runs every checker of All (or of o.Checkers) that applies to h and
// composes their results. A checker whose input is absent from the
// history (no watch events, no kills, no logs or metrics) is skipped and
// named in Report.Skipped with the reason; convergence and set always
// apply: without final reads they are unknown, since every run must end
// with them.
func Check(h []history.Op, o Options) Report {
	want := map[string]bool{}
	for _, n := range o.Checkers {
		want[n] = true
	}
	var results []Result
	skipped := map[string]string{}
	for _, c := range All() {
		if len(want) > 0 && !want[c.Name()] {
			continue
		}
		if why := c.Applies(h, o); why != "" {
			skipped[c.Name()] = why
			continue
		}
		results = append(results, c.Check(h, o))
	}
	r := Compose(results...)
	if len(skipped) > 0 {
		r.Skipped = skipped
	}
	return r
}
