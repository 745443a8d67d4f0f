package dissem

// Wire size model. The core does not encode messages (the driver does), but
// the simulator counts bytes, so Size states what the encoding costs:
//
//	header   HeaderBytes: kind (1), flags (1: strategy, WantAck, Ack),
//	         round (2), number of RelayTo names (2), number of ids (2)
//	names    From, To, every RelayTo name and every id's origin: a one-byte
//	         length (NameLenBytes) and the name's bytes
//	ids      an id is its origin (as a name) and SeqBytes of sequence number
//	payload  PayloadLenBytes of length and the payload's bytes (Gossip)
const (
	HeaderBytes     = 8
	NameLenBytes    = 1
	SeqBytes        = 8
	PayloadLenBytes = 4
)

// Size is the message's size on the wire in bytes, by the model above.
func (m Message) Size() int {
	n := HeaderBytes + nameSize(m.From) + nameSize(m.To)
	if m.Kind == KindGossip {
		n += idSize(m.ID) + PayloadLenBytes + len(m.Payload)
		for _, r := range m.RelayTo {
			n += nameSize(r)
		}
		return n
	}
	for _, id := range m.IDs {
		n += idSize(id)
	}
	return n
}

func nameSize(s string) int { return NameLenBytes + len(s) }

func idSize(id MsgID) int { return nameSize(id.Origin) + SeqBytes }
