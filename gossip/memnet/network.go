package memnet

import (
	"errors"
	"fmt"
	"math/rand"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Errors returned by transports and streams of this package. They are
// usually wrapped in a *net.OpError (so they are net.Errors, as memberlist's
// real transport returns); test them with errors.Is.
var (
	// ErrClosed is returned by a Transport that has been shut down, and by
	// reads and writes on a stream that was closed because one of its
	// transports shut down.
	ErrClosed = errors.New("memnet: transport shut down")

	// ErrLinkCut is returned by a dial across a cut link, and by reads and
	// writes on a stream that was closed because a link between its two
	// ends was cut.
	ErrLinkCut = errors.New("memnet: link cut")

	// ErrSevered is returned by the sends and dials of a transport after
	// Transport.Sever.
	ErrSevered = errors.New("memnet: transport severed")

	// ErrNoRoute is returned by a dial to an address where no open
	// transport is (the in-memory "connection refused").
	ErrNoRoute = errors.New("memnet: no transport at address")

	// ErrBacklog is returned by a dial when the destination has
	// Config.StreamBacklog accepted streams nobody has taken from its
	// StreamCh yet.
	ErrBacklog = errors.New("memnet: stream backlog full")

	// ErrName is returned by NewTransport for an empty name or the name of
	// a transport that is still open.
	ErrName = errors.New("memnet: invalid or duplicate transport name")
)

// Default sizes used when the Config leaves them zero.
const (
	DefaultPacketQueue   = 1024
	DefaultStreamBacklog = 128
)

// firstPort is the port of the first transport of a Network; each new
// transport takes the next one. Ports are never reused within a Network, so
// a node restarted under the same name gets a new address, as a real
// restarted process with an ephemeral port would.
const firstPort = 10001

// Config configures a Network. The zero value is a perfect network (no
// loss, no delay, no duplication) with seed 0. Every fault can also be
// changed later, while traffic flows, with the Network's setters.
type Config struct {
	// Seed seeds the single math/rand source from which every random
	// decision of the network is drawn: whether a packet is lost, whether
	// it is duplicated, and the delay of each copy. Log it in tests
	// (Network.Seed) so a failure can be replayed.
	//
	// What the seed pins down is the sequence of decisions, not which
	// packet gets which: every packet that reaches the fault stage (its
	// destination exists and its link is not cut) consumes exactly four
	// values from the source, in this order: loss, duplication, delay of
	// the original, delay of the copy. They are consumed whatever the
	// current settings are (a loss of 0 still consumes its value), so the
	// decisions for the k-th such packet depend only on the seed and k, not
	// on when SetLoss, SetDelay or SetDuplicate were called.
	//
	// When packets are sent from one goroutine in a fixed order, a run is
	// therefore replayed exactly. When they are sent from many goroutines,
	// as memberlist's probe, gossip and push/pull loops do, the Go
	// scheduler decides which sender reaches the network first, and with
	// it which packet gets the k-th decisions; timers, and so the exact
	// order in which delayed packets land, also depend on the machine's
	// load. A replay with the same seed is then the same distribution of
	// faults, not the same run.
	Seed int64

	// Loss is the probability, in [0, 1], that a packet is dropped.
	// 0 drops nothing; 1 drops every packet. Streams are never lost (they
	// are reliable by memberlist's contract); use cuts to break them.
	Loss float64

	// Duplicate is the probability, in [0, 1], that a packet that was not
	// lost is delivered twice. Each copy gets its own delay, so the copy
	// can arrive before the original.
	Duplicate float64

	// MinDelay and MaxDelay bound the delay of each packet copy, drawn
	// uniformly from [MinDelay, MaxDelay). With MaxDelay 0 packets are put
	// on the destination's PacketCh synchronously, inside WriteTo, and
	// arrive in the order they were sent; with a positive delay each copy
	// is delivered by its own timer, so packets reorder naturally.
	// Requires 0 <= MinDelay <= MaxDelay. Timers of packets not yet
	// delivered are stopped when their destination shuts down.
	MinDelay time.Duration
	MaxDelay time.Duration

	// PacketQueue is the capacity of each transport's PacketCh: the
	// in-memory stand-in for a UDP socket's receive buffer. A packet that
	// arrives while the queue is full is dropped (counted in
	// PacketsOverflow), as the kernel would drop a datagram, rather than
	// blocking the sender. memberlist drains its PacketCh continuously, so
	// this matters only for tests that read it by hand.
	// 0 means DefaultPacketQueue.
	PacketQueue int

	// StreamBacklog is the capacity of each transport's StreamCh: the
	// stand-in for a listener's accept backlog. A dial to a transport
	// whose backlog is full fails with ErrBacklog. 0 means
	// DefaultStreamBacklog.
	StreamBacklog int

	// KeepAddrs gives a name that registers again after its transport shut
	// down (a restarted node) the address that transport had, as a
	// restarted process binds its port again. By default every transport
	// gets an address no other transport of the Network has had, and
	// memberlist then sees a restarted node at a new address: it refuses
	// it as a conflict until the old one is declared dead (about a second
	// with the tests' timers), which a real restart does not go through.
	KeepAddrs bool
}

func (c Config) validate() error {
	if err := checkProb("Loss", c.Loss); err != nil {
		return err
	}
	if err := checkProb("Duplicate", c.Duplicate); err != nil {
		return err
	}
	if err := checkDelay(c.MinDelay, c.MaxDelay); err != nil {
		return err
	}
	if c.PacketQueue < 0 || c.StreamBacklog < 0 {
		return fmt.Errorf("memnet: negative PacketQueue (%d) or StreamBacklog (%d)", c.PacketQueue, c.StreamBacklog)
	}
	return nil
}

func checkProb(what string, p float64) error {
	if !(p >= 0 && p <= 1) { // also rejects NaN
		return fmt.Errorf("memnet: %s %v is not a probability in [0, 1]", what, p)
	}
	return nil
}

func checkDelay(minDelay, maxDelay time.Duration) error {
	if minDelay < 0 || maxDelay < minDelay {
		return fmt.Errorf("memnet: delay range [%v, %v) is invalid: need 0 <= min <= max", minDelay, maxDelay)
	}
	return nil
}

// Link is one direction between two transports, named by transport name.
// Grudges are kept per Link: a cut from A to B says nothing about B to A.
type Link struct {
	From, To string
}

func (l Link) String() string { return l.From + "->" + l.To }

// Stats counts what a Network (or one Link of it) did. Every packet copy
// ends up in exactly one of Delivered or Dropped, so at any moment
//
//	PacketsSent + PacketsDuplicated == PacketsDelivered + PacketsDropped + PacketsInFlight
//
// and after Network.Shutdown PacketsInFlight is 0.
type Stats struct {
	// PacketsSent counts calls to WriteTo/WriteToAddress on open
	// transports (calls on a shut-down transport fail and are not
	// counted).
	PacketsSent uint64
	// PacketsDuplicated counts extra copies made by the duplication fault.
	PacketsDuplicated uint64
	// PacketsDelivered counts copies put on a destination's PacketCh.
	PacketsDelivered uint64
	// PacketsDropped counts copies that vanished, for any of the reasons
	// below; it is their sum.
	PacketsDropped uint64
	// PacketsCut counts copies dropped because their link was cut, when
	// sent or when their delay ran out.
	PacketsCut uint64
	// PacketsLost counts packets dropped by the random Loss fault.
	PacketsLost uint64
	// PacketsUnroutable counts copies addressed to no open transport, or
	// whose destination shut down before they landed.
	PacketsUnroutable uint64
	// PacketsOverflow counts copies dropped because the destination's
	// PacketCh was full.
	PacketsOverflow uint64
	// PacketsInFlight is the number of delayed copies not yet delivered
	// or dropped (a snapshot; not a counter).
	PacketsInFlight uint64

	// StreamsOpened counts successful dials.
	StreamsOpened uint64
	// StreamsRefused counts failed dials from open transports (cut link,
	// no route, full backlog).
	StreamsRefused uint64
	// StreamsBroken counts open streams closed by Cut (or its helpers).
	// Streams closed by a transport's Shutdown are not counted here.
	StreamsBroken uint64
	// PacketBytesSent sums the sizes of the packets counted in
	// PacketsSent: what the senders handed to WriteTo, whatever then
	// became of it (copies made by the duplication fault are not counted
	// again).
	PacketBytesSent uint64
	// StreamBytesSent sums the bytes written to streams and accepted by
	// the other end, by either end (a link's are those its From end
	// wrote).
	StreamBytesSent uint64
}

func (s *Stats) drop(counter *uint64) {
	*counter++
	s.PacketsDropped++
}

// Network is a set of in-memory transports plus the faults between them.
// Create it with New, make one Transport per memberlist node with
// NewTransport, and call Shutdown at the end of the test. All methods are
// safe for concurrent use, including while traffic flows.
type Network struct {
	seed          int64
	packetQueue   int
	streamBacklog int

	// mu guards everything below, and the mutable fields of every
	// Transport and stream of this Network. One lock for the whole network
	// keeps cuts, deliveries, dials and shutdowns trivially atomic with
	// respect to one another; nothing is done while holding it that can
	// block (channel sends are non-blocking), so it is never held long.
	mu       sync.Mutex
	rng      *rand.Rand
	loss     float64
	dup      float64
	minDelay time.Duration
	maxDelay time.Duration

	nextPort  int
	keepAddrs bool
	ports     map[string]int        // with keepAddrs: each name's port
	byAddr    map[string]*Transport // open transports only
	byName    map[string]*Transport // open transports only
	names     map[string]struct{}   // every name ever registered

	grudges map[Link]struct{}
	streams map[*stream]struct{}

	stats     Stats
	linkStats map[Link]*Stats
}

// New returns a Network configured by cfg. It panics if cfg is invalid (a
// probability outside [0, 1], a negative or inverted delay range, a negative
// size): a test network is built from literals, and a mistake there is a
// bug in the test.
func New(cfg Config) *Network {
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	n := &Network{
		seed:          cfg.Seed,
		packetQueue:   cfg.PacketQueue,
		streamBacklog: cfg.StreamBacklog,
		rng:           rand.New(rand.NewSource(cfg.Seed)),
		loss:          cfg.Loss,
		dup:           cfg.Duplicate,
		minDelay:      cfg.MinDelay,
		maxDelay:      cfg.MaxDelay,
		nextPort:      firstPort,
		keepAddrs:     cfg.KeepAddrs,
		ports:         make(map[string]int),
		byAddr:        make(map[string]*Transport),
		byName:        make(map[string]*Transport),
		names:         make(map[string]struct{}),
		grudges:       make(map[Link]struct{}),
		streams:       make(map[*stream]struct{}),
		linkStats:     make(map[Link]*Stats),
	}
	if n.packetQueue == 0 {
		n.packetQueue = DefaultPacketQueue
	}
	if n.streamBacklog == 0 {
		n.streamBacklog = DefaultStreamBacklog
	}
	return n
}

// Seed returns the seed the network's random source started from.
func (n *Network) Seed() int64 { return n.seed }

// NewTransport returns a new open Transport named name, with an address
// "127.0.0.1:PORT" that no other transport of this Network has had (with
// Config.KeepAddrs, a name registering again gets its previous address).
// The name must not be that of another open transport; the name of a
// transport that was shut down may be reused (a restarted node), and the
// new transport inherits every grudge set for that name, since grudges are
// kept by name.
func (n *Network) NewTransport(name string) (*Transport, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: empty name", ErrName)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.byName[name]; ok {
		return nil, fmt.Errorf("%w: %q is in use", ErrName, name)
	}
	port, again := n.ports[name]
	if !again {
		if n.nextPort > 65535 {
			return nil, errors.New("memnet: out of ports")
		}
		port = n.nextPort
		n.nextPort++
		if n.keepAddrs {
			n.ports[name] = port
		}
	}
	t := &Transport{
		net:      n,
		name:     name,
		addr:     &Addr{Name: name, HostPort: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))},
		ip:       net.IPv4(127, 0, 0, 1),
		port:     port,
		packetCh: make(chan *memberlist.Packet, n.packetQueue),
		streamCh: make(chan net.Conn, n.streamBacklog),
		done:     make(chan struct{}),
		inflight: make(map[*flight]struct{}),
	}
	n.byAddr[t.addr.HostPort] = t
	n.byName[name] = t
	n.names[name] = struct{}{}
	return t, nil
}

// Addr returns the address of the open transport named name, or "" if there
// is none.
func (n *Network) Addr(name string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if t, ok := n.byName[name]; ok {
		return t.addr.HostPort
	}
	return ""
}

// Shutdown shuts down every open transport of the network (see
// Transport.Shutdown), stopping every pending delivery timer. The network
// stays usable: new transports may be created afterwards.
func (n *Network) Shutdown() {
	n.mu.Lock()
	ts := make([]*Transport, 0, len(n.byName))
	for _, t := range n.byName {
		ts = append(ts, t)
	}
	n.mu.Unlock()
	for _, t := range ts {
		_ = t.Shutdown()
	}
}

// SetLoss sets the probability that a packet is dropped. It applies to
// packets sent from now on. It panics if p is not in [0, 1].
func (n *Network) SetLoss(p float64) {
	if err := checkProb("loss", p); err != nil {
		panic(err)
	}
	n.mu.Lock()
	n.loss = p
	n.mu.Unlock()
}

// SetDuplicate sets the probability that a packet that was not lost is
// delivered twice. It panics if p is not in [0, 1].
func (n *Network) SetDuplicate(p float64) {
	if err := checkProb("duplicate", p); err != nil {
		panic(err)
	}
	n.mu.Lock()
	n.dup = p
	n.mu.Unlock()
}

// SetDelay sets the range [minDelay, maxDelay) each packet copy's delay is
// drawn from; SetDelay(0, 0) makes delivery synchronous again. Packets
// already in flight keep their delay. It panics unless 0 <= minDelay <=
// maxDelay.
func (n *Network) SetDelay(minDelay, maxDelay time.Duration) {
	if err := checkDelay(minDelay, maxDelay); err != nil {
		panic(err)
	}
	n.mu.Lock()
	n.minDelay, n.maxDelay = minDelay, maxDelay
	n.mu.Unlock()
}

// Cut makes from hold a grudge against to: from this call on, every packet
// from from to to vanishes silently (including packets already in flight
// on that link, checked again when their delay runs out), every dial
// between the two in either direction fails at once with ErrLinkCut (a
// stream needs both directions, as a TCP handshake does), and every stream
// already open between the two, whoever dialled it, is closed: its reads
// and writes fail with ErrLinkCut. Packets from to to from still flow.
//
// Names need not belong to an existing transport: a grudge may be set
// before its node starts, and outlives its node's restarts.
func (n *Network) Cut(from, to string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cutLocked(from, to)
}

// CutBoth cuts both directions between a and b.
func (n *Network) CutBoth(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cutLocked(a, b)
	n.cutLocked(b, a)
}

// Heal removes the grudge of from against to, if any. Streams that Cut
// closed stay closed; new dials succeed if the other direction is not cut
// either.
func (n *Network) Heal(from, to string) {
	n.mu.Lock()
	delete(n.grudges, Link{from, to})
	n.mu.Unlock()
}

// HealBoth heals both directions between a and b.
func (n *Network) HealBoth(a, b string) {
	n.mu.Lock()
	delete(n.grudges, Link{a, b})
	delete(n.grudges, Link{b, a})
	n.mu.Unlock()
}

// HealAll removes every grudge.
func (n *Network) HealAll() {
	n.mu.Lock()
	n.grudges = make(map[Link]struct{})
	n.mu.Unlock()
}

// Partition cuts, in both directions, every link between two names that are
// in different groups. Links within a group, and of names in no group, are
// left as they are: Partition only adds grudges, so call HealAll first for
// a fresh partition, or combine it with Cut for asymmetric shapes.
//
// Other shapes are expressed with Cut and CutBoth: a bridge A-B-C where A
// and C cannot talk directly is CutBoth("A", "C"); a ring is a CutBoth for
// every pair of non-adjacent nodes; a one-way partition is Cut for each
// (from, to) pair.
func (n *Network) Partition(groups ...[]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, g := range groups {
		for _, h := range groups[i+1:] {
			for _, a := range g {
				for _, b := range h {
					n.cutLocked(a, b)
					n.cutLocked(b, a)
				}
			}
		}
	}
}

// Isolate cuts, in both directions, every link between name and every
// other name this network has ever had a transport for. Transports created
// later with new names are not cut from it.
func (n *Network) Isolate(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for other := range n.names {
		if other != name {
			n.cutLocked(name, other)
			n.cutLocked(other, name)
		}
	}
}

// Linked reports whether packets from from to to currently get past the
// grudges (they may still be lost by the random faults).
func (n *Network) Linked(from, to string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.isCut(from, to)
}

// Cuts returns every grudge, sorted, for logging.
func (n *Network) Cuts() []Link {
	n.mu.Lock()
	out := make([]Link, 0, len(n.grudges))
	for l := range n.grudges {
		out = append(out, l)
	}
	n.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].From != out[j].From {
			return out[i].From < out[j].From
		}
		return out[i].To < out[j].To
	})
	return out
}

// Stats returns a snapshot of the network-wide counters.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.stats
	s.PacketsInFlight = s.PacketsSent + s.PacketsDuplicated - s.PacketsDelivered - s.PacketsDropped
	return s
}

// LinkStats returns a snapshot of the counters of packets sent, and streams
// dialled, from the transport named from to the one named to. Packets and
// dials to addresses with no transport are counted only network-wide,
// since they have no destination name.
func (n *Network) LinkStats(from, to string) Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	var s Stats
	if ls, ok := n.linkStats[Link{from, to}]; ok {
		s = *ls
	}
	s.PacketsInFlight = s.PacketsSent + s.PacketsDuplicated - s.PacketsDelivered - s.PacketsDropped
	return s
}

// ResetStats zeroes every counter. Packets in flight when it is called are
// still counted when they land, so PacketsInFlight may read wrong until
// they have.
func (n *Network) ResetStats() {
	n.mu.Lock()
	n.stats = Stats{}
	n.linkStats = make(map[Link]*Stats)
	n.mu.Unlock()
}

// cutLocked records a grudge and breaks the streams between the two ends.
// n.mu must be held.
func (n *Network) cutLocked(from, to string) {
	n.grudges[Link{from, to}] = struct{}{}
	for s := range n.streams {
		a, b := s.dialer.owner.name, s.acceptor.owner.name
		if (a == from && b == to) || (a == to && b == from) {
			n.breakLocked(s, ErrLinkCut)
			n.stats.StreamsBroken++
			n.link(a, b).StreamsBroken++
		}
	}
}

// isCut reports whether from holds a grudge against to. n.mu must be held.
func (n *Network) isCut(from, to string) bool {
	_, ok := n.grudges[Link{from, to}]
	return ok
}

// link returns the counters of one link, creating them. n.mu must be held.
func (n *Network) link(from, to string) *Stats {
	l := Link{from, to}
	s, ok := n.linkStats[l]
	if !ok {
		s = new(Stats)
		n.linkStats[l] = s
	}
	return s
}

// drawDelay consumes exactly one value from the random source, whatever
// the range. n.mu must be held.
func (n *Network) drawDelay() time.Duration {
	f := n.rng.Float64()
	return n.minDelay + time.Duration(f*float64(n.maxDelay-n.minDelay))
}
