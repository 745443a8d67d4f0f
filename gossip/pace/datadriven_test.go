package pace

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/roster-io/roster/internal/scripttest"
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
	scripttest.Run(t, func(*testing.T) scripttest.Handler {
		s := &script{start: time.Unix(1000, 0)}
		s.now = s.start
		return s.run
	})
}

type script struct {
	p          *Pacer
	rng        *rand.Rand
	start, now time.Time
}

func yes(b bool) string {
	if b {
		return "yes\n"
	}
	return "no\n"
}

func (s *script) run(t *testing.T, d *datadriven.TestData) string {
	flag := func(k string) bool { return scripttest.Flag(d, k) }
	name := func(i int) string { return scripttest.Name(t, d, i) }
	if d.Cmd != "config" && s.p == nil {
		d.Fatalf(t, "config first")
	}
	switch d.Cmd {
	case "config":
		iv := scripttest.Duration(t, d, "interval", time.Second)
		rootmin := scripttest.Int(t, d, "rootmin", 64)
		s.p = New(Config{Interval: iv, RangeRootMin: rootmin})
		s.rng = rand.New(rand.NewPCG(1, 1))
		s.now = s.start
		if rootmin < 0 {
			return fmt.Sprintf("interval %s, roots off\n", iv)
		}
		return fmt.Sprintf("interval %s, roots from %d replicas\n", iv, rootmin)
	case "round":
		f := Facts{
			Transferring: flag("transferring"), Merging: flag("merging"), Peers: scripttest.Int(t, d, "peers", 0),
			CaughtUp: flag("caughtup"), Unsynced: flag("unsynced"), Replicas: scripttest.Int(t, d, "replicas", 0),
		}
		dec := s.p.Round(s.now, name(0), f, s.rng)
		if dec.Action == Digest || dec.Action == Root {
			return fmt.Sprintf("%s to peer %d of %d\n", dec.Action, dec.Peer, f.Peers)
		}
		return dec.Action.String() + "\n"
	case "tick":
		s.now = s.now.Add(scripttest.Step(t, d))
		return "now +" + s.now.Sub(s.start).String() + "\n"
	case "catchup":
		return yes(s.p.MayCatchUp(s.now, name(0), flag("transferring")))
	case "reply":
		return yes(s.p.MayReply(s.now, name(0), Facts{CaughtUp: flag("caughtup"), Transferring: flag("transferring"), Merging: flag("merging")}))
	case "greet":
		return yes(s.p.MayGreet(s.now, name(0), name(1)))
	case "ask":
		return yes(s.p.MayAskOwner(s.now, name(0), name(1)))
	case "repair":
		return yes(s.p.RepeatRepair(s.now, name(0), name(1), uint64(scripttest.Int(t, d, "sum", 0))))
	case "forget":
		s.p.Forget(name(0), name(1))
		return "ok\n"
	}
	d.Fatalf(t, "unknown command %s", d.Cmd)
	return ""
}
