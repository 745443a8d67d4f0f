package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Shutdown and memberlist's delegates (messages, broadcasts, membership
// events, logs). Split from node.go by concern; the Node type and its start
// are there.

// Close leaves the cluster gracefully (peers hide this node's members at
// once instead of waiting for failure detection), stops the loops and shuts
// memberlist down. It is safe to call more than once.
func (n *Node) Close(ctx context.Context) error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed.Swap(true) {
		return nil
	}
	// Never 0 (memberlist waits forever then) and shorter than the time
	// after which memberlist forgets this node once it has left.
	timeout := min(2*time.Second, max(n.cfg.Memberlist.GossipToTheDeadTime/2, 10*time.Millisecond))
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, max(time.Until(dl), 10*time.Millisecond))
	}
	// Tell every peer directly first, so their reads hide this node's
	// members at once; memberlist's own leave broadcast follows.
	bye := encodeLeaving(n.self.Name, n.self.Incarnation)
	n.mu.Lock()
	var alive []*memberlist.Node
	n.peers.Each(func(p *peer) {
		if p.State == PeerAlive && p.Info.node != nil {
			alive = append(alive, p.Info.node)
		}
	})
	n.mu.Unlock()
	for _, p := range alive {
		if n.ml.SendBestEffort(p, bye) == nil {
			n.stats.sentMsg(KindLeaving, len(bye))
		}
	}
	if err := n.ml.Leave(timeout); err != nil {
		// Best effort: peers that missed it detect the failure instead.
		n.log.Warn("leave message not confirmed; peers will detect the departure", "err", err)
	}
	close(n.stop)
	n.wg.Wait()
	if err := n.ml.Shutdown(); err != nil {
		return fmt.Errorf("gossip: shutdown: %w", err)
	}
	return nil
}

// Crash stops the node abruptly, as a killed process would: no leave
// message, so peers find out through failure detection. For tests.
func (n *Node) Crash() {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed.Swap(true) {
		return
	}
	close(n.stop)
	n.wg.Wait()
	_ = n.ml.Shutdown()
}

// --- memberlist delegates -------------------------------------------------------------

type delegate Node

func (d *delegate) NodeMeta(limit int) []byte { return d.meta }

func (d *delegate) NotifyMsg(b []byte) {
	(*Node)(d).handleMessage(b, nil) // b is used during the call only; what is kept is copied
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	if d.bcast == nil {
		return nil
	}
	return d.bcast.GetBroadcasts(overhead, limit)
}

// broadcast is a packet of local deltas piggy-backed on memberlist's
// gossip: a second, epidemic path besides the direct push, which reaches
// peers the push missed (lost packet) and relays through nodes that can
// reach peers this one cannot (bridges, one-way cuts).
type broadcast []byte

func (b broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b broadcast) Message() []byte                       { return b }
func (b broadcast) Finished()                             {}

// piggyback queues packets for memberlist's gossip unless the queue is
// full (under load the direct push and anti-entropy carry the rest).
func (n *Node) piggyback(packets [][]byte) {
	if n.bcast == nil {
		return
	}
	for _, p := range packets {
		if n.bcast.NumQueued() >= n.cfg.PiggybackQueue {
			return
		}
		n.bcast.QueueBroadcast(broadcast(p))
		n.stats.piggybacked.Add(1)
	}
}

// LocalState carries no roster state (see Config.AntiEntropyInterval): a
// digest here would make every node that push/pulls with a fresh node send
// it the whole scope, while the transfer it asked for is still on its way.
func (d *delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState ignores push/pull state: roster sends none (see
// LocalState), so a node's state cannot be fed through this path.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

type events Node

func (e *events) NotifyJoin(nd *memberlist.Node)   { (*Node)(e).queuePeerEvent(nd, true) }
func (e *events) NotifyUpdate(nd *memberlist.Node) { (*Node)(e).queuePeerEvent(nd, true) }
func (e *events) NotifyLeave(nd *memberlist.Node)  { (*Node)(e).queuePeerEvent(nd, false) }

// queuePeerEvent is called with memberlist's locks held: it updates the
// peer table and queues the rest.
func (n *Node) queuePeerEvent(nd *memberlist.Node, alive bool) {
	if e, ok := n.notePeer(nd, alive); ok {
		n.enqueuePeerEvent(e)
	}
}

// logWriter turns memberlist's "[LEVEL] memberlist: ..." lines into slog,
// on a logger of their own (component=memberlist).
type logWriter struct{ log *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	switch {
	case strings.HasPrefix(line, "[ERR]"):
		level = slog.LevelError
	case strings.HasPrefix(line, "[WARN]"):
		level = slog.LevelWarn
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}
