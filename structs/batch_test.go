package structs

import (
	"bytes"
	"testing"
)

// TestBatchEntryRoundTrip: a batch entry, compressed or not, gives back
// its entries byte for byte and in order.
func TestBatchEntryRoundTrip(t *testing.T) {
	var entries [][]byte
	for i := range 40 {
		e, err := Encode(ApplyPlanResultsRequestType, bigPlan(1+i%3))
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	entries = append(entries, []byte{byte(NoopRequestType)}) // a type byte and an empty body
	var body []byte
	for _, e := range entries {
		body = AppendBatchEntry(body, e)
	}
	for _, compress := range []bool{false, true} {
		data := BatchEntry(body, compress)
		if compressed := MessageType(data[0]) == CompressedEntryType; compressed != compress {
			t.Fatalf("compress=%v: entry compressed = %v", compress, compressed)
		}
		typ, got, release, err := DecodeEntry(data)
		if err != nil || typ != BatchEntryType {
			t.Fatalf("compress=%v: DecodeEntry = type %d, %v; want a batch entry", compress, typ, err)
		}
		split, err := SplitBatch(got)
		if err != nil {
			t.Fatalf("compress=%v: %v", compress, err)
		}
		if len(split) != len(entries) {
			t.Fatalf("compress=%v: %d entries, want %d", compress, len(split), len(entries))
		}
		for i := range split {
			if !bytes.Equal(split[i], entries[i]) {
				t.Fatalf("compress=%v: entry %d differs", compress, i)
			}
		}
		release()
	}
}

// TestSplitBatchRefusesDamage: a body that does not split into plain
// entries exactly is refused, never read past its end.
func TestSplitBatchRefusesDamage(t *testing.T) {
	plain := []byte{byte(JobRegisterRequestType), 0x80}
	one := AppendBatchEntry(nil, plain)
	for name, body := range map[string][]byte{
		"empty body":        nil,
		"truncated entry":   one[:len(one)-1],
		"length only":       {0x05},
		"bad length":        {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"empty entry":       AppendBatchEntry(nil, nil),
		"nested batch":      AppendBatchEntry(nil, BatchEntry(one, false)),
		"compressed inside": AppendBatchEntry(nil, []byte{byte(CompressedEntryType), 0, 0, 0, 0, 0, 0}),
	} {
		if _, err := SplitBatch(body); err == nil {
			t.Errorf("%s: SplitBatch accepted it", name)
		}
	}
}

// TestCompressEntry: only a large entry is compressed, and it decodes to
// the same type and body.
func TestCompressEntry(t *testing.T) {
	small := []byte{byte(JobRegisterRequestType), 0x80}
	if got := CompressEntry(small, true); !bytes.Equal(got, small) {
		t.Fatal("a small entry was changed")
	}
	big, _ := Encode(ApplyPlanResultsRequestType, bigPlan(100))
	if got := CompressEntry(big, false); !bytes.Equal(got, big) {
		t.Fatal("an entry was compressed although compression is off")
	}
	z := CompressEntry(big, true)
	if MessageType(z[0]) != CompressedEntryType || len(z) >= len(big) {
		t.Fatalf("a plan of 100 placements was not compressed (%d -> %d bytes)", len(big), len(z))
	}
	typ, body, release, err := DecodeEntry(z)
	defer release()
	if err != nil || typ != ApplyPlanResultsRequestType || !bytes.Equal(body, big[1:]) {
		t.Fatalf("decoded type %d, err %v, same body %v", typ, err, bytes.Equal(body, big[1:]))
	}
}

// FuzzSplitBatch: any body either splits into plain entries that make the
// same body again, or is refused; it never panics or reads past its end.
func FuzzSplitBatch(f *testing.F) {
	reg := []byte{byte(JobRegisterRequestType), 0x80}
	f.Add(AppendBatchEntry(AppendBatchEntry(nil, reg), []byte{byte(NoopRequestType)}))
	f.Add([]byte{0x05, 0x01})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, body []byte) {
		entries, err := SplitBatch(body)
		if err != nil {
			return
		}
		var again []byte
		for _, e := range entries {
			again = AppendBatchEntry(again, e)
		}
		if !bytes.Equal(again, body) {
			t.Fatalf("%x split into %d entries that make %x", body, len(entries), again)
		}
	})
}
