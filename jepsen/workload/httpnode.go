package workload

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/roster-io/roster/client"
	"github.com/roster-io/roster/jepsen/history"
)

// HTTPNode is a Node reached through roster's HTTP API (package client):
// a roster serve process, or anything that speaks its API.
type HTTPNode struct {
	name string
	c    *client.Client
}

// NewHTTPNode returns node name at base (http://host:port); hc carries
// the requests (nil: a default client).
func NewHTTPNode(name, base, token string, hc *http.Client) (*HTTPNode, error) {
	opts := []client.Option{}
	if token != "" {
		opts = append(opts, client.WithToken(token))
	}
	if hc != nil {
		opts = append(opts, client.WithHTTPClient(hc))
	}
	c, err := client.New(base, opts...)
	if err != nil {
		return nil, err
	}
	return &HTTPNode{name: name, c: c}, nil
}

func (n *HTTPNode) Name() string { return n.name }

// classify wraps the errors after which nothing happened (the node
// answered with an error) in ErrFailed; the rest stay unknown.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ae *client.Error
	if errors.As(err, &ae) {
		switch {
		case errors.Is(err, client.ErrNotFound), errors.Is(err, client.ErrSessionNotFound), errors.Is(err, client.ErrNotMember):
			return fmt.Errorf("%w: %w: %w", ErrFailed, ErrNotFound, err)
		case errors.Is(err, client.ErrRequestTimeout):
			return err // the node gave up waiting for our body: unknown
		}
		return fmt.Errorf("%w: %w", ErrFailed, err)
	}
	return err
}

func (n *HTTPNode) Join(ctx context.Context, scope, group, id string, meta map[string]string, session string) error {
	_, err := n.c.Join(ctx, scope, group, id, meta, session)
	return classify(err)
}

func (n *HTTPNode) Leave(ctx context.Context, scope, group, id string) error {
	return classify(n.c.Leave(ctx, scope, group, id))
}

func (n *HTTPNode) Members(ctx context.Context, scope, group string) ([]history.Member, error) {
	ms, err := n.c.Members(ctx, scope, group, false)
	if err != nil {
		if errors.Is(err, client.ErrNotFound) {
			return []history.Member{}, nil // a group without members
		}
		return nil, classify(err)
	}
	out := make([]history.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, history.Member{Group: m.Group, ID: m.ID, Owner: m.Owner, Meta: m.Meta})
	}
	return out, nil
}

func (n *HTTPNode) Groups(ctx context.Context, scope string) ([]string, error) {
	gs, err := n.c.Groups(ctx, scope)
	return gs, classify(err)
}

func (n *HTTPNode) Peers(ctx context.Context) (map[string]string, error) {
	ns, err := n.c.Nodes(ctx)
	if err != nil {
		return nil, classify(err)
	}
	out := make(map[string]string, len(ns))
	for _, x := range ns {
		out[x.Name] = x.State
	}
	return out, nil
}

func (n *HTTPNode) CreateSession(ctx context.Context, ttl time.Duration) (string, error) {
	s, err := n.c.CreateSession(ctx, ttl)
	return s.ID, classify(err)
}

func (n *HTTPNode) KeepAlive(ctx context.Context, id string) error {
	_, err := n.c.KeepAlive(ctx, id)
	return classify(err)
}

func (n *HTTPNode) CloseSession(ctx context.Context, id string) error {
	return classify(n.c.CloseSession(ctx, id))
}

func (n *HTTPNode) Watch(ctx context.Context, scope, lastEventID string) (Stream, error) {
	w, err := n.c.Watch(ctx, scope, "", "", lastEventID)
	if err != nil {
		return nil, classify(err)
	}
	return &httpStream{w: w}, nil
}

// Metrics reads the node's go_goroutines and process_resident_memory_bytes
// from its /metrics.
func (n *HTTPNode) Metrics(ctx context.Context) (map[string]float64, error) {
	text, err := n.c.Metrics(ctx)
	if err != nil {
		return nil, classify(err)
	}
	return ParseMetrics(text, "go_goroutines", "process_resident_memory_bytes", "go_memstats_heap_inuse_bytes"), nil
}

// ParseMetrics picks the named unlabelled samples out of a Prometheus
// text exposition.
func ParseMetrics(text string, names ...string) map[string]float64 {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !want[f[0]] {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[f[0]] = v
		}
	}
	return out
}

type httpStream struct{ w *client.Watch }

func (s *httpStream) Next(ctx context.Context) (history.Event, int, bool) {
	select {
	case <-ctx.Done():
		return history.Event{}, 0, false
	case e, ok := <-s.w.C:
		if !ok {
			return history.Event{}, s.w.Reconnects(), false
		}
		return convertEvent(e), s.w.Reconnects(), true
	}
}

func (s *httpStream) Close() { s.w.Close() }

func convertEvent(e client.Event) history.Event {
	ev := history.Event{Kind: string(e.Type), Reason: e.Reason, ID: e.ID}
	switch e.Type {
	case client.EventSnapshot, client.EventResync:
		ev.Kind = "snapshot"
		ev.Members = make([]history.Member, 0, len(e.Members))
		for _, m := range e.Members {
			ev.Members = append(ev.Members, history.Member{Group: m.Group, ID: m.ID, Owner: m.Owner, Meta: m.Meta})
		}
		if e.Type == client.EventResync {
			ev.Reason = "resync"
		}
	default:
		m := e.Member
		ev.Member = &history.Member{Group: m.Group, ID: m.ID, Owner: m.Owner, Meta: m.Meta}
	}
	return ev
}
