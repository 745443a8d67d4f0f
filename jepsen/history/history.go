// Package history is the partition suite's record of a run: every
// operation a client invoked and how it completed, every watch event, and
// every fault the nemesis injected, in the order the harness saw them. It
// is the one thing the checkers read, and what `roster-jepsen analyze`
// re-reads from a stored run (history.jsonl, one Op per line).
//
// It owns the schema and its encoding only: no checking (package checker),
// no clients, processes or networks (the runners).
package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
)

// ErrHistory reports a history that cannot be read or is malformed.
var ErrHistory = errors.New("history: malformed history")

// Type is an operation's phase, as in Jepsen: an invocation, then exactly
// one completion: ok (it happened), fail (it certainly did not happen) or
// info (unknown: a timeout, a connection cut; it may or may not have
// happened). Watch events and nemesis records are single entries of type
// ok (nemesis: info when the fault could not be verified).
type Type string

const (
	Invoke Type = "invoke"
	OK     Type = "ok"
	Fail   Type = "fail"
	Info   Type = "info"
)

// The operation functions (Op.F).
const (
	// FJoin joins Value.ID to Value.Group on Op.Node (its owner).
	// Value.Durable or Value.Session say the member's lifetime.
	FJoin = "join"
	// FLeave removes Value.Group/Value.ID on Op.Node, its owner.
	FLeave = "leave"
	// FRead reads Value.Group on Op.Node (all groups if empty); the ok
	// completion lists Value.Members and, when taken in the same breath,
	// the node's view of its peers (Value.Peers).
	FRead = "read"
	// FFinalRead is a read taken after the final heal, once the cluster
	// has had time to converge: what convergence and lost are judged on.
	FFinalRead = "final-read"
	// FSessionCreate, FSessionKeepAlive, FSessionClose act on session
	// Value.Session on Op.Node (create: the ok completion carries the id
	// and Value.TTL).
	FSessionCreate    = "session-create"
	FSessionKeepAlive = "session-keepalive"
	FSessionClose     = "session-close"
	// FWatch is one event of the watcher on Op.Node (Value.Event); the
	// watcher's process never invokes anything.
	FWatch = "watch"
	// FNemesis records a fault or its end (Value.Fault).
	FNemesis = "nemesis"
	// FMetrics is a sample of a node's own figures (Value.Metrics, read
	// from its /metrics), taken by the harness during the run.
	FMetrics = "metrics"
)

// NemesisProcess is the process number of the nemesis.
const NemesisProcess = -1

// Op is one entry of a history.
type Op struct {
	// Index numbers the entries from 0 in the order they were recorded.
	Index int64 `json:"index"`
	// Time is nanoseconds since the run started, from a monotonic clock.
	Time    int64  `json:"time"`
	Type    Type   `json:"type"`
	Process int    `json:"process"`
	Node    string `json:"node,omitempty"`
	F       string `json:"f"`
	Value   Value  `json:"value"`
	Error   string `json:"error,omitempty"`
}

// Member is one member as a read or watch reports it.
type Member struct {
	Group string `json:"group"`
	ID    string `json:"id"`
	Owner string `json:"owner"`
	// Meta is the member's metadata ("v" carries the workload's version
	// of a member joined again with new metadata).
	Meta map[string]string `json:"meta,omitempty"`
}

// Value is an operation's arguments and results; which fields are set
// depends on F.
type Value struct {
	Group   string            `json:"group,omitempty"`
	ID      string            `json:"id,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
	Durable bool              `json:"durable,omitempty"`
	Session string            `json:"session,omitempty"`
	TTL     string            `json:"ttl,omitempty"`
	// Members is a read's result: every member the node showed.
	Members []Member `json:"members,omitempty"`
	// Peers is the node's view of the cluster taken with a read:
	// node name -> state (alive, dead, left, unknown, or suspect).
	Peers map[string]string `json:"peers,omitempty"`
	// Event is a watch event.
	Event *Event `json:"event,omitempty"`
	// Fault describes a nemesis action.
	Fault *Fault `json:"fault,omitempty"`
	// Metrics is a sample of a node's figures (FMetrics): e.g.
	// go_goroutines, process_resident_memory_bytes.
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// Event is one event of a watch stream (Op.F == FWatch).
type Event struct {
	// Kind is snapshot (the stream's start or a resync: Members is the
	// full membership the watch follows), join, leave, update, or
	// disconnected (the stream broke; the watcher reconnects).
	Kind    string   `json:"kind"`
	Reason  string   `json:"reason,omitempty"`
	ID      string   `json:"id,omitempty"` // the SSE event id
	Member  *Member  `json:"member,omitempty"`
	Members []Member `json:"members,omitempty"`
}

// Fault is what the nemesis did.
type Fault struct {
	// Kind: partition, heal, loss, pause, resume, kill, restart, wipe
	// (amnesia), add, leave, and probe (a check that a cut cuts or a
	// heal heals; Verified says how it came out).
	Kind string `json:"kind"`
	// Name is the shape: isolated, halves, one-way, bridge, ring,
	// minority-third; or the schedule's label.
	Name string `json:"name,omitempty"`
	// Nodes are the nodes acted on.
	Nodes []string `json:"nodes,omitempty"`
	// Grudge maps a node to the peers whose packets it drops.
	Grudge map[string][]string `json:"grudge,omitempty"`
	// Loss is the share of packets dropped (loss faults).
	Loss float64 `json:"loss,omitempty"`
	// Rules is the packet filter in force after the action, per node
	// (what iptables-save printed), for the record.
	Rules map[string]string `json:"rules,omitempty"`
	// Verified is set on probes: whether the cut (or heal) was seen to
	// hold.
	Verified *bool `json:"verified,omitempty"`
}

// Completed reports whether t ends an invocation.
func (t Type) Completed() bool { return t == OK || t == Fail || t == Info }

// Write writes ops as JSON lines.
func Write(w io.Writer, ops []Op) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for i := range ops {
		if err := enc.Encode(&ops[i]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// maxLine bounds one line of a stored history (a read of a large group).
const maxLine = 64 << 20

// Read reads a history written by Write, checks it (Validate) and returns
// it ordered by Index.
func Read(r io.Reader) ([]Op, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var ops []Op
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var op Op
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&op); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrHistory, line, err)
		}
		ops = append(ops, op)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHistory, err)
	}
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Index < ops[j].Index })
	if err := Validate(ops); err != nil {
		return nil, err
	}
	return ops, nil
}

// ReadFile reads a stored history.
func ReadFile(path string) ([]Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHistory, err)
	}
	defer f.Close()
	return Read(f)
}

// Validate checks a history's shape: indexes are distinct, every process
// other than the nemesis and the watchers alternates invoke and
// completion, and a completion matches its invocation's F.
func Validate(ops []Op) error {
	seen := map[int64]bool{}
	open := map[int]*Op{}
	for i := range ops {
		op := &ops[i]
		if seen[op.Index] {
			return fmt.Errorf("%w: index %d appears twice", ErrHistory, op.Index)
		}
		seen[op.Index] = true
		switch op.Type {
		case Invoke, OK, Fail, Info:
		default:
			return fmt.Errorf("%w: op %d: type %q", ErrHistory, op.Index, op.Type)
		}
		if op.F == FWatch || op.F == FNemesis || op.F == FMetrics {
			continue
		}
		inv := open[op.Process]
		switch {
		case op.Type == Invoke && inv != nil:
			return fmt.Errorf("%w: op %d: process %d invokes while op %d is open", ErrHistory, op.Index, op.Process, inv.Index)
		case op.Type == Invoke:
			open[op.Process] = op
		case inv == nil:
			return fmt.Errorf("%w: op %d: process %d completes nothing", ErrHistory, op.Index, op.Process)
		case inv.F != op.F:
			return fmt.Errorf("%w: op %d: completes %s with %s", ErrHistory, op.Index, inv.F, op.F)
		default:
			delete(open, op.Process)
		}
	}
	return nil
}

// Pair is an invocation and its completion (nil while it is open: the
// run ended first, which counts as info).
type Pair struct {
	Invoke     *Op
	Completion *Op
}

// Pairs matches every invocation with its completion, in invocation order.
// Watch events and nemesis records are not included.
func Pairs(ops []Op) []Pair {
	var out []Pair
	open := map[int]int{}
	for i := range ops {
		op := &ops[i]
		if op.F == FWatch || op.F == FNemesis || op.F == FMetrics {
			continue
		}
		if op.Type == Invoke {
			open[op.Process] = len(out)
			out = append(out, Pair{Invoke: op})
			continue
		}
		if k, ok := open[op.Process]; ok {
			out[k].Completion = op
			delete(open, op.Process)
		}
	}
	return out
}

// Outcome is a pair's completion type: Info when it never completed.
func (p Pair) Outcome() Type {
	if p.Completion == nil {
		return Info
	}
	return p.Completion.Type
}
