package store

import (
	"sort"
	"strings"
	"time"

	"github.com/roster-io/roster/jepsen/history"
)

// The figures' data, kept apart from their drawing so that tests can
// check them exactly.

// Window is a fault in force, from the nemesis record that started it to
// the one that ended it.
type Window struct {
	// Kind is the starting record's: partition, loss, pause or kill; or
	// an instantaneous action (wipe, add, leave), whose Start == End.
	Kind  string
	Name  string
	Nodes []string
	// Start and End are history times (ns since the run started).
	Start, End int64
	// Open says no record ended the fault: End is the history's end.
	Open bool
}

// faultEnds maps a nemesis record's kind to the kinds of faults it ends.
var faultEnds = map[string][]string{
	"heal":    {"partition", "loss"},
	"resume":  {"pause"},
	"restart": {"kill"},
}

// faultStarts are the kinds that open a window; instantKinds are drawn
// as a line.
var (
	faultStarts  = map[string]bool{"partition": true, "loss": true, "pause": true, "kill": true}
	instantKinds = map[string]bool{"wipe": true, "add": true, "leave": true}
)

// FaultWindows pairs the nemesis records (ok or info; invocations and
// failures are not faults in force) into windows, in order of start:
//
//   - partition and loss open a window that the next heal closes (a heal
//     heals the whole network);
//   - pause opens one that resume closes, kill one that restart closes:
//     the window lasts until every node it named was resumed (restarted);
//     an end record naming no node ends every open window of its kind,
//     as does any end for a window naming none;
//   - wipe, add and leave are instants (Start == End);
//   - a window nothing closed ends at the history's last time, Open.
func FaultWindows(ops []history.Op) []Window {
	var out []Window
	remaining := map[int]map[string]bool{} // open window -> nodes still faulted
	var last int64
	for _, op := range ops {
		last = max(last, op.Time)
		if op.F != history.FNemesis || op.Value.Fault == nil || (op.Type != history.OK && op.Type != history.Info) {
			continue
		}
		f := op.Value.Fault
		switch {
		case faultStarts[f.Kind]:
			nodes := map[string]bool{}
			for _, n := range f.Nodes {
				nodes[n] = true
			}
			remaining[len(out)] = nodes
			out = append(out, Window{Kind: f.Kind, Name: f.Name, Nodes: f.Nodes, Start: op.Time})
		case instantKinds[f.Kind]:
			out = append(out, Window{Kind: f.Kind, Name: f.Name, Nodes: f.Nodes, Start: op.Time, End: op.Time})
		case faultEnds[f.Kind] != nil:
			for i, nodes := range remaining {
				if !contains(faultEnds[f.Kind], out[i].Kind) {
					continue
				}
				if f.Kind != "heal" && len(f.Nodes) > 0 && len(nodes) > 0 {
					for _, n := range f.Nodes {
						delete(nodes, n)
					}
					if len(nodes) > 0 {
						continue
					}
				}
				out[i].End = op.Time
				delete(remaining, i)
			}
		}
	}
	for i := range remaining {
		out[i].End, out[i].Open = last, true
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// LatencyPoint is one completed client operation.
type LatencyPoint struct {
	// T is the completion's time and Latency the time from invocation
	// to completion (ns).
	T, Latency int64
	F          string
	Outcome    history.Type
}

// Latencies lists the completed client operations (history.Pairs: not
// watch events, nemesis records or metrics), in invocation order; those
// the run ended before they completed are left out.
func Latencies(ops []history.Op) []LatencyPoint {
	var out []LatencyPoint
	for _, p := range history.Pairs(ops) {
		if p.Completion == nil {
			continue
		}
		out = append(out, LatencyPoint{
			T: p.Completion.Time, Latency: p.Completion.Time - p.Invoke.Time,
			F: p.Invoke.F, Outcome: p.Completion.Type,
		})
	}
	return out
}

// lastTime is the history's last time (0 when empty).
func lastTime(ops []history.Op) int64 {
	var t int64
	for _, op := range ops {
		t = max(t, op.Time)
	}
	return t
}

// buckets is how many buckets of width bucket cover [0, end]: at least
// one.
func buckets(end int64, bucket time.Duration) int {
	return int(end/int64(bucket)) + 1
}

// Throughput counts the ok completions of client operations per F in
// buckets of width bucket from time 0: counts[f][k] is how many ok
// completions of f have k*bucket <= Time < (k+1)*bucket. Every slice has
// one bucket per width up to the history's last time, so they line up.
func Throughput(ops []history.Op, bucket time.Duration) map[string][]int {
	n := buckets(lastTime(ops), bucket)
	out := map[string][]int{}
	for _, p := range history.Pairs(ops) {
		if p.Outcome() != history.OK || p.Completion == nil {
			continue
		}
		c := out[p.Invoke.F]
		if c == nil {
			c = make([]int, n)
			out[p.Invoke.F] = c
		}
		c[p.Completion.Time/int64(bucket)]++
	}
	return out
}

// readEvent is an ok read's completion: what node saw of group (all
// groups when group is ""; then also every group in known, those named
// in the history before it, shown empty if absent).
type readEvent struct {
	invoke, done int64
	node, group  string
	members      []history.Member
	known        []string
}

// reads lists the ok reads and final reads, in order of completion time.
func reads(ops []history.Op) []readEvent {
	var out []readEvent
	var known []string
	seen := map[string]bool{}
	learn := func(g string) {
		if g != "" && !seen[g] {
			seen[g] = true
			known = append(known, g)
		}
	}
	open := map[int]*history.Op{}
	for i := range ops {
		op := &ops[i]
		if op.F == history.FWatch || op.F == history.FNemesis || op.F == history.FMetrics {
			continue
		}
		if op.Type == history.Invoke {
			open[op.Process] = op
			if op.F == history.FJoin {
				learn(op.Value.Group)
			}
			continue
		}
		inv := open[op.Process]
		delete(open, op.Process)
		if inv == nil || op.Type != history.OK || (op.F != history.FRead && op.F != history.FFinalRead) {
			continue
		}
		group := inv.Value.Group
		if group == "" {
			group = op.Value.Group
		}
		learn(group)
		for _, m := range op.Value.Members {
			learn(m.Group)
		}
		node := op.Node
		if node == "" {
			node = inv.Node
		}
		out = append(out, readEvent{
			invoke: inv.Time, done: op.Time, node: node, group: group,
			members: op.Value.Members, known: known[:len(known):len(known)],
		})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].done < out[j].done })
	return out
}

// memberKey identifies a member as a read shows it: its group, ID,
// owner and metadata.
func memberKey(m history.Member) string {
	var b strings.Builder
	b.WriteString(m.Group + "\x00" + m.ID + "\x00" + m.Owner)
	for _, k := range sortedKeys(m.Meta) {
		b.WriteString("\x00" + k + "=" + m.Meta[k])
	}
	return b.String()
}

// memberSets splits a read's members into one set key per group: the
// group's sorted member keys. With group set, only that group.
func memberSets(e readEvent) map[string]string {
	byGroup := map[string][]string{}
	if e.group != "" {
		byGroup[e.group] = nil
	} else {
		for _, g := range e.known {
			byGroup[g] = nil
		}
	}
	for _, m := range e.members {
		if e.group != "" && m.Group != e.group && m.Group != "" {
			continue
		}
		g := m.Group
		if g == "" {
			g = e.group
		}
		byGroup[g] = append(byGroup[g], memberKey(m))
	}
	out := make(map[string]string, len(byGroup))
	for g, keys := range byGroup {
		sort.Strings(keys)
		out[g] = strings.Join(keys, "\x01")
	}
	return out
}

// DistinctStates counts, for each bucket of width bucket from time 0,
// how far the nodes' views disagree. A node's view of group g at time t
// is the member set shown by its latest ok read (or final read) of g
// completed before t; a read of all groups shows every group named in
// the history before it, those it did not list as empty. Members are
// compared by group, ID, owner and metadata. For bucket k, with t =
// (k+1)*bucket, the value is the largest, over groups, number of
// distinct views of that group among the nodes that had read it by t:
// 1 when every node last saw the same members of every group, 0 before
// any read. The last bucket holds the history's last time.
func DistinctStates(ops []history.Op, bucket time.Duration) []int {
	n := buckets(lastTime(ops), bucket)
	out := make([]int, n)
	views := map[string]map[string]string{} // group -> node -> set key
	evs := reads(ops)
	next := 0
	for k := range out {
		end := int64(k+1) * int64(bucket)
		for ; next < len(evs) && evs[next].done < end; next++ {
			e := evs[next]
			for g, set := range memberSets(e) {
				if views[g] == nil {
					views[g] = map[string]string{}
				}
				views[g][e.node] = set
			}
		}
		for _, byNode := range views {
			distinct := map[string]bool{}
			for _, set := range byNode {
				distinct[set] = true
			}
			out[k] = max(out[k], len(distinct))
		}
	}
	return out
}

// StableLatencies measures, for every join that did not fail, how long
// its member took to become stable: the time from the join's invocation
// to the invocation of the earliest read after which no read missed it.
// The reads counted are the ok reads (and final reads) of its group, or
// of all groups, invoked after the join and completed before the
// member's next leave (that did not fail) or join, in order of
// completion. A join whose last such read missed it, or that no such
// read followed, never became stable and is left out (lost, left by its
// session, or unobserved: the checkers judge which). Sorted ascending.
func StableLatencies(ops []history.Op) []time.Duration {
	type window struct {
		start, candidate int64 // candidate: -1 while the last read missed it
	}
	type event struct {
		t     int64
		kind  int // 0 close-then-open (join), 1 close (leave), 2 read
		group string
		id    string
		read  *readEvent
	}
	var evs []event
	for _, p := range history.Pairs(ops) {
		if p.Outcome() == history.Fail {
			continue
		}
		switch p.Invoke.F {
		case history.FJoin:
			evs = append(evs, event{t: p.Invoke.Time, kind: 0, group: p.Invoke.Value.Group, id: p.Invoke.Value.ID})
		case history.FLeave:
			evs = append(evs, event{t: p.Invoke.Time, kind: 1, group: p.Invoke.Value.Group, id: p.Invoke.Value.ID})
		}
	}
	rs := reads(ops)
	for i := range rs {
		evs = append(evs, event{t: rs[i].done, kind: 2, group: rs[i].group, read: &rs[i]})
	}
	// A read completing at the very time of a join or leave is counted
	// before it: it cannot have seen the join, nor missed after the leave.
	sort.SliceStable(evs, func(i, j int) bool {
		if evs[i].t != evs[j].t {
			return evs[i].t < evs[j].t
		}
		return evs[i].kind == 2 && evs[j].kind != 2
	})
	open := map[string]map[string]*window{} // group -> id -> window
	var out []time.Duration
	closeWin := func(g, id string) {
		if w := open[g][id]; w != nil {
			if w.candidate >= 0 {
				out = append(out, time.Duration(max(0, w.candidate-w.start)))
			}
			delete(open[g], id)
		}
	}
	for _, e := range evs {
		switch e.kind {
		case 0, 1:
			closeWin(e.group, e.id)
			if e.kind == 0 {
				if open[e.group] == nil {
					open[e.group] = map[string]*window{}
				}
				open[e.group][e.id] = &window{start: e.t, candidate: -1}
			}
		case 2:
			present := map[[2]string]bool{}
			for _, m := range e.read.members {
				g := m.Group
				if g == "" {
					g = e.group
				}
				present[[2]string{g, m.ID}] = true
			}
			for g, ws := range open {
				if e.group != "" && g != e.group {
					continue
				}
				for id, w := range ws {
					if e.read.invoke < w.start {
						continue
					}
					switch {
					case !present[[2]string{g, id}]:
						w.candidate = -1
					case w.candidate < 0:
						w.candidate = e.read.invoke
					}
				}
			}
		}
	}
	for g, ws := range open {
		for id := range ws {
			closeWin(g, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
