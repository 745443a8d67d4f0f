package reorder

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/internal/scripttest"
)

// TestScripts runs the interaction scripts in testdata/: one receiving
// node's buffer, driven the way gossip drives it (merge what may go, then
// drain what that released). Rewrite the expected output after an
// intended change with:
//
//	go test ./gossip/reorder -run TestScripts -rewrite
//
// Commands:
//
//	limits [bytes=N] [owner-bytes=N] [entries=N]
//	                       starts over: a new receiver and buffer (zero: default)
//	ops a 3                owner a makes 3 joins, deltas a1 a2 a3 (a restarted
//	                       owner's are a'1, a'2, ...)
//	restart a              owner a comes back as a new incarnation
//	transfer a chunks=3    a's whole state as an authoritative transfer of 3
//	                       chunks, a.x1.0 a.x1.1 a.x1.2 (the next is x2)
//	receive a3 [a.x1.2 ...] [scope=s]
//	                       delivers each in turn at the current time: prints
//	                       what was merged, held, stashed or refused
//	tick +600ms [hold=500ms] [expire=10s]
//	                       moves time; forces out the owners held longer than
//	                       hold (prints them: the driver asks each owner) and
//	                       gives up chunks older than expire
//	state                  each owner's top counter at the receiver (the
//	                       highest with all before it), and what the buffer
//	                       holds
func TestScripts(t *testing.T) {
	scripttest.Run(t, func(t *testing.T) scripttest.Handler { return newHarness(t, Limits{}).run })
}

type owner struct {
	st      *crdt.State
	inc     uint64
	ops     int
	xfers   int
	restart int
}

type harness struct {
	t      *testing.T
	buf    *Buffer
	recv   map[string]*crdt.State // by scope
	owners map[string]*owner
	msgs   map[string][]byte // encoded deltas by label
	now    time.Time
}

func newHarness(t *testing.T, lim Limits) *harness {
	return &harness{t: t, buf: New(lim), recv: map[string]*crdt.State{}, owners: map[string]*owner{}, msgs: map[string][]byte{}, now: time.Unix(1000, 0)}
}

func (h *harness) owner(name string) *owner {
	o := h.owners[name]
	if o == nil {
		o = &owner{inc: 1}
		o.st = h.newState(name, o.inc)
		h.owners[name] = o
	}
	return o
}

func (h *harness) newState(name string, inc uint64) *crdt.State {
	st, err := crdt.New(crdt.ReplicaID{Name: name, Incarnation: inc}, crdt.DefaultOptions())
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

func (h *harness) receiver(scope string) *crdt.State {
	st := h.recv[scope]
	if st == nil {
		st = h.newState("me", 1)
		h.recv[scope] = st
	}
	return st
}

func (h *harness) run(t *testing.T, d *datadriven.TestData) string {
	var out []string
	arg := func(key string) (string, bool) { return scripttest.Value(d, key) }
	num := func(key string) int { return scripttest.Int(t, d, key, 0) }
	dur := func(key string) time.Duration { return scripttest.Duration(t, d, key, 0) }
	bare := func() []string { return scripttest.Bare(d) }
	switch d.Cmd {
	case "limits":
		*h = *newHarness(t, Limits{Bytes: num("bytes"), OwnerBytes: num("owner-bytes"), Entries: num("entries")})
		lim := h.buf.Limits()
		out = append(out, fmt.Sprintf("limits bytes=%d owner-bytes=%d entries=%d", lim.Bytes, lim.OwnerBytes, lim.Entries))
	case "ops":
		names := bare()
		if len(names) != 2 {
			d.Fatalf(t, "ops OWNER COUNT")
		}
		o := h.owner(names[0])
		n, err := strconv.Atoi(names[1])
		if err != nil {
			d.Fatalf(t, "count: %v", err)
		}
		var labels []string
		for range n {
			o.ops++
			delta, err := o.st.Join("g", fmt.Sprintf("%s-m%d", names[0], o.ops), nil, nil)
			if err != nil {
				d.Fatalf(t, "join: %v", err)
			}
			l := names[0] + strings.Repeat("'", o.restart) + strconv.FormatUint(delta.Ctx[0].Lo, 10)
			h.msgs[l] = crdt.EncodeDelta(delta)
			labels = append(labels, l)
		}
		out = append(out, strings.Join(labels, " "))
	case "restart":
		for _, name := range bare() {
			o := h.owner(name)
			o.inc++
			o.restart++
			o.ops = 0
			o.st = h.newState(name, o.inc)
			out = append(out, fmt.Sprintf("%s: incarnation %d", name, o.inc))
		}
	case "transfer":
		names := bare()
		if len(names) != 1 {
			d.Fatalf(t, "transfer OWNER chunks=N")
		}
		o := h.owner(names[0])
		want := max(1, num("chunks"))
		o.xfers++
		var chunks []*crdt.Delta
		for size := 16; size < 1<<20; size += 16 {
			if chunks = o.st.Snapshot(size); len(chunks) <= want {
				break
			}
		}
		var labels []string
		for i, c := range chunks {
			l := fmt.Sprintf("%s.x%d.%d", names[0], o.xfers, i)
			h.msgs[l] = crdt.EncodeDelta(c)
			labels = append(labels, fmt.Sprintf("%s (%d members)", l, len(c.Adds)))
		}
		out = append(out, strings.Join(labels, ", "))
	case "receive":
		scope, ok := arg("scope")
		if !ok {
			scope = "s"
		}
		for _, l := range bare() {
			b, ok := h.msgs[l]
			if !ok {
				d.Fatalf(t, "no delta %s", l)
			}
			delta, err := crdt.DecodeDelta(b)
			if err != nil {
				d.Fatalf(t, "%s: %v", l, err)
			}
			out = append(out, l+": "+h.receive(scope, delta))
		}
	case "tick":
		h.now = h.now.Add(scripttest.Step(t, d))
		hold, expire := dur("hold"), dur("expire")
		if hold <= 0 {
			hold = 500 * time.Millisecond
		}
		if expire <= 0 {
			expire = 10 * time.Second
		}
		for _, k := range h.buf.Overdue(h.now, hold) {
			st := h.receiver(k.Scope)
			var merged []string
			for {
				g := h.buf.NextGap(k.Scope, st, k.Owner, true)
				if g == nil {
					break
				}
				merged = append(merged, label(g))
				st.MergeValidated(g, nil)
			}
			out = append(out, fmt.Sprintf("overdue %s/%s: forced %s; ask %s", k.Scope, k.Owner, strings.Join(merged, " "), k.Owner))
		}
		if n := h.buf.Expire(h.now, expire); n > 0 {
			out = append(out, fmt.Sprintf("expired %d chunks", n))
		}
		if len(out) == 0 {
			out = append(out, "nothing due")
		}
	case "state":
		out = h.state()
	default:
		d.Fatalf(t, "unknown command %s", d.Cmd)
	}
	return strings.Join(out, "\n") + "\n"
}

// receive is gossip's merge path for one delta (receive.go's mergeLocked
// and hold.go): hold it back, or merge it and drain what it released.
func (h *harness) receive(scope string, d *crdt.Delta) string {
	st := h.receiver(scope)
	if h.buf.HoldGap(scope, st, d, h.now) {
		return "held"
	}
	note := ""
	if Waits(st, d) {
		note = " (out of its owner's order: bound reached)"
	}
	res := st.MergeValidated(d, nil)
	var pulled []string
	drain := func(owner string) {
		for g := h.buf.NextGap(scope, st, owner, false); g != nil; g = h.buf.NextGap(scope, st, owner, false) {
			pulled = append(pulled, label(g))
			st.MergeValidated(g, nil)
		}
	}
	drain(d.Replica.Name)
	switch {
	case res.Ignored == crdt.IgnoredOutOfOrder:
		if h.buf.HoldChunk(scope, d, h.now) {
			return "stashed"
		}
		return "refused: out of order, bound reached"
	case d.Auth && res.Ignored == crdt.NotIgnored:
		for prev := d; ; {
			next := h.buf.NextChunk(scope, prev.Replica.Name, prev.Xfer, prev.Seq+1)
			if next == nil {
				break
			}
			if r := st.MergeValidated(next, nil); r.Ignored != crdt.NotIgnored {
				break
			}
			pulled = append(pulled, fmt.Sprintf("chunk %d", next.Seq))
			prev = next
		}
	case res.Ignored != crdt.NotIgnored:
		return fmt.Sprintf("ignored (%v)", res.Ignored)
	}
	if len(pulled) > 0 {
		return "merged" + note + ", then " + strings.Join(pulled, " ")
	}
	return "merged" + note
}

// label names a plain delta as the ops command did: owner, a prime per
// restart, first counter.
func label(d *crdt.Delta) string {
	return d.Replica.Name + strings.Repeat("'", int(d.Replica.Incarnation)-1) + strconv.FormatUint(d.Ctx[0].Lo, 10)
}

func (h *harness) state() []string {
	var out []string
	scopes := make([]string, 0, len(h.recv))
	for s := range h.recv {
		scopes = append(scopes, s)
	}
	slices.Sort(scopes)
	for _, s := range scopes {
		st := h.recv[s]
		names := make([]string, 0, len(h.owners))
		for n := range h.owners {
			names = append(names, n)
		}
		slices.Sort(names)
		var tops []string
		for _, n := range names {
			if inc, top, ok := st.Top(n); ok {
				tops = append(tops, fmt.Sprintf("%s=%d", n+strings.Repeat("'", int(inc)-1), top))
			}
		}
		gaps, chunks, _ := h.buf.Held(s)
		out = append(out, fmt.Sprintf("scope %s: tops %s; held %d gap deltas, %d chunks", s, strings.Join(tops, " "), gaps, chunks))
	}
	entries, bytes := h.buf.Len()
	st := h.buf.Stats()
	out = append(out, fmt.Sprintf("buffer: %d entries (%s); taken gaps=%d chunks=%d refused=%d dropped=%d forced=%d",
		entries, sizeClass(bytes), st.Gaps, st.Chunks, st.Refused, st.Dropped, st.Forced))
	return out
}

// sizeClass prints bytes as empty or not, so that scripts do not break
// when crdt's Footprint estimate changes.
func sizeClass(b int) string {
	if b == 0 {
		return "0 bytes"
	}
	return "some bytes"
}
