// Package nemesis is the partition suite's faults and their schedules.
//
// A Nemesis injects one kind of fault into a Target (*netns.Cluster, or a
// fake in tests) and ends it: partitions as grudges drawn by a Shape
// (isolated, halves, one-way, bridge, majorities ring, minority third),
// random packet loss, pauses (SIGSTOP), kills (SIGKILL, restarted with
// their data), a whole-cluster crash, amnesia (killed, data wiped,
// restarted: a new node with an old name), churn (graceful leave and
// back, or a node added mid-run). New and Resolve build them from the
// names roster-jepsen accepts; All lists them for roster-jepsen list.
//
// Every action returns what it did as history.Faults, in order: the
// action (Rules holds each affected node's iptables-save output), then a
// probe (Kind "probe", Verified set) showing that it took: UDP datagrams
// over every link for cuts, heals and loss rates, /proc states for
// process faults. Record a fault with Type(f): a probe that did not
// verify is info.
//
// Plan draws a seeded schedule, one fault at a time, with durations that
// straddle the failure detector whose Timings the caller passes (blips
// shorter than suspicion, holds between suspicion and
// GossipToTheDeadTime, and well beyond it) besides regular 5–30 s ones;
// Run carries it out; Final heals, resumes and restarts everything.
//
// This package decides what to break and checks that it broke; it does
// not build namespaces or run processes (package netns), record the
// history (the runner) or judge it (package checker).
package nemesis
