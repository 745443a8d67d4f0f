package workload

import (
	"context"
	"errors"
	"time"

	"github.com/roster-io/roster/jepsen/history"
)

// Outcome maps a Node error to a completion type: ok, fail (the node said
// no: nothing happened) or info (unknown: it may have happened).
func Outcome(err error) history.Type {
	switch {
	case err == nil:
		return history.OK
	case errors.Is(err, ErrFailed):
		return history.Fail
	default:
		return history.Info
	}
}

// Exec records the invocation inv (F, Value, Process, Node set by the
// caller), performs it on nd within timeout and records its completion,
// which it returns. A timeout is an info completion, never a failure.
func Exec(ctx context.Context, rec *Recorder, nd Node, scope string, inv history.Op, timeout time.Duration) (history.Op, history.Op) {
	inv.Type = history.Invoke
	inv.Node = nd.Name()
	inv = rec.Add(inv)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	comp := history.Op{Process: inv.Process, Node: inv.Node, F: inv.F}
	v := inv.Value
	var err error
	switch inv.F {
	case history.FJoin:
		err = nd.Join(cctx, scope, v.Group, v.ID, v.Meta, v.Session)
		comp.Value = history.Value{Group: v.Group, ID: v.ID, Meta: v.Meta, Session: v.Session, Durable: v.Durable}
	case history.FLeave:
		err = nd.Leave(cctx, scope, v.Group, v.ID)
		comp.Value = history.Value{Group: v.Group, ID: v.ID}
	case history.FRead, history.FFinalRead:
		comp.Value.Group = v.Group
		// The node's view of its peers, taken in the same breath: just
		// before and just after the read, kept only if they agree.
		before, perr := nd.Peers(cctx)
		var ms []history.Member
		ms, err = nd.Members(cctx, scope, v.Group)
		if err == nil {
			comp.Value.Members = ms
			if comp.Value.Members == nil {
				comp.Value.Members = []history.Member{}
			}
			if perr == nil {
				if after, perr2 := nd.Peers(cctx); perr2 == nil && sameView(before, after) {
					comp.Value.Peers = after
				}
			}
		}
	case history.FSessionCreate:
		ttl, perr := time.ParseDuration(v.TTL)
		if perr != nil {
			err = errors.Join(ErrFailed, perr)
			break
		}
		var id string
		id, err = nd.CreateSession(cctx, ttl)
		comp.Value = history.Value{Session: id, TTL: v.TTL}
	case history.FSessionKeepAlive:
		err = nd.KeepAlive(cctx, v.Session)
		comp.Value = history.Value{Session: v.Session}
	case history.FSessionClose:
		err = nd.CloseSession(cctx, v.Session)
		comp.Value = history.Value{Session: v.Session}
	default:
		err = errors.Join(ErrFailed, errors.New("unknown operation "+inv.F))
	}
	comp.Type = Outcome(err)
	if cctx.Err() != nil && ctx.Err() == nil && comp.Type == history.Fail {
		comp.Type = history.Info // a deadline is never a definite failure
	}
	if err != nil {
		comp.Error = err.Error()
	}
	return inv, rec.Add(comp)
}

func sameView(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Watcher records every event of a watch of scope on nd until ctx ends,
// reconnecting with the last event id when the stream ends (a node
// restarting). Process numbers the watcher in the history.
func Watcher(ctx context.Context, rec *Recorder, nd func() Node, scope string, process int) {
	lastID := ""
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		n := nd()
		if n == nil {
			Sleep(ctx, backoff)
			continue
		}
		s, err := n.Watch(ctx, scope, lastID)
		if err != nil {
			Sleep(ctx, backoff)
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		reconnects := 0
		for {
			ev, rc, ok := s.Next(ctx)
			if !ok {
				break
			}
			if rc > reconnects {
				reconnects = rc
				rec.Add(history.Op{Type: history.OK, Process: process, Node: n.Name(), F: history.FWatch,
					Value: history.Value{Event: &history.Event{Kind: "disconnected"}}})
			}
			if ev.ID != "" {
				lastID = ev.ID
			}
			e := ev
			rec.Add(history.Op{Type: history.OK, Process: process, Node: n.Name(), F: history.FWatch, Value: history.Value{Event: &e}})
		}
		s.Close()
		if ctx.Err() == nil {
			rec.Add(history.Op{Type: history.OK, Process: process, Node: n.Name(), F: history.FWatch,
				Value: history.Value{Event: &history.Event{Kind: "disconnected"}}})
		}
	}
}

// Sleep sleeps for d or until ctx ends; it reports whether ctx is still
// live.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
