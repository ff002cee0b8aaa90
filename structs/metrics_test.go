package structs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"unsafe"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// wireMetric is AllocMetric's fields in their order on the wire, with
// candidates of type C.
type wireMetric[C any] struct {
	NodesEvaluated     int
	NodesFiltered      int
	NodesInPool        int
	NodesAvailable     map[string]int
	ClassFiltered      map[string]int
	ConstraintFiltered map[string]int
	NodesExhausted     int
	ClassExhausted     map[string]int
	DimensionExhausted map[string]int
	ScoreMetaData      []*C
	AllocationTime     int64
	CoalescedFailures  int
}

// oldMetric is AllocMetric as the generated codecs encoded it before
// Counts and ScoreMetas (a map keyed by field name), with a candidate
// field this version does not know (as a newer server might send).
type oldMetric = wireMetric[oldCandidate]

type oldCandidate struct {
	NodeID    string
	Scores    map[string]float64
	NormScore float64
	Extra     string
}

func sampleOldMetric() oldMetric {
	return oldMetric{
		NodesEvaluated: 18, NodesFiltered: 5, NodesInPool: 5000,
		NodesAvailable:     map[string]int{"dc-1": 2500, "dc-2": 2500},
		ConstraintFiltered: map[string]int{"${meta.rack} set_contains_any r0,r1": 5},
		DimensionExhausted: map[string]int{},
		ScoreMetaData: []*oldCandidate{
			{NodeID: "node-00026", Scores: map[string]float64{"job-anti-affinity": -0.5, "binpack": 0.75}, NormScore: 0.125, Extra: "x"},
			nil,
			{NodeID: "node-01883", NormScore: 0.5},
			{NodeID: "", Scores: map[string]float64{"binpack": 0.25}},
		},
		AllocationTime: 42, CoalescedFailures: 1,
	}
}

func encodeWith(t *testing.T, v any) []byte {
	t.Helper()
	var buf []byte
	if err := codec.NewEncoderBytes(&buf, MsgpackHandle).Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf
}

// Raft log entries and snapshots written before (maps keyed by field
// name) decode as they did, and what this version writes (arrays) reads
// back as the old shape, by position, as a server of the version before
// reads it.
func TestAllocMetricWire(t *testing.T) {
	old := sampleOldMetric()
	var got AllocMetric
	if err := Decode(encodeWith(t, &old), &got); err != nil {
		t.Fatal(err)
	}
	want := AllocMetric{
		NodesEvaluated: 18, NodesFiltered: 5, NodesInPool: 5000,
		NodesAvailable:     Counts{"dc-1": 2500, "dc-2": 2500},
		ConstraintFiltered: Counts{"${meta.rack} set_contains_any r0,r1": 5},
		DimensionExhausted: Counts{},
		ScoreMetaData: ScoreMetas{
			{NodeID: "node-00026", Scores: ScoreSet{{"binpack", 0.75}, {"job-anti-affinity", -0.5}}, NormScore: 0.125},
			nil,
			{NodeID: "node-01883", NormScore: 0.5},
			{NodeID: "", Scores: ScoreSet{{"binpack", 0.25}}},
		},
		AllocationTime: 42, CoalescedFailures: 1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("old entry decoded as\n%+v\nwant\n%+v", got, want)
	}

	mapForm, arrayForm := encodeWith(t, &old), encodeWith(t, &want)
	if arrayForm[0] != 0x9c { // fixarray of 12
		t.Fatalf("a metric is written as % x..., want an array of its 12 fields", arrayForm[:4])
	}
	if len(arrayForm) > len(mapForm)*3/4 {
		t.Errorf("the array form is %d bytes, the map form %d: want it a quarter smaller or more", len(arrayForm), len(mapForm))
	}
	var back oldMetric
	if err := codec.NewDecoderBytes(arrayForm, MsgpackHandle).Decode(&back); err != nil {
		t.Fatal(err)
	}
	old.ScoreMetaData[0].Extra = ""
	if !reflect.DeepEqual(back, old) {
		t.Fatalf("new entry decoded as the old shape:\n%+v\nwant\n%+v", back, old)
	}

	// The RPC path decodes from a stream, not a byte slice.
	var streamed AllocMetric
	if err := codec.NewDecoder(bytes.NewReader(encodeWith(t, &want)), MsgpackHandle).Decode(&streamed); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(streamed, want) {
		t.Fatalf("decoded from a stream as %+v", streamed)
	}

	var empty AllocMetric
	if err := Decode(encodeWith(t, &AllocMetric{}), &empty); err != nil || !reflect.DeepEqual(empty, AllocMetric{}) {
		t.Fatalf("empty metric decoded as %+v (%v)", empty, err)
	}
}

// A later version may add fields at the end of a metric and of a
// candidate: this one skips them.
func TestAllocMetricFromALaterVersion(t *testing.T) {
	type laterCandidate struct {
		_struct struct{} `codec:",toarray"`
		oldCandidate
	}
	type laterMetric struct {
		_struct struct{} `codec:",toarray"`
		wireMetric[laterCandidate]
		Later map[string]string
	}
	later := laterMetric{Later: map[string]string{"k": "v"}, wireMetric: wireMetric[laterCandidate]{
		NodesEvaluated: 3, NodesAvailable: map[string]int{"dc1": 3}, CoalescedFailures: 2,
		ScoreMetaData: []*laterCandidate{{oldCandidate: oldCandidate{NodeID: "n1", Scores: map[string]float64{"binpack": 0.5}, NormScore: 0.5, Extra: "x"}}},
	}}
	if buf := encodeWith(t, &later); buf[0] != 0x9d { // fixarray of 13
		t.Fatalf("a later metric is written as % x..., want an array of 13 fields", buf[:4])
	}
	var got AllocMetric
	if err := Decode(encodeWith(t, &later), &got); err != nil {
		t.Fatal(err)
	}
	want := AllocMetric{NodesEvaluated: 3, NodesAvailable: Counts{"dc1": 3}, CoalescedFailures: 2,
		ScoreMetaData: ScoreMetas{{NodeID: "n1", Scores: ScoreSet{{ScoreBinPack, 0.5}}, NormScore: 0.5}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
}

// The wire form of AllocMetric is positional: a field added anywhere but
// at the end, or a field reordered or removed, would make every raft
// entry and snapshot written before decode into the wrong fields.
func TestAllocMetricFieldOrder(t *testing.T) {
	// The order written since the array form: a literal, not taken from
	// a test type that an edit could move.
	wire := []string{"NodesEvaluated", "NodesFiltered", "NodesInPool", "NodesAvailable", "ClassFiltered", "ConstraintFiltered",
		"NodesExhausted", "ClassExhausted", "DimensionExhausted", "ScoreMetaData", "AllocationTime", "CoalescedFailures"}
	var fields []string
	for f := range reflect.TypeFor[AllocMetric]().Fields() {
		if f.Name != "_struct" {
			fields = append(fields, f.Name)
		}
	}
	if len(fields) < len(wire) || !reflect.DeepEqual(fields[:len(wire)], wire) {
		t.Fatalf("AllocMetric's fields are %v; the wire has %v in that order: add new fields after them", fields, wire)
	}
}

func sameMapData(a, b Counts) bool {
	return *(*unsafe.Pointer)(unsafe.Pointer(&a)) == *(*unsafe.Pointer)(unsafe.Pointer(&b))
}

// Equal counts decoded from different messages are one map, whatever
// order their keys were written in; unequal ones stay apart.
func TestDecodedCountsAreShared(t *testing.T) {
	decode := func(m map[string]int) Counts {
		var out AllocMetric
		if err := Decode(encodeWith(t, &AllocMetric{DimensionExhausted: m}), &out); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(map[string]int(out.DimensionExhausted), m) {
			t.Fatalf("decoded %v, want %v", out.DimensionExhausted, m)
		}
		return out.DimensionExhausted
	}
	a := decode(map[string]int{"memory": 1})
	b := decode(map[string]int{"memory": 2})
	c := decode(map[string]int{"memory": 1})
	d := decode(map[string]int{"memory": 2, "cpu": 1, "disk": 3})
	e := decode(map[string]int{"disk": 3, "cpu": 1, "memory": 2})
	if !sameMapData(a, c) || !sameMapData(d, e) {
		t.Error("equal counts decoded into maps of their own")
	}
	if sameMapData(a, b) {
		t.Error("unequal counts share a map")
	}
}

// A placement's candidates decode into a handful of objects, with the
// program's own copy of the score names.
func TestDecodedScoreMetasAreCompact(t *testing.T) {
	m := &AllocMetric{NodesAvailable: Counts{"dc1": 10}}
	for _, id := range []string{"node-a", "node-b", "node-c", "node-d", "node-e"} {
		m.ScoreMetaData = append(m.ScoreMetaData, &NodeScoreMeta{NodeID: id, NormScore: 0.5,
			Scores: ScoreSet{{ScoreBinPack, 0.5}}}) // the usual: bin packing alone
	}
	buf := encodeWith(t, m)
	var out AllocMetric
	objects := testing.AllocsPerRun(100, func() {
		out = AllocMetric{}
		if err := Decode(buf, &out); err != nil {
			t.Fatal(err)
		}
	})
	// The candidates' pointers, values, scores and IDs: 4 (the counts are
	// shared). Before, the candidates alone were 21 objects.
	if objects > 4 {
		t.Errorf("decoding a metric of five candidates makes %v objects, want at most 4", objects)
	}
	if !reflect.DeepEqual(&out, m) {
		t.Fatalf("decoded %+v, want %+v", out, m)
	}
	name := out.ScoreMetaData[3].Scores[0].Name
	if unsafe.StringData(name) != unsafe.StringData(ScoreBinPack) {
		t.Error("a decoded score name is a copy of its own")
	}
	// A candidate's scores are its own: appending to one does not change
	// the next.
	_ = append(out.ScoreMetaData[0].Scores, Score{"x", 1})
	if out.ScoreMetaData[1].Scores[0].Name != ScoreBinPack {
		t.Error("appending to one candidate's scores overwrote the next one's")
	}
}

// Damaged metrics are errors, not panics or huge allocations.
func TestDamagedMetricsAreErrors(t *testing.T) {
	for name, buf := range map[string][]byte{
		// {"NodesAvailable": {"dc1": "x"}}
		"count that is a string": append(append([]byte{0x81, 0xae}, "NodesAvailable"...), 0x81, 0xa3, 'd', 'c', '1', 0xa1, 'x'),
		// {"ScoreMetaData": array32 of 4,294,967,295 candidates, none sent}
		"candidates claimed, not sent": append(append([]byte{0x81, 0xad}, "ScoreMetaData"...), 0xdd, 0xff, 0xff, 0xff, 0xff),
		// {"ScoreMetaData": ["x"]}
		"candidate that is a string": append(append([]byte{0x81, 0xad}, "ScoreMetaData"...), 0x91, 0xa1, 'x'),
		// {"ScoreMetaData": [{"NodeID": 7}]}
		"node ID that is a number": append(append(append([]byte{0x81, 0xad}, "ScoreMetaData"...), 0x91, 0x81, 0xa6), append([]byte("NodeID"), 0x07)...),
	} {
		var m AllocMetric
		if err := Decode(buf, &m); err == nil {
			t.Errorf("%s: decoded %+v, want an error", name, m)
		}
	}
}

// goldenMetric is the metric in testdata/allocmetric-*.msgpack.
func goldenMetric() *AllocMetric {
	return &AllocMetric{NodesEvaluated: 18, NodesFiltered: 5, NodesInPool: 5000,
		NodesAvailable:     Counts{"dc-1": 2500, "dc-2": 2500},
		ClassFiltered:      Counts{"gpu": 3},
		ConstraintFiltered: Counts{"${meta.rack} set_contains_any r0,r1": 5, "missing drivers": 2},
		NodesExhausted:     4,
		ClassExhausted:     Counts{"standard": 4},
		DimensionExhausted: Counts{"memory": 3, "cpu": 1},
		ScoreMetaData: ScoreMetas{
			{NodeID: "node-00026", Scores: ScoreSet{{ScoreBinPack, 0.75}, {ScoreAntiAffinity, -0.5}}, NormScore: 0.125},
			nil,
			{NodeID: "node-01883", Scores: ScoreSet{}, NormScore: 0.5},
		},
		AllocationTime: 1234567, CoalescedFailures: 1,
	}
}

// The wire forms, pinned: allocmetric-map.msgpack was written by the
// generated codec of the version before the array form (commit 8347cd6),
// allocmetric-array.msgpack is what this version writes. Both decode to
// the same metric, and this version writes exactly the array file.
func TestAllocMetricGolden(t *testing.T) {
	want := goldenMetric()
	for _, name := range []string{"allocmetric-map.msgpack", "allocmetric-array.msgpack"} {
		buf, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		var got AllocMetric
		if err := Decode(buf, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Fatalf("%s decoded as\n%+v\nwant\n%+v", name, got, want)
		}
		if got.ScoreMetaData[2].Scores == nil {
			t.Errorf("%s: an empty map of scores decoded as nil (JSON null, not {})", name)
		}
	}
	buf, _ := os.ReadFile(filepath.Join("testdata", "allocmetric-array.msgpack"))
	if enc := encodeWith(t, want); !bytes.Equal(enc, buf) {
		t.Fatalf("this version writes\n% x\nnot testdata/allocmetric-array.msgpack\n% x", enc, buf)
	}
}

// The decoder's constants are the codec's (the generated file, which
// this file is not built from... but tests are).
func TestCodecConstants(t *testing.T) {
	if valueTypeMap != codecSelferValueTypeMap102 || valueTypeArray != codecSelferValueTypeArray102 || utf8Encoding != codecSelferCcUTF8102 {
		t.Fatal("metrics.go's copies of the codec's constants differ from the generated code's")
	}
}

// Placements keep five candidates, but a metric of more, with long node
// IDs, decodes too (past the decoder's buffers on the stack), from a
// byte slice and from a stream that yields a byte at a time (RPC reads
// through a buffered stream).
func TestManyCandidatesFromAStream(t *testing.T) {
	m := &AllocMetric{NodesAvailable: Counts{"dc1": 40}}
	for i := range 40 {
		id := fmt.Sprintf("%s-%02d", strings.Repeat("long-node-name-", 5), i)
		m.ScoreMetaData = append(m.ScoreMetaData, &NodeScoreMeta{NodeID: id, NormScore: float64(i),
			Scores: ScoreSet{{ScoreSpread, 2}, {ScoreBinPack, float64(i)}, {ScoreAffinity, 1}}}) // by name, as decoded
	}
	buf := encodeWith(t, m)
	var fromBytes, fromStream AllocMetric
	if err := Decode(buf, &fromBytes); err != nil {
		t.Fatal(err)
	}
	if err := codec.NewDecoder(iotest.OneByteReader(bytes.NewReader(buf)), MsgpackHandle).Decode(&fromStream); err != nil {
		t.Fatal(err)
	}
	for _, got := range []*AllocMetric{&fromBytes, &fromStream} {
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("decoded %+v, want %+v", got, m)
		}
	}
}

// Counts written by earlier versions came in any key order: equal ones
// share a map all the same.
func TestCountsInAnyOrderAreShared(t *testing.T) {
	// {"DimensionExhausted": {"memory": 2, "cpu": 1}} and the other order.
	prefix := append([]byte{0x81, 0xb2}, "DimensionExhausted"...)
	a := append(append(append([]byte{}, prefix...), 0x82, 0xa6), append([]byte("memory"), 0x02, 0xa3, 'c', 'p', 'u', 0x01)...)
	b := append(append(append([]byte{}, prefix...), 0x82, 0xa3), append([]byte("cpu"), 0x01, 0xa6, 'm', 'e', 'm', 'o', 'r', 'y', 0x02)...)
	var x, y AllocMetric
	if err := Decode(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := Decode(b, &y); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(x.DimensionExhausted, Counts{"memory": 2, "cpu": 1}) || !sameMapData(x.DimensionExhausted, y.DimensionExhausted) {
		t.Fatalf("decoded %v and %v, want one shared map of memory 2, cpu 1", x.DimensionExhausted, y.DimensionExhausted)
	}
}

// FuzzDecodeAllocMetric: any input decodes or fails with an error, never
// a panic, and what decodes encodes and decodes again to the same.
func FuzzDecodeAllocMetric(f *testing.F) {
	for _, name := range []string{"allocmetric-map.msgpack", "allocmetric-array.msgpack"} {
		buf, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(buf)
	}
	f.Add([]byte{0xc0})
	f.Fuzz(func(t *testing.T, buf []byte) {
		var m AllocMetric
		if err := Decode(buf, &m); err != nil {
			return
		}
		var again AllocMetric
		if err := Decode(encodeWith(t, &m), &again); err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", m, err)
		}
		if !reflect.DeepEqual(m, again) {
			t.Fatalf("round trip changed %+v into %+v", m, again)
		}
	})
}
