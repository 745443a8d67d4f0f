package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/roster-io/roster/registry"
	"github.com/roster-io/roster/server"
	"github.com/roster-io/roster/storage"
	"github.com/stretchr/testify/require"
)

// families scrapes nd's /metrics (with token when not empty) and parses
// the exposition format.
func families(t testing.TB, nd *node, token string) map[string]*dto.MetricFamily {
	t.Helper()
	var headers []string
	if token != "" {
		headers = append(headers, "Authorization: Bearer "+token)
	}
	r := nd.call(t, "GET", "/metrics", nil, headers...)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(r.raw))
	require.NoError(t, err)
	return fams
}

// sample returns the value of the family's series whose labels include
// want ("k=v" pairs), failing if there is not exactly one.
func sample(t testing.TB, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	require.True(t, ok, "family %s exported", name)
	var found []*dto.Metric
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			if labels[k] != v {
				match = false
			}
		}
		if match {
			found = append(found, m)
		}
	}
	require.Len(t, found, 1, "%s%v", name, want)
	m := found[0]
	switch f.GetType() {
	case dto.MetricType_COUNTER:
		return m.Counter.GetValue()
	case dto.MetricType_GAUGE:
		return m.Gauge.GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(m.Histogram.GetSampleCount())
	}
	t.Fatalf("%s: unexpected type %v", name, f.GetType())
	return 0
}

// TestMetricsFamilies runs two nodes with stores and a token, makes joins,
// leaves, a watch and anti-entropy exchanges, then scrapes the first
// node's /metrics over HTTP and checks every family the dashboard needs:
// per-scope members and groups, gossip traffic by kind, anti-entropy
// rounds and repairs, held and dropped deltas, watchers and their backlog,
// the fsync histogram, Pebble's figures, and requests by route and code.
func TestMetricsFamilies(t *testing.T) {
	const token = "metrics-token"
	ns := startClusterWith(t, 2, func(c *registry.Config) { c.DataDir = t.TempDir() }, func(c *server.Config) { c.Token = token })
	a, b := ns[0], ns[1]
	auth := "Authorization: Bearer " + token
	for i := range 6 {
		group := []string{"room", "hall"}[i%2]
		r := a.call(t, "PUT", fmt.Sprintf("/v1/scopes/default/groups/%s/members/m%d", group, i), `{}`, auth)
		require.Equal(t, http.StatusOK, r.status, r.raw)
	}
	require.Equal(t, http.StatusNoContent, a.call(t, "DELETE", "/v1/scopes/default/groups/room/members/m0", nil, auth).status)
	require.Equal(t, http.StatusOK, b.call(t, "PUT", "/v1/scopes/chat/groups/lobby/members/x", `{}`, auth).status)
	require.Equal(t, "invalid_name", a.call(t, "PUT", "/v1/scopes/default/groups/room/members/a%00b", `{}`, auth).code())
	w := a.watch(t, "/v1/scopes/default/watch", auth)
	require.Equal(t, "snapshot", w.next(t).event)

	// Replication and anti-entropy: b sees a's members and a b's, and
	// each has answered a digest of the other.
	require.Eventually(t, func() bool {
		sa, sb := a.reg.Stats(), b.reg.Stats()
		hall, err := b.reg.Members("default", "hall")
		return err == nil && len(hall) == 3 && sa.Received[registry.KindSync].Messages > 0 && sb.Received[registry.KindSync].Messages > 0 &&
			sa.AntiEntropyRounds > 0 && sa.SyncsServed > 0
	}, wait, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		f := families(t, a, token)
		return sample(t, f, "roster_members", "scope=chat") == 1 && sample(t, f, "roster_members", "scope=default") == 5
	}, wait, 10*time.Millisecond)

	f := families(t, a, token)
	// Per scope members and groups: what was joined, less the leave.
	require.Equal(t, 5.0, sample(t, f, "roster_members", "scope=default"))
	require.Equal(t, 2.0, sample(t, f, "roster_groups", "scope=default"))
	require.Equal(t, 1.0, sample(t, f, "roster_members", "scope=chat"), "b's member, replicated")
	require.Equal(t, 1.0, sample(t, f, "roster_groups", "scope=chat"))

	// Gossip by kind: a pushed its operations as deltas and exchanged
	// digests; nothing was relayed (full mesh) and nobody left.
	require.GreaterOrEqual(t, sample(t, f, "roster_gossip_messages_sent_total", "kind=deltas"), 1.0)
	require.Greater(t, sample(t, f, "roster_gossip_message_bytes_sent_total", "kind=deltas"), sample(t, f, "roster_gossip_messages_sent_total", "kind=deltas"))
	require.Positive(t, sample(t, f, "roster_gossip_messages_received_total", "kind=deltas"), "b's join")
	require.Positive(t, sample(t, f, "roster_gossip_messages_sent_total", "kind=sync"))
	require.Positive(t, sample(t, f, "roster_gossip_messages_received_total", "kind=sync"))
	require.Positive(t, sample(t, f, "roster_gossip_message_bytes_received_total", "kind=sync"))
	require.Zero(t, sample(t, f, "roster_gossip_messages_sent_total", "kind=relay"))
	require.Zero(t, sample(t, f, "roster_gossip_messages_received_total", "kind=leaving"))
	for _, dir := range []string{"in", "out"} {
		require.Positive(t, sample(t, f, "roster_gossip_transport_packets_total", "direction="+dir))
		require.Greater(t, sample(t, f, "roster_gossip_transport_packet_bytes_total", "direction="+dir), sample(t, f, "roster_gossip_transport_packets_total", "direction="+dir))
	}
	require.Positive(t, sample(t, f, "roster_gossip_transport_streams_total", "result=opened")+sample(t, f, "roster_gossip_transport_streams_total", "result=accepted"))

	// Anti-entropy rounds and repairs.
	require.Positive(t, sample(t, f, "roster_anti_entropy_rounds_total"))
	require.Positive(t, sample(t, f, "roster_anti_entropy_syncs_served_total"))
	sample(t, f, "roster_anti_entropy_repair_bytes_sent_total")

	// Held and dropped deltas: none on a healthy loopback pair, but the
	// families are there.
	require.Zero(t, sample(t, f, "roster_gossip_held_deltas", "scope=default"))
	require.Zero(t, sample(t, f, "roster_gossip_held_bytes", "scope=default"))
	for _, name := range []string{"roster_gossip_held_back_deltas_total", "roster_gossip_overflow_total", "roster_gossip_unvouched_deltas_total",
		"roster_gossip_packets_dropped_total", "roster_gossip_decode_errors_total", "roster_gossip_piggybacked_total", "roster_gossip_relayed_deltas_total",
		"roster_gossip_plumtree_payloads_sent_total"} {
		require.GreaterOrEqual(t, sample(t, f, name), 0.0, name)
	}

	// Watchers and their backlog: one stream that keeps up.
	require.Equal(t, 1.0, sample(t, f, "roster_watchers", "scope=default"))
	require.Zero(t, sample(t, f, "roster_watchers", "scope=chat"))
	for _, name := range []string{"roster_watch_backlog_events", "roster_watch_backlog_max_events", "roster_watch_backlog_bytes", "roster_watch_behind"} {
		require.Zero(t, sample(t, f, name, "scope=default"), name)
	}

	// Storage: fsyncs timed into the histogram, commits acknowledged, and
	// Pebble's figures.
	fsync := f["roster_storage_fsync_duration_seconds"]
	require.NotNil(t, fsync)
	require.Equal(t, dto.MetricType_HISTOGRAM, fsync.GetType())
	h := fsync.Metric[0].Histogram
	require.Positive(t, h.GetSampleCount(), "the incarnation and durable writes were fsynced")
	require.Positive(t, h.GetSampleSum())
	require.Len(t, h.Bucket, len(storage.SyncLatencyBounds)+1, "the store's buckets and +Inf")
	for i, bound := range storage.SyncLatencyBounds {
		require.Equal(t, bound.Seconds(), h.Bucket[i].GetUpperBound())
		if i > 0 {
			require.GreaterOrEqual(t, h.Bucket[i].GetCumulativeCount(), h.Bucket[i-1].GetCumulativeCount())
		}
	}
	require.Equal(t, h.GetSampleCount(), h.Bucket[len(h.Bucket)-1].GetCumulativeCount())
	require.Positive(t, sample(t, f, "roster_storage_wal_fsyncs_total"))
	require.GreaterOrEqual(t, sample(t, f, "roster_storage_commits_total"), 6.0, "six durable joins and a leave")
	require.Zero(t, sample(t, f, "roster_storage_failed"))
	require.Zero(t, sample(t, f, "roster_storage_errors_total"))
	require.Positive(t, sample(t, f, "roster_pebble_disk_bytes"))
	require.Positive(t, sample(t, f, "roster_pebble_wal_written_bytes_total"))
	require.Positive(t, sample(t, f, "roster_pebble_wal_files"))
	require.Positive(t, sample(t, f, "roster_pebble_memtable_bytes"))
	require.Len(t, f["roster_pebble_level_tables"].Metric, 7, "L0 to L6")
	for _, name := range []string{"roster_pebble_read_amplification", "roster_pebble_compaction_debt_bytes", "roster_pebble_flushes_total",
		"roster_pebble_compactions_total", "roster_pebble_block_cache_hits_total", "roster_pebble_block_cache_misses_total"} {
		sample(t, f, name)
	}

	// HTTP requests by route and code, with latency histograms.
	const memberRoute = "route=PUT /v1/scopes/{scope}/groups/{group}/members/{id}"
	require.Equal(t, 6.0, sample(t, f, "roster_http_request_duration_seconds", memberRoute, "code=200"))
	require.Equal(t, 1.0, sample(t, f, "roster_http_request_duration_seconds", memberRoute, "code=400"))
	require.Equal(t, 1.0, sample(t, f, "roster_http_request_duration_seconds", "route=DELETE /v1/scopes/{scope}/groups/{group}/members/{id}", "code=204"))
	require.Equal(t, 6.0, sample(t, f, "roster_operations_total", "op=join", "code=ok"))
	require.Equal(t, 1.0, sample(t, f, "roster_operations_total", "op=join", "code=invalid_name"))
}
