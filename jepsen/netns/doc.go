// Package netns builds the network of a process-level partition run out of
// Linux network namespaces, runs roster nodes inside it and cuts its links
// with iptables. It needs root, the ip command (iproute2) and iptables
// (iptables-save, iptables-restore); Available says whether they are there.
//
// # Layout
//
// A run has a prefix, Marker followed by the harness's pid and a random
// tag (rjepsen-<pid>-<tag>), and owns exactly the namespaces named
// <prefix>-<x>:
//
//   - <prefix>-br: the bridge br0, one veth port per node (v1…vN) and one
//     for the control namespace (vctl);
//   - <prefix>-n1 … <prefix>-nN: node i, interface eth0 with 10.77.K.i/24
//     (K is Config.Subnet), where its roster process runs;
//   - <prefix>-ctl: the control namespace, eth0 with 10.77.K.254/24, where
//     the harness's clients and the nemesis's probes originate. Its traffic
//     is never cut: every node's filter returns early for it (Jepsen's
//     assumption that a client sits next to its node).
//
// Every veth pair is created directly between the bridge's namespace and
// the node's (ip -n BR link add … peer … netns N), so nothing is ever
// created, routed or filtered in the root namespace: no interface, route,
// iptables rule or sysctl there changes. The namespaces have no default
// route and no link to the root namespace, so no packet can leave the
// machine. Two runs, even with the same subnet, cannot see each other.
//
// # Acting from a namespace
//
// Command and Exec run a program inside a namespace (ip netns exec, which
// execs the program in place: the process's pid is the program's).
//
// The Go harness acts from a namespace on an OS thread of its own:
// InControl (and InNode) run a function on a goroutine locked to a fresh
// OS thread that joined the namespace with setns(2); the thread is thrown
// away afterwards (the goroutine exits locked), so no other goroutine ever
// runs in a namespace by accident. A socket belongs to the namespace it
// was created in, whatever thread uses it later, so DialContext (and
// Transport, an http.Transport using it) only creates and connects the
// socket on such a thread and hands the connection back: HTTP clients
// built on Transport originate in the control namespace and may then be
// used from any goroutine.
//
// # Filters
//
// Every node's filter table has a chain of the suite's own, Chain, jumped
// to from INPUT. Its first rule returns for the control address; then one
// DROP per peer the node holds a grudge against (Partition), or one
// statistic-matched DROP per lossy link (Loss). Heal flushes the chain back
// to that first rule. Probe checks what the filters actually do, by UDP
// datagrams sent from every namespace to a listener the harness keeps in
// every node's namespace on ProbePort.
//
// # Cleanup
//
// Close tears a run down: it kills every process left in its namespaces
// (ip netns pids) and deletes them. The command should call it on exit and
// on Ctrl-C (signal.NotifyContext, then a deferred Close). After a crash,
// Cleanup(prefix) does the same from the names alone, and Leftovers lists
// every prefix with namespaces still present, and whether the harness that
// made it is still alive, by the Marker all names start with.
//
// This package owns those namespaces, the processes it starts in them and
// its chain in their filter tables. It must not touch the root namespace,
// any namespace not named with Marker, or the data directories beyond the
// per-node ones it is given.
package netns
