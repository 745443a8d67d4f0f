package registry

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/storage"
)

// storageProbeInterval is how often a node whose store has failed (a full
// disk, an I/O error) tries to recover it (storage.Store.Recover: a probe
// write, then Pebble reopened in place).
const storageProbeInterval = time.Second

// StorageHealth returns nil while this node's store (Config.DataDir) takes
// writes, and otherwise an error wrapping ErrStorage that says why: durable
// and session joins and leaves, session changes and keep-alives then fail
// with ErrStorage, and the node is not fit to take them (a readiness check
// should fail). Without DataDir it is always nil.
//
// A failed store is retried every second in the background: once the disk
// takes writes again (space freed), the store is reopened, what it holds is
// brought back in line with what this node acknowledged, sessions that
// expired meanwhile end, and StorageHealth returns nil again. A store
// failed on corrupt data is not reopened in process; StorageHealth then
// keeps failing, with ErrRestartRequired, until the node is restarted.
func (r *Registry) StorageHealth() error {
	if r.disk == nil {
		return nil
	}
	err := r.disk.Err()
	switch {
	case err == nil && r.reconciling.Load():
		// Reopened, but not yet back in line with what was
		// acknowledged: not healthy until it is.
		return fmt.Errorf("%w: recovering", ErrStorage)
	case err == nil:
		return nil
	case !r.disk.Recoverable():
		return fmt.Errorf("%w: %w: %w", ErrStorage, ErrRestartRequired, err)
	}
	return storageErr(err)
}

// recoverStorage tries once to bring a failed store back (save loop).
func (r *Registry) recoverStorage(st *storage.Store) {
	if st.Err() == nil || r.closed.Load() {
		return
	}
	r.reconciling.Store(true)
	defer r.reconciling.Store(false)
	if err := st.Recover(); err != nil {
		r.log.Debug("storage still failing", "err", err)
		return
	}
	r.log.Warn("storage recovered: the store takes writes again")
	if err := r.reconcile(st); err != nil {
		r.log.Error("storage recovered, but reconciling it with this node's members failed", "err", err)
		return
	}
	r.expireOverdue()
}

// reconcile makes the store hold exactly what this node acknowledged. A
// write that failed (and was refused to its caller) may still have reached
// the disk, as after a crash: a session or member this node does not hold
// is deleted, and one it holds but the store lacks (or holds differently)
// is written again. Members of scopes this node does not serve are kept
// (restore keeps them for when the scope is served again).
func (r *Registry) reconcile(st *storage.Store) error {
	// Sessions first: a member record bound to a session needs it.
	r.sess.mu.Lock()
	disk, err := st.Sessions()
	if err != nil {
		r.sess.mu.Unlock()
		return storageErr(err)
	}
	var errs []error
	onDisk := map[string]storage.Session{}
	for _, s := range disk {
		onDisk[s.ID] = s
		if r.sess.byID[s.ID] == nil {
			_, err := st.DeleteSession(s.ID)
			errs = append(errs, err)
		}
	}
	for id, s := range r.sess.byID {
		d, ok := onDisk[id]
		if !ok || d.TTL != s.TTL || !d.Expires.Equal(s.Expires) {
			errs = append(errs, st.PutSession(storage.Session{ID: id, TTL: s.TTL, Expires: s.Expires}))
		}
	}
	owned := make([]handleKey, 0, len(r.sess.owned))
	for k := range r.sess.owned {
		owned = append(owned, k)
	}
	r.sess.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return storageErr(err)
	}

	members, err := st.Members()
	if err != nil {
		return storageErr(err)
	}
	keys := owned
	for _, m := range members {
		keys = append(keys, handleKey{m.Scope, m.Group, m.ID})
	}
	slices.SortFunc(keys, compareKeys)
	keys = slices.Compact(keys)
	fixed := 0
	for _, k := range keys {
		changed, err := r.reconcileMember(st, k)
		if err != nil {
			return err
		}
		if changed {
			fixed++
		}
	}
	if fixed > 0 {
		r.log.Warn("store reconciled after recovery: records of failed writes fixed", "members", fixed)
	}
	return nil
}

// reconcileMember brings the stored record of k in line with the node.
func (r *Registry) reconcileMember(st *storage.Store, k handleKey) (bool, error) {
	sc, served := r.node.Scope(k.scope)
	if !served {
		return false, nil
	}
	kl := r.keyLock(k)
	kl.Lock()
	defer kl.Unlock()
	r.sess.mu.Lock()
	life, had := r.sess.owned[k]
	r.sess.mu.Unlock()
	d, onDisk, err := st.Member(k.scope, k.group, k.id)
	if err != nil {
		return false, storageErr(err)
	}
	if !had {
		if !onDisk {
			return false, nil
		}
		_, err := st.DeleteMember(k.scope, k.group, k.id)
		return true, storageErr(err)
	}
	var meta crdt.RawMeta
	var local bool
	sc.Read(func(s *crdt.State) { meta, local = s.LocalMeta(k.group, k.id) })
	if !local {
		return false, fmt.Errorf("%w: member %s/%s/%s has a lifetime but is not joined", ErrStorage, k.scope, k.group, k.id)
	}
	if onDisk && d.Session == life.Session && string(d.Meta) == string(meta) {
		return false, nil
	}
	return true, storageErr(st.PutMember(storage.Member{Scope: k.scope, Group: k.group, ID: k.id, Meta: []byte(meta), Session: life.Session}))
}

// expireOverdue ends the sessions whose expiry came while the store was
// failing: their timers fired, but the removal could not be persisted.
func (r *Registry) expireOverdue() {
	now := time.Now()
	r.sess.mu.Lock()
	var due []string
	for id, s := range r.sess.byID {
		if !now.Before(s.Expires) {
			due = append(due, id)
		}
	}
	r.sess.mu.Unlock()
	slices.Sort(due)
	for _, id := range due {
		r.expireSession(id)
	}
}
