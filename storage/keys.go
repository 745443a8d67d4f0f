package storage

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Key layout. Every key starts with one byte naming its kind, followed by
// its components, each prefixed with its length in one byte. Components are
// names of 1 to MaxNameBytes bytes of any UTF-8 (including "/" and NUL), so
// the encoding is unambiguous: no two different component lists share a key,
// and the key of a component prefix (a scope, a session) is a byte prefix of
// the keys below it.
//
//	'v' name                              meta: format version, node name, incarnation
//	'm' scope group id                    member owned by this node -> session, meta
//	's' session                           session -> TTL, expiry
//	'b' session scope group id            index: members bound to a session -> empty
//	'p' addr                              gossip peer -> empty
//	'c' scope index(4 bytes, big endian)  replica cache chunk -> opaque bytes
//
// Iteration order is therefore by length first, then bytes; callers that
// promise an order sort in Go.
const (
	kindMeta    byte = 'v'
	kindMember  byte = 'm'
	kindSession byte = 's'
	kindBinding byte = 'b'
	kindPeer    byte = 'p'
	kindCache   byte = 'c'
)

// Meta key names.
const (
	metaFormat      = "format"
	metaName        = "name"
	metaIncarnation = "incarnation"
)

// MaxNameBytes bounds scope, group, member id, session id, node name and
// peer address lengths.
const MaxNameBytes = 255

// MaxMetaBytes bounds one member's metadata. It is a sanity bound for the
// store; the registry enforces its own, smaller, limit.
const MaxMetaBytes = 64 << 10

// kindName names a key kind in error messages.
func kindName(kind byte) string {
	switch kind {
	case kindMeta:
		return "meta"
	case kindMember:
		return "member"
	case kindSession:
		return "session"
	case kindBinding:
		return "session index"
	case kindPeer:
		return "peer"
	case kindCache:
		return "cache"
	default:
		return fmt.Sprintf("kind %#x", kind)
	}
}

// validName reports why s is not acceptable as a name component, or nil.
func validName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", what)
	case len(s) > MaxNameBytes:
		return fmt.Errorf("%s is %d bytes, limit %d", what, len(s), MaxNameBytes)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s %q is not valid UTF-8", what, s)
	}
	return nil
}

// makeKey encodes kind and components. Components must be valid names.
func makeKey(kind byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += 1 + len(p)
	}
	k := make([]byte, 0, n+4)
	k = append(k, kind)
	for _, p := range parts {
		k = append(k, byte(len(p)))
		k = append(k, p...)
	}
	return k
}

func memberKey(scope, group, id string) []byte {
	return makeKey(kindMember, scope, group, id)
}

func bindingKey(session, scope, group, id string) []byte {
	return makeKey(kindBinding, session, scope, group, id)
}

func cacheKey(scope string, index uint32) []byte {
	return binary.BigEndian.AppendUint32(makeKey(kindCache, scope), index)
}

// parseKey decodes a key of the given kind into exactly n components, each a
// valid name, followed by exactly tail more bytes (returned as rest).
func parseKey(key []byte, kind byte, n, tail int) (parts []string, rest []byte, err error) {
	if len(key) == 0 || key[0] != kind {
		return nil, nil, fmt.Errorf("%s key %q: wrong kind", kindName(kind), key)
	}
	p := key[1:]
	parts = make([]string, 0, n)
	for i := 0; i < n; i++ {
		if len(p) == 0 {
			return nil, nil, fmt.Errorf("%s key %q: truncated", kindName(kind), key)
		}
		l := int(p[0])
		if l == 0 || len(p) < 1+l {
			return nil, nil, fmt.Errorf("%s key %q: bad component length", kindName(kind), key)
		}
		s := string(p[1 : 1+l])
		if !utf8.ValidString(s) {
			return nil, nil, fmt.Errorf("%s key %q: component is not UTF-8", kindName(kind), key)
		}
		parts = append(parts, s)
		p = p[1+l:]
	}
	if len(p) != tail {
		return nil, nil, fmt.Errorf("%s key %q: %d trailing bytes, want %d", kindName(kind), key, len(p), tail)
	}
	return parts, p, nil
}

// prefixEnd returns the smallest key greater than every key with the given
// prefix, or nil if there is none (the prefix is all 0xff).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
