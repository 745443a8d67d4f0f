package main

import (
	"fmt"
	"time"

	"github.com/roster-io/roster/crdt"
)

// crdtCosts are measured on the real crdt code, once per run: what a
// member, a digest entry and a transfer cost in bytes and CPU. The
// partition-heal and fresh-node figures are built from them, since
// 10,000 copies of a 1M-member state do not fit in one machine.
type crdtCosts struct {
	members        int           // members in the measured scope
	owners         int           // replicas owning them
	snapshotBytes  int           // the encoded transfer of the whole scope
	digestEntry    float64       // bytes per replica in an encoded digest
	decodeMerge    time.Duration // decoding and merging the transfer into an empty state, one core
	bytesPerMember float64
}

// measureCrdt builds a scope of members members over owners replicas with
// the real crdt code, encodes its transfer as a serving peer would
// (State.Snapshot in 1 MiB chunks) and times a fresh state decoding and
// merging it.
func measureCrdt(members, owners int) (crdtCosts, error) {
	src, err := crdt.New(crdt.ReplicaID{Name: "server", Incarnation: 1}, crdt.DefaultOptions())
	if err != nil {
		return crdtCosts{}, err
	}
	per := members / owners
	for o := range owners {
		st, err := crdt.New(crdt.ReplicaID{Name: nodeName(o), Incarnation: 1_765_000_000_000_000_000 + uint64(o)}, crdt.Options{})
		if err != nil {
			return crdtCosts{}, err
		}
		for m := range per {
			if _, err := st.Join(fmt.Sprintf("g%d", m%1000), fmt.Sprintf("conn-%d-%d", o, m), crdt.Meta{"addr": "10.0.0.1:4000"}, nil); err != nil {
				return crdtCosts{}, err
			}
		}
		for _, d := range st.Snapshot(1 << 20) {
			if _, err := src.Merge(d, nil); err != nil {
				return crdtCosts{}, err
			}
		}
	}
	var enc [][]byte
	total := 0
	for _, d := range src.SnapshotRemote(1 << 20) {
		b := crdt.EncodeDelta(d)
		enc = append(enc, b)
		total += len(b)
	}
	dst, err := crdt.New(crdt.ReplicaID{Name: "fresh", Incarnation: 1}, crdt.DefaultOptions())
	if err != nil {
		return crdtCosts{}, err
	}
	start := time.Now()
	for _, b := range enc {
		d, err := crdt.DecodeDelta(b)
		if err != nil {
			return crdtCosts{}, err
		}
		if _, err := dst.Merge(d, nil); err != nil {
			return crdtCosts{}, err
		}
	}
	took := time.Since(start)
	if got := len(dst.Digest().Entries); got < owners {
		return crdtCosts{}, fmt.Errorf("fresh state holds %d replicas, want %d", got, owners)
	}
	dig := crdt.EncodeDigest(src.Digest())
	return crdtCosts{
		members: per * owners, owners: owners, snapshotBytes: total,
		digestEntry: float64(len(dig)) / float64(owners+1), decodeMerge: took,
		bytesPerMember: float64(total) / float64(per*owners),
	}, nil
}
