package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"
	"unicode/utf8"
)

// Values are framed as
//
//	kind (1 byte) | valueVersion (1 byte) | payload | CRC-32C of all before (4 bytes, big endian)
//
// Pebble checksums its blocks, so the frame's checksum mainly guards against
// values written by something other than this package and against a value of
// one kind being read as another. Decoders check every length and reject
// trailing bytes; they return an error (never panic) on any input.

const valueVersion = 1

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errShort is returned for payloads that end early.
var errShort = errors.New("truncated")

// frame appends the header and checksum around payload.
func frame(kind byte, payload []byte) []byte {
	v := make([]byte, 0, len(payload)+6)
	v = append(v, kind, valueVersion)
	v = append(v, payload...)
	return binary.BigEndian.AppendUint32(v, crc32.Checksum(v, crcTable))
}

// unframe checks the header and checksum and returns the payload (aliasing v).
func unframe(kind byte, v []byte) ([]byte, error) {
	if len(v) < 6 {
		return nil, fmt.Errorf("%d-byte value is too short", len(v))
	}
	body, sum := v[:len(v)-4], binary.BigEndian.Uint32(v[len(v)-4:])
	if got := crc32.Checksum(body, crcTable); got != sum {
		return nil, fmt.Errorf("checksum mismatch (stored %#08x, computed %#08x)", sum, got)
	}
	if body[0] != kind {
		return nil, fmt.Errorf("value of kind %s stored under a %s key", kindName(body[0]), kindName(kind))
	}
	if body[1] != valueVersion {
		return nil, fmt.Errorf("unknown value version %d", body[1])
	}
	return body[2:], nil
}

// reader decodes a payload.
type reader struct{ p []byte }

func (r *reader) uvarint() (uint64, error) {
	x, n := binary.Uvarint(r.p)
	if n <= 0 {
		return 0, errShort
	}
	r.p = r.p[n:]
	return x, nil
}

func (r *reader) varint() (int64, error) {
	x, n := binary.Varint(r.p)
	if n <= 0 {
		return 0, errShort
	}
	r.p = r.p[n:]
	return x, nil
}

func (r *reader) bytes(limit int) ([]byte, error) {
	n, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("length %d exceeds limit %d", n, limit)
	}
	if uint64(len(r.p)) < n {
		return nil, errShort
	}
	b := r.p[:n]
	r.p = r.p[n:]
	return b, nil
}

func (r *reader) end() error {
	if len(r.p) != 0 {
		return fmt.Errorf("%d trailing bytes", len(r.p))
	}
	return nil
}

// memberValue is what a member key maps to.
type memberValue struct {
	Session string
	Meta    []byte
}

func encodeMember(v memberValue) []byte {
	p := make([]byte, 0, len(v.Session)+len(v.Meta)+8)
	p = binary.AppendUvarint(p, uint64(len(v.Session)))
	p = append(p, v.Session...)
	p = binary.AppendUvarint(p, uint64(len(v.Meta)))
	p = append(p, v.Meta...)
	return frame(kindMember, p)
}

// decodeMember decodes a member value; the returned Meta is a copy (nil when
// empty).
func decodeMember(v []byte) (memberValue, error) {
	p, err := unframe(kindMember, v)
	if err != nil {
		return memberValue{}, err
	}
	r := reader{p}
	sess, err := r.bytes(MaxNameBytes)
	if err != nil {
		return memberValue{}, fmt.Errorf("session: %w", err)
	}
	if len(sess) > 0 && !utf8.Valid(sess) {
		return memberValue{}, fmt.Errorf("session is not UTF-8")
	}
	meta, err := r.bytes(MaxMetaBytes)
	if err != nil {
		return memberValue{}, fmt.Errorf("meta: %w", err)
	}
	if err := r.end(); err != nil {
		return memberValue{}, err
	}
	out := memberValue{Session: string(sess)}
	if len(meta) > 0 {
		out.Meta = append([]byte(nil), meta...)
	}
	return out, nil
}

// sessionValue is what a session key maps to.
type sessionValue struct {
	TTL     time.Duration
	Expires int64 // Unix nanoseconds
}

func encodeSession(v sessionValue) []byte {
	p := binary.AppendVarint(nil, int64(v.TTL))
	p = binary.AppendVarint(p, v.Expires)
	return frame(kindSession, p)
}

func decodeSession(v []byte) (sessionValue, error) {
	p, err := unframe(kindSession, v)
	if err != nil {
		return sessionValue{}, err
	}
	r := reader{p}
	ttl, err := r.varint()
	if err != nil {
		return sessionValue{}, fmt.Errorf("ttl: %w", err)
	}
	exp, err := r.varint()
	if err != nil {
		return sessionValue{}, fmt.Errorf("expiry: %w", err)
	}
	if err := r.end(); err != nil {
		return sessionValue{}, err
	}
	if ttl <= 0 {
		return sessionValue{}, fmt.Errorf("non-positive ttl %d", ttl)
	}
	if exp == 0 || exp == math.MinInt64 {
		return sessionValue{}, fmt.Errorf("invalid expiry %d", exp)
	}
	return sessionValue{TTL: time.Duration(ttl), Expires: exp}, nil
}

func encodeUint(kind byte, x uint64) []byte {
	return frame(kind, binary.AppendUvarint(nil, x))
}

func decodeUint(kind byte, v []byte) (uint64, error) {
	p, err := unframe(kind, v)
	if err != nil {
		return 0, err
	}
	r := reader{p}
	x, err := r.uvarint()
	if err != nil {
		return 0, err
	}
	return x, r.end()
}

func encodeName(name string) []byte { return frame(kindMeta, []byte(name)) }

func decodeName(v []byte) (string, error) {
	p, err := unframe(kindMeta, v)
	if err != nil {
		return "", err
	}
	s := string(p)
	if err := validName("name", s); err != nil {
		return "", err
	}
	return s, nil
}

// encodeBytes frames an opaque payload (cache chunks, empty markers).
func encodeBytes(kind byte, b []byte) []byte { return frame(kind, b) }

// decodeBytes returns a copy of an opaque payload (never nil).
func decodeBytes(kind byte, v []byte) ([]byte, error) {
	p, err := unframe(kind, v)
	if err != nil {
		return nil, err
	}
	return append(make([]byte, 0, len(p)), p...), nil
}
