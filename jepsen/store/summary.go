package store

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/roster-io/roster/jepsen/checker"
	"github.com/roster-io/roster/jepsen/history"
)

// maxExamples caps the examples summary.md lists per anomaly.
const maxExamples = 5

// writeSummary writes summary.md: the run, versions, command line,
// operation counts and latencies, the nemesis schedule, the checkers'
// verdicts, counts and quantiles, the files, and, on the last line, the
// verdict exactly as the command prints it.
func writeSummary(b *bytes.Buffer, run Run, ops []history.Op, rep checker.Report) {
	fmt.Fprintf(b, "# roster-jepsen: %s\n\n", md(run.Name))
	b.WriteString("| run | |\n|---|---|\n")
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(b, "| %s | %s |\n", k, md(v))
		}
	}
	row("workload", run.Workload)
	row("profile", run.Profile)
	row("nemesis", strings.Join(run.Nemesis, ", "))
	if run.Nodes > 0 {
		row("nodes", strconv.Itoa(run.Nodes))
	}
	row("seed", strconv.FormatInt(run.Seed, 10))
	if run.Duration > 0 {
		row("duration", run.Duration.String())
	}
	if !run.Start.IsZero() {
		row("started", run.Start.UTC().Format(time.RFC3339Nano))
	}
	row("history", fmt.Sprintf("%d entries over %s", len(ops), seconds(lastTime(ops))))
	row("verdict", rep.Verdict())

	b.WriteString("\n## Versions\n\n")
	fmt.Fprintf(b, "- go: %s\n", orUnknown(run.GoVersion))
	switch {
	case run.Bin == "":
		b.WriteString("- roster: in-process (this checkout)\n")
	case run.BinVersion == "":
		fmt.Fprintf(b, "- roster: `%s`\n", run.Bin)
	default:
		fmt.Fprintf(b, "- roster: `%s`: %s\n", run.Bin, md(run.BinVersion))
	}
	fmt.Fprintf(b, "- commit: %s\n", orUnknown(run.Commit))

	if len(run.Args) > 0 {
		fmt.Fprintf(b, "\n## Command line\n\n```\n%s\n```\n", shellQuote(run.Args))
	}

	writeOpCounts(b, ops)
	writeSchedule(b, ops)
	writeCheckers(b, rep)

	b.WriteString("\n## Files\n\n")
	b.WriteString("- `history.jsonl`: the history, one operation a line\n")
	b.WriteString("- `results.json`: the checkers' report\n")
	b.WriteString("- `timeline.html`: every operation by process over time\n")
	b.WriteString("- `latency`, `throughput`, `states`, `stable-latency-cdf` (`.png`, `.svg`): the plots, faults shaded\n")
	b.WriteString("- `logs/<node>.log`: the nodes' logs; `faults/<index>-<kind>.txt`: the packet filter at each fault\n")

	fmt.Fprintf(b, "\n## Verdict\n\n%s\n", rep.Verdict())
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return md(s)
}

// writeOpCounts tallies the client operations per F (history.Pairs: an
// operation the run ended before it completed counts as info) with the
// latency quantiles of the ok ones, then the watch events, nemesis
// records and metrics samples.
func writeOpCounts(b *bytes.Buffer, ops []history.Op) {
	type tally struct {
		invoked, ok, fail, info, open int
		lat                           []time.Duration
	}
	byF := map[string]*tally{}
	for _, p := range history.Pairs(ops) {
		t := byF[p.Invoke.F]
		if t == nil {
			t = &tally{}
			byF[p.Invoke.F] = t
		}
		t.invoked++
		switch p.Outcome() {
		case history.OK:
			t.ok++
			t.lat = append(t.lat, time.Duration(p.Completion.Time-p.Invoke.Time))
		case history.Fail:
			t.fail++
		default:
			t.info++
			if p.Completion == nil {
				t.open++
			}
		}
	}
	b.WriteString("\n## Operations\n\n")
	if len(byF) == 0 {
		b.WriteString("No client operations.\n")
	} else {
		b.WriteString("| f | invoked | ok | fail | info | ok p50 ms | p90 | p99 | max |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		open := 0
		for _, f := range sortedKeys(byF) {
			t := byF[f]
			open += t.open
			sort.Slice(t.lat, func(i, j int) bool { return t.lat[i] < t.lat[j] })
			fmt.Fprintf(b, "| %s | %d | %d | %d | %d | %s | %s | %s | %s |\n", md(f), t.invoked, t.ok, t.fail, t.info,
				quantileMS(t.lat, 0.5), quantileMS(t.lat, 0.9), quantileMS(t.lat, 0.99), quantileMS(t.lat, 1))
		}
		if open > 0 {
			fmt.Fprintf(b, "\ninfo includes %d operations the run ended before they completed.\n", open)
		}
	}
	events, nemesis, metrics := map[string]int{}, 0, 0
	for _, op := range ops {
		switch op.F {
		case history.FWatch:
			kind := "?"
			if op.Value.Event != nil {
				kind = op.Value.Event.Kind
			}
			events[kind]++
		case history.FNemesis:
			nemesis++
		case history.FMetrics:
			metrics++
		}
	}
	fmt.Fprintf(b, "\nNemesis records: %d. Metrics samples: %d. Watch events: ", nemesis, metrics)
	if len(events) == 0 {
		b.WriteString("none.\n")
		return
	}
	var parts []string
	for _, k := range sortedKeys(events) {
		parts = append(parts, fmt.Sprintf("%s %d", md(k), events[k]))
	}
	b.WriteString(strings.Join(parts, ", ") + ".\n")
}

// quantileMS is the q-quantile of sorted (nearest rank) in ms, or "-".
func quantileMS(sorted []time.Duration, q float64) string {
	if len(sorted) == 0 {
		return "-"
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	i = min(max(i, 0), len(sorted)-1)
	return strconv.FormatFloat(float64(sorted[i])/1e6, 'f', 1, 64)
}

// writeSchedule lists every nemesis record, then the fault windows the
// plots shade.
func writeSchedule(b *bytes.Buffer, ops []history.Op) {
	b.WriteString("\n## Nemesis schedule\n\n")
	n := 0
	for _, op := range ops {
		if op.F != history.FNemesis {
			continue
		}
		if n == 0 {
			b.WriteString("| index | time | record | kind | name | nodes | verified | rules |\n|--:|--:|---|---|---|---|---|---|\n")
		}
		n++
		var kind, name, nodes, verified, rules string
		if f := op.Value.Fault; f != nil {
			kind, name, nodes = f.Kind, f.Name, strings.Join(f.Nodes, " ")
			if f.Verified != nil {
				verified = strconv.FormatBool(*f.Verified)
			}
			if len(f.Rules) > 0 {
				rules = fmt.Sprintf("[%s](%s/%s)", FaultFile(op), FaultsDir, FaultFile(op))
			}
			if f.Loss > 0 {
				name = strings.TrimSpace(fmt.Sprintf("%s %.0f%%", name, f.Loss*100))
			}
		}
		rec := string(op.Type)
		if op.Error != "" {
			rec += ": " + op.Error
		}
		fmt.Fprintf(b, "| %d | %s | %s | %s | %s | %s | %s | %s |\n", op.Index, seconds(op.Time), md(rec), md(kind), md(name), md(nodes), verified, rules)
	}
	if n == 0 {
		b.WriteString("No faults.\n")
		return
	}
	ws := FaultWindows(ops)
	if len(ws) == 0 {
		return
	}
	b.WriteString("\n| fault | from | to | lasted |\n|---|--:|--:|--:|\n")
	for _, w := range ws {
		label := w.Kind
		if w.Name != "" {
			label += " " + w.Name
		}
		if len(w.Nodes) > 0 {
			label += " (" + strings.Join(w.Nodes, " ") + ")"
		}
		to := seconds(w.End)
		if w.Open {
			to += " (never ended)"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", md(label), seconds(w.Start), to, seconds(w.End-w.Start))
	}
}

// writeCheckers writes the verdict table, the quantiles and the examples.
func writeCheckers(b *bytes.Buffer, rep checker.Report) {
	b.WriteString("\n## Checkers\n\n")
	if len(rep.Results) == 0 {
		b.WriteString("No checker ran.\n")
	}
	if len(rep.Skipped) > 0 {
		b.WriteString("Skipped: ")
		var parts []string
		for _, name := range sortedKeys(rep.Skipped) {
			parts = append(parts, fmt.Sprintf("%s (%s)", md(name), md(rep.Skipped[name])))
		}
		b.WriteString(strings.Join(parts, ", ") + ".\n")
	}
	if len(rep.Results) == 0 {
		return
	}
	if len(rep.Skipped) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("| checker | verdict | anomalies | counts | notes |\n|---|---|---|---|---|\n")
	for _, res := range rep.Results {
		var counts []string
		for _, k := range sortedKeys(res.Counts) {
			counts = append(counts, fmt.Sprintf("%s %d", k, res.Counts[k]))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", md(res.Checker), res.Valid, md(strings.Join(res.Anomalies, ", ")),
			md(strings.Join(counts, ", ")), md(strings.Join(res.Notes, "; ")))
	}

	var qrows []string
	for _, res := range rep.Results {
		for _, name := range sortedKeys(res.Quantiles) {
			qs := res.Quantiles[name]
			keys := sortedKeys(qs)
			sort.SliceStable(keys, func(i, j int) bool { return qkey(keys[i]) < qkey(keys[j]) })
			var parts []string
			for _, q := range keys {
				parts = append(parts, fmt.Sprintf("%s: %s", q, strconv.FormatFloat(qs[q], 'f', 1, 64)))
			}
			qrows = append(qrows, fmt.Sprintf("| %s | %s | %s |", md(res.Checker), md(name), md(strings.Join(parts, ", "))))
		}
	}
	if len(qrows) > 0 {
		b.WriteString("\n### Quantiles (ms)\n\n| checker | measure | quantiles |\n|---|---|---|\n")
		b.WriteString(strings.Join(qrows, "\n") + "\n")
	}

	wrote := false
	for _, res := range rep.Results {
		for _, anomaly := range sortedKeys(res.Examples) {
			ex := res.Examples[anomaly]
			if len(ex) == 0 {
				continue
			}
			if !wrote {
				b.WriteString("\n### Examples\n\n")
				wrote = true
			}
			more := ""
			if len(ex) > maxExamples {
				more = fmt.Sprintf(" (and %d more)", len(ex)-maxExamples)
				ex = ex[:maxExamples]
			}
			fmt.Fprintf(b, "- %s, %s%s:\n", md(res.Checker), md(anomaly), more)
			for _, e := range ex {
				fmt.Fprintf(b, "  - `%s`\n", strings.ReplaceAll(oneLine(e), "`", "'"))
			}
		}
	}
}

// qkey orders quantile names numerically, unparseable ones last.
func qkey(s string) float64 {
	q, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.Inf(1)
	}
	return q
}

// md makes s one line and safe in a markdown table cell.
func md(s string) string {
	return strings.ReplaceAll(oneLine(s), "|", `\|`)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:=,+@%-]+$`)

// shellQuote renders args as a shell command line.
func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if shellSafe.MatchString(a) {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}
