package gossip

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Keyring errors; test with errors.Is.
var (
	// ErrNoKeyring reports a keyring operation on a node whose gossip has
	// no rotatable keyring (Config.Memberlist.Keyring unset at New).
	ErrNoKeyring = errors.New("gossip: no gossip keyring to rotate")
	// ErrInvalidKey reports a key that is not 16, 24 or 32 bytes.
	ErrInvalidKey = errors.New("gossip: invalid gossip key")
	// ErrUnknownKey reports a key (or fingerprint) the keyring does not
	// hold, or one that matches several keys.
	ErrUnknownKey = errors.New("gossip: no such gossip key")
	// ErrPrimaryKey reports an attempt to remove the primary key.
	ErrPrimaryKey = errors.New("gossip: the primary gossip key cannot be removed")
)

// KeyInfo describes one key of the gossip keyring without its material.
type KeyInfo struct {
	// Fingerprint is the first 8 hex digits of the key's SHA-256.
	Fingerprint string
	// Primary is the key outgoing gossip is encrypted with; the others
	// are only tried on incoming gossip.
	Primary bool
}

// Fingerprint names a key without revealing it: the first 8 hex digits of
// its SHA-256.
func Fingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// NewKeyring builds a memberlist keyring from keys, keys[0] being the
// primary (encrypts outgoing gossip); the others are accepted on incoming
// gossip. Set it as Config.Memberlist.Keyring (instead of SecretKey) to
// rotate keys at run time with the Node's keyring methods.
func NewKeyring(keys [][]byte) (*memberlist.Keyring, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrInvalidKey)
	}
	for i, k := range keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return nil, fmt.Errorf("%w: key %d: %v", ErrInvalidKey, i+1, err)
		}
	}
	kr, err := memberlist.NewKeyring(keys[1:], keys[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return kr, nil
}

// Key rotation. memberlist broadcasts nothing about keys: each call changes
// this node's keyring only. To rotate a cluster's key, install the new key
// on every node, then use it (make it primary) on every node, then remove
// the old one from every node; between the steps every node can decrypt
// what every other node sends.

func (n *Node) keyring() (*memberlist.Keyring, error) {
	switch {
	case n.cfg.Memberlist != nil && n.cfg.Memberlist.Keyring != nil:
		return n.cfg.Memberlist.Keyring, nil
	case n.madeKeyring != nil: // made by memberlist from SecretKey
		return n.madeKeyring, nil
	}
	return nil, fmt.Errorf("%w: gossip is not encrypted (set SecretKey or Config.Memberlist.Keyring)", ErrNoKeyring)
}

// Keys lists the keyring's keys, the primary first.
func (n *Node) Keys() ([]KeyInfo, error) {
	kr, err := n.keyring()
	if err != nil {
		return nil, err
	}
	keys := kr.GetKeys() // the primary first
	out := make([]KeyInfo, len(keys))
	for i, k := range keys {
		out[i] = KeyInfo{Fingerprint: Fingerprint(k), Primary: i == 0}
	}
	return out, nil
}

// InstallKey adds key to the keyring (accepted on incoming gossip; not yet
// used for outgoing). Installing a key already there changes nothing.
func (n *Node) InstallKey(key []byte) error {
	kr, err := n.keyring()
	if err != nil {
		return err
	}
	if err := memberlist.ValidateKey(key); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	if err := kr.AddKey(key); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	n.log.Info("gossip key installed", "fingerprint", Fingerprint(key))
	return nil
}

// UseKey makes an installed key the primary one, named by its material or
// by its fingerprint (see Fingerprint).
func (n *Node) UseKey(key []byte, fingerprint string) error {
	kr, k, err := n.findKey(key, fingerprint)
	if err != nil {
		return err
	}
	if err := kr.UseKey(k); err != nil {
		return fmt.Errorf("%w: %v", ErrUnknownKey, err)
	}
	n.log.Info("gossip primary key changed", "fingerprint", Fingerprint(k))
	return nil
}

// RemoveKey removes a key that is not the primary one, named by its
// material or by its fingerprint.
func (n *Node) RemoveKey(key []byte, fingerprint string) error {
	kr, k, err := n.findKey(key, fingerprint)
	if err != nil {
		return err
	}
	if p := kr.GetPrimaryKey(); string(p) == string(k) {
		return fmt.Errorf("%w: %s is primary; use another key first", ErrPrimaryKey, Fingerprint(k))
	}
	if err := kr.RemoveKey(k); err != nil {
		return fmt.Errorf("%w: %v", ErrUnknownKey, err)
	}
	n.log.Info("gossip key removed", "fingerprint", Fingerprint(k))
	return nil
}

// findKey returns the installed key given by its material (when key is
// set) or by its fingerprint.
func (n *Node) findKey(key []byte, fingerprint string) (*memberlist.Keyring, []byte, error) {
	kr, err := n.keyring()
	if err != nil {
		return nil, nil, err
	}
	var found [][]byte
	for _, k := range kr.GetKeys() {
		if (len(key) > 0 && string(k) == string(key)) || (len(key) == 0 && fingerprint != "" && Fingerprint(k) == fingerprint) {
			found = append(found, k)
		}
	}
	switch {
	case len(key) == 0 && fingerprint == "":
		return nil, nil, fmt.Errorf("%w: give a key or a fingerprint", ErrUnknownKey)
	case len(found) == 0:
		name := fingerprint
		if len(key) > 0 {
			name = Fingerprint(key)
		}
		return nil, nil, fmt.Errorf("%w: %s is not installed", ErrUnknownKey, name)
	case len(found) > 1:
		return nil, nil, fmt.Errorf("%w: fingerprint %s matches %d keys; give the key itself", ErrUnknownKey, fingerprint, len(found))
	}
	return kr, found[0], nil
}
