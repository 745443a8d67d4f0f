package crdt

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestScenarios runs the readable scenario scripts in testdata/. Rewrite the
// expected outputs after an intended change with:
//
//	go test ./crdt -run TestScenarios -rewrite
//
// Commands (arguments are key=value):
//
//	node name=a [inc=1] [logcap=N]        create (or restart, with a new inc) a replica
//	join node=a group=g id=x [meta=k:v;k2:v2] [as=d1]
//	leave node=a group=g id=x [as=d2]
//	leave-all node=a id=x [as=d3]
//	merge node=b deltas=d1,d2 [wire]       merge named deltas (wire: through the codec)
//	diff from=a to=b [chunk=N] [as=r]      what a sends b for b's digest (named r.0, r.1, ...)
//	sync from=a to=b [chunk=N]             diff, then merge everything into b
//	digest node=a
//	state node=a [log]
//	members node=a group=g  |  groups node=a
//	supersede node=b name=a inc=2 | forget node=b replica=a#1 | readmit node=b replica=a#1
//	suspend node=b replica=a#1 | resume node=b replica=a#1
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if filepath.Ext(path) != ".txt" {
			t.Skip()
		}
		nodes := map[string]*State{}
		deltas := map[string]*Delta{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			var out strings.Builder
			emit := func(e Event) {
				fmt.Fprintf(&out, "event: %s %s/%s %s (%s)", e.Kind, e.Group, e.ID, e.Owner, e.Cause)
				if e.Meta != "" {
					fmt.Fprintf(&out, " %s", fmtMeta(e.Meta))
				}
				out.WriteByte('\n')
			}
			node := func(key string) *State {
				var name string
				d.ScanArgs(t, key, &name)
				s := nodes[name]
				if s == nil {
					t.Fatalf("%s: unknown node %q", d.Pos, name)
				}
				return s
			}
			str := func(key string) string {
				var v string
				d.ScanArgs(t, key, &v)
				return v
			}
			replica := func() ReplicaID {
				name, inc, ok := strings.Cut(str("replica"), "#")
				n, err := strconv.ParseUint(inc, 10, 64)
				if !ok || err != nil {
					t.Fatalf("%s: replica must be name#inc", d.Pos)
				}
				return ReplicaID{name, n}
			}
			record := func(def string, dl *Delta, err error) {
				switch {
				case err != nil:
					fmt.Fprintf(&out, "error: %v\n", err)
				case dl == nil:
					out.WriteString("no change\n")
				default:
					name := def
					if d.HasArg("as") {
						name = str("as")
					}
					deltas[name] = dl
					fmt.Fprintf(&out, "%s: %s\n", name, fmtDelta(dl))
				}
			}
			errOut := func(err error) {
				if err != nil {
					fmt.Fprintf(&out, "error: %v\n", err)
				}
			}
			switch d.Cmd {
			case "node":
				inc, logcap := uint64(1), DefaultOptions().LogCap
				if d.HasArg("inc") {
					d.ScanArgs(t, "inc", &inc)
				}
				if d.HasArg("logcap") {
					d.ScanArgs(t, "logcap", &logcap)
				}
				s, err := New(ReplicaID{str("name"), inc}, Options{LogCap: logcap})
				if err != nil {
					return fmt.Sprintf("error: %v\n", err)
				}
				nodes[str("name")] = s
				return "ok\n"
			case "join":
				s := node("node")
				var meta Meta
				if d.HasArg("meta") {
					meta = Meta{}
					for _, kv := range strings.Split(str("meta"), ";") {
						k, v, _ := strings.Cut(kv, ":")
						meta[k] = v
					}
				}
				dl, err := s.Join(str("group"), str("id"), meta, emit)
				record("delta", dl, err)
			case "leave":
				dl, err := node("node").Leave(str("group"), str("id"), emit)
				record("delta", dl, err)
			case "leave-all":
				dl, err := node("node").LeaveAll(str("id"), emit)
				record("delta", dl, err)
			case "merge":
				s := node("node")
				for _, name := range strings.Split(str("deltas"), ",") {
					dl := deltas[name]
					if dl == nil {
						t.Fatalf("%s: unknown delta %q", d.Pos, name)
					}
					if d.HasArg("wire") {
						dl = roundTrip(t, dl)
					}
					st, err := s.Merge(dl, emit)
					switch {
					case err != nil:
						fmt.Fprintf(&out, "%s: error: %v\n", name, err)
					case st.Ignored != NotIgnored:
						fmt.Fprintf(&out, "%s: ignored (%s)\n", name, st.Ignored)
					default:
						fmt.Fprintf(&out, "%s: +%d ~%d -%d\n", name, st.Added, st.Updated, st.Removed)
					}
				}
			case "diff", "sync":
				from, to := node("from"), node("to")
				chunk := 0
				if d.HasArg("chunk") {
					d.ScanArgs(t, "chunk", &chunk)
				}
				ds := from.Diff(to.Digest(), chunk)
				if len(ds) == 0 {
					out.WriteString("nothing to send\n")
				}
				prefix := "r"
				if d.HasArg("as") {
					prefix = str("as")
				}
				bytes := 0
				for i, dl := range ds {
					name := fmt.Sprintf("%s.%d", prefix, i)
					deltas[name] = dl
					bytes += len(EncodeDelta(dl))
					fmt.Fprintf(&out, "%s: %s\n", name, fmtDelta(dl))
				}
				if len(ds) > 0 {
					fmt.Fprintf(&out, "(%d bytes encoded)\n", bytes)
				}
				if d.Cmd == "sync" {
					for _, dl := range ds {
						if _, err := to.Merge(roundTrip(t, dl), emit); err != nil {
							fmt.Fprintf(&out, "error: %v\n", err)
						}
					}
				}
			case "digest":
				for _, e := range node("node").Digest().Entries {
					fmt.Fprintf(&out, "%s#%d top=%d\n", e.Name, e.Incarnation, e.Top)
				}
			case "state":
				out.WriteString(node("node").Describe(d.HasArg("log")))
			case "members":
				for _, m := range node("node").Members(str("group")) {
					fmt.Fprintf(&out, "%s owner=%s", m.ID, m.Owner)
					if m.Meta != "" {
						fmt.Fprintf(&out, " %s", fmtMeta(m.Meta))
					}
					out.WriteByte('\n')
				}
			case "groups":
				fmt.Fprintf(&out, "%v\n", node("node").Groups())
			case "supersede":
				var inc uint64
				d.ScanArgs(t, "inc", &inc)
				errOut(node("node").Supersede(str("name"), inc, emit))
			case "forget":
				errOut(node("node").Forget(replica(), emit))
			case "readmit":
				fmt.Fprintf(&out, "readmitted: %v\n", node("node").Readmit(replica()))
			case "suspend":
				errOut(node("node").Suspend(replica(), emit))
			case "resume":
				errOut(node("node").Resume(replica(), emit))
			default:
				t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			}
			if out.Len() == 0 {
				return "ok\n"
			}
			return out.String()
		})
	})
}

// fmtDelta renders a delta for scenario output (the transfer id, a hash, is
// left out so outputs stay stable).
func fmtDelta(d *Delta) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s ctx=%s", d.Replica, fmtRanges(d.Ctx))
	if d.Floor > 0 {
		fmt.Fprintf(&b, " floor=%d", d.Floor)
	}
	if d.Auth {
		fmt.Fprintf(&b, " auth seq=%d", d.Seq)
	}
	adds := slices.Clone(d.Adds)
	slices.SortFunc(adds, func(a, b Add) int { return int(a.Counter) - int(b.Counter) })
	for _, a := range adds {
		fmt.Fprintf(&b, " +%s/%s@%d", a.Group, a.ID, a.Counter)
		if a.Meta != "" {
			b.WriteString(fmtMeta(a.Meta))
		}
	}
	for _, r := range d.Removes {
		fmt.Fprintf(&b, " -%s/%s@%d", r.Group, r.ID, r.Counter)
	}
	if len(d.Keep) > 0 {
		fmt.Fprintf(&b, " keep=%v", d.Keep)
	}
	return b.String()
}
