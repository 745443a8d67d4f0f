package gossip

import (
	"bytes"

	"github.com/vmihailenco/msgpack/v5"
)

// The functions below build roster's wire messages in memberlist's plain
// (unencrypted, unlabelled) framing, as an outsider on the network could.
// They exist for tools that must speak the protocol from outside a node:
// the attack harness (cmd/roster-attack) and tests. A node never sends
// anything they build.

// ForgeDeltas returns a deltas message of scope carrying the encoded
// deltas (crdt.EncodeDelta), asking its receiver to relay it to relayTo
// if that is not empty.
func ForgeDeltas(scope string, relayTo []string, deltas [][]byte) []byte {
	return encodeDeltas(scope, relayTo, deltas)
}

// ForgeDigest returns a digest message of scope claiming to come from
// from, carrying the encoded digest (crdt.EncodeDigest) and asking for a
// reply.
func ForgeDigest(scope, from string, digest []byte) []byte {
	return encodeSync(scope, from, true, digest, nil)
}

// ForgeLeaving returns an announcement that node from, at incarnation
// inc, is leaving.
func ForgeLeaving(from string, inc uint64) []byte {
	return encodeLeaving(from, inc)
}

// PlainPacket frames msg as an unencrypted memberlist user message, one
// UDP datagram.
func PlainPacket(msg []byte) []byte {
	return append([]byte{mlUserMsg}, msg...)
}

// PlainStream frames msg as an unencrypted memberlist stream carrying a
// user message that announces claim bytes (len(msg) for an honest one;
// memberlist allocates the claim before it reads the message).
func PlainStream(msg []byte, claim int) []byte {
	var buf bytes.Buffer
	buf.WriteByte(mlUserMsg)
	_ = msgpack.NewEncoder(&buf).Encode(map[string]int{"UserMsgLen": claim})
	buf.Write(msg)
	return buf.Bytes()
}
