// Package jepsen is roster's partition test suite: it runs real roster
// nodes (processes in network namespaces, or embedded nodes on an
// in-memory network), drives workloads through their API while a nemesis
// cuts links, pauses, kills and restarts nodes, heals, and checks the
// history it recorded. Layout:
//
//   - history: the record of a run (history.jsonl) and its schema;
//   - checker: the checkers, pure functions of a history, and the
//     verdict;
//   - workload: what the clients do, against an abstract node API;
//   - netns: Linux network namespaces, a bridge and iptables grudges for
//     the process-level runs (root only);
//   - nemesis: the faults and their schedules;
//   - store: the results directory (history, results, summary, plots,
//     timeline);
//   - runner: drives a run, process-level or in-process (gossip/memnet);
//   - cmd/roster-jepsen: the command (test, analyze, list, cleanup).
//
// Nothing here is imported by roster itself: the suite judges a node only
// through its HTTP API, its process and its logs (or, in-process, the
// registry package's public API).
package jepsen
