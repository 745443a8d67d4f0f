package server

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/roster-io/roster/apitype"
	"github.com/roster-io/roster/registry/regtype"
)

// The JSON shapes of the API live in package apitype, shared with the
// client; here are the conversions from the registry's types.

func toMember(m regtype.Member) apitype.Member {
	meta := m.Meta
	if meta == nil {
		meta = map[string]string{}
	}
	return apitype.Member{ID: m.ID, Group: m.Group, Meta: meta, Owner: m.Owner, Incarnation: m.Incarnation, Confirmed: m.Confirmed}
}

func toMembers(ms []regtype.Member) []apitype.Member {
	out := make([]apitype.Member, len(ms))
	for i, m := range ms {
		out[i] = toMember(m)
	}
	return out
}

func toSession(s regtype.Session) apitype.Session {
	return apitype.Session{ID: s.ID, Fingerprint: fingerprint(s.ID), TTL: s.TTL.String(), Expires: s.Expires.UTC()}
}

// fingerprint identifies a session without revealing its id: the first 8
// bytes of the SHA-256 of the id, in hex.
func fingerprint(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:8])
}
