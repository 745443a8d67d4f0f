package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/roster-io/roster/jepsen/history"
	"github.com/roster-io/roster/jepsen/workload"
	"github.com/roster-io/roster/registry"
)

// regNode is a workload.Node over an embedded registry. A paused node's
// operations wait until their deadline (as a SIGSTOPped process's would).
type regNode struct {
	name   string
	r      *registry.Registry
	paused bool
}

func (n *regNode) Name() string { return n.name }

// hold makes an operation on a paused node wait out its deadline.
func (n *regNode) hold(ctx context.Context) error {
	if !n.paused {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

// classify: the registry's sentinel errors mean nothing happened (fail);
// a closed registry (killed mid-operation) and deadlines are unknown.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, registry.ErrClosed), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, registry.ErrNotMember), errors.Is(err, registry.ErrNoSession):
		return fmt.Errorf("%w: %w: %w", workload.ErrFailed, workload.ErrNotFound, err)
	default:
		return fmt.Errorf("%w: %w", workload.ErrFailed, err)
	}
}

func (n *regNode) Join(ctx context.Context, scope, group, id string, meta map[string]string, session string) error {
	if err := n.hold(ctx); err != nil {
		return err
	}
	opt := registry.Durable()
	if session != "" {
		opt = registry.InSession(session)
	}
	_, err := n.r.Join(ctx, scope, group, id, registry.Meta(meta), opt)
	return classify(err)
}

func (n *regNode) Leave(ctx context.Context, scope, group, id string) error {
	if err := n.hold(ctx); err != nil {
		return err
	}
	return classify(n.r.Leave(ctx, scope, group, id))
}

func (n *regNode) Members(ctx context.Context, scope, group string) ([]history.Member, error) {
	if err := n.hold(ctx); err != nil {
		return nil, err
	}
	ms, err := n.r.Members(scope, group)
	if err != nil {
		return nil, classify(err)
	}
	out := make([]history.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, history.Member{Group: m.Group, ID: m.ID, Owner: m.Owner, Meta: m.Meta})
	}
	return out, nil
}

func (n *regNode) Groups(ctx context.Context, scope string) ([]string, error) {
	if err := n.hold(ctx); err != nil {
		return nil, err
	}
	gs, err := n.r.Groups(scope)
	return gs, classify(err)
}

func (n *regNode) Peers(ctx context.Context) (map[string]string, error) {
	if err := n.hold(ctx); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, ni := range n.r.Nodes() {
		out[ni.Name] = string(ni.State)
	}
	return out, nil
}

func (n *regNode) CreateSession(ctx context.Context, ttl time.Duration) (string, error) {
	if err := n.hold(ctx); err != nil {
		return "", err
	}
	s, err := n.r.CreateSession(ctx, ttl)
	return s.ID, classify(err)
}

func (n *regNode) KeepAlive(ctx context.Context, id string) error {
	if err := n.hold(ctx); err != nil {
		return err
	}
	_, err := n.r.KeepAlive(ctx, id)
	return classify(err)
}

func (n *regNode) CloseSession(ctx context.Context, id string) error {
	if err := n.hold(ctx); err != nil {
		return err
	}
	return classify(n.r.CloseSession(ctx, id))
}

func (n *regNode) Metrics(context.Context) (map[string]float64, error) { return nil, nil }

func (n *regNode) Watch(ctx context.Context, scope, lastEventID string) (workload.Stream, error) {
	if err := n.hold(ctx); err != nil {
		return nil, err
	}
	w, err := n.r.Watch(ctx, scope, registry.All())
	if err != nil {
		return nil, classify(err)
	}
	s := &regStream{w: w, inc: strconv.FormatUint(n.r.Incarnation(), 10)}
	s.first = &history.Event{Kind: "snapshot", ID: s.id(w.Seq), Members: members(w.Snapshot)}
	return s, nil
}

func members(ms []registry.Member) []history.Member {
	out := make([]history.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, history.Member{Group: m.Group, ID: m.ID, Owner: m.Owner, Meta: m.Meta})
	}
	return out
}

// regStream turns a registry watch into history events; ids are
// "<incarnation>-<seq>", as the server's.
type regStream struct {
	w     *registry.Watch
	inc   string
	first *history.Event
}

func (s *regStream) id(seq uint64) string { return s.inc + "-" + strconv.FormatUint(seq, 10) }

func (s *regStream) Next(ctx context.Context) (history.Event, int, bool) {
	if s.first != nil {
		e := *s.first
		s.first = nil
		return e, 0, true
	}
	select {
	case <-ctx.Done():
		return history.Event{}, 0, false
	case e, ok := <-s.w.C:
		if !ok {
			return history.Event{}, 0, false
		}
		if e.Type == registry.EventResync {
			return history.Event{Kind: "snapshot", Reason: "resync", ID: s.id(e.Seq), Members: members(e.Members)}, 0, true
		}
		m := e.Member
		return history.Event{Kind: string(e.Type), Reason: string(e.Reason), ID: s.id(e.Seq),
			Member: &history.Member{Group: m.Group, ID: m.ID, Owner: m.Owner, Meta: m.Meta}}, 0, true
	}
}

func (s *regStream) Close() { s.w.Close() }
