package ui_test

// The dashboard in a real browser: headless Chromium driven through the
// DevTools protocol (chromedp), reading what a person would see on the
// page (rendered text, innerText) rather than the API behind it.
//
// Needs Chromium (Debian's chromium package; .ci/run installs it as root):
// without it the tests skip and say so. On a failure each open page is
// saved (a PNG screenshot and its HTML) to $ROSTER_UI_ARTIFACTS, or else to
// a new temporary directory, which the failure message names.
// ROSTER_UI_SCREENSHOT=<file.png> makes TestDashboardCluster save the
// page it ends on there (README's docs/ui.png).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roster-io/roster/internal/rostertest"

	"github.com/roster-io/roster/internal/syncbuf"

	"github.com/chromedp/chromedp"
)

// chromium returns the browser's path, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a browser and roster nodes; skipped with -short")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium in PATH (looked for chromium, chromium-browser, google-chrome, google-chrome-stable): " +
		"install Debian's chromium (apt-get install chromium) to run the dashboard's browser tests; .ci/run does as root")
	return ""
}

// browser is one headless Chromium; its tabs are pages.
type browser struct {
	t    *testing.T
	ctx  context.Context
	mu   sync.Mutex
	tabs []*tab
	dir  string // where failure artifacts went, once saved
}

type tab struct {
	b    *browser
	name string
	ctx  context.Context
}

func newBrowser(t *testing.T) *browser {
	path := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.WindowSize(1360, 1020),
		chromedp.Flag("lang", "en-US"),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run its sandbox as root
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		cancel()
		cancelAlloc()
		t.Fatalf("starting %s: %v", path, err)
	}
	b := &browser{t: t, ctx: ctx}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// Runs before the browser closes (cleanups run last first).
	t.Cleanup(func() {
		if t.Failed() && b.dir == "" {
			if dir := b.saveArtifacts(); dir != "" {
				t.Logf("dashboard screenshots and HTML saved in %s", dir)
			}
		}
	})
	return b
}

// open opens url in a new tab.
func (b *browser) open(name, url string) *tab {
	ctx, _ := chromedp.NewContext(b.ctx) // closed with the browser
	p := &tab{b: b, name: name, ctx: ctx}
	b.mu.Lock()
	b.tabs = append(b.tabs, p)
	b.mu.Unlock()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		p.fatalf("opening %s: %v", url, err)
	}
	return p
}

// saveArtifacts saves a screenshot and the HTML of every tab and returns
// the directory, or "" if it could not make one.
func (b *browser) saveArtifacts() string {
	dir := os.Getenv("ROSTER_UI_ARTIFACTS")
	var err error
	if dir != "" {
		err = os.MkdirAll(dir, 0o755)
	} else {
		dir, err = os.MkdirTemp("", "roster-ui-"+regexp.MustCompile(`\W+`).ReplaceAllString(b.t.Name(), "_")+"-")
	}
	if err != nil {
		b.t.Logf("no directory for the screenshots: %v", err)
		return ""
	}
	b.dir = dir
	b.mu.Lock()
	tabs := append([]*tab(nil), b.tabs...)
	b.mu.Unlock()
	for _, p := range tabs {
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(filepath.Join(dir, p.name+".png"), png, 0o644)
		} else {
			b.t.Logf("screenshot of %s: %v", p.name, err)
		}
		if html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`)); err == nil {
			_ = os.WriteFile(filepath.Join(dir, p.name+".html"), []byte(html), 0o644)
		}
		cancel()
	}
	return dir
}

// fatalf saves every page and fails the test, naming where they went.
func (p *tab) fatalf(format string, args ...any) {
	p.b.t.Helper()
	msg := fmt.Sprintf(format, args...)
	if dir := p.b.saveArtifacts(); dir != "" {
		msg += "\n(screenshots and HTML of the pages: " + dir + ")"
	}
	p.b.t.Fatal(msg)
}

// eval evaluates a JavaScript expression on the page into T.
func eval[T any](p *tab, js string) T {
	p.b.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		p.fatalf("%s: evaluating %s: %v", p.name, js, err)
	}
	return v
}

// see waits until the JavaScript expression js, which gives a string of
// what is on the page, satisfies ok; it fails the test, with the last
// value, after within.
func (p *tab) see(what string, within time.Duration, js string, ok func(string) bool) string {
	p.b.t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		cancel()
		if err == nil {
			last = v
			if ok(v) {
				return v
			}
		} else {
			last = "error: " + err.Error()
		}
		if time.Now().After(deadline) {
			p.fatalf("%s: %s: not seen within %v; the page shows %q", p.name, what, within, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func equals(want string) func(string) bool { return func(s string) bool { return s == want } }
func contains(want string) func(string) bool {
	return func(s string) bool { return strings.Contains(s, want) }
}

// click clicks the element sel selects (CSS).
func (p *tab) click(sel string) {
	p.b.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		p.fatalf("%s: clicking %s: %v", p.name, sel, err)
	}
}

// typeInto types text into the input sel selects.
func (p *tab) typeInto(sel, text string) {
	p.b.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(sel), text)); err != nil {
		p.fatalf("%s: typing into %s: %v", p.name, sel, err)
	}
}

// Expressions reading the page as a person sees it: the rendered text
// (innerText) of what is shown, "" for what is hidden (innerText alone
// gives the text of a hidden element).
const (
	jsText = `(sel) => { const e = document.querySelector(sel); return !e ? "<none>" : e.checkVisibility() ? e.innerText.trim() : ""; }`
	// jsRows: the visible rows of a table, cells joined by " | ", rows by "\n".
	jsRows = `(sel) => [...document.querySelectorAll(sel + " tbody tr")].filter(tr => tr.checkVisibility()).map(tr => [...tr.cells].map(c => c.innerText.trim()).join(" | ")).join("\n")`
	// jsMembers: the member rows in view (the list draws a few more above
	// and below), as "id | owner | incarnation | meta".
	jsMembers = `(() => {
		const v = document.querySelector("#members-viewport");
		if (!v.checkVisibility()) return "";
		const box = v.getBoundingClientRect();
		return [...document.querySelectorAll("#members-rows .mrow")]
			.filter(r => { const b = r.getBoundingClientRect(); return b.bottom > box.top + 1 && b.top < box.bottom - 1; })
			.map(r => [...r.children].map(c => c.innerText.trim()).join(" | ")).join("\n");
	})()`
	jsEvents = `[...document.querySelectorAll("#events li")].map(li => li.innerText.replace(/\s+/g, " ").trim()).join("\n")`
)

func text(sel string) string {
	return "(" + jsText + ")(" + strconv.Quote(sel) + ")"
}

func rows(sel string) string {
	return "(" + jsRows + ")(" + strconv.Quote(sel) + ")"
}

// --- roster serve processes ---------------------------------------------

// roster is cmd/roster, built once per test binary.
var roster rostertest.Binary

// rosterBinary returns roster's path, building it on first use.
func rosterBinary(t *testing.T) string { return roster.Path(t) }

func TestMain(m *testing.M) {
	code := m.Run()
	roster.Remove()
	os.Exit(code)
}

// node is one `roster serve` process.
type node struct {
	t                    *testing.T
	name, token          string
	httpPort, gossipPort int
	cmd                  *exec.Cmd
	out                  *syncbuf.Buffer
	exited               chan struct{}
}

func (n *node) url() string        { return "http://127.0.0.1:" + strconv.Itoa(n.httpPort) }
func (n *node) gossipAddr() string { return "127.0.0.1:" + strconv.Itoa(n.gossipPort) }

// startNode starts roster serve and waits until it answers /healthz.
func startNode(t *testing.T, cluster, name, token string, seeds ...string) *node {
	t.Helper()
	n := &node{t: t, name: name, token: token, httpPort: rostertest.FreePort(t), gossipPort: rostertest.FreePort(t), out: &syncbuf.Buffer{}, exited: make(chan struct{})}
	args := []string{"serve", "--name", name, "--data-dir", filepath.Join(t.TempDir(), name), "--profile", "local",
		"--gossip-addr", n.gossipAddr(), "--http-addr", "127.0.0.1:" + strconv.Itoa(n.httpPort),
		"--scopes", "default,jobs", "--log-level", "warn", "--cluster", cluster}
	for _, s := range seeds {
		args = append(args, "--join", s)
	}
	if token != "" {
		args = append(args, "--api-token", token)
	}
	n.cmd = exec.Command(rosterBinary(t), args...)
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = n.cmd.Wait(); close(n.exited) }()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, n.out)
		}
	})
	n.eventually("answers /healthz", func() bool {
		resp, err := http.Get(n.url() + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return n
}

func (n *node) kill() {
	select {
	case <-n.exited:
	default:
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
}

func (n *node) eventually(what string, cond func() bool) {
	n.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			n.t.Fatalf("%s %s: not within 15s", n.name, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// call sends a request to the node's API and returns the status and body.
func (n *node) call(method, path, body string) (int, string) {
	n.t.Helper()
	req, err := http.NewRequest(method, n.url()+path, strings.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	if n.token != "" {
		req.Header.Set("Authorization", "Bearer "+n.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (n *node) join(group, id, meta string) {
	n.t.Helper()
	if code, body := n.call("PUT", "/v1/scopes/default/groups/"+group+"/members/"+id, `{"meta":`+meta+`}`); code != http.StatusOK {
		n.t.Fatalf("join %s/%s on %s: %d %s", group, id, n.name, code, body)
	}
}

// incarnation returns the node's incarnation, as it says in /v1/nodes.
func (n *node) incarnation() string {
	n.t.Helper()
	code, body := n.call("GET", "/v1/nodes", "")
	var v struct {
		Nodes []struct {
			Incarnation json.Number
			Self        bool
		}
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); code != http.StatusOK || err != nil {
		n.t.Fatalf("%s: /v1/nodes: %d %s", n.name, code, body)
	}
	for _, x := range v.Nodes {
		if x.Self {
			return x.Incarnation.String()
		}
	}
	n.t.Fatalf("%s: /v1/nodes lists no self: %s", n.name, body)
	return ""
}

// ready reports whether the node sees every node of names alive and is
// ready.
func (n *node) ready(names ...string) bool {
	code, body := n.call("GET", "/v1/nodes", "")
	if code != http.StatusOK {
		return false
	}
	var v struct {
		Nodes []struct{ Name, State string }
	}
	if json.Unmarshal([]byte(body), &v) != nil || len(v.Nodes) != len(names) {
		return false
	}
	for _, x := range v.Nodes {
		if x.State != "alive" {
			return false
		}
	}
	code, _ = n.call("GET", "/readyz", "")
	return code == http.StatusOK
}
