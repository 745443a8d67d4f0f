// Package checker judges a partition-suite history (package history):
// each checker reads the whole history and returns a Result (valid,
// invalid or unknown, with the anomalies it found, counts, latency
// quantiles and examples); Compose makes them one Report whose Verdict is
// the suite's last line.
//
// It owns the judging only: pure functions of a history, no I/O beyond
// reading node logs handed to the hygiene checker, no clients, no
// processes. Every checker is exercised on hand-written histories in
// testdata/ that it must judge right.
package checker
