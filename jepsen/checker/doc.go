// Package checker judges a partition-suite history (package history):
// each checker reads the whole history and returns a Result (valid,
// invalid or unknown, with the anomalies it found, counts, latency
// quantiles and examples); Compose makes them one Report whose Verdict is
// the suite's last line, and Check runs every checker of All that has
// something to judge in a history (the others are named in
// Report.Skipped) and composes their results.
//
// The checkers: convergence, set (Jepsen's set-full over members),
// owner-visibility, watch, persistence, availability and hygiene; Options
// tunes their grace periods and thresholds. A member is (group, id,
// owner), and its owner's last operation decides its fate: a failed
// operation never happened, an indeterminate (info) one may have happened
// at any time after its invocation, and nothing an info operation could
// explain is ever flagged.
//
// It owns the judging only: pure functions of a history, no I/O beyond
// reading node logs handed to the hygiene checker, no clients, no
// processes. Every checker is exercised on hand-written histories in
// testdata/ that it must judge right, valid and invalid ones, and on
// generated histories of a correct registry that it must find valid.
package checker
