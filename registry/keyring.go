package registry

import "github.com/roster-io/roster/gossip"

// KeyInfo describes one gossip key without its material: its fingerprint
// (first 8 hex digits of its SHA-256) and whether it is the primary key.
type KeyInfo = gossip.KeyInfo

// Gossip key rotation acts on this node's keyring only (memberlist
// broadcasts nothing about keys): install the new key on every node, then
// use it on every node, then remove the old one from every node. It needs
// a keyring set at Open (Config.Memberlist.Keyring, e.g. from
// gossip.NewKeyring; roster serve sets one from --gossip-key-file);
// otherwise the calls fail with gossip.ErrNoKeyring. Other errors:
// gossip.ErrInvalidKey, gossip.ErrUnknownKey, gossip.ErrPrimaryKey.

// GossipKeys lists the gossip keyring, the primary key first.
func (r *Registry) GossipKeys() ([]KeyInfo, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	return r.node.Keys()
}

// InstallGossipKey adds a key (16, 24 or 32 bytes) that incoming gossip
// may be encrypted with.
func (r *Registry) InstallGossipKey(key []byte) error {
	if r.closed.Load() {
		return ErrClosed
	}
	return r.node.InstallKey(key)
}

// UseGossipKey makes an installed key, given by its material or its
// fingerprint, the one outgoing gossip is encrypted with.
func (r *Registry) UseGossipKey(key []byte, fingerprint string) error {
	if r.closed.Load() {
		return ErrClosed
	}
	return r.node.UseKey(key, fingerprint)
}

// RemoveGossipKey removes an installed key other than the primary one,
// given by its material or its fingerprint.
func (r *Registry) RemoveGossipKey(key []byte, fingerprint string) error {
	if r.closed.Load() {
		return ErrClosed
	}
	return r.node.RemoveKey(key, fingerprint)
}
