package structs

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
	nomad "github.com/hashicorp/nomad/api"
)

// Scores went from a map to a list; the wire keeps the map, so raft log
// entries written before still decode, and JSON keeps Nomad's shape.
func TestScoreSetWireAndJSON(t *testing.T) {
	type oldMeta struct { // NodeScoreMeta as it was encoded before
		NodeID    string
		Scores    map[string]float64
		NormScore float64
	}
	old := oldMeta{NodeID: "n1", Scores: map[string]float64{"job-anti-affinity": -0.5, "binpack": 0.75}, NormScore: 0.125}
	var buf []byte
	if err := codec.NewEncoderBytes(&buf, MsgpackHandle).Encode(&old); err != nil {
		t.Fatal(err)
	}
	var got NodeScoreMeta
	if err := codec.NewDecoderBytes(buf, MsgpackHandle).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := NodeScoreMeta{NodeID: "n1", NormScore: 0.125,
		Scores: ScoreSet{{Name: "binpack", Value: 0.75}, {Name: "job-anti-affinity", Value: -0.5}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("old entry decoded as %+v, want %+v", got, want)
	}
	// And the new encoding reads back as the old map.
	buf = nil
	if err := codec.NewEncoderBytes(&buf, MsgpackHandle).Encode(&want); err != nil {
		t.Fatal(err)
	}
	var back oldMeta
	if err := codec.NewDecoderBytes(buf, MsgpackHandle).Decode(&back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, old) {
		t.Fatalf("new entry decoded as the old shape: %+v, want %+v", back, old)
	}
	if v, ok := want.Scores.Get("binpack"); !ok || v != 0.75 {
		t.Fatalf("Get(binpack) = %v, %v", v, ok)
	}

	js, err := json.Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	var n nomad.NodeScoreMeta
	if err := json.Unmarshal(js, &n); err != nil {
		t.Fatalf("Nomad's api cannot read %s: %v", js, err)
	}
	if n.Scores["binpack"] != 0.75 || n.Scores["job-anti-affinity"] != -0.5 || len(n.Scores) != 2 {
		t.Fatalf("Nomad's api read scores %v from %s", n.Scores, js)
	}
	var rt NodeScoreMeta
	if err := json.Unmarshal(js, &rt); err != nil || !reflect.DeepEqual(rt, want) {
		t.Fatalf("JSON round trip: %+v (%v), want %+v", rt, err, want)
	}
	if js, _ := json.Marshal(NodeScoreMeta{}); string(js) != `{"NodeID":"","Scores":null,"NormScore":0}` {
		t.Fatalf("empty scores: %s", js)
	}
}

// A message that claims billions of scores is an error, not an attempt to
// allocate room for them (which would end the process).
func TestScoreSetLengthOnTheWireIsNotTrusted(t *testing.T) {
	buf := []byte{0x82, 0xa6}
	buf = append(buf, "NodeID"...)
	buf = append(buf, 0xa1, 'n', 0xa6)
	buf = append(buf, "Scores"...)
	buf = append(buf, 0xdf, 0xff, 0xff, 0xff, 0xff) // map32 of 4,294,967,295 entries, none sent
	var m NodeScoreMeta
	if err := Decode(buf, &m); err == nil {
		t.Fatalf("decoded %+v from a truncated message", m)
	}
}
