package structs

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A batch entry (BatchEntryType) carries several plain entries, each a
// type byte and its msgpack body, so that writes made at the same time
// cost raft one entry instead of one each: raft's work per entry (its log
// store, replication, and every server's apply loop) is much of what a
// small write costs. Its body is the entries one after another, each
// preceded by its length as a uvarint. The entries inside are neither
// compressed nor batches; the batch entry as a whole may be compressed.
// Every entry of a batch has the batch's raft index.

// AppendBatchEntry appends entry, a plain entry as Encode returns it, to
// the body of a batch entry.
func AppendBatchEntry(body, entry []byte) []byte {
	body = binary.AppendUvarint(body, uint64(len(entry)))
	return append(body, entry...)
}

// BatchEntry returns a batch entry of the given body, in a slice of
// exactly that size, compressed when compress allows it (see EncodeEntry).
func BatchEntry(body []byte, compress bool) []byte {
	return encodeBody(BatchEntryType, body, compress)
}

// SplitBatch returns the entries of a batch entry's body. They share the
// body's memory. It refuses a body that does not split exactly (lengths
// in their shortest form), and entries that are empty, compressed or
// batches themselves.
func SplitBatch(body []byte) ([][]byte, error) {
	var entries [][]byte
	for len(body) > 0 {
		n, k := binary.Uvarint(body)
		if k <= 0 || n > uint64(len(body)-k) || k != uvarintSize(n) {
			return nil, fmt.Errorf("batch entry %d: bad length", len(entries))
		}
		e := body[k : k+int(n)]
		body = body[k+int(n):]
		if len(e) == 0 {
			return nil, fmt.Errorf("batch entry %d: empty", len(entries))
		}
		if t := MessageType(e[0]) &^ IgnoreUnknownTypeFlag; t == CompressedEntryType || t == BatchEntryType {
			return nil, fmt.Errorf("batch entry %d: type %d may not be inside a batch", len(entries), t)
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		return nil, errors.New("empty batch")
	}
	return entries, nil
}

// uvarintSize is the length of n's shortest uvarint encoding, the only
// one a batch entry holds.
func uvarintSize(n uint64) int {
	size := 1
	for ; n >= 0x80; n >>= 7 {
		size++
	}
	return size
}

// CompressEntry returns entry, a plain entry, compressed when compress
// allows it (see EncodeEntry), or entry itself.
func CompressEntry(entry []byte, compress bool) []byte {
	if !compress || len(entry) <= compressMin {
		return entry
	}
	return encodeBody(MessageType(entry[0]), entry[1:], compress)
}
