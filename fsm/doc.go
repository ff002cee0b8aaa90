// Package fsm is Skiff's raft state machine: it decodes committed log
// entries and applies them to the state store at their raft index, and it
// writes and reads snapshots of the whole store. Nothing else happens here:
// no clock, no network, no leader-only work. Leader-only loops watch the
// state store instead of being called from Apply.
//
//	raft log entry:  [type byte][msgpack body]
//	                   |
//	                   +-- high bit (structs.IgnoreUnknownTypeFlag): a server that
//	                       does not know the type skips the entry; without it, an
//	                       unknown type or a body that does not decode stops the
//	                       server rather than let it diverge from its peers.
//
//	compressed entry: [structs.CompressedEntryType][type byte][CRC-32C of body, 4 bytes]
//	                  [S2 block of the msgpack body]
//	                   written for entries over 8 KB once every server gossips
//	                   that it reads them (server/features.go); a damaged one
//	                   stops the server like a body that does not decode.
//
//	batch entry:      [structs.BatchEntryType] ([uvarint length][plain entry])+
//	                   several writes the leader committed together (group
//	                   commit, server/batch.go), written once every server
//	                   gossips that it reads them; may itself be compressed.
//	                   Each entry inside is applied at the batch's raft index,
//	                   as if alone, and answered in order (BatchResults).
//
//	snapshot:        "SKIFFSNP" [version byte]
//	                 ([record type byte][msgpack record])*
//	                 [endRecord][msgpack count of records]
//
// An allocation whose job is a version the snapshot holds may be written
// as a reference to it (recordAllocJobRef: the allocation without its
// job, and the version), once every server reads that record; restored,
// it shares the version's row.
//
// A snapshot that ends before its end record is refused as truncated.
package fsm
