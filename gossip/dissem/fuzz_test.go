package dissem

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// fuzzNames are the names fuzz input picks from: self, peers in the View,
// strangers, an empty and an overlong name.
var fuzzNames = []string{"n0", "n1", "n2", "n3", "n4", "n5", "stranger", "", strings.Repeat("L", 300)}

// fuzzReader hands out the fuzz bytes, then zeros.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *fuzzReader) name() string { return fuzzNames[int(r.byte())%len(fuzzNames)] }

func (r *fuzzReader) id() MsgID { return MsgID{r.name(), uint64(r.byte() % 16)} }

// message builds an arbitrary message, kinds and strategies out of range
// included, with up to about 600 ids or relay names.
func (r *fuzzReader) message() Message {
	m := Message{
		Kind: Kind(r.byte() % 6), From: r.name(), To: r.name(), ID: r.id(),
		Round: uint16(r.byte()) << 8, Strategy: Strategy(r.byte() % 6),
	}
	flags := r.byte()
	m.WantAck, m.Ack = flags&1 != 0, flags&2 != 0
	if flags&4 != 0 {
		m.To = "n0"
	}
	if flags&8 != 0 {
		m.Payload = make([]byte, r.byte())
	}
	n := int(r.byte())
	if flags&16 != 0 {
		n *= 3
	}
	for range n {
		if flags&32 != 0 {
			m.RelayTo = append(m.RelayTo, r.name())
		} else {
			m.IDs = append(m.IDs, r.id())
		}
	}
	return m
}

// checkBounds fails if any structure exceeds the bound it promises.
func checkBounds(c *Core) error {
	cfg := c.cfg
	if c.store.len() > cfg.MaxRetained || len(c.store.byID) != c.store.len() {
		return fmt.Errorf("store: %d records, %d indexed", c.store.len(), len(c.store.byID))
	}
	if n := c.grafts.len(); n > cfg.MaxRetained {
		return fmt.Errorf("%d pending grafts", n)
	}
	if n := len(c.grafts.timer); n > 2*c.grafts.len()+64+1 {
		return fmt.Errorf("%d graft timers for %d pending", n, c.grafts.len())
	}
	for id, p := range c.grafts.byID {
		if len(p.announcers) > MaxAnnouncers || len(p.ackTo) > MaxAnnouncers || len(p.announcers) == 0 {
			return fmt.Errorf("pending %s: %d announcers, %d to ack", id, len(p.announcers), len(p.ackTo))
		}
	}
	if e := c.count(roleEager); e > 2*cfg.Eager {
		return fmt.Errorf("%d eager peers", e)
	}
	if l := c.count(roleLazy); l > cfg.Lazy {
		return fmt.Errorf("%d lazy peers", l)
	}
	if n := c.count(roleNone); n > maxIdleLinks {
		return fmt.Errorf("%d idle links", n)
	}
	var roles [3]int
	for _, l := range c.order {
		roles[l.role]++
	}
	if roles != c.roles {
		return fmt.Errorf("links by role %v, counted %v", roles, c.roles)
	}
	if len(c.order) != len(c.links) {
		return fmt.Errorf("%d links ordered, %d indexed", len(c.order), len(c.links))
	}
	for _, l := range c.order {
		if l.name == cfg.Self || !c.view.Has(l.name) {
			return fmt.Errorf("link to %q", l.name)
		}
		if len(l.live) > cfg.MaxRetained || len(l.acks) > maxAcks || len(l.queued) > 2*len(l.live)+64+1 ||
			len(l.sent) > 2*len(l.live)+64+1 {
			return fmt.Errorf("link %s: live %d acks %d queued %d sent %d", l.name, len(l.live), len(l.acks), len(l.queued), len(l.sent))
		}
	}
	return nil
}

// FuzzStep feeds a Plumtree core arbitrary operations built from the fuzz
// bytes: messages (mostly malformed), ticks, broadcasts, peers going down
// and up. It must never panic, keep every bound, and move its deadline
// past each Tick.
func FuzzStep(f *testing.F) {
	f.Add([]byte{1, 1, 0, 1, 3, 0, 3, 4, 0})
	f.Add([]byte{2, 2, 0, 2, 1, 0, 0, 0, 5, 200, 3, 3, 0, 4, 2, 0})
	f.Add([]byte{0, 3, 4, 1, 1, 2, 1, 0, 0, 1, 0, 255})
	f.Add([]byte{1, 1, 2, 1, 5, 1, 3, 37, 255, 4, 100})
	f.Fuzz(func(t *testing.T, data []byte) {
		view := newSetView([]string{"n1", "n2", "n3", "n4", "n5"})
		c, err := New(Config{Self: "n0", Strategy: Plumtree, Eager: 2, Lazy: 2, MaxRetained: 32}, view, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		r := &fuzzReader{b: data}
		now := testEpoch
		seq := uint64(1000)
		for len(r.b) > 0 {
			switch r.byte() % 5 {
			case 0, 1:
				c.Step(now, r.message())
			case 2:
				now = now.Add(time.Duration(r.byte()) * 5 * time.Millisecond)
				c.Tick(now)
				if at, ok := c.NextDeadline(); ok && !at.After(now) {
					t.Fatalf("after Tick(%v) the deadline is %v", now, at)
				}
			case 3:
				seq++
				c.Broadcast(now, MsgID{"n0", seq}, []byte{byte(seq)})
			case 4:
				name := r.name()
				if validName(name) && name != "n0" {
					if view.Has(name) {
						view.remove(name)
						c.PeerDown(name)
					} else {
						view.add(name)
						c.PeerUp(name)
					}
				}
			}
			out, _ := c.Ready()
			for _, m := range out {
				if m.From != "n0" || m.To == "n0" || !view.Has(m.To) || len(m.IDs) > MaxIDs {
					t.Fatalf("sent %+v", m)
				}
			}
			if err := checkBounds(c); err != nil {
				t.Fatal(err)
			}
		}
	})
}
