package store

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strings"

	"github.com/roster-io/roster/jepsen/history"
)

// The timeline: one self-contained HTML page (inline CSS, no script),
// one column per process (the nemesis first, then the clients, then the
// watchers), time flowing down, each operation a box from its
// invocation to its completion colored by outcome, its title (the
// tooltip) saying what it was; the fault windows are bands across.

// maxBoxes caps the boxes drawn: beyond it, ok client operations are
// thinned evenly (everything else is drawn) and the page says so.
const maxBoxes = 20000

const (
	colWidth   = 64
	maxHeight  = 40000 // px, the page's tallest time axis
	pxPerSec   = 400.0 // px, when the run is short enough
	tickMinGap = 80    // px between time labels
	maxTitle   = 240   // characters of an operation's value in its title
)

type box struct {
	col, top, height int
	class, title     string
}

func (d *Dir) saveTimeline(ops []history.Op) error {
	return writeWith(filepath.Join(d.path, TimelineFile), func(w io.Writer) error {
		return writeTimeline(w, d.run.Name, ops)
	})
}

// columns orders the processes that appear in ops (metrics samples
// aside) and names them.
func columns(ops []history.Op) ([]int, map[int]string) {
	names := map[int]string{}
	kind := map[int]int{} // 0 nemesis, 1 client, 2 watcher
	for _, op := range ops {
		if op.F == history.FMetrics {
			continue
		}
		if _, ok := names[op.Process]; ok && (op.Node == "" || strings.Contains(names[op.Process], "(")) {
			continue
		}
		switch {
		case op.F == history.FNemesis || op.Process == history.NemesisProcess:
			names[op.Process], kind[op.Process] = "nemesis", 0
		case op.F == history.FWatch:
			names[op.Process], kind[op.Process] = fmt.Sprintf("watch %d", op.Process), 2
		default:
			names[op.Process], kind[op.Process] = fmt.Sprintf("p%d", op.Process), 1
		}
		if op.Node != "" && kind[op.Process] != 0 {
			names[op.Process] += " (" + op.Node + ")"
		}
	}
	procs := make([]int, 0, len(names))
	for p := range names {
		procs = append(procs, p)
	}
	sort.Slice(procs, func(i, j int) bool {
		if kind[procs[i]] != kind[procs[j]] {
			return kind[procs[i]] < kind[procs[j]]
		}
		return procs[i] < procs[j]
	})
	return procs, names
}

// describe is an operation's tooltip: what it was and how it ended.
func describe(inv, done *history.Op) string {
	op := inv
	if done != nil {
		op = done
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s #%d p%d", inv.F, inv.Index, inv.Process)
	if op.Node != "" {
		b.WriteString(" on " + op.Node)
	}
	b.WriteString("\n")
	if done == nil {
		fmt.Fprintf(&b, "at %s", seconds(inv.Time))
		if inv.Type == history.Invoke {
			b.WriteString(", never completed")
		} else {
			b.WriteString(", " + string(inv.Type))
		}
	} else {
		fmt.Fprintf(&b, "%s at %s after %.1f ms", done.Type, seconds(done.Time), float64(done.Time-inv.Time)/1e6)
	}
	v := inv.Value
	if done != nil && (done.F == history.FRead || done.F == history.FFinalRead || done.F == history.FSessionCreate) {
		v = done.Value
	}
	b.WriteString("\n" + valueText(v))
	if op.Error != "" {
		b.WriteString("\nerror: " + op.Error)
	}
	return b.String()
}

// valueText renders a value for a tooltip: a read's members by id, any
// other value as JSON, cut to maxTitle characters.
func valueText(v history.Value) string {
	var s string
	if len(v.Members) > 0 {
		ids := make([]string, len(v.Members))
		for i, m := range v.Members {
			ids[i] = m.Group + "/" + m.ID
		}
		s = fmt.Sprintf("%d members: %s", len(ids), strings.Join(ids, " "))
		if v.Group != "" {
			s = v.Group + ": " + s
		}
	} else {
		b, _ := json.Marshal(v)
		s = string(b)
	}
	if r := []rune(s); len(r) > maxTitle {
		s = string(r[:maxTitle]) + "…"
	}
	return s
}

// niceStep is the smallest of a few round steps (s) at least min.
func niceStep(min float64) float64 {
	for _, s := range []float64{0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600} {
		if s >= min {
			return s
		}
	}
	return 3600 * math.Ceil(min/3600)
}

// writeTimeline writes the page.
func writeTimeline(w io.Writer, name string, ops []history.Op) error {
	procs, names := columns(ops)
	col := map[int]int{}
	for i, p := range procs {
		col[p] = i
	}
	end := lastTime(ops)
	scale := pxPerSec // px per second
	if secs(end)*scale > maxHeight {
		scale = maxHeight / secs(end)
	}
	px := func(ns int64) int { return int(math.Round(secs(ns) * scale)) }
	height := px(end) + 20

	pairs := history.Pairs(ops)
	nOK := 0
	for _, p := range pairs {
		if p.Outcome() == history.OK {
			nOK++
		}
	}
	stride := 1
	if others := len(ops) - 2*len(pairs); others+len(pairs) > maxBoxes && nOK > 0 {
		budget := max(maxBoxes-others-(len(pairs)-nOK), maxBoxes/10)
		stride = (nOK + budget - 1) / budget
	}

	var boxes []box
	seenOK := 0
	for _, p := range pairs {
		if p.Outcome() == history.OK {
			seenOK++
			if (seenOK-1)%stride != 0 {
				continue
			}
		}
		top := px(p.Invoke.Time)
		bottom := height - 20
		class := "info"
		if p.Completion != nil {
			bottom = px(p.Completion.Time)
			class = string(p.Completion.Type)
		} else {
			class = "open"
		}
		boxes = append(boxes, box{col: col[p.Invoke.Process], top: top, height: max(bottom-top, 2), class: class, title: describe(p.Invoke, p.Completion)})
	}
	for i := range ops {
		op := &ops[i]
		switch op.F {
		case history.FWatch:
			kind := "?"
			if op.Value.Event != nil {
				kind = op.Value.Event.Kind
			}
			title := fmt.Sprintf("watch %s #%d on %s at %s", kind, op.Index, op.Node, seconds(op.Time))
			if e := op.Value.Event; e != nil {
				if e.Member != nil {
					title += "\n" + e.Member.Group + "/" + e.Member.ID
				}
				if len(e.Members) > 0 {
					title += "\n" + valueText(history.Value{Members: e.Members})
				}
				if e.Reason != "" {
					title += "\nreason: " + e.Reason
				}
			}
			if op.Error != "" {
				title += "\nerror: " + op.Error
			}
			class := "ev"
			if kind == "disconnected" {
				class = "info"
			}
			boxes = append(boxes, box{col: col[op.Process], top: px(op.Time), height: 3, class: class, title: title})
		case history.FNemesis:
			title := describe(op, nil)
			class := "nem"
			if op.Value.Fault != nil {
				f := op.Value.Fault
				title = fmt.Sprintf("nemesis %s %s #%d at %s (%s)", f.Kind, f.Name, op.Index, seconds(op.Time), op.Type)
				if len(f.Nodes) > 0 {
					title += "\nnodes: " + strings.Join(f.Nodes, " ")
				}
				if f.Verified != nil {
					title += fmt.Sprintf("\nverified: %v", *f.Verified)
				}
				if op.Error != "" {
					title += "\nerror: " + op.Error
				}
			}
			boxes = append(boxes, box{col: col[op.Process], top: px(op.Time), height: 4, class: class, title: title})
		}
	}

	width := len(procs) * colWidth
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>\n")
	fmt.Fprintf(&b, "<title>%s: timeline</title>\n", html.EscapeString(name))
	b.WriteString(`<style>
body{font:12px sans-serif;margin:0;color:#222}
header{padding:8px 12px}
header span.k{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle;border:1px solid #0003}
.heads{position:sticky;top:0;z-index:5;background:#fff;height:22px;border-bottom:1px solid #ccc;margin-left:64px}
.heads div{position:absolute;top:4px;width:62px;overflow:hidden;white-space:nowrap;text-align:center;font-size:11px}
.tl{position:relative;margin-left:64px}
.c{position:absolute;top:0;bottom:0;border-left:1px solid #eee}
.t{position:absolute;left:-64px;width:58px;text-align:right;color:#777;font-size:10px}
.g{position:absolute;left:0;right:0;border-top:1px solid #f3f3f3}
.f{position:absolute;left:0;right:0;z-index:0;font-size:10px;color:#555;padding-left:2px}
.f.partition{background:#e0303020}.f.loss{background:#e0901020}.f.pause{background:#3060e020}.f.kill{background:#60606030}
.f.inst{background:none;border-top:1px dashed #802080;height:0}
.b{position:absolute;z-index:1;width:58px;box-sizing:border-box;border:1px solid #0004;border-radius:2px}
.b:hover{border-color:#000;z-index:2}
.ok{background:#7cc97c}.fail{background:#ef7b7b}.info{background:#ffbf5e}.open{background:#ffe2b3}
.ev{background:#8fb0d0}.nem{background:#b07cd0}
</style></head><body>
<header>`)
	fmt.Fprintf(&b, "<b>%s</b>: %d operations, %d processes, %s.", html.EscapeString(name), len(pairs), len(procs), seconds(end))
	for _, k := range []string{"ok", "fail", "info", "open", "ev", "nem"} {
		label := map[string]string{"open": "never completed", "ev": "watch event", "nem": "nemesis"}[k]
		if label == "" {
			label = k
		}
		fmt.Fprintf(&b, `<span class="k %s"></span>%s`, k, label)
	}
	b.WriteString("<br/>Hover over a box for the operation. Bands are faults in force.")
	if stride > 1 {
		fmt.Fprintf(&b, " <b>Only 1 in %d ok operations is drawn</b> (%d of %d), to keep the page usable; every fail, info, watch event and fault is.", stride, (nOK+stride-1)/stride, nOK)
	}
	b.WriteString("</header>\n")
	fmt.Fprintf(&b, "<div class=\"heads\" style=\"width:%dpx\">", width)
	for i, p := range procs {
		fmt.Fprintf(&b, `<div style="left:%dpx" title="%s">%s</div>`, i*colWidth, html.EscapeString(names[p]), html.EscapeString(names[p]))
	}
	b.WriteString("</div>\n")
	fmt.Fprintf(&b, "<div class=\"tl\" style=\"width:%dpx;height:%dpx\">\n", width, height)
	step := niceStep(tickMinGap / scale)
	for t := 0.0; t <= secs(end); t += step {
		y := int(math.Round(t * scale))
		fmt.Fprintf(&b, "<div class=\"g\" style=\"top:%dpx\"></div><div class=\"t\" style=\"top:%dpx\">%gs</div>\n", y, y, math.Round(t*10)/10)
	}
	for i := range procs {
		fmt.Fprintf(&b, "<div class=\"c\" style=\"left:%dpx\"></div>", i*colWidth)
	}
	b.WriteString("\n")
	for _, fw := range FaultWindows(ops) {
		label := html.EscapeString(strings.Join(strings.Fields(fw.Kind+" "+fw.Name+" "+strings.Join(fw.Nodes, " ")), " "))
		if fw.Start == fw.End {
			fmt.Fprintf(&b, "<div class=\"f inst\" style=\"top:%dpx\" title=\"%s\">%s</div>\n", px(fw.Start), label, label)
			continue
		}
		fmt.Fprintf(&b, "<div class=\"f %s\" style=\"top:%dpx;height:%dpx\" title=\"%s\">%s</div>\n",
			html.EscapeString(fw.Kind), px(fw.Start), max(px(fw.End)-px(fw.Start), 1), label, label)
	}
	for _, bx := range boxes {
		fmt.Fprintf(&b, "<div class=\"b %s\" style=\"left:%dpx;top:%dpx;height:%dpx\" title=\"%s\"></div>\n",
			bx.class, bx.col*colWidth+3, bx.top, bx.height, html.EscapeString(bx.title))
	}
	b.WriteString("</div>\n</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
