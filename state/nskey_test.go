package state

import (
	"bytes"
	"testing"

	"github.com/hashicorp/go-memdb"

	"github.com/skiffhq/skiff/structs"
)

// nsKey makes the keys memdb's CompoundIndex of two StringFieldIndex
// made before it, byte for byte, for rows, lookups and prefix lookups:
// the order of rows and what a prefix finds are unchanged.
func TestNsKeyMatchesMemdbCompoundIndex(t *testing.T) {
	compound := &memdb.CompoundIndex{Indexes: []memdb.Indexer{
		&memdb.StringFieldIndex{Field: "Namespace"}, &memdb.StringFieldIndex{Field: "JobID"}}}
	ours := nsKey[structs.Evaluation]{func(e *structs.Evaluation) (string, string) { return e.Namespace, e.JobID }}
	for _, c := range []struct{ ns, id string }{
		{"default", "web"}, {"default", ""}, {"", "web"}, {"", ""}, {"a\x01b", "é-ü"}, {"ns", "web\x00x"},
	} {
		e := &structs.Evaluation{Namespace: c.ns, JobID: c.id}
		okA, keyA, errA := compound.FromObject(e)
		okB, keyB, errB := ours.FromObject(e)
		if okA != okB || !bytes.Equal(keyA, keyB) || (errA == nil) != (errB == nil) {
			t.Fatalf("row %q/%q: memdb (%v, %q, %v), nsKey (%v, %q, %v)", c.ns, c.id, okA, keyA, errA, okB, keyB, errB)
		}
		argsA, errA := compound.FromArgs(c.ns, c.id)
		argsB, errB := ours.FromArgs(c.ns, c.id)
		if !bytes.Equal(argsA, argsB) || (errA == nil) != (errB == nil) {
			t.Fatalf("lookup %q/%q: memdb %q (%v), nsKey %q (%v)", c.ns, c.id, argsA, errA, argsB, errB)
		}
		for _, args := range [][]any{{c.ns}, {c.ns, c.id}} {
			preA, errA := compound.PrefixFromArgs(args...)
			preB, errB := ours.PrefixFromArgs(args...)
			if !bytes.Equal(preA, preB) || (errA == nil) != (errB == nil) {
				t.Fatalf("prefix %q: memdb %q (%v), nsKey %q (%v)", args, preA, errA, preB, errB)
			}
		}
	}
	for _, bad := range [][]any{{"default"}, {"default", "web", "x"}, {"default", 7}, {7, "web"}} {
		if _, err := ours.FromArgs(bad...); err == nil {
			t.Errorf("lookup %v: no error", bad)
		}
	}
	if _, err := ours.PrefixFromArgs("a", "b", "c"); err == nil {
		t.Error("prefix of three arguments: no error")
	}
	if _, _, err := ours.FromObject(&structs.Job{}); err == nil {
		t.Error("a row of another type: no error")
	}
}
