package inflight

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

// TestScripts runs the interaction scripts in testdata/. Rewrite the
// expected output after an intended change with:
//
//	go test ./gossip/inflight -run TestScripts -rewrite
//
// Digests are written replica=top (incarnation 1) or replica=inc:top.
// Commands:
//
//	mine a=5 b=3               this node's digest now
//	round                      an anti-entropy round records it
//	streaming                  the replicas this node's digest names as
//	                           streaming in
//	tick +1s                   moves time
//	peer p a=4 b=3 [streaming=(a)] [window=4s]
//	                           p's digest arrives; prints, per replica this
//	                           node holds more of, whether the repair
//	                           leaves it out or sends it
//	diverge p                  p's last digest against this node's now
//	forget p                   p went away
func TestScripts(t *testing.T) {
	scripttest.Run(t, func(*testing.T) scripttest.Handler {
		var tr Tracker
		var mine crdt.Digest
		start := time.Unix(1000, 0)
		now := start
		return func(t *testing.T, d *datadriven.TestData) string {
			digest := func(skip ...string) crdt.Digest {
				var dg crdt.Digest
				for _, a := range d.CmdArgs {
					if len(a.Vals) == 0 || slices.Contains(skip, a.Key) {
						continue
					}
					e := crdt.DigestEntry{Name: a.Key, Incarnation: 1}
					v := a.Vals[0]
					if i := strings.IndexByte(v, ':'); i >= 0 {
						inc, err := strconv.ParseUint(v[:i], 10, 64)
						if err != nil {
							d.Fatalf(t, "%s: %v", a.Key, err)
						}
						e.Incarnation, v = inc, v[i+1:]
					}
					top, err := strconv.ParseUint(v, 10, 64)
					if err != nil {
						d.Fatalf(t, "%s: %v", a.Key, err)
					}
					e.Top = top
					dg.Entries = append(dg.Entries, e)
				}
				slices.SortFunc(dg.Entries, func(a, b crdt.DigestEntry) int { return strings.Compare(a.Name, b.Name) })
				return dg
			}
			first := func() string { return scripttest.Name(t, d, 0) }
			switch d.Cmd {
			case "mine":
				mine = digest()
				return "ok\n"
			case "round":
				tr.Round(mine)
				return "ok\n"
			case "streaming":
				return "[" + strings.Join(tr.Streaming(mine), " ") + "]\n"
			case "tick":
				now = now.Add(scripttest.Step(t, d))
				return "now +" + now.Sub(start).String() + "\n"
			case "peer":
				from := first()
				streaming := scripttest.Values(d, "streaming")
				window := scripttest.Duration(t, d, "window", 4*time.Second)
				peer := digest("streaming", "window")
				adj := tr.Adjust(from, peer, streaming, mine, now, window)
				cur := ByName(mine)
				var out []string
				for i, e := range peer.Entries {
					c, ok := cur[e.Name]
					if ok && c.Incarnation > e.Incarnation {
						out = append(out, fmt.Sprintf("%s: peer holds incarnation %d, ours is %d: repaired whole", e.Name, e.Incarnation, c.Incarnation))
						continue
					}
					if !ok || c.Incarnation != e.Incarnation || c.Top <= e.Top {
						continue
					}
					if adj.Entries[i].Top == c.Top {
						out = append(out, fmt.Sprintf("%s: peer %d of %d, left out (on its way)", e.Name, e.Top, c.Top))
					} else {
						out = append(out, fmt.Sprintf("%s: peer %d of %d, repaired (%d operations)", e.Name, e.Top, c.Top, c.Top-e.Top))
					}
				}
				if len(out) == 0 {
					out = append(out, "peer lacks nothing of ours it names")
				}
				return strings.Join(out, "\n") + "\n"
			case "diverge":
				pd, ok := tr.Peers()[first()]
				if !ok {
					return "no digest\n"
				}
				behind, ahead := Diverge(ByName(mine), pd.Tops)
				return fmt.Sprintf("behind %d, ahead %d, age %s\n", behind, ahead, now.Sub(pd.At))
			case "forget":
				tr.Forget(first())
				return "ok\n"
			}
			d.Fatalf(t, "unknown command %s", d.Cmd)
			return ""
		}
	})
}
