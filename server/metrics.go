package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/roster-io/roster/internal/buildinfo"
	"github.com/roster-io/roster/registry/regtype"
)

// metrics are the server's Prometheus metrics, in a private registry so
// that several servers can live in one process.
type metrics struct {
	reg      *prometheus.Registry
	ops      *prometheus.CounterVec   // op, code
	watchers *prometheus.GaugeVec     // scope
	resyncs  *prometheus.CounterVec   // scope, cause
	dropped  *prometheus.CounterVec   // scope
	duration *prometheus.HistogramVec // route, method, code
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roster_operations_total",
			Help: "API operations by operation and outcome code (ok or the error code).",
		}, []string{"op", "code"}),
		watchers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "roster_watchers",
			Help: "Open watch streams by scope.",
		}, []string{"scope"}),
		resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roster_watch_resyncs_total",
			Help: "Resync events sent to watch streams, by scope and cause (behind: the consumer fell behind; history: a resume point no longer held; incarnation: a resume point from another run; malformed: a resume point that is not an event id).",
		}, []string{"scope", "cause"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roster_watch_dropped_total",
			Help: "Watch streams dropped because their client did not read within WatchWriteTimeout, by scope.",
		}, []string{"scope"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "roster_http_request_duration_seconds",
			Help:    "HTTP request duration by route pattern, method and status code (watch streams count their whole life).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60},
		}, []string{"route", "method", "code"}),
	}
	m.reg.MustRegister(m.ops, m.watchers, m.resyncs, m.dropped, m.duration,
		&registryCollector{s: s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, sc := range s.reg.Scopes() {
		m.watchers.WithLabelValues(sc)
	}
	m.reg.MustRegister(buildInfoGauge())
	m.reg.MustRegister(&observer{s: s}) // observe.go
	return m
}

// buildInfoGauge is roster_build_info: value 1, the build in its labels
// (see internal/buildinfo), the usual way to join a build to any series.
func buildInfoGauge() prometheus.Gauge {
	bi := buildinfo.Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "roster_build_info",
		Help:        "The running build (value 1): version, commit and Go version.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "commit": bi.Commit, "goversion": bi.GoVersion},
	})
	g.Set(1)
	return g
}

// registryCollector reads the registry's state and gossip counters at
// scrape time.
type registryCollector struct{ s *Server }

var (
	descMembers  = prometheus.NewDesc("roster_members", "Visible members (all owners, reachable) by scope.", []string{"scope"}, nil)
	descGroups   = prometheus.NewDesc("roster_groups", "Groups with at least one visible member, by scope.", []string{"scope"}, nil)
	descPeers    = prometheus.NewDesc("roster_peers", "Other nodes by state as seen from this node.", []string{"state"}, nil)
	descSessions = prometheus.NewDesc("roster_sessions", "Live sessions on this node.", nil, nil)
	descReady    = prometheus.NewDesc("roster_ready", "1 when the registry is ready (joined and caught up), else 0.", nil, nil)
	descInfo     = prometheus.NewDesc("roster_node_info", "The node's name and incarnation (value 1).", []string{"name", "incarnation"}, nil)
	descHistory  = prometheus.NewDesc("roster_watch_history_events", "Events held in the watch history ring, by scope.", []string{"scope"}, nil)
	descConns    = prometheus.NewDesc("roster_http_connections", "Open HTTP connections of Serve (bounded by MaxConns).", nil, nil)

	gossipCounters = []struct {
		desc *prometheus.Desc
		get  func(regtype.Stats) int64
	}{
		{counterDesc("roster_gossip_deltas_sent_total", "Local operations (a join, update, leave or leave-all each) pushed to peers; under load they are batched into fewer deltas on the wire."), func(s regtype.Stats) int64 { return s.DeltasSent }},
		{counterDesc("roster_gossip_deltas_received_total", "Deltas received from peers."), func(s regtype.Stats) int64 { return s.DeltasReceived }},
		{counterDesc("roster_gossip_packets_sent_total", "Best-effort (UDP) gossip packets sent."), func(s regtype.Stats) int64 { return s.PacketsSent }},
		{counterDesc("roster_gossip_reliable_sent_total", "Reliable (TCP) gossip messages sent."), func(s regtype.Stats) int64 { return s.ReliableSent }},
		{counterDesc("roster_gossip_bytes_sent_total", "Gossip bytes sent (deltas and anti-entropy)."), func(s regtype.Stats) int64 { return s.BytesSent }},
		{counterDesc("roster_gossip_decode_errors_total", "Gossip messages and deltas rejected as malformed or invalid."), func(s regtype.Stats) int64 { return s.DecodeErrors }},
		{counterDesc("roster_gossip_packets_dropped_total", "Received gossip packets dropped because the node's packet queue was full (anti-entropy repairs them)."), func(s regtype.Stats) int64 { return s.PacketsDropped }},
		{counterDesc("roster_gossip_unvouched_deltas_total", "Deltas dropped because memberlist does not report their owner at that incarnation (forged, or early: anti-entropy brings those again)."), func(s regtype.Stats) int64 { return s.Unvouched }},
		{counterDesc("roster_gossip_forged_messages_total", "Messages dropped because their claimed sender is not the peer they came from, and relay requests refused."), func(s regtype.Stats) int64 { return s.Forged }},
		{counterDesc("roster_gossip_overflow_total", "Out-of-order transfer chunks dropped at the reorder buffer's bounds or expiry (anti-entropy repairs them)."), func(s regtype.Stats) int64 { return s.Overflow }},
		{counterDesc("roster_gossip_out_of_order_chunks_total", "Anti-entropy chunks received out of order."), func(s regtype.Stats) int64 { return s.OutOfOrderChunks }},
		{counterDesc("roster_gossip_rejoin_attempts_total", "Attempts to rejoin missing peers and seeds."), func(s regtype.Stats) int64 { return s.RejoinAttempts }},
		{counterDesc("roster_gossip_rejoin_successes_total", "Successful rejoins."), func(s regtype.Stats) int64 { return s.RejoinSuccesses }},
		{counterDesc("roster_anti_entropy_syncs_sent_total", "Anti-entropy digests sent."), func(s regtype.Stats) int64 { return s.SyncsSent }},
		{counterDesc("roster_anti_entropy_syncs_served_total", "Anti-entropy digests answered."), func(s regtype.Stats) int64 { return s.SyncsServed }},
		{counterDesc("roster_anti_entropy_repair_deltas_sent_total", "Repair deltas sent by anti-entropy."), func(s regtype.Stats) int64 { return s.RepairDeltasSent }},
		{counterDesc("roster_anti_entropy_repair_bytes_sent_total", "Repair bytes sent by anti-entropy."), func(s regtype.Stats) int64 { return s.RepairBytesSent }},
		{counterDesc("roster_anti_entropy_roots_sent_total", "Anti-entropy rounds that sent a range-digest root instead of a digest."), func(s regtype.Stats) int64 { return s.RootsSent }},
		{counterDesc("roster_anti_entropy_narrowed_digests_sent_total", "Anti-entropy digests sent restricted to the range-digest buckets that differ."), func(s regtype.Stats) int64 { return s.NarrowedSyncs }},
		{counterDesc("roster_gossip_plumtree_payloads_sent_total", "Plumtree messages sent carrying a batch (scopes past 32 peers)."), func(s regtype.Stats) int64 { return s.PlumtreePayloads }},
		{counterDesc("roster_anti_entropy_roots_in_step_total", "Range-digest roots received that matched this node's."), func(s regtype.Stats) int64 { return s.RootsInStep }},
	}
)

func counterDesc(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }

var peerStates = []regtype.PeerState{regtype.PeerAlive, regtype.PeerDead, regtype.PeerLeft, regtype.PeerUnknown}

func (c *registryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMembers, descGroups, descPeers, descSessions, descReady, descInfo, descHistory, descConns} {
		ch <- d
	}
	for _, g := range gossipCounters {
		ch <- g.desc
	}
	for _, d := range gossipDescs {
		ch <- d
	}
}

func (c *registryCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.s.reg
	for _, f := range c.s.feeds {
		members, groups, held := f.counts()
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(members), f.scope)
		ch <- prometheus.MustNewConstMetric(descGroups, prometheus.GaugeValue, float64(groups), f.scope)
		ch <- prometheus.MustNewConstMetric(descHistory, prometheus.GaugeValue, float64(held), f.scope)
	}
	byState := map[regtype.PeerState]int{}
	for _, n := range r.Nodes() {
		if !n.Self {
			byState[n.State]++
		}
	}
	for _, st := range peerStates {
		ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(byState[st]), string(st))
		delete(byState, st)
	}
	for st, n := range byState { // states added to gossip later
		ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(n), string(st))
	}
	ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(len(r.Sessions())))
	ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(c.s.conns.Load()))
	ready := 0.0
	if r.Ready() && !c.s.draining.Load() {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, r.Name(), formatUint(r.Incarnation()))
	st := r.Stats()
	for _, g := range gossipCounters {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.CounterValue, float64(g.get(st)))
	}
	collectGossip(ch, st) // observe.go
}
