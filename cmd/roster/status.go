package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/roster-io/roster/client"
)

// status is what roster status shows: the node and the cluster it sees.
type status struct {
	Node    client.Node `json:"node"`
	API     string      `json:"api"`
	Healthy bool        `json:"healthy"` // /healthz: the process serves and its storage needs no restart
	Ready   bool        `json:"ready"`   // /readyz: joined, caught up, storage healthy
	// Problem says why the node is not healthy or not ready.
	Problem string `json:"problem,omitempty"`
	// Nodes counts the cluster's nodes by state, this one included.
	Nodes  map[string]int `json:"nodes"`
	Scopes []scopeStatus  `json:"scopes"`
	// Sessions counts the node's live sessions (nil if unknown).
	Sessions *int `json:"sessions"`
	// MetricsError says why members, groups and sessions are unknown.
	MetricsError string `json:"metrics_error,omitempty"`
}

// scopeStatus is one scope the node serves.
type scopeStatus struct {
	Scope string `json:"scope"`
	// Nodes counts the alive nodes serving the scope, this one included.
	Nodes int `json:"nodes"`
	// Members and Groups are the visible members and the groups holding
	// them, as the node sees them (nil if unknown).
	Members *int `json:"members"`
	Groups  *int `json:"groups"`
}

// runStatus runs roster status: this node (name, incarnation, scopes,
// health) and the cluster at a glance (nodes by state, members per
// scope), from /v1/nodes, /healthz, /readyz and /metrics. It fails only if
// the node cannot be asked; a node that is not ready is shown as such.
func runStatus(args []string, stdout io.Writer) error {
	var o clientOptions
	fs := newFlagSet("status", "status [flags]", stdout)
	o.register(fs, false)
	pos, c, ctx, stop, err := o.prepare(fs, args)
	if err != nil {
		return err
	}
	defer stop()
	defer c.CloseIdleConnections()
	if len(pos) != 0 {
		return usageErr("usage: roster status [flags]")
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	st, err := getStatus(ctx, c)
	if err != nil {
		return err
	}
	return printer{w: stdout, json: o.json}.print(st, st.text)
}

// getStatus asks the node.
func getStatus(ctx context.Context, c *client.Client) (status, error) {
	st := status{API: c.BaseURL(), Nodes: map[string]int{}, Scopes: []scopeStatus{}}
	ns, err := c.Nodes(ctx)
	if err != nil {
		return st, err
	}
	for _, n := range ns {
		st.Nodes[n.State]++
		if n.Self {
			st.Node = n
		}
	}
	if st.Node.Name == "" {
		return st, errors.New("the node did not list itself in /v1/nodes")
	}
	health, ready := c.Health(ctx), c.Readiness(ctx)
	st.Healthy, st.Ready = health == nil, ready == nil
	switch {
	case health != nil:
		st.Problem = health.Error()
	case ready != nil:
		st.Problem = ready.Error()
	}
	var members, groups map[string]int
	text, err := c.Metrics(ctx)
	if err == nil {
		members, groups, st.Sessions, err = parseMetrics(text)
	}
	if err != nil {
		st.MetricsError = err.Error()
	}
	for _, scope := range st.Node.Scopes {
		ss := scopeStatus{Scope: scope}
		for _, n := range ns {
			if n.State == "alive" && slices.Contains(n.Scopes, scope) {
				ss.Nodes++
			}
		}
		if m, ok := members[scope]; ok {
			ss.Members = &m
		}
		if g, ok := groups[scope]; ok {
			ss.Groups = &g
		}
		st.Scopes = append(st.Scopes, ss)
	}
	return st, nil
}

// parseMetrics reads roster_members, roster_groups (by scope) and
// roster_sessions from the node's Prometheus metrics.
func parseMetrics(text string) (members, groups map[string]int, sessions *int, err error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading /metrics: %w", err)
	}
	byScope := func(name string) map[string]int {
		out := map[string]int{}
		if f, ok := fams[name]; ok {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "scope" {
						out[l.GetValue()] = int(m.GetGauge().GetValue())
					}
				}
			}
		}
		return out
	}
	if f, ok := fams["roster_sessions"]; ok && len(f.GetMetric()) == 1 {
		n := int(f.GetMetric()[0].GetGauge().GetValue())
		sessions = &n
	}
	return byScope("roster_members"), byScope("roster_groups"), sessions, nil
}

// stateOrder is the order of node states in roster status.
var stateOrder = []string{"alive", "dead", "left", "unknown"}

// text prints the status for people.
func (st status) text(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "node\t%s (incarnation %v)\n", esc(st.Node.Name), st.Node.Incarnation)
	fmt.Fprintf(tw, "api\t%s\n", esc(st.API))
	fmt.Fprintf(tw, "gossip\t%s\n", esc(st.Node.Addr))
	var health string
	switch {
	case !st.Healthy:
		health = "FAILING: " + escapeText(st.Problem, false)
	case !st.Ready:
		health = "ok, NOT READY: " + escapeText(st.Problem, false)
	default:
		health = "ok, ready"
	}
	fmt.Fprintf(tw, "health\t%s\n", health)
	total := 0
	states := make([]string, 0, len(st.Nodes))
	for s, n := range st.Nodes {
		total += n
		states = append(states, s)
	}
	slices.SortFunc(states, func(a, b string) int {
		ia, ib := slices.Index(stateOrder, a), slices.Index(stateOrder, b)
		switch {
		case ia >= 0 && ib >= 0:
			return ia - ib
		case ia >= 0:
			return -1
		case ib >= 0:
			return 1
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(states))
	for i, s := range states {
		parts[i] = fmt.Sprintf("%d %s", st.Nodes[s], esc(s))
	}
	plural := "s"
	if total == 1 {
		plural = ""
	}
	fmt.Fprintf(tw, "cluster\t%d node%s: %s\n", total, plural, strings.Join(parts, ", "))
	if st.Sessions != nil {
		fmt.Fprintf(tw, "sessions\t%d on this node\n", *st.Sessions)
	}
	if st.MetricsError != "" {
		fmt.Fprintf(tw, "members\tunknown: %s\n", escapeText(st.MetricsError, false))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tNODES\tMEMBERS\tGROUPS")
	count := func(n *int) string {
		if n == nil {
			return "?"
		}
		return fmt.Sprint(*n)
	}
	for _, s := range st.Scopes {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", esc(s.Scope), s.Nodes, count(s.Members), count(s.Groups))
	}
	tw.Flush()
}
