// Package memnet is an in-memory, seeded, fault-injecting network for
// hashicorp/memberlist, used by roster's tests to run whole clusters inside
// one process and to break them on purpose.
//
// # What it owns
//
// A Network is a set of Transports, each implementing
// memberlist.NodeAwareTransport, wired to one another through Go channels
// and in-memory pipes:
//
//   - packets (WriteTo, WriteToAddress) are copied and put on the
//     destination's PacketCh, after passing the network's faults: grudges
//     (one-way link cuts), random loss, random delay (which reorders
//     packets) and random duplication;
//   - streams (DialTimeout, DialAddressTimeout) are net.Pipe pairs whose
//     accepting end is put on the destination's StreamCh; they are reliable
//     and undelayed, but a dial across a cut link is refused at once, and
//     cutting a link closes every stream already open across it;
//   - counters of everything that happened (Stats, LinkStats), the bytes
//     sent on packets and streams included.
//
// Every random decision (drop, duplicate, delay) is taken from one seeded
// math/rand source behind the network's mutex, so a failing run can be
// replayed from its seed as far as the order of the sends is the same; see
// Config.Seed for exactly what that does and does not pin down.
//
// Addresses are "127.0.0.1:PORT" strings with a port unique within the
// Network. They are never bound, listened on or dialled: memberlist only
// needs them to parse as an IP and a port, and nothing in this package opens
// a socket of any kind.
//
// # What it must not touch
//
// It is a test transport only: nothing outside tests and benchmarks
// (cmd/roster-bench -run=scale) should import it. It
// opens no real sockets, starts no long-lived goroutines (only one-shot
// timers for delayed packets, all stopped by Shutdown), and knows nothing of
// roster's CRDTs, scopes or wire format: it moves opaque byte slices and
// byte streams, exactly as memberlist's UDP/TCP transport would.
package memnet
