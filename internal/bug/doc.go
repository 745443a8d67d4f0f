// Package bug holds the deliberate bugs the partition suite must catch
// (issue #16: "a suite that has never failed proves nothing"). Each is a
// constant that is false in every normal build, so the code it guards is
// compiled out and leaves no trace in a normal binary; building with the
// tag rosterbug_<name> makes it true:
//
//	go build -tags rosterbug_noleaves ./cmd/roster
//	go run ./jepsen/cmd/roster-jepsen test --bug noleaves   # builds that, runs the suite
//
// It owns these switches only; the code they break lives where the bug
// would (gossip, registry, storage). Names lists them for roster-jepsen.
package bug

// Names are the bugs, by the name their build tag carries, with what each
// breaks and the checker anomaly expected to name it.
var Names = []struct{ Name, Breaks, Caught string }{
	{"noleaves", "leaves are never sent to peers (neither pushed nor repaired)", "set: resurrected; convergence: diverged"},
	{"nofsync", "a durable join is acknowledged before it is written (written 2 s later)", "persistence: lost-on-restart"},
	{"norejoin", "no rejoin loop: peers memberlist has given up on are never called again", "convergence: diverged"},
	{"nohide", "members of owners the failure detector declared down stay visible", "owner-visibility: ghosts"},
	{"watchdrop", "a watch drops one event in 50", "watch: watch-dropped"},
	{"reusecounters", "a restarted owner keeps its incarnation, so its new operations reuse counters its peers have seen", "set: lost"},
}
