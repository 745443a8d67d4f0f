package storage

import (
	"testing"
	"time"
)

// The decoders read bytes from disk; whatever those bytes are, they must
// return a value or an error, never panic. Each target also checks that a
// successfully decoded value re-encodes to the same bytes (the encoding is
// canonical), so a decoder cannot silently accept garbage.

func FuzzDecodeMember(f *testing.F) {
	f.Add(encodeMember(memberValue{}))
	f.Add(encodeMember(memberValue{Session: "s1", Meta: []byte("meta")}))
	f.Add([]byte("garbage"))
	f.Add([]byte{kindMember, valueVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeMember(b)
		if err != nil {
			return
		}
		if string(encodeMember(v)) != string(b) {
			t.Fatalf("decoded %x to %+v, which encodes differently", b, v)
		}
	})
}

func FuzzDecodeSession(f *testing.F) {
	f.Add(encodeSession(sessionValue{TTL: time.Second, Expires: time.Now().UnixNano()}))
	f.Add(encodeSession(sessionValue{TTL: -1, Expires: 0}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeSession(b)
		if err != nil {
			return
		}
		if v.TTL <= 0 || v.Expires == 0 {
			t.Fatalf("accepted invalid session %+v", v)
		}
		if string(encodeSession(v)) != string(b) {
			t.Fatalf("decoded %x to %+v, which encodes differently", b, v)
		}
	})
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeUint(kindMeta, FormatVersion))
	f.Add(encodeUint(kindMeta, 1<<62))
	f.Add(encodeName("node-1"))
	f.Add(encodeName("\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if x, err := decodeUint(kindMeta, b); err == nil && string(encodeUint(kindMeta, x)) != string(b) {
			t.Fatalf("decoded %x to %d, which encodes differently", b, x)
		}
		if name, err := decodeName(b); err == nil {
			if validName("name", name) != nil {
				t.Fatalf("accepted invalid name %q", name)
			}
		}
		_, _ = decodeBytes(kindCache, b)
	})
}

func FuzzParseKey(f *testing.F) {
	f.Add(memberKey("s", "g", "i"), 3, 0)
	f.Add(bindingKey("sess", "s", "g", "i"), 4, 0)
	f.Add(cacheKey("scope", 7), 1, 4)
	f.Add([]byte{kindMember, 0}, 3, 0)
	f.Fuzz(func(t *testing.T, k []byte, n, tail int) {
		n, tail = n&7, tail&7
		if len(k) == 0 {
			return
		}
		parts, rest, err := parseKey(k, k[0], n, tail)
		if err != nil {
			return
		}
		if got := append(makeKey(k[0], parts...), rest...); string(got) != string(k) {
			t.Fatalf("parsed %x to %q+%x, which encodes as %x", k, parts, rest, got)
		}
		for _, p := range parts {
			if validName("part", p) != nil {
				t.Fatalf("accepted invalid component %q", p)
			}
		}
	})
}
