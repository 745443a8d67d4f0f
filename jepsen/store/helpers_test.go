package store

import (
	"fmt"
	"sort"
	"time"

	"github.com/roster-io/roster/jepsen/history"
)

// builder writes histories by time; build orders the entries by time
// (entries at the same time in the order added) and numbers them.
type builder struct{ ops []history.Op }

func (b *builder) entry(t time.Duration, typ history.Type, proc int, node, f string, v history.Value, err string) {
	b.ops = append(b.ops, history.Op{Time: int64(t), Type: typ, Process: proc, Node: node, F: f, Value: v, Error: err})
}

// op adds an invocation at inv and its completion at done (none when
// typ is Invoke: it never completed).
func (b *builder) op(proc int, node, f string, inv, done time.Duration, typ history.Type, in, out history.Value, err string) {
	b.entry(inv, history.Invoke, proc, node, f, in, "")
	if typ != history.Invoke {
		b.entry(done, typ, proc, node, f, out, err)
	}
}

func (b *builder) join(proc int, node, group, id string, inv, done time.Duration, typ history.Type) {
	v := history.Value{Group: group, ID: id}
	b.op(proc, node, history.FJoin, inv, done, typ, v, v, "")
}

func (b *builder) leave(proc int, node, group, id string, inv, done time.Duration, typ history.Type) {
	v := history.Value{Group: group, ID: id}
	b.op(proc, node, history.FLeave, inv, done, typ, v, v, "")
}

// read adds an ok read of group ("" all) by node showing members, each
// "group/id" or "id" (then of group).
func (b *builder) read(proc int, node, group string, inv, done time.Duration, members ...string) {
	b.op(proc, node, history.FRead, inv, done, history.OK, history.Value{Group: group}, history.Value{Group: group, Members: memberList(group, members...)}, "")
}

func memberList(group string, ids ...string) []history.Member {
	var out []history.Member
	for _, m := range ids {
		g, id := group, m
		for i := 0; i < len(m); i++ {
			if m[i] == '/' {
				g, id = m[:i], m[i+1:]
			}
		}
		out = append(out, history.Member{Group: g, ID: id, Owner: "n1"})
	}
	return out
}

func (b *builder) fault(t time.Duration, typ history.Type, kind, name string, nodes ...string) {
	f := &history.Fault{Kind: kind, Name: name, Nodes: nodes}
	if kind == "partition" || kind == "heal" {
		f.Rules = map[string]string{}
		for _, n := range []string{"n1", "n2", "n3"} {
			f.Rules[n] = fmt.Sprintf("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.%s -j DROP # %s\nCOMMIT\n", n[1:], kind)
		}
	}
	b.entry(t, typ, history.NemesisProcess, "", history.FNemesis, history.Value{Fault: f}, "")
}

func (b *builder) watch(t time.Duration, proc int, node, kind string, members ...string) {
	e := &history.Event{Kind: kind}
	switch kind {
	case "snapshot":
		e.Members = memberList("g0", members...)
	case "disconnected":
		e.Reason = "stream closed"
	default:
		if len(members) > 0 {
			e.Member = &memberList("g0", members...)[0]
		}
	}
	b.entry(t, history.OK, proc, node, history.FWatch, history.Value{Event: e}, "")
}

func (b *builder) build() []history.Op {
	sort.SliceStable(b.ops, func(i, j int) bool { return b.ops[i].Time < b.ops[j].Time })
	for i := range b.ops {
		b.ops[i].Index = int64(i)
	}
	return b.ops
}

// synthetic is a few hundred operations over about 4 s: three clients
// joining and reading two groups, a partition of n3 and its heal, a kill
// and restart of n2, a watcher on n1, some failures and timeouts.
func synthetic() []history.Op {
	var b builder

	nodes := []string{"n1", "n2", "n3"}
	joined := map[string][]string{}
	b.watch(0, 10, "n1", "snapshot")
	for i := 0; i < 120; i++ {
		t := time.Duration(i) * 33 * ms
		proc := i % 3
		node := nodes[proc]
		g := fmt.Sprintf("g%d", i%2)
		id := fmt.Sprintf("m%d", i)
		cut := (t >= time.Second && t < 2*time.Second && node == "n3") || (t >= 2500*ms && t < 3*time.Second && node == "n2")
		switch {
		case cut && i%2 == 0:
			b.join(proc, node, g, id, t, t+90*ms, history.Info)
		case cut:
			b.join(proc, node, g, id, t, t+5*ms, history.Fail)
		default:
			b.join(proc, node, g, id, t, t+time.Duration(2+i%7)*ms, history.OK)
			joined[g] = append(joined[g], id)
			if g == "g0" {
				b.watch(t+10*ms, 10, "n1", "join", id)
			}
		}
		rt := t + 15*ms
		if !cut {
			seen := joined[g]
			if node == "n3" && t >= time.Second && t < 2200*ms {
				seen = seen[:len(seen)/2]
			}
			b.read(proc+3, node, g, rt, rt+time.Duration(1+i%4)*ms, seen...)
		}
	}
	b.watch(2510*ms, 10, "n1", "disconnected")
	b.watch(2520*ms, 10, "n1", "snapshot", joined["g0"]...)
	b.fault(time.Second, history.OK, "partition", "isolated", "n3")
	b.fault(2*time.Second, history.OK, "heal", "")
	b.fault(2500*ms, history.OK, "kill", "", "n2")
	b.fault(3*time.Second, history.OK, "restart", "", "n2")
	for i, n := range nodes {
		b.read(20+i, n, "", 4200*ms, 4210*ms, append(prefix("g0/", joined["g0"]), prefix("g1/", joined["g1"])...)...)
	}
	return b.build()
}

func prefix(p string, xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = p + x
	}
	return out
}
