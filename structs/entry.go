package structs

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/klauspost/compress/s2"
)

// Raft log entries of more than compressMin bytes are compressed with S2
// (CompressedEntryType). A plan entry of a hundred allocations is about
// 135 KB of msgpack, mostly field names and IDs that repeat, and S2 makes
// it about a fifth of that in some 130 us (about 75 us to decompress on
// each server). Every byte of an entry is written again several times
// over on its way into raft's log store (the store re-encodes the entry,
// and bbolt copies its pages), so that the raft log was a third of the
// bytes a scheduling leader allocated; small entries, such as a job
// registration, do not pay for the work and stay as they are.
//
// A compressed entry is its own type byte, the type of the entry it
// holds, the CRC-32C of that type and body (4 bytes, big-endian: S2's
// block format has no check of its own, and a damaged entry must stop
// the server rather than be applied), and the body as an S2 block.
const (
	compressedHeader = 6
	compressMin      = 8 << 10
	// maxEntrySize bounds what a compressed entry may claim to expand to,
	// so that a damaged entry cannot make a server allocate without limit.
	maxEntrySize = 256 << 20
)

// EncodeEntry encodes msg as a raft log entry of type t (as Encode
// does), compressed when compress allows it (every server reads
// compressed entries), and the entry is large and compresses well.
func EncodeEntry(t MessageType, msg any, compress bool) ([]byte, error) {
	e, err := encodePooled(msg)
	defer e.release()
	if err != nil {
		return plainEntry(t, e.buf), err
	}
	return encodeBody(t, e.buf, compress), nil
}

// encodeBody returns the entry of type t and body, compressed when
// compress allows it and the body is large and compresses well.
func encodeBody(t MessageType, body []byte, compress bool) []byte {
	if !compress || len(body) < compressMin || len(body) > maxEntrySize {
		return plainEntry(t, body)
	}
	scratch := scratchBuffers.Get().(*[]byte)
	defer putScratch(scratch)
	if need := s2.MaxEncodedLen(len(body)); cap(*scratch) < need {
		*scratch = make([]byte, need)
	}
	z := s2.Encode((*scratch)[:cap(*scratch)], body)
	if len(z)+compressedHeader > len(body)-len(body)/8 {
		return plainEntry(t, body) // not worth a decompression on every server
	}
	out := make([]byte, compressedHeader+len(z))
	out[0], out[1] = byte(CompressedEntryType), byte(t)
	binary.BigEndian.PutUint32(out[2:6], entryChecksum(t, body))
	copy(out[compressedHeader:], z)
	return out
}

// DecodeEntry returns the type and body of a raft log entry, decompressed
// if it was compressed. Call release once done with body (what is decoded
// from it may be kept: decoding copies).
func DecodeEntry(data []byte) (t MessageType, body []byte, release func(), err error) {
	noop := func() {}
	if len(data) == 0 {
		return 0, nil, noop, fmt.Errorf("empty entry")
	}
	if MessageType(data[0]) != CompressedEntryType {
		return MessageType(data[0]), data[1:], noop, nil
	}
	if len(data) <= compressedHeader {
		return 0, nil, noop, fmt.Errorf("compressed entry of %d bytes is too short", len(data))
	}
	t, sum, z := MessageType(data[1]), binary.BigEndian.Uint32(data[2:6]), data[compressedHeader:]
	if t == CompressedEntryType {
		return 0, nil, noop, fmt.Errorf("compressed entry inside a compressed entry")
	}
	n, err := s2.DecodedLen(z)
	switch {
	case err != nil:
		return 0, nil, noop, fmt.Errorf("compressed entry: %w", err)
	case n > maxEntrySize:
		return 0, nil, noop, fmt.Errorf("compressed entry claims %d bytes", n)
	}
	scratch := scratchBuffers.Get().(*[]byte)
	if cap(*scratch) < n {
		*scratch = make([]byte, n)
	}
	body, err = s2.Decode((*scratch)[:n], z)
	if err == nil && entryChecksum(t, body) != sum {
		err = fmt.Errorf("checksum mismatch")
	}
	if err != nil {
		putScratch(scratch)
		return 0, nil, noop, fmt.Errorf("compressed entry of type %d: %w", t, err)
	}
	return t, body, func() { putScratch(scratch) }, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// entryChecksum is the CRC-32C of an entry's type byte and body.
func entryChecksum(t MessageType, body []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, []byte{byte(t)}), castagnoli, body)
}

// scratchBuffers are reused compression and decompression buffers.
var scratchBuffers = sync.Pool{New: func() any { return new([]byte) }}

func putScratch(b *[]byte) {
	if cap(*b) <= 4*maxPooledBuffer {
		scratchBuffers.Put(b)
	}
}
