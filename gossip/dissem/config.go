package dissem

import (
	"errors"
	"fmt"
	"time"
)

// Errors returned by Config.Validate and New.
var (
	ErrInvalidConfig = errors.New("dissem: invalid config")
	ErrNilView       = errors.New("dissem: nil view")
	ErrNilRand       = errors.New("dissem: nil rand")
)

// Strategy is how a core spreads the changes it broadcasts.
type Strategy uint8

const (
	// Direct sends one copy to every peer of the scope (today's push;
	// Erlang pg's N-1 messages per change).
	Direct Strategy = iota + 1
	// Tree is today's relay tree: the writer sends to FanOut peers, and each
	// message names the nodes its receiver must pass it on to (O(N) names
	// at the first hop).
	Tree
	// Plumtree is eager/lazy push (Leitão et al. 2007): a spanning tree of
	// eager links, repaired by lazy IHAVE announcements, GRAFT and PRUNE.
	Plumtree
	// Auto is Direct while the scope has at most Config.DirectMax peers,
	// Plumtree above.
	Auto
)

func (s Strategy) String() string {
	switch s {
	case Direct:
		return "direct"
	case Tree:
		return "tree"
	case Plumtree:
		return "plumtree"
	case Auto:
		return "auto"
	}
	return fmt.Sprintf("strategy(%d)", uint8(s))
}

// Defaults, applied by DefaultConfig and by New to fields left zero.
const (
	DefaultDirectMax     = 32
	DefaultFanOut        = 4
	DefaultEager         = 4
	DefaultLazy          = 4
	DefaultAnnounceEvery = 5 * time.Millisecond
	DefaultGraftTimeout  = 10 * time.Millisecond
	DefaultPruneAfter    = 2
	DefaultRingLinks     = 2
	DefaultRetain        = 30 * time.Second
	DefaultMaxRetained   = 65536
)

// Bounds on what a core keeps and accepts.
const (
	// MaxNameLen is the longest node name or origin accepted (the encoding
	// gives a name a one-byte length).
	MaxNameLen = 255
	// MaxIDs is the most ids one IHAVE, GRAFT or PRUNE carries; a longer
	// list from the network is ignored whole.
	MaxIDs = 512
	// MaxRelayTo is the most names a Tree message may ask its receiver to
	// cover (the encoding counts them in 16 bits).
	MaxRelayTo = 65535
	// MaxPeers bounds Eager, Lazy and FanOut, so per-core state stays small.
	MaxPeers = 64
	// MaxPruneAfter bounds PruneAfter.
	MaxPruneAfter = 16
	// MaxAnnouncers is the most peers remembered per announced id.
	MaxAnnouncers = 8
	// minPeriod is the shortest duration a Config may set.
	minPeriod = time.Millisecond
)

// Config configures one core: one node's dissemination for one scope.
// Fields left zero take the defaults above.
type Config struct {
	// Self is this node's name; never empty.
	Self string
	// Strategy is how Broadcast spreads a change. Zero means Auto.
	Strategy Strategy
	// DirectMax is, under Auto, the largest scope (peers) still served by
	// Direct. Default 32.
	DirectMax int
	// FanOut is, under Tree, the number of children per node. Default 4.
	FanOut int
	// Eager is, under Plumtree, the number of eager peers kept (the tree's
	// degree: depth about log_Eager N). The eager set may grow to 2*Eager
	// as peers push to this node. Default 4.
	Eager int
	// Lazy is, under Plumtree, the number of peers each new message is
	// announced to (IHAVE). Default 4.
	Lazy int
	// AnnounceEvery is the period at which IHAVEs (announcements and
	// acknowledgements) are batched and flushed. Default 5ms (LAN; see
	// WANConfig).
	AnnounceEvery time.Duration
	// GraftTimeout: an announced message not received this long (plus a
	// random part of up to GraftTimeout, unless NoGraftSpread) after its
	// first IHAVE is grafted from the announcer; then from the next
	// announcer after GraftTimeout/2, and so on; once all were tried, they
	// are tried again after 2, 4 and 8 GraftTimeouts. Unacknowledged
	// offers are re-announced after 2*GraftTimeout, then at doubling
	// intervals up to 16*GraftTimeout. Default 10ms (LAN; see WANConfig).
	GraftTimeout time.Duration
	// NoGraftSpread makes the first graft of an announced id due exactly
	// GraftTimeout after its first IHAVE. By default a random part of up
	// to GraftTimeout is added, so that the nodes of a fragment of the tree
	// that hear of a message at once do not all graft it at once.
	NoGraftSpread bool
	// PruneAfter is, under Plumtree, how many duplicates in a row (no new
	// message between them) an eager peer pushes before this node prunes
	// it. The paper prunes on the first; with many writers at once, the
	// duplicates of different messages arrive over different links of the
	// same cycle, and pruning each cuts the tree apart. Default 2.
	PruneAfter int
	// RingLinks is, under Plumtree, how many of the next names after Self
	// in sorted order are always linked, with acknowledged offers: 1 or 2.
	// With one, a node whose ring predecessor crashed (and is not yet
	// declared dead) and whom no random lazy set holds hears of nothing
	// it misses until anti-entropy; with two, both its predecessors
	// must fail. Default 2.
	RingLinks int
	// Retain is how long a received message's payload is kept to answer
	// GRAFTs and its id remembered to spot duplicates. Default 30s.
	Retain time.Duration
	// MaxRetained bounds the retained messages (oldest dropped first), and
	// also the ids awaiting a graft. Default 65,536.
	MaxRetained int
}

// DefaultConfig returns the configuration of a core for self: Auto with the
// defaults above.
func DefaultConfig(self string) Config {
	return Config{
		Self:          self,
		Strategy:      Auto,
		DirectMax:     DefaultDirectMax,
		FanOut:        DefaultFanOut,
		Eager:         DefaultEager,
		Lazy:          DefaultLazy,
		AnnounceEvery: DefaultAnnounceEvery,
		GraftTimeout:  DefaultGraftTimeout,
		PruneAfter:    DefaultPruneAfter,
		RingLinks:     DefaultRingLinks,
		Retain:        DefaultRetain,
		MaxRetained:   DefaultMaxRetained,
	}
}

// WAN presets, for nodes spread over regions (round trips of 4 to 200 ms).
// Measured in cmd/roster-sim (1000 nodes, 19 regions, 1% loss, 2%
// crashed, 10 flapping): GraftTimeout 250ms gives p50/p99 883/1321 ms,
// 100ms 551/754, 50ms 400/590 (copies per node 3.4, 4.0, 4.7: a graft
// often races a far region's push, but it is the first copy that
// counts).
const (
	WANAnnounceEvery = 10 * time.Millisecond
	WANGraftTimeout  = 50 * time.Millisecond
)

// WANConfig is DefaultConfig with the timings for nodes spread over
// regions (WANAnnounceEvery, WANGraftTimeout). DefaultConfig is for one
// data centre (LAN).
func WANConfig(self string) Config {
	c := DefaultConfig(self)
	c.AnnounceEvery = WANAnnounceEvery
	c.GraftTimeout = WANGraftTimeout
	return c
}

// Validate reports the first thing wrong with c, as an error wrapping
// ErrInvalidConfig. Zero fields are valid (they take the defaults).
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Self == "":
		return bad("Self is empty")
	case len(c.Self) > MaxNameLen:
		return bad("Self is %d bytes, more than %d", len(c.Self), MaxNameLen)
	case c.Strategy > Auto:
		return bad("unknown Strategy %d", c.Strategy)
	case c.DirectMax < 0:
		return bad("DirectMax %d is negative", c.DirectMax)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"FanOut", c.FanOut}, {"Eager", c.Eager}, {"Lazy", c.Lazy}} {
		if f.v < 0 || f.v > MaxPeers {
			return bad("%s %d is outside 0..%d", f.name, f.v, MaxPeers)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"AnnounceEvery", c.AnnounceEvery}, {"GraftTimeout", c.GraftTimeout}, {"Retain", c.Retain}} {
		if f.v < 0 || (f.v > 0 && f.v < minPeriod) {
			return bad("%s %v is below %v", f.name, f.v, minPeriod)
		}
	}
	if c.PruneAfter < 0 || c.PruneAfter > MaxPruneAfter {
		return bad("PruneAfter %d is outside 0..%d", c.PruneAfter, MaxPruneAfter)
	}
	if c.RingLinks < 0 || c.RingLinks > 2 {
		return bad("RingLinks %d is outside 0..2", c.RingLinks)
	}
	if c.MaxRetained < 0 {
		return bad("MaxRetained %d is negative", c.MaxRetained)
	}
	d := c.withDefaults()
	if d.Retain < d.GraftTimeout {
		return bad("Retain %v is shorter than GraftTimeout %v", d.Retain, d.GraftTimeout)
	}
	return nil
}

// withDefaults returns c with its zero fields set to the defaults.
func (c Config) withDefaults() Config {
	def := DefaultConfig(c.Self)
	if c.Strategy == 0 {
		c.Strategy = def.Strategy
	}
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	setInt(&c.DirectMax, def.DirectMax)
	setInt(&c.FanOut, def.FanOut)
	setInt(&c.Eager, def.Eager)
	setInt(&c.Lazy, def.Lazy)
	setInt(&c.MaxRetained, def.MaxRetained)
	setInt(&c.PruneAfter, def.PruneAfter)
	setInt(&c.RingLinks, def.RingLinks)
	setDur(&c.AnnounceEvery, def.AnnounceEvery)
	setDur(&c.GraftTimeout, def.GraftTimeout)
	setDur(&c.Retain, def.Retain)
	return c
}
