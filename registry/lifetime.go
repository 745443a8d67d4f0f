package registry

import (
	"cmp"
	"context"

	"github.com/roster-io/roster/internal/bug"

	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/roster-io/roster/crdt"
)

// A member's lifetime is chosen by the options of the Join that last
// added or updated it:
//
//   - no option: in-process. It lives until Leave, the end of its context
//     (JoinWhile), Close or the end of the process; a restart drops it.
//   - Durable(): it lives until Leave, across restarts of this node
//     (persisted before Join returns). It needs Config.DataDir: without
//     one, Join fails with ErrNotDurable rather than promise what a
//     restart would break.
//   - InSession(id): it lives while the session does; when the session
//     expires (no KeepAlive within its TTL) or is closed, it leaves. Its
//     watchers on this node see reason session-expired (or left for an
//     explicit CloseSession); other nodes see left. Session members and
//     their sessions are persisted like durable ones.
//
// Without Config.DataDir, session members and their sessions work the same
// but are kept in memory only, so they do not survive a restart; durable
// members are refused (ErrNotDurable).

type session struct {
	Session
	members map[handleKey]struct{}
	timer   *time.Timer
}

// sessions is the registry's session table. Its lock orders before the
// handles lock and is never held while calling into the gossip layer.
type sessions struct {
	mu   sync.Mutex
	byID map[string]*session
	// owned records the lifetime of every durable or session-bound member
	// this node owns; in-process members are absent.
	owned map[handleKey]Lifetime
}

// A session id is 48 hex digits: a tag of the node that created it (16,
// see sessionTag) and 128 random bits, the credential. The tag lets any
// node tell which node holds a session (SessionOwner), so that a request
// for it can be sent there; it reveals only a hash of a node name. Ids
// made before the tag (32 hex digits) still work on their node.
const (
	sessionTagLen = 16
	sessionIDLen  = sessionTagLen + 32
)

func newSessionID(node string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return sessionTag(node) + hex.EncodeToString(b[:])
}

// sessionTag is the first 8 bytes of the SHA-256 of a node's name, in hex:
// the same on every node, across restarts.
func sessionTag(node string) string {
	sum := sha256.Sum256([]byte("roster session owner\x00" + node))
	return hex.EncodeToString(sum[:sessionTagLen/2])
}

// SessionOwner returns the node that created session id, as this node
// sees it, when the id names one (an id of this version) and exactly one
// node this node knows of, itself included, has that name's tag. It says
// nothing of whether the session is still alive there.
func (r *Registry) SessionOwner(id string) (NodeInfo, bool) {
	if len(id) != sessionIDLen {
		return NodeInfo{}, false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return NodeInfo{}, false
		}
	}
	tag := id[:sessionTagLen]
	var found []NodeInfo
	for _, n := range r.Nodes() {
		if sessionTag(n.Name) == tag {
			found = append(found, n)
		}
	}
	if len(found) != 1 {
		return NodeInfo{}, false // unknown, or (2^-64 per pair) ambiguous
	}
	return found[0], true
}

// CreateSession starts a session with the given TTL (between MinSessionTTL
// and MaxSessionTTL). Members joined InSession(s.ID) leave when it expires.
func (r *Registry) CreateSession(ctx context.Context, ttl time.Duration) (Session, error) {
	if err := ctx.Err(); err != nil {
		return Session{}, err
	}
	if r.closed.Load() {
		return Session{}, ErrClosed
	}
	if ttl < MinSessionTTL || ttl > MaxSessionTTL {
		return Session{}, fmt.Errorf("%w: session TTL %v out of range [%v, %v]", ErrInvalidTTL, ttl, MinSessionTTL, MaxSessionTTL)
	}
	s := Session{ID: newSessionID(r.Name()), TTL: ttl, Expires: time.Now().Add(ttl)}
	// The lock is held across the write so that concurrent creations
	// cannot all pass the limit check.
	r.sess.mu.Lock()
	defer r.sess.mu.Unlock()
	if n := len(r.sess.byID); n >= r.limits.MaxSessions {
		return Session{}, fmt.Errorf("%w: this node holds %d sessions (Limits.MaxSessions)", ErrTooManySessions, n)
	}
	if err := r.store.putSession(s); err != nil {
		return Session{}, err
	}
	r.armLocked(&session{Session: s, members: map[handleKey]struct{}{}})
	return s, nil
}

// armLocked installs s and its expiry timer; r.sess.mu is held.
func (r *Registry) armLocked(s *session) {
	r.sess.byID[s.ID] = s
	id := s.ID
	s.timer = time.AfterFunc(time.Until(s.Expires), func() { r.expireSession(id) })
}

// KeepAlive refreshes a session: it now expires TTL from now. An unknown or
// expired session gives ErrNoSession.
func (r *Registry) KeepAlive(ctx context.Context, id string) (Session, error) {
	if err := ctx.Err(); err != nil {
		return Session{}, err
	}
	if r.closed.Load() {
		return Session{}, ErrClosed
	}
	r.sess.mu.Lock()
	defer r.sess.mu.Unlock()
	s := r.sess.byID[id]
	if s == nil || !time.Now().Before(s.Expires) {
		return Session{}, fmt.Errorf("%w: %q", ErrNoSession, truncate(id))
	}
	next := s.Session
	next.Expires = time.Now().Add(s.TTL)
	if err := r.store.putSession(next); err != nil {
		return Session{}, err
	}
	s.Session = next
	s.timer.Reset(time.Until(next.Expires))
	return next, nil
}

// GetSession returns a live session, or ErrNoSession.
func (r *Registry) GetSession(id string) (Session, error) {
	r.sess.mu.Lock()
	defer r.sess.mu.Unlock()
	s := r.sess.byID[id]
	if s == nil || !time.Now().Before(s.Expires) {
		return Session{}, fmt.Errorf("%w: %q", ErrNoSession, truncate(id))
	}
	return s.Session, nil
}

// Sessions lists the live sessions, sorted by ID.
func (r *Registry) Sessions() []Session {
	r.sess.mu.Lock()
	defer r.sess.mu.Unlock()
	out := make([]Session, 0, len(r.sess.byID))
	for _, s := range r.sess.byID {
		out = append(out, s.Session)
	}
	slices.SortFunc(out, func(a, b Session) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// CloseSession ends a session now: its members leave (reason left).
func (r *Registry) CloseSession(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.closed.Load() {
		return ErrClosed
	}
	return r.endSession(id, ReasonLeft, true)
}

func (r *Registry) expireSession(id string) {
	if r.closed.Load() {
		return
	}
	if err := r.endSession(id, ReasonSessionExpired, false); err != nil {
		r.log.Warn("session expiry failed", "session", id, "err", err)
	}
}

// endSession removes a session and leaves its members. The removal is
// persisted first, in one batch with the members' records, so a crash
// cannot leave half a session behind.
func (r *Registry) endSession(id string, reason Reason, explicit bool) error {
	r.sess.mu.Lock()
	s := r.sess.byID[id]
	if s == nil {
		r.sess.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNoSession, truncate(id))
	}
	if !explicit && time.Now().Before(s.Expires) {
		// Refreshed after the timer fired: re-arm instead.
		s.timer.Reset(time.Until(s.Expires))
		r.sess.mu.Unlock()
		return nil
	}
	if err := r.store.deleteSession(id); err != nil {
		r.sess.mu.Unlock()
		return err
	}
	s.timer.Stop()
	delete(r.sess.byID, id)
	keys := make([]handleKey, 0, len(s.members))
	for k := range s.members {
		keys = append(keys, k)
		delete(r.sess.owned, k)
	}
	r.sess.mu.Unlock()
	slices.SortFunc(keys, compareKeys)
	for _, k := range keys {
		r.leaveEnded(k, reason)
	}
	return nil
}

// leaveEnded leaves a member whose session ended, unless it was joined
// again with another lifetime in the meantime.
func (r *Registry) leaveEnded(k handleKey, reason Reason) {
	kl := r.keyLock(k)
	kl.Lock()
	defer kl.Unlock()
	r.sess.mu.Lock()
	_, rejoined := r.sess.owned[k]
	r.sess.mu.Unlock()
	if rejoined || !r.ownsLocal(k.scope, k.group, k.id) {
		return
	}
	h := r.hubs[k.scope]
	h.setReason(k, reason)
	err := r.node.Leave(k.scope, k.group, k.id)
	h.setReason(k, "")
	if err == nil {
		r.census.release(k.scope, k.group)
	}
	if err != nil {
		r.log.Debug("session member already gone", "scope", k.scope, "group", k.group, "id", k.id, "err", err)
	}
	r.dropHandle(k)
}

func compareKeys(a, b handleKey) int {
	return cmp.Or(cmp.Compare(a.scope, b.scope), cmp.Compare(a.group, b.group), cmp.Compare(a.id, b.id))
}

// Lifetime returns how long a member owned by this node lives; ok is false
// if this node owns no such member.
func (r *Registry) Lifetime(scope, group, id string) (Lifetime, bool) {
	if _, err := r.checkMember(scope, group, id); err != nil {
		return Lifetime{}, false
	}
	if !r.ownsLocal(scope, group, id) {
		return Lifetime{}, false
	}
	r.sess.mu.Lock()
	defer r.sess.mu.Unlock()
	return r.sess.owned[handleKey{scope, group, id}], true
}

// keyLock serializes operations on one member key (join, leave, session
// end) without a registry-wide lock, so concurrent durable joins of
// different members share fsyncs.
func (r *Registry) keyLock(k handleKey) *sync.Mutex {
	return &r.keyLocks[r.keyStripe(k)]
}

// keyStripe is the index of k's lock in keyLocks. A batch (Apply) takes
// its keys' stripes in increasing order.
func (r *Registry) keyStripe(k handleKey) int {
	h := uint32(2166136261)
	for _, s := range [3]string{k.scope, k.group, k.id} {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint32(s[i])) * 16777619
		}
		h = (h ^ 0xff) * 16777619
	}
	return int(h % uint32(len(r.keyLocks)))
}

// recordJoin persists a member's lifetime before the join is applied
// (keyLock held). It returns the lifetime to commit after the join.
func (r *Registry) recordJoin(k handleKey, o Lifetime, meta crdt.RawMeta) (Lifetime, error) {
	var next Lifetime
	switch {
	case o.Session != "":
		if _, err := r.GetSession(o.Session); err != nil {
			return Lifetime{}, err
		}
		next = Lifetime{Session: o.Session}
	case o.Durable:
		next = Lifetime{Durable: true}
	}
	r.sess.mu.Lock()
	_, had := r.sess.owned[k]
	r.sess.mu.Unlock()
	var err error
	switch {
	case next != (Lifetime{}) && bug.AckBeforeFsync:
		go func() { // acknowledged now, written later (or never: a kill)
			time.Sleep(2 * time.Second)
			_ = r.store.putMember(k, next.Session, []byte(meta))
		}()
	case next != (Lifetime{}):
		err = r.store.putMember(k, next.Session, []byte(meta))
	case had:
		err = r.store.deleteMember(k)
	}
	return next, err
}

// commitJoin records a joined member's lifetime in memory (keyLock held).
// It fails with ErrNoSession if the session ended while the join was being
// persisted; the caller then undoes the join.
func (r *Registry) commitJoin(k handleKey, next Lifetime) error {
	r.sess.mu.Lock()
	defer r.sess.mu.Unlock()
	prev, had := r.sess.owned[k]
	if next.Session != "" {
		s := r.sess.byID[next.Session]
		if s == nil {
			return fmt.Errorf("%w: %q ended during the join", ErrNoSession, truncate(next.Session))
		}
		s.members[k] = struct{}{}
	}
	if had && prev.Session != "" && prev.Session != next.Session {
		if s := r.sess.byID[prev.Session]; s != nil {
			delete(s.members, k)
		}
	}
	if next == (Lifetime{}) {
		delete(r.sess.owned, k)
	} else {
		r.sess.owned[k] = next
	}
	return nil
}

// recordLeave removes a leaving member's persisted record (keyLock held).
func (r *Registry) recordLeave(k handleKey) error {
	r.sess.mu.Lock()
	_, had := r.sess.owned[k]
	r.sess.mu.Unlock()
	if !had {
		return nil
	}
	if err := r.store.deleteMember(k); err != nil {
		return err
	}
	r.forgetLifetime(k)
	return nil
}

// forgetLifetime drops the lifetime of k, a member that leaves (key lock
// held): its session binding and its entry among the owned members.
func (r *Registry) forgetLifetime(k handleKey) {
	r.sess.mu.Lock()
	defer r.sess.mu.Unlock()
	prev, had := r.sess.owned[k]
	if !had {
		return
	}
	if prev.Session != "" {
		if s := r.sess.byID[prev.Session]; s != nil {
			delete(s.members, k)
		}
	}
	delete(r.sess.owned, k)
}

// ownsLocal reports whether this node owns the member (group, id).
func (r *Registry) ownsLocal(scope, group, id string) bool {
	sc, ok := r.node.Scope(scope)
	if !ok {
		return false
	}
	owned := false // without listing (and sorting) the group's members
	sc.Read(func(st *crdt.State) { owned = slices.Contains(st.Holders(group, id), st.Local()) })
	return owned
}

// checkDurable fails with ErrNotDurable when a durable member is asked of a
// registry that persists nothing.
func (r *Registry) checkDurable(durable bool) error {
	if durable && r.disk == nil {
		return fmt.Errorf("%w: this node has no data directory, so the member would not survive a restart (join it without Durable, or set DataDir)", ErrNotDurable)
	}
	return nil
}
