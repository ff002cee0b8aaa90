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

// versionKey makes the keys memdb's CompoundIndex of (Namespace, ID,
// Version) made before it, byte for byte, for rows and lookups, so job
// versions keep their order (oldest first within a job). Its prefix of a
// namespace and an ID ends the ID, so that it finds that job's versions
// only ("web" not "web-2"); the compound index's did not.
func TestVersionKeyMatchesMemdbCompoundIndex(t *testing.T) {
	compound := &memdb.CompoundIndex{Indexes: []memdb.Indexer{
		&memdb.StringFieldIndex{Field: "Namespace"}, &memdb.StringFieldIndex{Field: "ID"}, &memdb.UintFieldIndex{Field: "Version"}}}
	ours := versionKey{}
	for _, c := range []struct {
		ns, id  string
		version uint64
	}{{"default", "web", 0}, {"default", "web", 7}, {"default", "web-2", 1 << 40}, {"a\x01b", "é-ü", 3}} {
		j := &structs.Job{Namespace: c.ns, ID: c.id, Version: c.version}
		okA, keyA, errA := compound.FromObject(j)
		okB, keyB, errB := ours.FromObject(j)
		if okA != okB || !bytes.Equal(keyA, keyB) || errA != nil || errB != nil {
			t.Fatalf("row %q/%q/%d: memdb (%v, %q, %v), versionKey (%v, %q, %v)", c.ns, c.id, c.version, okA, keyA, errA, okB, keyB, errB)
		}
		argsA, _ := compound.FromArgs(c.ns, c.id, c.version)
		argsB, err := ours.FromArgs(c.ns, c.id, c.version)
		if !bytes.Equal(argsA, argsB) || err != nil {
			t.Fatalf("lookup %q/%q/%d: memdb %q, versionKey %q (%v)", c.ns, c.id, c.version, argsA, argsB, err)
		}
		preA, _ := compound.PrefixFromArgs(c.ns)
		preB, err := ours.PrefixFromArgs(c.ns)
		if !bytes.Equal(preA, preB) || err != nil {
			t.Fatalf("prefix %q: memdb %q, versionKey %q (%v)", c.ns, preA, preB, err)
		}
		pre, err := ours.PrefixFromArgs(c.ns, c.id)
		if err != nil || !bytes.HasPrefix(keyB, pre) || bytes.HasPrefix(append([]byte(nil), c.ns+"\x00"+c.id+"-2\x00"...), pre) {
			t.Fatalf("prefix %q/%q = %q: want the job's rows and not a longer ID's", c.ns, c.id, pre)
		}
	}
	for _, bad := range [][]any{{"default", "web"}, {"default", "web", 1}, {"default", 7, uint64(1)}} {
		if _, err := ours.FromArgs(bad...); err == nil {
			t.Errorf("lookup %v: no error", bad)
		}
	}
	if _, _, err := ours.FromObject(&structs.Job{ID: "web"}); err == nil {
		t.Error("a version without a namespace: no error")
	}
	if _, _, err := ours.FromObject(&structs.Evaluation{}); err == nil {
		t.Error("a row of another type: no error")
	}
}
