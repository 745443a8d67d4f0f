package peers

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/roster-io/roster/internal/scripttest"
)

// TestScripts runs the interaction scripts in testdata/. Rewrite the
// expected output after an intended change with:
//
//	go test ./gossip/peers -run TestScripts -rewrite
//
// Commands (times are since the script's start):
//
//	report a inc=1 [addr=h:p] alive|down
//	                      memberlist reports a (addr defaults to a's name
//	                      with :7946); prints the event, or that it is not news
//	leaving a inc=1       a announces it is leaving
//	owner x inc=1         x seen only as an owner in replicated state
//	tick +10s             moves time
//	expire retention=20s  forgets the nodes down that long
//	missing [seeds=(...)] what the rejoin loop would call
//	addrs                 the addresses a restart rejoins through
//	table                 every peer
//	rejoin base=1s max=8s starts a rejoin schedule (rng seeded 1)
//	check missing=N       the check due now: an attempt, or the next due time
//	done joined|failed    the attempt ends; prints the next due time
func TestScripts(t *testing.T) {
	scripttest.Run(t, func(*testing.T) scripttest.Handler {
		start := time.Unix(1000, 0)
		s := &script{tab: New[string]("self"), start: start, now: start}
		return s.run
	})
}

type script struct {
	tab        *Table[string]
	start, now time.Time
	rj         *Rejoin
	rng        *rand.Rand
}

func (s *script) since(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return "+" + t.Sub(s.start).String()
}

func (s *script) due() string {
	return fmt.Sprintf("due %s (in %s)", s.since(s.rj.Due()), s.rj.Due().Sub(s.now).Round(time.Millisecond))
}

func (s *script) run(t *testing.T, d *datadriven.TestData) string {
	var out []string
	arg := func(key string) (string, bool) { return scripttest.Value(d, key) }
	has := func(key string) bool { return d.HasArg(key) }
	var inc uint64
	if v, ok := arg("inc"); ok {
		if _, err := fmt.Sscan(v, &inc); err != nil {
			d.Fatalf(t, "inc: %v", err)
		}
	}
	dur := func(key string) time.Duration { return scripttest.Duration(t, d, key, 0) }
	name := ""
	if b := scripttest.Bare(d); len(b) > 0 {
		name = b[0]
	}
	switch d.Cmd {
	case "report":
		addr, ok := arg("addr")
		if !ok {
			addr = name + ":7946"
		}
		e, news := s.tab.Report(name, inc, addr, "info of "+name, has("alive"), s.now)
		if !news {
			out = append(out, "not news")
			break
		}
		what := "up"
		switch {
		case e.Alive && e.Restarted:
			what = "restarted"
		case e.Alive && e.WasAlive:
			what = "updated"
		case !e.Alive && e.Left:
			what = "left"
		case !e.Alive:
			what = "failed"
		}
		out = append(out, fmt.Sprintf("%s@%d %s", e.Name, e.Inc, what))
	case "leaving":
		taken, relabelled := s.tab.Leaving(name, inc, s.now)
		switch {
		case relabelled:
			out = append(out, "taken; its down event relabelled left")
		case taken:
			out = append(out, "taken")
		default:
			out = append(out, "refused")
		}
	case "owner":
		if p := s.tab.Owner(name, inc, s.now); p != nil {
			out = append(out, fmt.Sprintf("%s@%d %s", p.Name, p.Inc, p.State))
		} else {
			out = append(out, "not tracked")
		}
	case "tick":
		s.now = s.now.Add(scripttest.Step(t, d))
		out = append(out, "now "+s.since(s.now))
	case "expire":
		for _, r := range s.tab.Expire(s.now, dur("retention")) {
			out = append(out, fmt.Sprintf("forget %s@%d", r.Name, r.Inc))
		}
		if len(out) == 0 {
			out = append(out, "none")
		}
	case "missing":
		out = append(out, "["+strings.Join(s.tab.Missing(scripttest.Values(d, "seeds")), " ")+"]")
	case "addrs":
		out = append(out, "["+strings.Join(s.tab.Addrs(), " ")+"]")
	case "table":
		var lines []string
		s.tab.Each(func(p *Peer[string]) {
			lines = append(lines, fmt.Sprintf("%s@%d %s addr=%q down=%s forgotten=%v", p.Name, p.Inc, p.State, p.Addr, s.since(p.DownSince), p.Forgotten))
		})
		slices.Sort(lines)
		out = append(out, lines...)
		out = append(out, fmt.Sprintf("version %d", s.tab.Version()))
	case "rejoin":
		s.rj = NewRejoin(dur("base"), dur("max"), s.now)
		s.rng = rand.New(rand.NewPCG(1, 1))
		out = append(out, s.due())
	case "check":
		missing := scripttest.Int(t, d, "missing", 0)
		switch {
		case s.rj.Due().IsZero():
			s.rj.Check(s.now, missing, s.rng)
			out = append(out, "an attempt is running: nothing due until done")
		case s.rj.Check(s.now, missing, s.rng):
			out = append(out, "attempt; nothing due until done")
		default:
			out = append(out, "nothing missing; "+s.due())
		}
	case "done":
		s.rj.Done(s.now, has("joined"), s.rng)
		out = append(out, s.due())
	default:
		d.Fatalf(t, "unknown command %s", d.Cmd)
	}
	return strings.Join(out, "\n") + "\n"
}
