package checker

import (
	"fmt"
	"regexp"

	"github.com/roster-io/roster/jepsen/history"
)

// Availability checks that local operations stay available (SPEC
// guarantee 2): joins, leaves, reads and session calls are served by the
// node the client talks to, on both sides of any partition. The run is cut
// into phases at every nemesis record (probes aside); an operation belongs
// to the phase it was invoked in. Operations on a node that was killed,
// paused or out of the cluster at any time between their invocation and
// completion, or that restarted (or resumed, or was re-added, or wiped)
// within Options.Grace before them, are excluded: a node that is down is
// allowed to be unavailable.
//
// An operation that did not succeed is unavailable if it ended info (a
// timeout or a cut connection: the nemesis cuts links between nodes,
// never the client's path to its node, so a local operation has no
// excuse to time out) or fail, save a fail whose error says the request
// was refused on its merits (not found, expired, invalid: the workload's
// own doing), which is counted as rejected.
//
//   - unavailable: for some operation type, in some phase or over the
//     whole run, at least Options.MinUnavailable (default 3) operations
//     were unavailable and they were more than Options.MaxUnavailable
//     (default 5%) of that type's operations there.
//
// Counts: per type and outcome ("join/ok", "read/info", "read/excluded",
// "join/rejected") and per phase ("phase 03 partition:halves join/ok").
// Skipped when the history has no client operations.
type Availability struct{}

func (Availability) Name() string { return "availability" }

func (Availability) Description() string {
	return "local joins, leaves, reads and session calls succeed in every phase on nodes that are up"
}

func (Availability) Applies(h []history.Op, _ Options) string {
	for i := range h {
		if h[i].Type == history.Invoke && h[i].F != history.FWatch && h[i].F != history.FNemesis && h[i].F != history.FMetrics {
			return ""
		}
	}
	return "no client operations"
}

// rejected matches the errors of requests refused on their merits.
var rejected = regexp.MustCompile(`(?i)not[ _-]?found|expired|invalid|unknown session|\b(400|404|409|410|413|422)\b`)

func (Availability) Check(h []history.Op, o Options) Result {
	m := newModel(h, o)
	b := newBuilder("availability")
	var bounds []fault
	for _, f := range m.faults {
		if f.kind != "probe" {
			bounds = append(bounds, f)
		}
	}
	phaseOf := func(t int64) (int, string) {
		p, label := 0, "start"
		for i, f := range bounds {
			if f.time <= t {
				p, label = i+1, f.label()
			}
		}
		return p, fmt.Sprintf("phase %02d %s", p, label)
	}
	type tally struct{ total, bad int }
	phases := map[string]map[string]*tally{} // phase -> f -> tally
	whole := map[string]*tally{}
	var phaseNames []string
	for _, p := range m.pairs {
		inv := p.Invoke
		end := m.end
		if p.Completion != nil {
			end = p.Completion.Time
		}
		if m.downDuring(inv.Node, inv.Time, end) || m.recovering(inv.Node, inv.Time, end) {
			b.count(inv.F+"/excluded", 1)
			continue
		}
		out := string(p.Outcome())
		bad := p.Outcome() != history.OK
		if p.Outcome() == history.Fail && rejected.MatchString(p.Completion.Error) {
			out, bad = "rejected", false
		}
		b.count(inv.F+"/"+out, 1)
		_, name := phaseOf(inv.Time)
		b.count(name+" "+inv.F+"/"+out, 1)
		if phases[name] == nil {
			phases[name] = map[string]*tally{}
			phaseNames = append(phaseNames, name)
		}
		for _, t := range []map[string]*tally{phases[name], whole} {
			if t[inv.F] == nil {
				t[inv.F] = &tally{}
			}
			t[inv.F].total++
			if bad {
				t[inv.F].bad++
			}
		}
	}
	judge := func(where string, ts map[string]*tally) {
		for _, f := range sortedKeys(ts) {
			t := ts[f]
			if t.bad >= m.o.MinUnavailable && float64(t.bad) > m.o.MaxUnavailable*float64(t.total) {
				b.flag("unavailable", fmt.Sprintf("%s: %d of %d %s operations did not succeed", where, t.bad, t.total, f))
			}
		}
	}
	for _, name := range phaseNames {
		judge(name, phases[name])
	}
	judge("whole run", whole)
	return b.done()
}

// recovering reports whether node n came back (restart, resume, add,
// wipe) within the grace before [a, b] or during it.
func (m *model) recovering(n string, a, b int64) bool {
	if anyIn(m.restarts[n], a-m.grace, b) {
		return true
	}
	for _, s := range m.down[n] {
		if s.to != never && a-m.grace < s.to && s.to <= b {
			return true
		}
	}
	return false
}
