package ui_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/roster-io/roster/registry"
	"github.com/roster-io/roster/server"
)

const seeWithin = 15 * time.Second

// TestDashboardCluster: three `roster serve` processes; n3's dashboard,
// behind --api-token, as a person uses it: the token form first, then the
// nodes all alive and in sync, a join on n1 in the live events, the
// groups and the members with their metadata and owner, and n2 turning
// dead once it is SIGKILLed (its members hidden, their owner-down leaves
// in the events).
func TestDashboardCluster(t *testing.T) {
	b := newBrowser(t)
	began := time.Now()
	cluster := "ui-" + strconv.Itoa(os.Getpid())
	n1 := startNode(t, cluster, "n1", "")
	n2 := startNode(t, cluster, "n2", "", n1.gossipAddr())
	n3 := startNode(t, cluster, "n3", "t0ken", n1.gossipAddr())
	for _, n := range []*node{n1, n2, n3} {
		n.eventually("sees three nodes alive and is ready", func() bool { return n.ready("n1", "n2", "n3") })
	}
	t.Logf("cluster of 3 up in %v", time.Since(began).Round(time.Millisecond))

	p := b.open("n3", n3.url()+"/ui")
	p.see("the token form", seeWithin, text("#login"), contains("API token"))
	p.see("no data without the token", seeWithin, text("#main"), equals(""))
	p.typeInto("#token", "wrong")
	p.click("#login-form button")
	p.see("the refusal of a wrong token", seeWithin, text("#login-error"), contains("refused"))
	p.typeInto("#token", "t0ken")
	p.click("#login-form button")

	incs := []string{n1.incarnation(), n2.incarnation(), n3.incarnation()}
	allAlive := func(s string) bool {
		lines := strings.Split(s, "\n")
		if len(lines) != 3 {
			return false
		}
		for i, l := range lines {
			// Incarnations are 64-bit: shown exactly, not rounded to a
			// float64.
			if !strings.HasPrefix(l, fmt.Sprintf("n%d | alive | %s | default, jobs | 127.0.0.1:", i+1, incs[i])) {
				return false
			}
		}
		return true
	}
	p.see("three nodes, all alive", seeWithin, rows("#nodes"), allAlive)
	if self := eval[string](p, `document.querySelector("#nodes tr.self").dataset.node`); self != "n3" {
		p.fatalf("the page marks %q as this node, want n3", self)
	}
	inSync := func(s string) bool {
		return strings.Count(s, "in sync") == 2 // n1 and n2; n3 is this node
	}
	p.see("n1 and n2 in sync with n3", seeWithin, rows("#nodes"), inSync)
	p.see("the node's identity in the header", seeWithin, text("#self"), equals("node n3 · incarnation "+incs[2]))
	// The token is kept for the tab: a reload does not ask again.
	if err := chromedp.Do(p.ctx, chromedp.Reload()); err != nil {
		p.fatalf("reload: %v", err)
	}
	p.see("the nodes after a reload, without the form", seeWithin, rows("#nodes"), allAlive)
	p.see("the token form hidden", seeWithin, text("#login"), equals(""))
	p.see("the event stream live", seeWithin, text("#events-status"), contains("live"))

	// A join on n1 appears on n3's page.
	joined := time.Now()
	n1.join("room", "alice", `{"addr":"10.0.0.5:4000","zone":"eu-1"}`)
	p.see("n1's join in n3's live events", seeWithin, jsEvents, contains("join room / alice on n1 · joined"))
	t.Logf("a join on n1 shown on n3's page after %v", time.Since(joined).Round(time.Millisecond))
	p.see("the group with its count", seeWithin, rows("#groups"), contains("room | 1"))
	p.click(`#groups tr[data-group="room"]`)
	p.see("the group's title", seeWithin, text("#members-title"), equals("Members of room"))
	p.see("alice, owned by n1, with her metadata", seeWithin, jsMembers, func(s string) bool {
		return strings.HasPrefix(s, "alice | n1 | "+incs[0]+" | ") && strings.HasSuffix(s, "addr=10.0.0.5:4000 · zone=eu-1")
	})

	// More members, some on n2, for the rest of the story (and the picture).
	n1.join("room", "bob", `{"addr":"10.0.0.6:4000","zone":"eu-2"}`)
	n3.join("room", "carol", `{"addr":"10.0.0.7:4000","zone":"us-1"}`)
	for i := range 3 {
		n2.join("workers", fmt.Sprintf("w-%d", i+1), fmt.Sprintf(`{"pid":"%d","queue":"mail"}`, 4100+i))
	}
	p.see("the room's three members", seeWithin, jsMembers, func(s string) bool {
		lines := strings.Split(s, "\n")
		return len(lines) == 3 && strings.HasPrefix(lines[0], "alice | n1") && strings.HasPrefix(lines[1], "bob | n1") && strings.HasPrefix(lines[2], "carol | n3")
	})
	p.see("the groups with their counts", seeWithin, rows("#groups"), equals("room | 3\nworkers | 3"))
	p.see("members in the summary", seeWithin, text("#members-summary"), equals("3 members"))

	// A killed node turns dead.
	n2.kill()
	killed := time.Now()
	p.see("n2 dead after its SIGKILL", seeWithin, text(`#nodes tr[data-node="n2"] .state`), equals("dead"))
	t.Logf("n2 shown dead %v after its SIGKILL", time.Since(killed).Round(time.Millisecond))
	p.see("the other two still alive", seeWithin, text(`#nodes tr[data-node="n1"] .state`)+`+"/"+`+text(`#nodes tr[data-node="n3"] .state`), equals("alive/alive"))
	p.see("n2's members hidden", seeWithin, rows("#groups"), equals("room | 3"))
	p.see("their owner-down leaves in the events", seeWithin, jsEvents, contains("leave workers / w-3 on n2 · owner-down"))
	p.see("the header's count", seeWithin, text("#conn"), equals("2 of 3 nodes alive"))

	if out := os.Getenv("ROSTER_UI_SCREENSHOT"); out != "" {
		png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			p.fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot of n3's page (%d bytes) written to %s", len(png), out)
	}
	t.Logf("whole test: %v", time.Since(began).Round(time.Millisecond))
}

// TestDashboardLargeGroup: a group of 100,000 members (joined through the
// registry of an in-process node) is listed with its count, opened at its
// first members and scrolled to the middle and the end, while the page
// holds a few dozen member rows in its DOM; the prefix filter narrows the
// groups; the live events carry a change to the group (and, without a
// snapshot, no megabytes of JSON).
func TestDashboardLargeGroup(t *testing.T) {
	b := newBrowser(t)
	ctx := context.Background()
	cfg := registry.LocalConfig("solo")
	cfg.Scopes = []string{"default"}
	cfg.DataDir = t.TempDir()
	reg, err := registry.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(reg, server.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		ts.Close()
		_ = reg.Close(sctx)
	})

	const n = 100_000
	began := time.Now()
	for i := range n {
		if _, err := reg.Join(ctx, "default", "big", fmt.Sprintf("m%06d", i), registry.Meta{"slot": strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"a", "b"} {
		if _, err := reg.Join(ctx, "default", "small-"+id, "x", nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("joined %d members in %v", n, time.Since(began).Round(time.Millisecond))

	inc := strconv.FormatUint(reg.Incarnation(), 10)
	p := b.open("solo", ts.URL+"/ui/")
	p.see("the large group with its count", seeWithin, rows("#groups"), equals("big | 100,000\nsmall-a | 1\nsmall-b | 1"))
	p.typeInto("#filter", "small")
	p.see("the groups starting with small", seeWithin, rows("#groups"), equals("small-a | 1\nsmall-b | 1"))
	p.see("the range of the filtered list", seeWithin, text("#groups-range"), equals("1–2 of 2"))
	p.typeInto("#filter", strings.Repeat(kb.Backspace, len("small"))+"b")
	p.see("the filter changed to b", seeWithin, rows("#groups"), equals("big | 100,000"))

	opened := time.Now()
	p.click(`#groups tr[data-group="big"]`)
	p.see("the first members", seeWithin, jsMembers, func(s string) bool { return strings.HasPrefix(s, "m000000 | solo | ") })
	t.Logf("first rows of the 100,000 shown %v after the click", time.Since(opened).Round(time.Millisecond))
	p.see("the count", seeWithin, text("#members-summary"), contains("100,000 members"))
	checkSmall := func(where string) {
		t.Helper()
		drawn := eval[int](p, `document.querySelectorAll("#members-rows .mrow").length`)
		all := eval[int](p, `document.getElementsByTagName("*").length`)
		t.Logf("%s: %d member rows drawn, %d elements in the page", where, drawn, all)
		if drawn < 10 || drawn > 40 || all > 1000 {
			p.fatalf("%s: %d member rows and %d elements in the DOM; want 10 to 40 rows, under 1,000 elements", where, drawn, all)
		}
	}
	checkSmall("top")

	scrolled := time.Now()
	eval[int](p, `(() => { const v = document.querySelector("#members-viewport"); v.scrollTop = 50000 * 28; return v.scrollTop; })()`)
	p.see("the middle of the group", seeWithin, jsMembers, func(s string) bool { return strings.HasPrefix(s, "m050000 | solo | ") })
	eval[int](p, `(() => { const v = document.querySelector("#members-viewport"); v.scrollTop = v.scrollHeight; return v.scrollTop; })()`)
	p.see("the last member at the bottom", seeWithin, jsMembers, func(s string) bool {
		return strings.HasSuffix(s, "m099999 | solo | "+inc+" | slot=99999")
	})
	t.Logf("scrolled to the middle and the end in %v", time.Since(scrolled).Round(time.Millisecond))
	checkSmall("bottom")
	p.see("the range in view", seeWithin, text("#members-summary"), contains("–100,000"))

	if _, err := reg.Join(ctx, "default", "big", "zz-late", nil); err != nil {
		t.Fatal(err)
	}
	p.see("the join in the live events", seeWithin, jsEvents, contains("join big / zz-late on solo · joined"))
	p.see("the new count", seeWithin, text("#members-summary"), contains("100,001 members"))
	eval[int](p, `(() => { const v = document.querySelector("#members-viewport"); v.scrollTop = v.scrollHeight; return v.scrollTop; })()`)
	p.see("the new member at the bottom", seeWithin, jsMembers, func(s string) bool { return strings.HasSuffix(s, "\nzz-late | solo | "+inc+" | ") })
}
