package checker

import (
	"fmt"
	"maps"
	"math"
	"sort"
	"time"

	"github.com/roster-io/roster/jepsen/history"
)

// never is the completion time of an operation that never certainly
// completed (info, or still open at the end): it may take effect at any
// time after its invocation.
const never = math.MaxInt64

// key is a member's identity: (group, id, owner).
type key struct{ group, id, owner string }

func keyOf(m history.Member) key { return key{m.Group, m.ID, m.Owner} }

func (k key) String() string { return k.group + "/" + k.id + "@" + k.owner }

// read is one ok read (FRead or FFinalRead).
type read struct {
	node, group string
	final       bool
	inv, cmp    int64
	index       int64 // the invocation's index
	members     map[key]map[string]string
	list        []key // members in the order listed, once each
	dups        []key
	peers       map[string]string
}

// covers reports whether r shows group g.
func (r *read) covers(g string) bool { return r.group == "" || r.group == g }

// has reports whether r shows k.
func (r *read) has(k key) bool { _, ok := r.members[k]; return ok }

// mop is a join or a leave, invocation and outcome.
type mop struct {
	join     bool
	node     string
	inv, cmp int64 // cmp is never unless ok or fail
	ok, fail bool
	meta     map[string]string
	durable  bool
	session  string
	index    int64
}

// fault is one nemesis record.
type fault struct {
	time   int64
	index  int64
	kind   string
	name   string
	nodes  []string
	grudge map[string][]string
}

func (f fault) label() string {
	if f.name != "" {
		return f.kind + ":" + f.name
	}
	return f.kind
}

// span is a time interval [from, to).
type span struct {
	from, to int64
	kind     string
}

func (s span) contains(t int64) bool { return s.from <= t && t < s.to }

// session is what the history says of one session's life.
type session struct {
	id, node string
	ttl      int64
	// maybeEnd is the earliest time the session may have ended
	// (expired or closed); never when it certainly lived on.
	maybeEnd int64
	// closed is the completion time of an ok close (never if none).
	closed int64
}

// model is a history digested for the checkers.
type model struct {
	o        Options
	grace    int64
	ops      []history.Op
	pairs    []history.Pair
	reads    []*read // every ok read, by invocation time
	keys     map[key][]*mop
	keyOrder []key
	nodes    []string
	faults   []fault
	down     map[string][]span // kill→restart, pause→resume, leave→add
	cuts     []span            // partition or loss → heal
	ends     []int64           // heal, resume, restart, add, wipe
	wipes    map[string][]int64
	restarts map[string][]int64 // kills, restarts and wipes: the process (may have) restarted
	sessions map[string]*session
	end      int64
}

func newModel(h []history.Op, o Options) *model {
	o = o.withDefaults()
	m := &model{
		o: o, grace: int64(o.Grace), ops: h, pairs: history.Pairs(h),
		keys: map[key][]*mop{}, down: map[string][]span{},
		wipes: map[string][]int64{}, restarts: map[string][]int64{},
		sessions: map[string]*session{},
	}
	nodes := map[string]bool{}
	for i := range h {
		if h[i].Node != "" {
			nodes[h[i].Node] = true
		}
		if h[i].Time > m.end {
			m.end = h[i].Time
		}
		if h[i].F == history.FNemesis && h[i].Value.Fault != nil && h[i].Type != history.Invoke {
			f := h[i].Value.Fault
			m.faults = append(m.faults, fault{time: h[i].Time, index: h[i].Index, kind: f.Kind, name: f.Name, nodes: f.Nodes, grudge: f.Grudge})
			for _, n := range f.Nodes {
				nodes[n] = true
			}
		}
	}
	for n := range nodes {
		m.nodes = append(m.nodes, n)
	}
	sort.Strings(m.nodes)
	sort.SliceStable(m.faults, func(i, j int) bool { return m.faults[i].time < m.faults[j].time })
	m.digestFaults()
	m.digestPairs()
	return m
}

func (m *model) digestFaults() {
	open := map[string]map[string]int64{} // node -> kind -> since
	openSpan := func(n, kind string, t int64) {
		if open[n] == nil {
			open[n] = map[string]int64{}
		}
		if _, ok := open[n][kind]; !ok {
			open[n][kind] = t
		}
	}
	closeSpan := func(n, kind string, t int64) bool {
		from, ok := open[n][kind]
		if ok {
			m.down[n] = append(m.down[n], span{from, t, kind})
			delete(open[n], kind)
		}
		return ok
	}
	cut := int64(-1)
	var cutKind string
	for _, f := range m.faults {
		switch f.kind {
		case "partition", "loss":
			if cut < 0 {
				cut, cutKind = f.time, f.kind
			}
		case "heal":
			if cut >= 0 {
				m.cuts = append(m.cuts, span{cut, f.time, cutKind})
				cut = -1
			}
			m.ends = append(m.ends, f.time)
		}
		for _, n := range f.nodes {
			switch f.kind {
			case "kill":
				openSpan(n, "kill", f.time)
				m.restarts[n] = append(m.restarts[n], f.time)
			case "restart":
				closeSpan(n, "kill", f.time)
				m.restarts[n] = append(m.restarts[n], f.time)
				m.ends = append(m.ends, f.time)
			case "pause":
				openSpan(n, "pause", f.time)
			case "resume":
				closeSpan(n, "pause", f.time)
				m.ends = append(m.ends, f.time)
			case "leave":
				openSpan(n, "left", f.time)
			case "add":
				closeSpan(n, "left", f.time)
				m.ends = append(m.ends, f.time)
			case "wipe":
				// A wipe on a running node is a restart with an
				// empty disk; on a killed one the restart follows.
				m.wipes[n] = append(m.wipes[n], f.time)
				m.restarts[n] = append(m.restarts[n], f.time)
				m.ends = append(m.ends, f.time)
			}
		}
	}
	if cut >= 0 {
		m.cuts = append(m.cuts, span{cut, never, cutKind})
	}
	for n, kinds := range open {
		for kind, from := range kinds {
			m.down[n] = append(m.down[n], span{from, never, kind})
		}
	}
	sort.Slice(m.ends, func(i, j int) bool { return m.ends[i] < m.ends[j] })
}

func (m *model) digestPairs() {
	type renew struct{ inv, cmp int64 }
	renews := map[string][]renew{}
	for _, p := range m.pairs {
		inv, c := p.Invoke, p.Completion
		cmp := int64(never)
		if c != nil && c.Type != history.Info {
			cmp = c.Time
		}
		out := p.Outcome()
		switch inv.F {
		case history.FRead, history.FFinalRead:
			if out != history.OK {
				continue
			}
			r := &read{node: inv.Node, group: inv.Value.Group, final: inv.F == history.FFinalRead,
				inv: inv.Time, cmp: c.Time, index: inv.Index, members: map[key]map[string]string{}, peers: c.Value.Peers}
			for _, mem := range c.Value.Members {
				k := keyOf(mem)
				if _, dup := r.members[k]; dup {
					r.dups = append(r.dups, k)
				} else {
					r.list = append(r.list, k)
				}
				r.members[k] = mem.Meta
			}
			m.reads = append(m.reads, r)
		case history.FJoin, history.FLeave:
			k := key{inv.Value.Group, inv.Value.ID, inv.Node}
			if _, ok := m.keys[k]; !ok {
				m.keyOrder = append(m.keyOrder, k)
			}
			m.keys[k] = append(m.keys[k], &mop{
				join: inv.F == history.FJoin, node: inv.Node, inv: inv.Time, cmp: cmp,
				ok: out == history.OK, fail: out == history.Fail, meta: inv.Value.Meta,
				durable: inv.Value.Durable, session: inv.Value.Session, index: inv.Index,
			})
		case history.FSessionCreate:
			if out != history.OK {
				continue
			}
			id, ttl := c.Value.Session, c.Value.TTL
			if id == "" {
				id = inv.Value.Session
			}
			if ttl == "" {
				ttl = inv.Value.TTL
			}
			d, _ := time.ParseDuration(ttl)
			m.sessions[id] = &session{id: id, node: inv.Node, ttl: int64(d), maybeEnd: never, closed: never}
			renews[id] = append(renews[id], renew{inv.Time, c.Time})
		case history.FSessionKeepAlive:
			s := m.sessions[inv.Value.Session]
			switch {
			case s == nil:
			case out == history.OK:
				renews[s.id] = append(renews[s.id], renew{inv.Time, c.Time})
			default:
				s.maybeEnd = min(s.maybeEnd, inv.Time)
			}
		case history.FSessionClose:
			s := m.sessions[inv.Value.Session]
			if s == nil || out == history.Fail {
				continue
			}
			s.maybeEnd = min(s.maybeEnd, inv.Time)
			if out == history.OK {
				s.closed = c.Time
			}
		}
	}
	for id, s := range m.sessions {
		if s.ttl <= 0 {
			s.maybeEnd = math.MinInt64 // no TTL: the history cannot say
			continue
		}
		rs := renews[id]
		for i := range rs {
			next := m.end
			if i+1 < len(rs) {
				next = rs[i+1].cmp
			}
			if next-rs[i].inv > s.ttl {
				s.maybeEnd = min(s.maybeEnd, rs[i].inv+s.ttl)
				break
			}
		}
	}
	sort.SliceStable(m.reads, func(i, j int) bool { return m.reads[i].inv < m.reads[j].inv })
}

// anyIn reports whether some t in ts has lo < t <= hi.
func anyIn(ts []int64, lo, hi int64) bool {
	for _, t := range ts {
		if lo < t && t <= hi {
			return true
		}
	}
	return false
}

// isDown reports whether node n was killed, paused or out of the cluster
// at t.
func (m *model) isDown(n string, t int64) bool {
	for _, s := range m.down[n] {
		if s.contains(t) {
			return true
		}
	}
	return false
}

// downDuring reports whether n was down at any time in [a, b].
func (m *model) downDuring(n string, a, b int64) bool {
	for _, s := range m.down[n] {
		if s.from <= b && a < s.to {
			return true
		}
	}
	return false
}

// liveAtEnd reports whether n is up at the end of the run.
func (m *model) liveAtEnd(n string) bool { return !m.isDown(n, m.end) }

// cutAt reports whether a partition or packet loss is in force at t.
func (m *model) cutAt(t int64) bool {
	for _, c := range m.cuts {
		if c.contains(t) {
			return true
		}
	}
	return false
}

// quiet reports whether, at t, node x must have an up-to-date view of
// owner o: no cut in force, no fault ended within the grace before t, and
// neither node down.
func (m *model) quiet(x, o string, t int64) bool {
	if m.cutAt(t) || m.isDown(x, t) || m.isDown(o, t) {
		return false
	}
	return !anyIn(m.ends, t-m.grace, t)
}

// lifetimeOK reports whether the member joined by j certainly outlived
// [j.inv, b] as far as its lifetime goes: its owner was not wiped, an
// ephemeral member's owner did not restart, a session member's session
// certainly lived.
func (m *model) lifetimeOK(k key, j *mop, b int64) bool {
	if anyIn(m.wipes[k.owner], j.inv, b) {
		return false
	}
	if !j.durable && j.session == "" && anyIn(m.restarts[k.owner], j.inv, b) {
		return false
	}
	if j.session != "" {
		s := m.sessions[j.session]
		if s == nil || s.maybeEnd <= b {
			return false
		}
	}
	return true
}

// certainPresent reports whether k was certainly a member throughout
// [a, b]: an ok join acknowledged before a, no leave that may have taken
// effect after it before b, and a lifetime that lasted. It returns the
// join.
func (m *model) certainPresent(k key, a, b int64) (*mop, bool) {
	var j *mop
	for _, op := range m.keys[k] {
		if op.join && op.ok && op.cmp < a && (j == nil || op.inv > j.inv) {
			j = op
		}
	}
	if j == nil {
		return nil, false
	}
	for _, op := range m.keys[k] {
		if op.fail || op.inv >= b {
			continue
		}
		if !op.join && op.cmp > j.inv {
			return nil, false
		}
		if op.join && op.inv >= j.inv && !m.lifetimeOK(k, op, b) {
			return nil, false
		}
	}
	return j, true
}

// certainAbsent reports whether k was certainly not a member throughout
// [a, b] because of an ok leave acknowledged before a that no join may
// have undone before b. It returns the leave.
func (m *model) certainAbsent(k key, a, b int64) (*mop, bool) {
	var l *mop
	for _, op := range m.keys[k] {
		if !op.join && op.ok && op.cmp < a && (l == nil || op.inv > l.inv) {
			l = op
		}
	}
	if l == nil {
		return nil, false
	}
	for _, op := range m.keys[k] {
		if op.join && !op.fail && op.inv < b && op.cmp > l.inv {
			return nil, false
		}
	}
	return l, true
}

// finalReads returns, per node, its ok final reads in order.
func (m *model) finalReads() map[string][]*read {
	out := map[string][]*read{}
	for _, r := range m.reads {
		if r.final {
			out[r.node] = append(out[r.node], r)
		}
	}
	return out
}

// finalStart is the invocation time of the first final read (never if
// none).
func (m *model) finalStart() int64 {
	t := int64(never)
	for _, r := range m.reads {
		if r.final && r.inv < t {
			t = r.inv
		}
	}
	return t
}

// state renders a read's membership restricted to group g ("" all) as a
// canonical string: sorted members with their metadata.
func state(members map[key]map[string]string, g string) string {
	var lines []string
	for k, meta := range members {
		if g != "" && k.group != g {
			continue
		}
		line := k.String()
		if len(meta) > 0 {
			ks := sortedKeys(meta)
			line += " {"
			for i, mk := range ks {
				if i > 0 {
					line += ","
				}
				line += mk + "=" + meta[mk]
			}
			line += "}"
		}
		lines = append(lines, line)
	}
	sort.Strings(lines)
	out := ""
	for _, l := range lines {
		out += l + "\n"
	}
	return out
}

func sortedKeys[V any](mm map[string]V) []string {
	ks := make([]string, 0, len(mm))
	for k := range mm {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// sortedSet returns the keys of set in order.
func sortedSet(set map[key]bool) []key {
	ks := make([]key, 0, len(set))
	for k := range set {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i].String() < ks[j].String() })
	return ks
}

// sameMeta compares metadata, nil equal to empty.
func sameMeta(a, b map[string]string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return maps.Equal(a, b)
}

// ms converts nanoseconds to milliseconds.
func ms(ns int64) float64 { return float64(ns) / 1e6 }

// at renders a time for an example.
func at(ns int64) string { return fmt.Sprintf("%.3fs", float64(ns)/1e9) }

// quantiles summarizes xs (nearest rank) at 0.5, 0.9, 0.99 and 1.
func quantiles(xs []float64) map[string]float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	out := map[string]float64{}
	for _, q := range []struct {
		name string
		q    float64
	}{{"0.5", 0.5}, {"0.9", 0.9}, {"0.99", 0.99}, {"1", 1}} {
		i := int(math.Ceil(q.q*float64(len(s)))) - 1
		out[q.name] = s[max(i, 0)]
	}
	return out
}

// maxExamples bounds the examples kept per anomaly.
const maxExamples = 5

// builder accumulates a Result.
type builder struct {
	r       Result
	unknown bool
	seen    map[string]bool
}

func newBuilder(name string) *builder {
	return &builder{r: Result{Checker: name, Counts: map[string]int{}}, seen: map[string]bool{}}
}

// flag records one instance of anomaly a, described by example.
func (b *builder) flag(a, example string) {
	if !b.seen[a] {
		b.seen[a] = true
		b.r.Anomalies = append(b.r.Anomalies, a)
	}
	b.r.Counts[a]++
	if b.r.Examples == nil {
		b.r.Examples = map[string][]string{}
	}
	if len(b.r.Examples[a]) < maxExamples {
		b.r.Examples[a] = append(b.r.Examples[a], example)
	}
}

func (b *builder) count(name string, n int) { b.r.Counts[name] += n }

func (b *builder) note(format string, args ...any) {
	b.r.Notes = append(b.r.Notes, fmt.Sprintf(format, args...))
}

// dist records a distribution of durations in nanoseconds.
func (b *builder) dist(name string, ns []int64) {
	if len(ns) == 0 {
		return
	}
	xs := make([]float64, len(ns))
	for i, v := range ns {
		xs[i] = ms(v)
	}
	if b.r.Quantiles == nil {
		b.r.Quantiles = map[string]map[string]float64{}
	}
	b.r.Quantiles[name] = quantiles(xs)
}

// unknownf makes the result unknown (unless invalid) and says why.
func (b *builder) unknownf(format string, args ...any) {
	b.unknown = true
	b.note(format, args...)
}

func (b *builder) done() Result {
	sort.Strings(b.r.Anomalies)
	switch {
	case len(b.r.Anomalies) > 0:
		b.r.Valid = Invalid
	case b.unknown:
		b.r.Valid = Unknown
	default:
		b.r.Valid = Valid
	}
	if len(b.r.Counts) == 0 {
		b.r.Counts = nil
	}
	return b.r
}
