package dissem

// Stats counts what a core did. Messages are counted when queued for
// Ready (sent) or accepted by Step (received); rejected input is counted
// under Invalid or Unknown only.
type Stats struct {
	Broadcasts        uint64 // local changes accepted by Broadcast
	BroadcastsIgnored uint64 // local changes refused: empty or overlong origin, id already held
	Delivered         uint64 // changes delivered here, local ones included

	GossipSent, GossipReceived uint64 // payload-carrying messages
	IHaveSent, IHaveReceived   uint64 // IHAVE announcements (not acknowledgements)
	AckSent, AckReceived       uint64 // IHAVE acknowledgements
	GraftSent, GraftReceived   uint64
	PruneSent, PruneReceived   uint64

	IDsAnnounced uint64 // ids carried by IHAVE announcements sent, re-announcements included
	Reannounced  uint64 // ids re-announced because their offer was not acknowledged

	Duplicates    uint64 // Gossip for an id already held
	Invalid       uint64 // malformed input, ignored: self or empty names, misaddressed, bad kind or strategy, too many ids
	Unknown       uint64 // input from a peer not in the View, ignored
	UnknownGrafts uint64 // ids asked for by a GRAFT that are not retained here
	GraftRetries  uint64 // pending ids whose announcers were all grafted, tried again from the first
	GraftGiveUps  uint64 // announced ids given up after every announcer was grafted maxGraftRounds+1 times
	GraftsUndone  uint64 // grafted links pruned because the tree delivered the id too

	Expired        uint64 // retained messages dropped after Retain
	Evicted        uint64 // retained messages dropped early to stay within MaxRetained
	PendingDropped uint64 // announced ids forgotten to stay within MaxRetained
	OffersDropped  uint64 // offers not queued because a link holds MaxRetained already
	AcksDropped    uint64 // acknowledgements not queued: too many peers or too many queued
}
