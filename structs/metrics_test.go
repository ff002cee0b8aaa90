package structs

import (
	"bytes"
	"reflect"
	"testing"
	"unsafe"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// oldMetric is AllocMetric as the generated codecs encoded it before
// Counts and ScoreMetas, with a candidate field this version does not
// know (as a newer server might send).
type oldMetric struct {
	NodesEvaluated     int
	NodesFiltered      int
	NodesInPool        int
	NodesAvailable     map[string]int
	ClassFiltered      map[string]int
	ConstraintFiltered map[string]int
	NodesExhausted     int
	ClassExhausted     map[string]int
	DimensionExhausted map[string]int
	ScoreMetaData      []*oldCandidate
	AllocationTime     int64
	CoalescedFailures  int
}

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
		_struct   struct{} `codec:",toarray"`
		NodeID    string
		Scores    map[string]float64
		NormScore float64
		Later     []string
	}
	type laterMetric struct {
		_struct            struct{} `codec:",toarray"`
		NodesEvaluated     int
		NodesFiltered      int
		NodesInPool        int
		NodesAvailable     map[string]int
		ClassFiltered      map[string]int
		ConstraintFiltered map[string]int
		NodesExhausted     int
		ClassExhausted     map[string]int
		DimensionExhausted map[string]int
		ScoreMetaData      []*laterCandidate
		AllocationTime     int64
		CoalescedFailures  int
		Later              map[string]string
	}
	later := laterMetric{NodesEvaluated: 3, NodesAvailable: map[string]int{"dc1": 3}, CoalescedFailures: 2,
		ScoreMetaData: []*laterCandidate{{NodeID: "n1", Scores: map[string]float64{"binpack": 0.5}, NormScore: 0.5, Later: []string{"x"}}},
		Later:         map[string]string{"k": "v"}}
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
	wire := []string{"NodesEvaluated", "NodesFiltered", "NodesInPool", "NodesAvailable", "ClassFiltered",
		"ConstraintFiltered", "NodesExhausted", "ClassExhausted", "DimensionExhausted", "ScoreMetaData",
		"AllocationTime", "CoalescedFailures"}
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
	// The candidates' pointers, values, scores and IDs, and the copy of
	// the counts' wire form that finds the shared map: 5. Before, the
	// candidates alone were 21 objects.
	if objects > 5 {
		t.Errorf("decoding a metric of five candidates makes %v objects, want at most 5", objects)
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
		// {"ScoreMetaData": [{"NodeID": 7}]}
		"node ID that is a number": append(append(append([]byte{0x81, 0xad}, "ScoreMetaData"...), 0x91, 0x81, 0xa6), append([]byte("NodeID"), 0x07)...),
	} {
		var m AllocMetric
		if err := Decode(buf, &m); err == nil {
			t.Errorf("%s: decoded %+v, want an error", name, m)
		}
	}
}
