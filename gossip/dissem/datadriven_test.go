package dissem

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestScripts runs the interaction scripts in testdata/. Rewrite the
// expected output after an intended change with:
//
//	go test ./gossip/dissem -run TestScripts -rewrite
//
// Commands (names are bare words; options key=value or key=(a, b)):
//
//	nodes n1 n2 n3 [strategy=plumtree] [eager=N] [lazy=N] [fanout=N] [directmax=N] [seed=N] [graftspread] [pruneafter=N] [ringlinks=N]
//	                               GraftTimeout 100ms, AnnounceEvery 20ms, PruneAfter 1 (the
//	                               paper's rule), RingLinks 1; graftspread: grafts due at a random time up
//	                               to 100ms later
//	broadcast n1 id=7              a local change n1/7 at n1: messages now in flight, deliveries
//	deliver [from=n1] [to=n2] [kind=gossip|ihave|ack|graft|prune] [once]
//	                               delivers matching messages in waves (each sorted) until none
//	                               match (once: one wave); a message to a crashed or cut-off
//	                               node is lost
//	drop [from=] [to=] [kind=]     loses matching messages in flight
//	inflight                       lists the messages in flight
//	tick +100ms                    moves time, firing each node's timers on the way; prints the
//	                               messages the timers sent
//	run +5s                        delivers everything and fires timers until then; prints the
//	                               deliveries and a count of messages by kind
//	crash n3                       n3 stops (no one is told); its messages are lost
//	down n3 [at=(n1, n2)]          observers (default: all others) drop n3 from their View
//	up n3 [at=(...)]               n3 runs again (if crashed); observers add it back
//	partition a=(n1, n2) b=(n3)    messages between the groups are lost; heal ends all cuts
//	state n2                       eager and lazy sets, ring link, pending grafts (due: time
//	                               since the script's start), unacknowledged offers
//	stats n2                       the counters that are not zero
//	inject to=n2 from=n1 kind=gossip [origin=n1] [seq=9] [strategy=plumtree] [relay=(...)]
//	       [ids=(n1/1, ...)] [count=N] [ack] [wantack] [addr=n9]
//	                               steps a hand-made message; prints what it caused and the
//	                               counters it changed
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if filepath.Ext(path) != ".txt" {
			t.Skip()
		}
		var net *network
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "nodes" && net == nil {
				d.Fatalf(t, "nodes first")
			}
			lines, err := runCommand(t, &net, d)
			if err != "" {
				d.Fatalf(t, "%s", err)
			}
			if len(lines) == 0 {
				return "ok\n"
			}
			return strings.Join(lines, "\n") + "\n"
		})
	})
}

// bare returns the arguments without values (node names).
func bare(d *datadriven.TestData) []string {
	var s []string
	for _, a := range d.CmdArgs {
		if len(a.Vals) == 0 {
			s = append(s, a.Key)
		}
	}
	return s
}

func argStr(d *datadriven.TestData, key string) string {
	if a, ok := d.Arg(key); ok && len(a.Vals) > 0 {
		return a.Vals[0]
	}
	return ""
}

func argList(d *datadriven.TestData, key string) []string {
	if a, ok := d.Arg(key); ok {
		return a.Vals
	}
	return nil
}

func argInt(t *testing.T, d *datadriven.TestData, key string) int {
	v, err := strconv.Atoi(argStr(d, key))
	if err != nil {
		d.Fatalf(t, "%s: %v", key, err)
	}
	return v
}

func parseStrategy(s string) (Strategy, bool) {
	for st := Direct; st <= Auto; st++ {
		if st.String() == s {
			return st, true
		}
	}
	return 0, false
}

func parseID(t *testing.T, d *datadriven.TestData, s string) MsgID {
	origin, seq, ok := strings.Cut(s, "/")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil {
		d.Fatalf(t, "id %q: want origin/seq", s)
	}
	return MsgID{origin, n}
}

func runCommand(t *testing.T, netp **network, d *datadriven.TestData) (lines []string, failure string) {
	net := *netp
	names := bare(d)
	one := func() *netNode {
		if len(names) != 1 {
			d.Fatalf(t, "want one node name")
		}
		return net.node(t, names[0])
	}
	switch d.Cmd {
	case "nodes":
		cfg := func(self string) Config {
			// The scripts' timings: GraftTimeout 100ms and AnnounceEvery
			// 20ms (easy to follow by hand), grafts due exactly then
			// unless graftspread is given.
			c := Config{Self: self, Strategy: Plumtree, GraftTimeout: 100 * time.Millisecond,
				AnnounceEvery: 20 * time.Millisecond, NoGraftSpread: !d.HasArg("graftspread"), PruneAfter: 1, RingLinks: 1}
			if s := argStr(d, "strategy"); s != "" {
				st, ok := parseStrategy(s)
				if !ok {
					d.Fatalf(t, "strategy %q", s)
				}
				c.Strategy = st
			}
			for key, p := range map[string]*int{"eager": &c.Eager, "lazy": &c.Lazy, "fanout": &c.FanOut, "directmax": &c.DirectMax, "pruneafter": &c.PruneAfter, "ringlinks": &c.RingLinks} {
				if d.HasArg(key) {
					*p = argInt(t, d, key)
				}
			}
			return c
		}
		seed := uint64(1)
		if d.HasArg("seed") {
			seed = uint64(argInt(t, d, "seed"))
		}
		*netp = newNetwork(t, names, cfg, seed)
	case "broadcast":
		nd := one()
		id := MsgID{nd.name, uint64(argInt(t, d, "id"))}
		sent, dels := net.broadcast(t, nd.name, id)
		lines = append(dels, sent...)
	case "deliver":
		f := filter{argStr(d, "from"), argStr(d, "to"), argStr(d, "kind")}
		lines = net.deliverWaves(f, d.HasArg("once"))
	case "drop":
		f := filter{argStr(d, "from"), argStr(d, "to"), argStr(d, "kind")}
		var dropped []Message
		net.inflight = slices.DeleteFunc(net.inflight, func(m Message) bool {
			if f.match(m) {
				dropped = append(dropped, m)
				return true
			}
			return false
		})
		for _, s := range fmtMsgs(dropped) {
			lines = append(lines, s+" (dropped)")
		}
	case "inflight":
		lines = fmtMsgs(net.inflight)
	case "tick", "run":
		if len(names) != 1 || !strings.HasPrefix(names[0], "+") {
			d.Fatalf(t, "want +duration")
		}
		dur, err := time.ParseDuration(names[0][1:])
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		before, sentBefore := len(net.inflight), net.sent
		if d.Cmd == "tick" {
			dels := net.advance(net.now.Add(dur))
			lines = append(dels, fmtMsgs(net.inflight[before:])...)
			break
		}
		counts := map[string]int{}
		logBefore := net.log
		var dels []string
		net.log = func(s string) {
			switch kind, rest, _ := strings.Cut(s, " "); kind {
			case "recv":
				counts[strings.Fields(rest)[1]]++
			case "lost":
				counts["lost"]++
			}
			if strings.Contains(s, " delivers ") {
				dels = append(dels, s)
			}
		}
		net.run(net.now.Add(dur))
		net.log = logBefore
		slices.Sort(dels)
		lines = dels
		var kinds []string
		for k, v := range counts {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, v))
		}
		slices.Sort(kinds)
		lines = append(lines, fmt.Sprintf("sent %d: %s", net.sent-sentBefore, strings.Join(kinds, " ")))
	case "crash":
		one().crashed = true
	case "down", "up":
		nd := one()
		obs := argList(d, "at")
		if obs == nil {
			obs = slices.DeleteFunc(net.others(nd.name), func(o string) bool { return net.nodes[o].crashed })
		}
		if d.Cmd == "down" {
			net.down(nd.name, obs)
		} else {
			nd.crashed = false
			net.up(nd.name, obs)
		}
		lines = fmtMsgs(net.inflight)
	case "partition":
		for _, a := range argList(d, "a") {
			for _, b := range argList(d, "b") {
				net.cut[[2]string{a, b}], net.cut[[2]string{b, a}] = true, true
			}
		}
	case "heal":
		clear(net.cut)
	case "state":
		lines = stateLines(one().core)
	case "stats":
		lines = statLines(Stats{}, one().core.Stats())
	case "inject":
		to := net.node(t, argStr(d, "to"))
		m := injected(t, d)
		before := to.core.Stats()
		to.core.Step(net.now, m)
		out, dels := to.core.Ready()
		lines = append(dels2lines(to.name, dels), fmtMsgs(out)...)
		lines = append(lines, statLines(before, to.core.Stats())...)
	default:
		return nil, "unknown command " + d.Cmd
	}
	return lines, ""
}

func dels2lines(name string, dels []Delivered) []string {
	var s []string
	for _, d := range dels {
		s = append(s, fmt.Sprintf("%s delivers %s (from %s, round %d)", name, d.ID, d.From, d.Round))
	}
	return s
}

// injected builds the message an inject command describes.
func injected(t *testing.T, d *datadriven.TestData) Message {
	m := Message{From: argStr(d, "from"), To: argStr(d, "to"), Ack: d.HasArg("ack"), WantAck: d.HasArg("wantack")}
	if d.HasArg("addr") {
		m.To = argStr(d, "addr")
	}
	switch k := argStr(d, "kind"); k {
	case "gossip", "ihave", "graft", "prune":
		for kind := KindGossip; kind <= KindPrune; kind++ {
			if kind.String() == k {
				m.Kind = kind
			}
		}
	default:
		n, err := strconv.Atoi(k)
		if err != nil {
			d.Fatalf(t, "kind %q", k)
		}
		m.Kind = Kind(n)
	}
	m.ID.Origin = argStr(d, "origin")
	if d.HasArg("seq") {
		m.ID.Seq = uint64(argInt(t, d, "seq"))
	}
	if s := argStr(d, "strategy"); s != "" {
		m.Strategy, _ = parseStrategy(s)
	}
	m.Payload = []byte("injected")
	m.RelayTo = argList(d, "relay")
	for _, s := range argList(d, "ids") {
		m.IDs = append(m.IDs, parseID(t, d, s))
	}
	if d.HasArg("count") {
		for i := range argInt(t, d, "count") {
			m.IDs = append(m.IDs, MsgID{"x", uint64(i)})
		}
	}
	return m
}

// stateLines describes a core's Plumtree state.
func stateLines(c *Core) []string {
	eager, lazy := c.Peers()
	lines := []string{
		"eager: " + strings.Join(eager, " "),
		"lazy: " + strings.Join(lazy, " "),
		"ring: " + c.ring,
		fmt.Sprintf("retained: %d", c.store.len()),
	}
	var pend []string
	for id, p := range c.grafts.byID {
		pend = append(pend, fmt.Sprintf("pending %s: announcers=[%s] tried=%d due=%v",
			id, strings.Join(p.announcers, " "), p.next, p.due.Sub(testEpoch)))
	}
	slices.Sort(pend)
	lines = append(lines, pend...)
	var links []string
	for _, l := range c.order {
		var ids []MsgID
		for id := range l.live {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, func(a, b MsgID) int { return strings.Compare(a.String(), b.String()) })
		if len(ids) > 0 {
			links = append(links, fmt.Sprintf("offered to %s (%s), unacknowledged: %s", l.name, l.role, fmtIDs(ids)))
		}
	}
	slices.Sort(links)
	return append(lines, links...)
}

// statLines lists the counters that differ between two snapshots.
func statLines(before, after Stats) []string {
	var lines []string
	b, a := reflect.ValueOf(before), reflect.ValueOf(after)
	for i := range a.NumField() {
		if d := a.Field(i).Uint() - b.Field(i).Uint(); d != 0 {
			lines = append(lines, fmt.Sprintf("%s +%d", a.Type().Field(i).Name, d))
		}
	}
	return lines
}
