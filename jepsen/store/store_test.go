package store

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/roster-io/roster/jepsen/checker"
	"github.com/roster-io/roster/jepsen/history"
)

func testRun() Run {
	return Run{
		Name: "set-partition", Workload: "set", Profile: "quick", Bin: "/usr/local/bin/roster",
		BinVersion: "roster v0.9.0 (abc123)", Commit: "2e84c01", Nemesis: []string{"partition", "kill"},
		Nodes: 3, Seed: 42, Duration: 4 * time.Second,
		Args:  []string{"roster-jepsen", "test", "--nemesis", "partition,kill", "--name", "it's"},
		Start: time.Date(2025, 3, 1, 12, 30, 45, 123456789, time.UTC),
	}
}

func testReport() checker.Report {
	return checker.Compose(
		checker.Result{Checker: "convergence", Valid: checker.Valid, Counts: map[string]int{"groups": 2},
			Quantiles: map[string]map[string]float64{"heal-to-agreement": {"0.5": 120, "1": 800}}},
		checker.Result{Checker: "set", Valid: checker.Invalid, Anomalies: []string{"lost-joins"},
			Counts:    map[string]int{"lost": 1, "stable": 80},
			Quantiles: map[string]map[string]float64{StableQuantiles: {"0.5": 20, "0.9": 45, "0.99": 300, "1": 900}},
			Examples:  map[string][]string{"lost-joins": {"g0/m7 | joined at 0.231s", "a", "b", "c", "d", "e"}},
			Notes:     []string{"n3 read\nnothing"}},
	)
}

// xmlOK checks that r is well-formed XML (strict: every tag closed).
func xmlOK(t *testing.T, name string, r io.Reader) int {
	t.Helper()
	dec := xml.NewDecoder(r)
	elems := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return elems
		}
		if err != nil {
			t.Fatalf("%s: not well-formed: %v", name, err)
		}
		if _, ok := tok.(xml.StartElement); ok {
			elems++
		}
	}
}

func TestSaveWritesTheRun(t *testing.T) {
	base := t.TempDir()
	if keep := os.Getenv("STORE_TEST_KEEP"); keep != "" {
		base = keep // to look at the files
	}
	run := testRun()
	d, err := Create(base, run)
	if err != nil {
		t.Fatal(err)
	}
	wantPath := filepath.Join(base, "set-partition", "20250301T123045.123Z")
	if d.Path() != wantPath {
		t.Fatalf("Path = %s, want %s", d.Path(), wantPath)
	}
	if got := d.LogPath("n1"); got != filepath.Join(wantPath, "logs", "n1.log") {
		t.Fatalf("LogPath = %s", got)
	}
	if err := os.WriteFile(d.LogPath("n1"), []byte("started\n"), 0o644); err != nil {
		t.Fatalf("the runner cannot write a log where LogPath says: %v", err)
	}
	ops := synthetic()
	if err := history.Validate(ops); err != nil {
		t.Fatalf("synthetic history: %v", err)
	}
	rep := testReport()
	if err := d.Save(ops, rep); err != nil {
		t.Fatal(err)
	}

	for _, f := range []string{RunFile, HistoryFile, ResultsFile, SummaryFile, TimelineFile, "logs/n1.log"} {
		if _, err := os.Stat(filepath.Join(d.Path(), f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	for _, name := range []string{LatencyPlot, ThroughputPlot, StatesPlot, StableCDFPlot} {
		f, err := os.Open(filepath.Join(d.Path(), name+".png"))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("%s.png: %v", name, err)
		} else if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 200 {
			t.Errorf("%s.png is %v", name, b)
		}
		svg, err := os.ReadFile(filepath.Join(d.Path(), name+".svg"))
		if err != nil {
			t.Fatal(err)
		}
		if n := xmlOK(t, name+".svg", bytes.NewReader(svg)); n < 10 {
			t.Errorf("%s.svg has %d elements", name, n)
		}
	}

	// Faults: the partition and the heal carried rules.
	faults, err := os.ReadDir(filepath.Join(d.Path(), FaultsDir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range faults {
		names = append(names, f.Name())
	}
	if len(names) != 2 || !strings.HasSuffix(names[0], "-partition.txt") || !strings.HasSuffix(names[1], "-heal.txt") {
		t.Errorf("faults/ = %v", names)
	}
	for _, op := range ops {
		if op.F == history.FNemesis && op.Value.Fault.Kind == "partition" {
			b, err := os.ReadFile(filepath.Join(d.Path(), FaultsDir, FaultFile(op)))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"partition isolated", "# node n1\n*filter", "# node n3\n", "COMMIT\n"} {
				if !bytes.Contains(b, []byte(want)) {
					t.Errorf("%s lacks %q:\n%s", FaultFile(op), want, b)
				}
			}
		}
	}

	// results.json round-trips.
	got, err := d.ReadResults()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rep) {
		t.Errorf("results.json: got %+v, want %+v", got, rep)
	}
	raw, _ := os.ReadFile(filepath.Join(d.Path(), ResultsFile))
	if !bytes.Contains(raw, []byte("\n  \"results\"")) {
		t.Errorf("results.json is not indented")
	}

	// history.jsonl reads back as written.
	back, err := d.ReadHistory()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, ops) {
		t.Errorf("history.jsonl does not read back as saved")
	}

	// summary.md.
	sum, err := os.ReadFile(filepath.Join(d.Path(), SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(sum), "\n"), "\n")
	if last := lines[len(lines)-1]; last != rep.Verdict() || last != "INVALID: lost-joins" {
		t.Errorf("summary.md ends with %q, want %q", last, rep.Verdict())
	}
	for _, want := range []string{
		"| seed | 42 |", "- go: go", "`/usr/local/bin/roster`: roster v0.9.0 (abc123)", "- commit: 2e84c01",
		"roster-jepsen test --nemesis partition,kill --name 'it'\\''s'",
		"| join | 120 |", "| read |", "Watch events: disconnected 1, join ", "snapshot 2.",
		"| partition | isolated | n3 |", "-partition.txt](faults/", "| kill |  | n2 |",
		"| partition isolated (n3) | 1.000s | 2.000s | 1.000s |", "| kill (n2) | 2.500s | 3.000s | 0.500s |",
		"| set | invalid | lost-joins | lost 1, stable 80 | n3 read nothing |",
		"| set | stable-latency | 0.5: 20.0, 0.9: 45.0, 0.99: 300.0, 1: 900.0 |",
		"- set, lost-joins (and 1 more):", "  - `g0/m7 | joined at 0.231s`",
	} {
		if !strings.Contains(string(sum), want) {
			t.Errorf("summary.md lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("summary.md:\n%s", sum)
	}

	// timeline.html is well-formed and shows every process.
	tl, err := os.ReadFile(filepath.Join(d.Path(), TimelineFile))
	if err != nil {
		t.Fatal(err)
	}
	xmlOK(t, TimelineFile, bytes.NewReader(tl))
	for _, want := range []string{">nemesis</div>", ">watch 10 (n1)</div>", ">p0 (n1)</div>", ">p22 (n3)</div>",
		`class="b fail"`, `class="b info"`, `class="b ok"`, `class="b ev"`, `class="b nem"`, `class="f partition"`, `class="f kill"`,
		"join #"} {
		if !bytes.Contains(tl, []byte(want)) {
			t.Errorf("timeline.html lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "http://", "https://"} {
		if bytes.Contains(tl, []byte(bad)) {
			t.Errorf("timeline.html holds %q: it must be self-contained", bad)
		}
	}

	// The latest links and Open.
	for _, l := range []string{filepath.Join(base, Latest), filepath.Join(base, run.Name, Latest)} {
		real, err := filepath.EvalSymlinks(l)
		if err != nil || real != d.Path() {
			t.Errorf("%s -> %s (%v), want %s", l, real, err, d.Path())
		}
	}
	d2, run2, err := Open(filepath.Join(base, Latest))
	if err != nil {
		t.Fatal(err)
	}
	if d2.Path() != d.Path() {
		t.Errorf("Open(latest).Path = %s", d2.Path())
	}
	run.GoVersion = run2.GoVersion // filled in by Create
	if !run2.Start.Equal(run.Start) {
		t.Errorf("Start = %v", run2.Start)
	}
	run2.Start = run.Start
	if !reflect.DeepEqual(run2, run) || run2.GoVersion == "" {
		t.Errorf("Open: run %+v, want %+v", run2, run)
	}
}

// Analyze re-saves a stored run from its history alone.
func TestReopenAndSaveAgain(t *testing.T) {
	base := t.TempDir()
	d, err := Create(base, testRun())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Save(synthetic(), checker.Report{}); err != nil {
		t.Fatal(err)
	}
	d2, _, err := Open(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	ops, err := d2.ReadHistory()
	if err != nil {
		t.Fatal(err)
	}
	rep := checker.Compose(checker.Result{Checker: "set", Valid: checker.Unknown, Notes: []string{"too few reads"}})
	if err := d2.Save(ops, rep); err != nil {
		t.Fatal(err)
	}
	sum, _ := os.ReadFile(filepath.Join(d.Path(), SummaryFile))
	if !strings.HasSuffix(string(sum), "\nUNKNOWN: set\n") {
		t.Errorf("summary.md does not end with the new verdict:\n%s", sum)
	}
	if err := d2.SaveResults(ops, checker.Compose()); err != nil {
		t.Fatal(err)
	}
	sum, _ = os.ReadFile(filepath.Join(d.Path(), SummaryFile))
	if !strings.HasSuffix(string(sum), "\nVALID\n") || !strings.Contains(string(sum), "No checker ran.") {
		t.Errorf("SaveResults: summary.md:\n%s", sum)
	}
}

func TestSaveEmptyHistory(t *testing.T) {
	d, err := Create(t.TempDir(), Run{Name: "empty"})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Save(nil, checker.Report{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{LatencyPlot + ".png", StableCDFPlot + ".svg", TimelineFile, SummaryFile} {
		if _, err := os.Stat(filepath.Join(d.Path(), f)); err != nil {
			t.Error(err)
		}
	}
}

func TestCreateTwiceInTheSameMillisecond(t *testing.T) {
	base := t.TempDir()
	run := testRun()
	d1, err := Create(base, run)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := Create(base, run)
	if err != nil {
		t.Fatal(err)
	}
	if d2.Path() != d1.Path()+"-1" {
		t.Fatalf("second run at %s", d2.Path())
	}
	if real, _ := filepath.EvalSymlinks(filepath.Join(base, Latest)); real != d2.Path() {
		t.Errorf("latest -> %s, want %s", real, d2.Path())
	}
	other := run
	other.Name = "other"
	d3, err := Create(base, other)
	if err != nil {
		t.Fatal(err)
	}
	if real, _ := filepath.EvalSymlinks(filepath.Join(base, Latest)); real != d3.Path() {
		t.Errorf("latest -> %s, want %s", real, d3.Path())
	}
	if real, _ := filepath.EvalSymlinks(filepath.Join(base, run.Name, Latest)); real != d2.Path() {
		t.Errorf("%s/latest -> %s, want %s", run.Name, real, d2.Path())
	}
}

func TestCreateRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "latest", "..", ".hidden", "a/b", "a b", strings.Repeat("x", 201)} {
		if _, err := Create(t.TempDir(), Run{Name: name}); !errors.Is(err, ErrName) {
			t.Errorf("Create(%q): %v, want ErrName", name, err)
		}
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Open(dir); !errors.Is(err, ErrNotRun) {
		t.Errorf("Open(empty dir): %v", err)
	}
	if _, _, err := Open(filepath.Join(dir, "nope")); !errors.Is(err, ErrNotRun) {
		t.Errorf("Open(missing): %v", err)
	}
	// A bare history opens, named after its directory.
	bare := filepath.Join(dir, "copied")
	if err := os.Mkdir(bare, 0o755); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := history.Write(&b, synthetic()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bare, HistoryFile), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	d, run, err := Open(bare)
	if err != nil || run.Name != "copied" || d.Path() != bare {
		t.Fatalf("Open(bare history) = %v, %+v, %v", d, run, err)
	}
	if err := os.WriteFile(filepath.Join(bare, RunFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(bare); !errors.Is(err, ErrNotRun) {
		t.Errorf("Open(bad run.json): %v", err)
	}
}

func TestRunJSON(t *testing.T) {
	d, err := Create(t.TempDir(), testRun())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(d.Path(), RunFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "workload", "bin", "bin_version", "commit", "go_version", "nemesis", "nodes", "seed", "duration", "args", "start"} {
		if _, ok := m[k]; !ok {
			t.Errorf("run.json lacks %s: %s", k, b)
		}
	}
}

// The real checkers' report of the synthetic history saves, as analyze
// would write it.
func TestSaveWithTheCheckers(t *testing.T) {
	d, err := Create(t.TempDir(), testRun())
	if err != nil {
		t.Fatal(err)
	}
	ops := synthetic()
	rep := checker.Check(ops, checker.Options{})
	if err := d.Save(ops, rep); err != nil {
		t.Fatal(err)
	}
	got, err := d.ReadResults()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rep) {
		t.Errorf("results.json: got %+v, want %+v", got, rep)
	}
	sum, _ := os.ReadFile(filepath.Join(d.Path(), SummaryFile))
	if !strings.HasSuffix(string(sum), "\n"+rep.Verdict()+"\n") {
		t.Errorf("summary.md does not end with %q", rep.Verdict())
	}
	for name := range rep.Skipped {
		if !strings.Contains(string(sum), name+" (") {
			t.Errorf("summary.md does not say %s was skipped", name)
		}
	}
	t.Logf("verdict on the synthetic history: %s", rep.Verdict())
}

func TestSaveReportsWhatItCouldNotWrite(t *testing.T) {
	d, err := Create(t.TempDir(), Run{Name: "blocked"})
	if err != nil {
		t.Fatal(err)
	}
	// Directories where two files go: those two fail, the rest is written.
	for _, f := range []string{ResultsFile, LatencyPlot + ".png"} {
		if err := os.Mkdir(filepath.Join(d.Path(), f), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err = d.Save(synthetic(), checker.Compose())
	if !errors.Is(err, ErrWrite) {
		t.Fatalf("Save: %v, want ErrWrite", err)
	}
	for _, f := range []string{ResultsFile, "plot " + LatencyPlot} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("the error does not name %s: %v", f, err)
		}
	}
	for _, f := range []string{HistoryFile, SummaryFile, TimelineFile, ThroughputPlot + ".png", StatesPlot + ".svg"} {
		if _, err := os.Stat(filepath.Join(d.Path(), f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}

	if err := os.RemoveAll(d.Path()); err != nil {
		t.Fatal(err)
	}
	if err := d.Save(synthetic(), checker.Compose()); !errors.Is(err, ErrWrite) {
		t.Fatalf("Save into a removed directory: %v, want ErrWrite", err)
	}
	if _, err := os.Stat(d.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Save made the removed directory again: %v", err)
	}
}
