// Package store is the partition suite's results directory: where a run
// leaves its history, its verdict and what a reader needs to judge it
// (summary, plots, timeline, fault records, node logs). A run lives in
// <base>/<name>/<start time>/; <base>/latest and <base>/<name>/latest
// link to the newest run.
//
// It owns the directory's layout and every file in it but the node logs
// (the runner writes them where LogPath says). It must not judge a
// history (package checker does), run nodes or touch the network (the
// runners), nor need root: `roster-jepsen analyze` rewrites a stored
// run's results with it.
package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/roster-io/roster/jepsen/checker"
	"github.com/roster-io/roster/jepsen/history"
)

var (
	// ErrName reports a run name that cannot be a directory name.
	ErrName = errors.New("store: bad run name")
	// ErrNotRun reports a directory that is not a stored run.
	ErrNotRun = errors.New("store: not a run directory")
	// ErrWrite reports a results file that could not be written.
	ErrWrite = errors.New("store: cannot write results")
)

// DefaultBase is where roster-jepsen keeps its runs, relative to the
// repository's root (git-ignored but for the package's own files).
const DefaultBase = "jepsen/store"

// The files of a run directory.
const (
	RunFile      = "run.json"
	HistoryFile  = "history.jsonl"
	ResultsFile  = "results.json"
	SummaryFile  = "summary.md"
	TimelineFile = "timeline.html"
	LogsDir      = "logs"
	FaultsDir    = "faults"
	// Latest is the name of the links to the newest run.
	Latest = "latest"
)

// timeLayout names a run's directory: its start time in UTC, sortable,
// with no character a filesystem or a shell minds.
const timeLayout = "20060102T150405.000Z"

// Run describes a run: what was run, against what, and how. It is
// stored as run.json when the directory is created.
type Run struct {
	// Name is the test's name (workload and nemesis, e.g.
	// "set-partition"): the directory the run is kept under.
	Name     string `json:"name"`
	Workload string `json:"workload,omitempty"`
	Profile  string `json:"profile,omitempty"`
	// Bin is the roster binary's path (empty for in-process runs) and
	// BinVersion what its --version printed.
	Bin        string `json:"bin,omitempty"`
	BinVersion string `json:"bin_version,omitempty"`
	// Commit is the git commit the suite was built from, if known.
	Commit string `json:"commit,omitempty"`
	// GoVersion is the toolchain's version (runtime.Version() if empty).
	GoVersion string   `json:"go_version,omitempty"`
	Nemesis   []string `json:"nemesis,omitempty"`
	Nodes     int      `json:"nodes,omitempty"`
	Seed      int64    `json:"seed"`
	// Grace is the checkers' grace the run was judged with when given
	// (--grace); zero means its profile's. analyze uses it too.
	Grace    time.Duration `json:"grace,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
	// Args is the command line (os.Args).
	Args  []string  `json:"args,omitempty"`
	Start time.Time `json:"start"`
}

// Dir is one run's directory.
type Dir struct {
	path string
	run  Run
}

// validName accepts a name that is one path element and no link's name.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// Create makes base/<run.Name>/<run.Start>/ (Start defaults to now),
// writes run.json there and points base/latest and base/<name>/latest at
// it.
func Create(base string, run Run) (*Dir, error) {
	if !validName.MatchString(run.Name) || run.Name == Latest || len(run.Name) > 200 {
		return nil, fmt.Errorf("%w: %q", ErrName, run.Name)
	}
	if run.Start.IsZero() {
		run.Start = time.Now()
	}
	if run.GoVersion == "" {
		run.GoVersion = runtime.Version()
	}
	parent := filepath.Join(base, run.Name)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWrite, err)
	}
	stamp := run.Start.UTC().Format(timeLayout)
	var dir, leaf string
	for i := 0; ; i++ {
		leaf = stamp
		if i > 0 {
			leaf = fmt.Sprintf("%s-%d", stamp, i)
		}
		dir = filepath.Join(parent, leaf)
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || i >= 100 {
			return nil, fmt.Errorf("%w: %v", ErrWrite, err)
		}
	}
	d := &Dir{path: dir, run: run}
	b, err := json.MarshalIndent(run, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrWrite, RunFile, err)
	}
	if err := writeFile(filepath.Join(dir, RunFile), append(b, '\n')); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, LogsDir), 0o755); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWrite, err)
	}
	if err := link(leaf, filepath.Join(parent, Latest)); err != nil {
		return nil, err
	}
	if err := link(filepath.Join(run.Name, leaf), filepath.Join(base, Latest)); err != nil {
		return nil, err
	}
	return d, nil
}

// link points the symbolic link at name to target (relative to the
// link's directory), replacing any previous link atomically.
func link(target, name string) error {
	tmp := fmt.Sprintf("%s.tmp%d", name, os.Getpid())
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("%w: link %s: %v", ErrWrite, name, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("%w: link %s: %v", ErrWrite, name, err)
	}
	return nil
}

// Open opens a stored run (a run directory or a link to one, such as
// latest) and reads its run.json. A directory that holds a history.jsonl
// but no run.json (a history copied from elsewhere) opens too, with a
// Run that only names it.
func Open(path string) (*Dir, Run, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, Run{}, fmt.Errorf("%w: %v", ErrNotRun, err)
	}
	if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
		return nil, Run{}, fmt.Errorf("%w: %s is not a directory", ErrNotRun, path)
	}
	var run Run
	b, err := os.ReadFile(filepath.Join(real, RunFile))
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &run); err != nil {
			return nil, Run{}, fmt.Errorf("%w: %s: %v", ErrNotRun, RunFile, err)
		}
	case errors.Is(err, os.ErrNotExist):
		if _, err := os.Stat(filepath.Join(real, HistoryFile)); err != nil {
			return nil, Run{}, fmt.Errorf("%w: %s has neither %s nor %s", ErrNotRun, path, RunFile, HistoryFile)
		}
		run.Name = filepath.Base(real)
	default:
		return nil, Run{}, fmt.Errorf("%w: %v", ErrNotRun, err)
	}
	return &Dir{path: real, run: run}, run, nil
}

// Path is the run directory.
func (d *Dir) Path() string { return d.path }

// Run is the run the directory holds.
func (d *Dir) Run() Run { return d.run }

// LogPath is where the runner writes node's log (logs/<node>.log).
func (d *Dir) LogPath(node string) string {
	return filepath.Join(d.path, LogsDir, safeName(node)+".log")
}

// HistoryPath is the run's history.jsonl.
func (d *Dir) HistoryPath() string { return filepath.Join(d.path, HistoryFile) }

// ReadHistory reads the stored history (history.ReadFile).
func (d *Dir) ReadHistory() ([]history.Op, error) { return history.ReadFile(d.HistoryPath()) }

// FaultFile is the name, under faults/, of the packet filter rules in
// force after nemesis record op: <index>-<kind>.txt.
func FaultFile(op history.Op) string {
	kind := "fault"
	if op.Value.Fault != nil && op.Value.Fault.Kind != "" {
		kind = safeName(op.Value.Fault.Kind)
	}
	return fmt.Sprintf("%d-%s.txt", op.Index, kind)
}

// Save writes everything a run leaves but its logs: history.jsonl,
// results.json, faults/, the plots, timeline.html and, last, summary.md.
// It writes every file it can and returns the failures joined, each
// wrapping ErrWrite. A report with no verdict is composed from its
// results.
func (d *Dir) Save(ops []history.Op, rep checker.Report) error {
	if _, err := os.Stat(d.path); err != nil {
		return fmt.Errorf("%w: %v", ErrWrite, err)
	}
	ops = sorted(ops)
	rep = withVerdict(rep)
	var errs []error
	try := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var hist bytes.Buffer
	if err := history.Write(&hist, ops); err != nil {
		try(fmt.Errorf("%w: %s: %v", ErrWrite, HistoryFile, err))
	} else {
		try(writeFile(d.HistoryPath(), hist.Bytes()))
	}
	try(d.saveResults(rep))
	try(d.saveFaults(ops))
	try(d.savePlots(ops, rep))
	try(d.saveTimeline(ops))
	var sum bytes.Buffer
	writeSummary(&sum, d.run, ops, rep)
	try(writeFile(filepath.Join(d.path, SummaryFile), sum.Bytes()))
	return errors.Join(errs...)
}

// SaveResults rewrites results.json and summary.md alone (a verdict
// changed, the plots did not).
func (d *Dir) SaveResults(ops []history.Op, rep checker.Report) error {
	ops = sorted(ops)
	rep = withVerdict(rep)
	if err := d.saveResults(rep); err != nil {
		return err
	}
	var sum bytes.Buffer
	writeSummary(&sum, d.run, ops, rep)
	return writeFile(filepath.Join(d.path, SummaryFile), sum.Bytes())
}

// withVerdict composes the verdict of a report that has none.
func withVerdict(rep checker.Report) checker.Report {
	if rep.Valid == "" {
		skipped := rep.Skipped
		rep = checker.Compose(rep.Results...)
		rep.Skipped = skipped
	}
	return rep
}

// ReadResults reads results.json.
func (d *Dir) ReadResults() (checker.Report, error) {
	var rep checker.Report
	b, err := os.ReadFile(filepath.Join(d.path, ResultsFile))
	if err != nil {
		return rep, fmt.Errorf("%w: %v", ErrNotRun, err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return rep, fmt.Errorf("%w: %s: %v", ErrNotRun, ResultsFile, err)
	}
	return rep, nil
}

func (d *Dir) saveResults(rep checker.Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrWrite, ResultsFile, err)
	}
	return writeFile(filepath.Join(d.path, ResultsFile), append(b, '\n'))
}

// saveFaults writes faults/<index>-<kind>.txt for every nemesis record
// that carries packet filter rules: each node's rules under a header.
func (d *Dir) saveFaults(ops []history.Op) error {
	dir := filepath.Join(d.path, FaultsDir)
	made := false
	for _, op := range ops {
		if op.F != history.FNemesis || op.Value.Fault == nil || len(op.Value.Fault.Rules) == 0 {
			continue
		}
		if !made {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("%w: %v", ErrWrite, err)
			}
			made = true
		}
		f := op.Value.Fault
		var b bytes.Buffer
		fmt.Fprintf(&b, "# op %d at %s: %s %s (%s)", op.Index, seconds(op.Time), f.Kind, f.Name, op.Type)
		if len(f.Nodes) > 0 {
			fmt.Fprintf(&b, " on %s", strings.Join(f.Nodes, ", "))
		}
		b.WriteString("\n")
		for _, node := range sortedKeys(f.Rules) {
			fmt.Fprintf(&b, "\n# node %s\n%s", node, f.Rules[node])
			if !strings.HasSuffix(f.Rules[node], "\n") {
				b.WriteString("\n")
			}
		}
		if err := writeFile(filepath.Join(dir, FaultFile(op)), b.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes b to path through a temporary file, so that a reader
// never sees half a file.
func writeFile(path string, b []byte) error {
	return writeWith(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// writeWith writes path with fill through a temporary file.
func writeWith(path string, fill func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrWrite, err)
	}
	tmp := f.Name()
	err = fill(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("%w: %s: %v", ErrWrite, filepath.Base(path), err)
	}
	return nil
}

// sorted returns ops ordered by Index (a copy when they were not).
func sorted(ops []history.Op) []history.Op {
	if sort.SliceIsSorted(ops, func(i, j int) bool { return ops[i].Index < ops[j].Index }) {
		return ops
	}
	out := append([]history.Op(nil), ops...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}

// unsafeChars are the characters a file name made from a node's name or
// a fault's kind must not hold.
var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func safeName(s string) string {
	s = unsafeChars.ReplaceAllString(s, "_")
	if s == "" || s == "." || s == ".." {
		return "_"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// seconds formats a history time (ns since the start) as seconds.
func seconds(ns int64) string { return fmt.Sprintf("%.3fs", float64(ns)/1e9) }
