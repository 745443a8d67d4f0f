package registry

import (
	"errors"
	"fmt"

	"github.com/roster-io/roster/gossip"
)

// keyErr wraps a keyring error of the gossip layer with the registry's
// sentinel for it.
func keyErr(err error) error {
	for _, m := range []struct{ from, to error }{
		{gossip.ErrNoKeyring, ErrNoKeyring}, {gossip.ErrInvalidKey, ErrInvalidKey},
		{gossip.ErrUnknownKey, ErrUnknownKey}, {gossip.ErrPrimaryKey, ErrPrimaryKey},
	} {
		if errors.Is(err, m.from) {
			return fmt.Errorf("%w: %w", m.to, err)
		}
	}
	return err
}

// Gossip key rotation acts on this node's keyring only (memberlist
// broadcasts nothing about keys): install the new key on every node, then
// use it on every node, then remove the old one from every node. It needs
// a keyring set at Open (Config.GossipKeys; roster serve sets one from
// --gossip-key-file);
// otherwise the calls fail with ErrNoKeyring. Other errors: ErrInvalidKey,
// ErrUnknownKey, ErrPrimaryKey.

// GossipKeys lists the gossip keyring, the primary key first.
func (r *Registry) GossipKeys() ([]KeyInfo, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	ks, err := r.node.Keys()
	if err != nil {
		return nil, keyErr(err)
	}
	out := make([]KeyInfo, len(ks))
	for i, k := range ks {
		out[i] = KeyInfo{Fingerprint: k.Fingerprint, Primary: k.Primary}
	}
	return out, nil
}

// InstallGossipKey adds a key (16, 24 or 32 bytes) that incoming gossip
// may be encrypted with.
func (r *Registry) InstallGossipKey(key []byte) error {
	if r.closed.Load() {
		return ErrClosed
	}
	return keyErr(r.node.InstallKey(key))
}

// UseGossipKey makes an installed key, given by its material or its
// fingerprint, the one outgoing gossip is encrypted with.
func (r *Registry) UseGossipKey(key []byte, fingerprint string) error {
	if r.closed.Load() {
		return ErrClosed
	}
	return keyErr(r.node.UseKey(key, fingerprint))
}

// RemoveGossipKey removes an installed key other than the primary one,
// given by its material or its fingerprint.
func (r *Registry) RemoveGossipKey(key []byte, fingerprint string) error {
	if r.closed.Load() {
		return ErrClosed
	}
	return keyErr(r.node.RemoveKey(key, fingerprint))
}
