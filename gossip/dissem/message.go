package dissem

import (
	"fmt"
	"strconv"
)

// MsgID names one change: its origin and the origin's sequence number.
type MsgID struct {
	Origin string
	Seq    uint64
}

func (id MsgID) String() string { return id.Origin + "/" + strconv.FormatUint(id.Seq, 10) }

// Kind is a message's type.
type Kind uint8

const (
	// KindGossip carries a payload.
	KindGossip Kind = iota + 1
	// KindIHave announces ids the sender holds (or, with Ack, acknowledges
	// that it holds ids the receiver offered).
	KindIHave
	// KindGraft asks the receiver for the payloads of IDs and makes the
	// sender one of its eager peers.
	KindGraft
	// KindPrune makes the sender one of the receiver's lazy peers; its IDs
	// (the duplicate that caused it) acknowledge those ids.
	KindPrune
)

func (k Kind) String() string {
	switch k {
	case KindGossip:
		return "gossip"
	case KindIHave:
		return "ihave"
	case KindGraft:
		return "graft"
	case KindPrune:
		return "prune"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Message is one message to send or one received. Which fields are
// meaningful depends on Kind.
type Message struct {
	Kind     Kind
	From, To string
	// ID is the change a Gossip carries.
	ID MsgID
	// Round is, for Gossip, the number of hops from the origin before this
	// one (the origin sends 0).
	Round uint16
	// Payload is, for Gossip, the change itself, opaque to the core (an
	// encoded crdt delta). The core never modifies it and shares it between
	// the messages it sends.
	Payload []byte
	// Strategy is, for Gossip, how the origin spreads it, and so what the
	// receiver does with it: Direct only delivers, Tree also covers
	// RelayTo, Plumtree also forwards to eager peers and announces to lazy
	// ones. The receiver follows the message, whatever its own Strategy.
	Strategy Strategy
	// RelayTo is, for Gossip under Tree, the nodes the receiver must cover.
	RelayTo []string
	// IDs is, for IHave, Graft and Prune, the announced, acknowledged or
	// wanted ids (at most MaxIDs).
	IDs []MsgID
	// WantAck asks, on a Gossip or IHave, for an acknowledgement of its ids
	// (an IHave with Ack) once the receiver holds them. A core asks it of
	// its ring link only (see the package comment).
	WantAck bool
	// Ack marks an IHave that acknowledges ids the receiver offered with
	// WantAck, rather than announcing them. It is never answered.
	Ack bool
}

// Delivered is a change to hand to the application, once per id.
type Delivered struct {
	ID      MsgID
	Payload []byte
	// From is the peer it came from (Self for a local Broadcast).
	From  string
	Round uint16
}
