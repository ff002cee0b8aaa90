package structs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"testing"

	"github.com/klauspost/compress/s2"
)

// bigPlan is a plan entry of n placements shaped like the scheduler's.
func bigPlan(n int) *ApplyPlanResultsRequest {
	req := &ApplyPlanResultsRequest{EvalID: GenerateUUID()}
	for i := range n {
		nodeID := GenerateUUID()
		req.Allocs = append(req.Allocs, &Allocation{
			ID: GenerateUUID(), Namespace: "default", EvalID: req.EvalID, Name: fmt.Sprintf("web.app[%d]", i),
			NodeID: nodeID, NodeName: "node-" + nodeID[:8], JobID: "web", TaskGroup: "app",
			DesiredStatus: AllocDesiredStatusRun, ClientStatus: AllocClientStatusPending,
			AllocatedResources: &AllocatedResources{Tasks: map[string]*AllocatedTaskResources{
				"app": {Cpu: AllocatedCpuResources{CpuShares: 100}, Memory: AllocatedMemoryResources{MemoryMB: 128}}}},
			Metrics:    placementMetric(nodeID),
			CreateTime: 1767323045000000000, ModifyTime: 1767323045000000000,
		})
	}
	return req
}

// placementMetric is the metric of an S3 placement: five candidates
// scored, some nodes filtered by the job's constraint.
func placementMetric(nodeID string) *AllocMetric {
	m := &AllocMetric{NodesEvaluated: 18, NodesFiltered: 5, NodesInPool: 5000,
		NodesAvailable:     map[string]int{"dc-1": 2500, "dc-2": 2500},
		ConstraintFiltered: map[string]int{"${meta.rack} set_contains_any r0,r1,r2,r3,r4,r5,r6,r7,r8,r9,r10,r11": 5}}
	for i := range 5 {
		id := nodeID
		if i > 0 {
			id = GenerateUUID()
		}
		m.ScoreMetaData = append(m.ScoreMetaData, &NodeScoreMeta{NodeID: id, Scores: ScoreSet{{Name: "binpack", Value: 0.37}}, NormScore: 0.37})
	}
	return m
}

func TestEncodeEntryCompressesLargeEntries(t *testing.T) {
	in := bigPlan(100)
	plain, err := Encode(ApplyPlanResultsRequestType, in)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := EncodeEntry(ApplyPlanResultsRequestType, in, true)
	if err != nil {
		t.Fatal(err)
	}
	if MessageType(entry[0]) != CompressedEntryType || len(entry) > len(plain)/2 {
		t.Fatalf("a %d-byte plan entry became type %d, %d bytes: want compressed to less than half", len(plain), entry[0], len(entry))
	}
	typ, body, release, err := DecodeEntry(entry)
	if err != nil || typ != ApplyPlanResultsRequestType {
		t.Fatalf("DecodeEntry: type %d, err %v; want the plan type", typ, err)
	}
	var out ApplyPlanResultsRequest
	err = Decode(body, &out)
	release()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, &out) {
		t.Fatal("the compressed entry decodes to something else than was encoded")
	}

	// Not allowed to compress (a server cannot read it): written as is.
	if asIs, _ := EncodeEntry(ApplyPlanResultsRequestType, in, false); !bytes.Equal(asIs, plain) {
		t.Fatal("an entry that must not be compressed differs from Encode's")
	}

	// Small entries are written as they are, readable by DecodeEntry too.
	small, _ := EncodeEntry(JobRegisterRequestType, benchRequest(), true)
	want, _ := Encode(JobRegisterRequestType, benchRequest())
	if small[0] != byte(JobRegisterRequestType) || len(small) != len(want) {
		t.Fatalf("a %d-byte registration became type %d, %d bytes: want it unchanged", len(want), small[0], len(small))
	}
	if typ, body, release, err := DecodeEntry(small); err != nil || typ != JobRegisterRequestType || !bytes.Equal(body, small[1:]) {
		t.Fatalf("DecodeEntry of a plain entry: type %d, err %v", typ, err)
	} else {
		release()
	}
}

// A damaged compressed entry is an error, never a panic or a huge
// allocation.
func TestDecodeEntryRefusesDamage(t *testing.T) {
	entry, _ := EncodeEntry(ApplyPlanResultsRequestType, bigPlan(50), true)
	// types, checksum, then an S2 block whose length varint says 4 GiB
	huge := []byte{byte(CompressedEntryType), byte(ApplyPlanResultsRequestType), 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0}
	nested := append([]byte{byte(CompressedEntryType), byte(CompressedEntryType), 0, 0, 0, 0}, s2.Encode(nil, entry)...)
	binary.BigEndian.PutUint32(nested[2:6], entryChecksum(CompressedEntryType, entry))
	retyped := append([]byte{}, entry...)
	retyped[1] = byte(JobRegisterRequestType) // the checksum covers the inner type
	for name, data := range map[string][]byte{
		"truncated":   entry[:len(entry)/2],
		"flipped":     append(append([]byte{}, entry[:40]...), append([]byte{^entry[40]}, entry[41:]...)...),
		"huge claim":  huge,
		"nested":      nested,
		"retyped":     retyped,
		"only a type": {byte(CompressedEntryType)},
		"empty":       {},
	} {
		if _, _, _, err := DecodeEntry(data); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func BenchmarkEncodeEntryPlan(b *testing.B) {
	req := bigPlan(100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeEntry(ApplyPlanResultsRequestType, req, true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEntryPlan(b *testing.B) {
	entry, err := EncodeEntry(ApplyPlanResultsRequestType, bigPlan(100), true)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(entry)), "entry-bytes")
	b.ReportAllocs()
	for b.Loop() {
		_, raw, release, err := DecodeEntry(entry)
		if err != nil {
			b.Fatal(err)
		}
		var req ApplyPlanResultsRequest
		if err := Decode(raw, &req); err != nil {
			b.Fatal(err)
		}
		release()
	}
}
