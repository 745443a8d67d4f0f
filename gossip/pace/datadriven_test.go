package pace

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestScripts runs the interaction scripts in testdata/. Rewrite the
// expected output after an intended change with:
//
//	go test ./gossip/pace -run TestScripts -rewrite
//
// Commands (the time starts at +0s; flags are bare words):
//
//	config interval=1s [rootmin=64]   a new pacer (rng seeded 1)
//	round s peers=3 [replicas=N] [caughtup] [unsynced] [transferring] [merging]
//	                                  the periodic round's decision for scope s
//	tick +500ms                       moves time
//	catchup s [transferring]          may s's digest go out of round now?
//	reply s [caughtup] [transferring] [merging]
//	                                  may a peer's digest be answered with ours?
//	greet s p                         may p, just up, be greeted?
//	ask s o                           may o be asked for a gap?
//	repair s p sum=N                  would answering p's digest repeat a repair?
//	forget s p                        p went away
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if filepath.Ext(path) != ".txt" {
			t.Skip()
		}
		var p *Pacer
		var rng *rand.Rand
		start := time.Unix(1000, 0)
		now := start
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			var bare []string
			kv := map[string]string{}
			for _, a := range d.CmdArgs {
				if len(a.Vals) == 0 {
					bare = append(bare, a.Key)
				} else {
					kv[a.Key] = a.Vals[0]
				}
			}
			flag := func(k string) bool {
				for _, b := range bare {
					if b == k {
						return true
					}
				}
				return false
			}
			num := func(k string) int {
				v, ok := kv[k]
				if !ok {
					return 0
				}
				x, err := strconv.Atoi(v)
				if err != nil {
					d.Fatalf(t, "%s: %v", k, err)
				}
				return x
			}
			arg := func(i int) string {
				if i >= len(bare) {
					d.Fatalf(t, "%s needs %d bare arguments", d.Cmd, i+1)
				}
				return bare[i]
			}
			yes := func(b bool) string {
				if b {
					return "yes"
				}
				return "no"
			}
			if d.Cmd != "config" && p == nil {
				d.Fatalf(t, "config first")
			}
			switch d.Cmd {
			case "config":
				iv, err := time.ParseDuration(kv["interval"])
				if err != nil {
					d.Fatalf(t, "interval: %v", err)
				}
				rootmin := 64
				if _, ok := kv["rootmin"]; ok {
					rootmin = num("rootmin")
				}
				p = New(Config{Interval: iv, RangeRootMin: rootmin})
				rng = rand.New(rand.NewPCG(1, 1))
				now = start
				if rootmin < 0 {
					return fmt.Sprintf("interval %s, roots off\n", iv)
				}
				return fmt.Sprintf("interval %s, roots from %d replicas\n", iv, rootmin)
			case "round":
				f := Facts{
					Transferring: flag("transferring"), Merging: flag("merging"), Peers: num("peers"),
					CaughtUp: flag("caughtup"), Unsynced: flag("unsynced"), Replicas: num("replicas"),
				}
				dec := p.Round(now, arg(0), f, rng)
				if dec.Action == Digest || dec.Action == Root {
					return fmt.Sprintf("%s to peer %d of %d\n", dec.Action, dec.Peer, f.Peers)
				}
				return dec.Action.String() + "\n"
			case "tick":
				step, err := time.ParseDuration(strings.TrimPrefix(arg(0), "+"))
				if err != nil {
					d.Fatalf(t, "%v", err)
				}
				now = now.Add(step)
				return "now +" + now.Sub(start).String() + "\n"
			case "catchup":
				return yes(p.MayCatchUp(now, arg(0), flag("transferring"))) + "\n"
			case "reply":
				f := Facts{CaughtUp: flag("caughtup"), Transferring: flag("transferring"), Merging: flag("merging")}
				return yes(p.MayReply(now, arg(0), f)) + "\n"
			case "greet":
				return yes(p.MayGreet(now, arg(0), arg(1))) + "\n"
			case "ask":
				return yes(p.MayAskOwner(now, arg(0), arg(1))) + "\n"
			case "repair":
				return yes(p.RepeatRepair(now, arg(0), arg(1), uint64(num("sum")))) + "\n"
			case "forget":
				p.Forget(arg(0), arg(1))
				return "ok\n"
			}
			d.Fatalf(t, "unknown command %s", d.Cmd)
			return ""
		})
	})
}
