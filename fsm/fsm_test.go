package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"

	"github.com/skiffhq/skiff/state"
	"github.com/skiffhq/skiff/structs"
)

func testJob(id string, count int) *structs.Job {
	j := &structs.Job{
		ID: id, Datacenters: []string{"dc1"},
		TaskGroups: []*structs.TaskGroup{{
			Name: "web", Count: count,
			Tasks: []*structs.Task{{Name: "t", Driver: "containerd", Config: map[string]any{"image": "busybox", "args": []any{"a", "b"}}}},
		}},
	}
	j.Canonicalize()
	return j
}

func apply(t testing.TB, f *FSM, index uint64, mt structs.MessageType, msg any) any {
	t.Helper()
	buf, err := structs.EncodeEntry(mt, msg, true) // as a server writes entries
	if err != nil {
		t.Fatal(err)
	}
	return f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: buf})
}

// applyPlain applies msg as an uncompressed entry, as written before
// entries were compressed.
func applyPlain(t testing.TB, f *FSM, index uint64, mt structs.MessageType, msg any) any {
	t.Helper()
	buf, err := structs.Encode(mt, msg)
	if err != nil {
		t.Fatal(err)
	}
	return f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: buf})
}

// populate writes every kind of object through Apply or the store.
func populate(t testing.TB, f *FSM) {
	t.Helper()
	idx := uint64(10)
	for i, id := range []string{"a", "b", "c"} {
		ev := &structs.Evaluation{ID: structs.GenerateUUID(), Namespace: "default", JobID: id, Status: structs.EvalStatusPending, Type: "service", Priority: 50}
		if res := apply(t, f, idx, structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: testJob(id, i+1), Eval: ev, SubmitTime: 42}); isErr(res) {
			t.Fatalf("apply register: %v", res)
		}
		idx++
	}
	// A second version of "a".
	apply(t, f, idx, structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: testJob("a", 7)})
	idx++
	st := f.State()
	node := &structs.Node{ID: structs.GenerateUUID(), Name: "n1", Datacenter: "dc1", Status: structs.NodeStatusReady,
		SchedulingEligibility: structs.NodeSchedulingEligible, Attributes: map[string]string{"kernel.name": "linux"}}
	if err := st.UpsertNode(idx, node); err != nil {
		t.Fatal(err)
	}
	idx++
	job, _ := st.JobByID(nil, "default", "b")
	alloc := &structs.Allocation{ID: structs.GenerateUUID(), Namespace: "default", JobID: "b", Job: job, TaskGroup: "web",
		NodeID: node.ID, Name: "b.web[0]", DesiredStatus: structs.AllocDesiredStatusRun, ClientStatus: structs.AllocClientStatusRunning}
	// An allocation of a version of "a" that is no longer tracked: a
	// snapshot must hold its job itself.
	gone := testJob("a", 3)
	gone.Namespace, gone.Version, gone.CreateIndex, gone.JobModifyIndex = "default", 99, 10, 10
	old := &structs.Allocation{ID: structs.GenerateUUID(), Namespace: "default", JobID: "a", Job: gone, TaskGroup: "web",
		NodeID: node.ID, Name: "a.web[0]", DesiredStatus: structs.AllocDesiredStatusRun, ClientStatus: structs.AllocClientStatusRunning}
	if err := st.UpsertAllocs(idx, []*structs.Allocation{alloc, old}); err != nil {
		t.Fatal(err)
	}
	idx++
	// A running allocation made "b" running: its jobs row is now a copy
	// that differs from its version row. An allocation holding that copy
	// must keep it through a snapshot.
	running, _ := st.JobByID(nil, "default", "b")
	if v, _ := st.JobByIDAndVersion(nil, "default", "b", running.Version); v == running || v.Status == running.Status {
		t.Fatalf("fixture: job b's row (status %q) should differ from its version row (status %q)", running.Status, v.Status)
	}
	second := &structs.Allocation{ID: structs.GenerateUUID(), Namespace: "default", JobID: "b", Job: running, TaskGroup: "web",
		NodeID: node.ID, Name: "b.web[1]", DesiredStatus: structs.AllocDesiredStatusRun, ClientStatus: structs.AllocClientStatusRunning}
	if err := st.UpsertAllocs(idx, []*structs.Allocation{second}); err != nil {
		t.Fatal(err)
	}
	idx++
	dep := &structs.Deployment{ID: structs.GenerateUUID(), Namespace: "default", JobID: "b", Status: structs.DeploymentStatusRunning,
		TaskGroups: map[string]*structs.DeploymentState{"web": {DesiredTotal: 2}}}
	if err := st.UpsertDeployment(idx, dep); err != nil {
		t.Fatal(err)
	}
}

type tables struct {
	Jobs, Versions, Summaries, Evals, Allocs, Nodes, Deployments, Indexes any
	// Usages is the node usage table (derived from the live allocations),
	// without rows at zero: a node whose allocations all ended keeps a
	// zero row where it was written, and has none where it was rebuilt.
	Usages any
}

func dump(t *testing.T, st *state.Store) tables {
	t.Helper()
	s := st.Snapshot()
	must := func(v any, err error) any {
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	usages, err := s.NodeUsages()
	if err != nil {
		t.Fatal(err)
	}
	var nonZero []*structs.NodeUsage
	for _, u := range usages {
		if u.CPU != 0 || u.MemoryMB != 0 || u.DiskMB != 0 || len(u.Ports) != 0 {
			nonZero = append(nonZero, u)
		}
	}
	return tables{
		must(s.Jobs(nil)), must(s.JobVersions(nil)), must(s.JobSummaries(nil)), must(s.Evals(nil)),
		must(s.Allocs(nil)), must(s.Nodes(nil)), must(s.Deployments(nil)), must(s.Indexes()), nonZero,
	}
}

func TestSnapshotRoundTripRestoresEveryTable(t *testing.T) {
	for _, refs := range []bool{false, true} {
		t.Run(fmt.Sprintf("jobRefs=%v", refs), func(t *testing.T) { testSnapshotRoundTrip(t, refs) })
	}
}

func testSnapshotRoundTrip(t *testing.T, jobRefs bool) {
	f := New(hclog.NewNullLogger())
	populate(t, f)
	var buf bytes.Buffer
	if err := Write(&buf, f.State().Snapshot(), jobRefs); err != nil {
		t.Fatal(err)
	}
	fresh := New(hclog.NewNullLogger())
	old := fresh.State()
	if err := fresh.Restore(nopCloser{bytes.NewReader(buf.Bytes())}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	select {
	case <-old.AbandonCh():
	default:
		t.Fatal("restore did not abandon the old store; blocked queries would never wake")
	}
	want, got := dump(t, f.State()), dump(t, fresh.State())
	v := reflect.ValueOf(want)
	for i := 0; i < v.NumField(); i++ {
		name := v.Type().Field(i).Name
		if !reflect.DeepEqual(v.Field(i).Interface(), reflect.ValueOf(got).Field(i).Interface()) {
			t.Errorf("table %s differs after restore:\n got  %#v\n want %#v", name, reflect.ValueOf(got).Field(i).Interface(), v.Field(i).Interface())
		}
	}
	if n := reflect.ValueOf(want.Versions).Len(); n != 4 {
		t.Errorf("job versions = %d, want 4 (a twice, b, c)", n)
	}
	// With references, a restored allocation that held its job version's
	// row shares it again instead of holding a copy; one that held another
	// copy keeps it.
	version, _ := fresh.State().JobByIDAndVersion(nil, "default", "b", 0)
	for _, name := range []string{"b.web[0]", "b.web[1]"} {
		allocs, _ := fresh.State().AllocsByJob(nil, "default", "b", true)
		for _, a := range allocs {
			if a.Name != name {
				continue
			}
			if shared := a.Job == version; shared != (jobRefs && name == "b.web[0]") {
				t.Errorf("%s: restored job shared with the version row = %v (jobRefs %v)", name, shared, jobRefs)
			}
		}
	}
}

// A snapshot whose allocation refers to a job version it does not hold
// is refused.
func TestSnapshotJobRefToMissingVersionIsRefused(t *testing.T) {
	var buf bytes.Buffer
	buf.WriteString(snapshotMagic)
	buf.WriteByte(snapshotVersion)
	enc := codec.NewEncoder(&buf, structs.MsgpackHandle)
	buf.WriteByte(byte(recordAllocJobRef))
	a := &structs.Allocation{ID: structs.GenerateUUID(), Namespace: "default", JobID: "web", TaskGroup: "web", NodeID: "n1"}
	if err := enc.Encode(&allocJobRef{Alloc: a, JobVersion: 5}); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte(byte(recordEnd))
	if err := enc.Encode(uint64(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(&buf); err == nil || !strings.Contains(err.Error(), "version 5 of job \"web\"") {
		t.Fatalf("err = %v, want a refusal naming the missing job version", err)
	}
}

func TestTruncatedSnapshotIsRefusedAtEveryCut(t *testing.T) {
	f := New(hclog.NewNullLogger())
	populate(t, f)
	var buf bytes.Buffer
	if err := Write(&buf, f.State().Snapshot(), false); err != nil {
		t.Fatal(err)
	}
	full := buf.Bytes()
	target := New(hclog.NewNullLogger())
	apply(t, target, 1, structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: testJob("keep", 1)})
	for cut := 0; cut < len(full); cut += max(1, len(full)/200) {
		err := target.Restore(nopCloser{bytes.NewReader(full[:cut])})
		if err == nil {
			t.Fatalf("snapshot cut at %d of %d bytes was accepted", cut, len(full))
		}
		if j, _ := target.State().JobByID(nil, "default", "keep"); j == nil {
			t.Fatalf("a refused restore (cut %d) replaced the state", cut)
		}
	}
	if _, err := Read(bytes.NewReader(full[:len(full)-1])); !errors.Is(err, ErrTruncatedSnapshot) {
		t.Fatalf("cut of the last byte: err = %v, want ErrTruncatedSnapshot", err)
	}
}

func TestUnknownEntryTypes(t *testing.T) {
	f := New(hclog.NewNullLogger())
	ignorable := []byte{byte(99 | structs.IgnoreUnknownTypeFlag), 0x80}
	if res := f.Apply(&raft.Log{Index: 1, Data: ignorable}); res != nil {
		t.Fatalf("ignorable unknown entry: got %v, want skipped", res)
	}
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(fmtAny(r), "unknown type 99") {
			t.Fatalf("required unknown entry: recover() = %v, want a panic naming the type", r)
		}
	}()
	f.Apply(&raft.Log{Index: 2, Data: []byte{99, 0x80}})
}

func TestDeregisterStopsThenPurges(t *testing.T) {
	f := New(hclog.NewNullLogger())
	apply(t, f, 1, structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: testJob("web", 1)})
	apply(t, f, 2, structs.JobDeregisterRequestType, &structs.JobDeregisterRequest{JobID: "web", WriteRequest: structs.WriteRequest{Namespace: "default"}})
	j, _ := f.State().JobByID(nil, "default", "web")
	if j == nil || !j.Stop {
		t.Fatalf("after stop: job = %+v, want Stop", j)
	}
	apply(t, f, 3, structs.JobDeregisterRequestType, &structs.JobDeregisterRequest{JobID: "web", Purge: true, WriteRequest: structs.WriteRequest{Namespace: "default"}})
	if j, _ := f.State().JobByID(nil, "default", "web"); j != nil {
		t.Fatalf("after purge: job = %+v, want none", j)
	}
	if res := apply(t, f, 4, structs.JobDeregisterRequestType, &structs.JobDeregisterRequest{JobID: "web", WriteRequest: structs.WriteRequest{Namespace: "default"}}); !isErr(res) {
		t.Fatal("stopping a missing job returned no error")
	}
}

func FuzzSnapshotRead(f *testing.F) {
	fsm := New(hclog.NewNullLogger())
	populate(f, fsm)
	var buf bytes.Buffer
	_ = Write(&buf, fsm.State().Snapshot(), false)
	f.Add(buf.Bytes())
	f.Add([]byte(snapshotMagic + "\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Read(bytes.NewReader(data)) // must not panic
	})
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func fmtAny(v any) string {
	if e, ok := v.(error); ok {
		return e.Error()
	}
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

// BenchmarkApplyJobRegister is the FSM's cost per registration entry:
// decode, store write, summary and status.
func BenchmarkApplyJobRegister(b *testing.B) {
	f := New(hclog.NewNullLogger())
	bufs := make([][]byte, b.N)
	for i := range bufs {
		j := testJob(fmt.Sprintf("job-%07d", i), 3)
		ev := &structs.Evaluation{ID: structs.GenerateUUID(), Namespace: "default", JobID: j.ID, Status: "pending", Type: "service", Priority: 50}
		buf, err := structs.Encode(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: j, Eval: ev, SubmitTime: 1})
		if err != nil {
			b.Fatal(err)
		}
		bufs[i] = buf
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res := f.Apply(&raft.Log{Index: uint64(i + 1), Data: bufs[i]}); isErr(res) {
			b.Fatal(res)
		}
	}
}

// TestBatchEqualsOneByOne: raft batches entries differently on each
// server, so a batch must end in exactly the state (indexes included) that
// applying its entries one at a time makes, also when an entry fails.
func TestBatchEqualsOneByOne(t *testing.T) {
	var logs []*raft.Log
	add := func(mt structs.MessageType, msg any) {
		buf, err := structs.Encode(mt, msg)
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Type: raft.LogCommand, Data: buf})
	}
	evalFor := func(id string, n int) *structs.Evaluation {
		return &structs.Evaluation{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), Namespace: "default", JobID: id, Status: "pending", Type: "service", Priority: 50}
	}
	for i := range 20 {
		id := fmt.Sprintf("j%d", i%7) // re-registrations: versions and unchanged specs
		add(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: testJob(id, 1+i%3), Eval: evalFor(id, i), SubmitTime: int64(i)})
		if i%5 == 4 {
			add(structs.JobDeregisterRequestType, &structs.JobDeregisterRequest{JobID: fmt.Sprintf("j%d", i%7), WriteRequest: structs.WriteRequest{Namespace: "default"}})
		}
		if i == 11 { // fails: no such job
			add(structs.JobDeregisterRequestType, &structs.JobDeregisterRequest{JobID: "missing", WriteRequest: structs.WriteRequest{Namespace: "default"}})
		}
		if i == 15 {
			add(structs.JobDeregisterRequestType, &structs.JobDeregisterRequest{JobID: "j1", Purge: true, WriteRequest: structs.WriteRequest{Namespace: "default"}})
		}
	}
	single := New(hclog.NewNullLogger())
	var singleRes []any
	for _, l := range logs {
		singleRes = append(singleRes, single.Apply(l))
	}
	for _, size := range []int{2, 5, len(logs)} {
		batched := New(hclog.NewNullLogger())
		var res []any
		for i := 0; i < len(logs); i += size {
			res = append(res, batched.ApplyBatch(logs[i:min(i+size, len(logs))])...)
		}
		if !reflect.DeepEqual(dump(t, single.State()), dump(t, batched.State())) {
			t.Fatalf("batches of %d end in a different state than one-by-one application", size)
		}
		for i := range res {
			if isErr(res[i]) != isErr(singleRes[i]) {
				t.Fatalf("batches of %d: entry %d result %v, one by one %v", size, i, res[i], singleRes[i])
			}
		}
	}
	wantOneFailure(t, singleRes)
}

// TestBatchEntryEqualsItsEntriesAlone: a batch entry (the leader's group
// commit) ends in the state its entries make applied one at a time at the
// batch's index, answers each entry in order, and keeps a failed entry
// from undoing the others; also when raft hands the FSM several batch
// entries and plain entries at once.
func TestBatchEntryEqualsItsEntriesAlone(t *testing.T) {
	var entries [][]byte
	add := func(mt structs.MessageType, msg any) {
		buf, err := structs.Encode(mt, msg)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, buf)
	}
	for i := range 20 {
		id := fmt.Sprintf("j%d", i%7)
		add(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: testJob(id, 1+i%3), SubmitTime: int64(i),
			Eval: &structs.Evaluation{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Namespace: "default", JobID: id, Status: "pending", Type: "service", Priority: 50}})
		if i%5 == 4 {
			add(structs.JobDeregisterRequestType, &structs.JobDeregisterRequest{JobID: id, WriteRequest: structs.WriteRequest{Namespace: "default"}})
		}
		if i == 11 { // fails: no such job
			add(structs.JobDeregisterRequestType, &structs.JobDeregisterRequest{JobID: "missing", WriteRequest: structs.WriteRequest{Namespace: "default"}})
		}
	}
	// Entries go in batches of up to 4 (the last plain), at indexes 1, 2, ...
	alone := New(hclog.NewNullLogger())
	var want []any
	var logs []*raft.Log
	for i := 0; i < len(entries); i += 4 {
		group := entries[i:min(i+4, len(entries))]
		index := uint64(len(logs) + 1)
		for _, e := range group {
			want = append(want, alone.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: e}))
		}
		var body []byte
		for _, e := range group {
			body = structs.AppendBatchEntry(body, e)
		}
		data := structs.BatchEntry(body, false)
		if len(group) == 1 {
			data = group[0]
		}
		logs = append(logs, &raft.Log{Index: index, Type: raft.LogCommand, Data: data})
	}
	for _, size := range []int{1, 3, len(logs)} {
		f := New(hclog.NewNullLogger())
		var got []any
		for i := 0; i < len(logs); i += size {
			for _, r := range f.ApplyBatch(logs[i:min(i+size, len(logs))]) {
				if rs, ok := r.(BatchResults); ok {
					got = append(got, rs...)
				} else {
					got = append(got, r)
				}
			}
		}
		if !reflect.DeepEqual(dump(t, alone.State()), dump(t, f.State())) {
			t.Fatalf("raft batches of %d: batch entries end in a different state than their entries applied alone", size)
		}
		if len(got) != len(want) {
			t.Fatalf("raft batches of %d: %d answers, want %d", size, len(got), len(want))
		}
		for i := range got {
			if isErr(got[i]) != isErr(want[i]) || (!isErr(got[i]) && !reflect.DeepEqual(got[i], want[i])) {
				t.Fatalf("raft batches of %d: entry %d answered %v, alone %v", size, i, got[i], want[i])
			}
		}
	}
	wantOneFailure(t, want)
}

// TestReadersNeverSeePartOfABatchEntry: when a write of a batch entry
// fails after changing the state (here a registration whose evaluation
// has no ID: its job is written first), the others are still applied,
// and a reader sees the entry's raft index either not at all or with all
// of them: never with some.
func TestReadersNeverSeePartOfABatchEntry(t *testing.T) {
	f := New(hclog.NewNullLogger())
	apply(t, f, 1, structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: testJob("first", 1)})
	const writes = 300
	var body []byte
	for i := range writes {
		req := &structs.JobRegisterRequest{Job: testJob(fmt.Sprintf("job-%03d", i), 1),
			Eval: &structs.Evaluation{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Namespace: "default", JobID: fmt.Sprintf("job-%03d", i), Status: "pending", Type: "service", Priority: 50}}
		if i == 1 {
			req.Eval.ID = "" // fails after its job is written
		}
		e, err := structs.Encode(structs.JobRegisterRequestType, req)
		if err != nil {
			t.Fatal(err)
		}
		body = structs.AppendBatchEntry(body, e)
	}
	seen := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(seen)
		for {
			select {
			case <-done:
				return
			default:
			}
			snap := f.State().Snapshot()
			index, _ := snap.LatestIndex()
			jobs, _ := snap.Jobs(nil)
			if want := map[bool]int{false: 1, true: writes}[index >= 2]; len(jobs) != want {
				seen <- fmt.Sprintf("index %d with %d jobs, want %d", index, len(jobs), want)
				return
			}
		}
	}()
	res := f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: structs.BatchEntry(body, false)})
	close(done)
	if partial, ok := <-seen; ok {
		t.Fatalf("a reader saw part of a batch entry: %s", partial)
	}
	results := res.(BatchResults)
	for i, r := range results {
		if isErr(r) != (i == 1) {
			t.Fatalf("write %d answered %v; want an error for write 1 only", i, r)
		}
	}
	if j, _ := f.State().JobByID(nil, "default", "job-001"); j != nil {
		t.Fatal("the failed write's job was stored")
	}
}

// TestFailedWriteMovesNoIndex: a command whose first write succeeds having
// changed no row, but moved its table's index, and whose second write
// fails (a client update of a gone allocation, with an evaluation without
// an ID) leaves the index table as it is alone: not moved.
func TestFailedWriteMovesNoIndex(t *testing.T) {
	reg, _ := structs.Encode(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: testJob("web", 1)})
	upd, _ := structs.Encode(structs.AllocClientUpdateRequestType, &structs.AllocUpdateRequest{NodeID: "n1",
		Alloc: []*structs.Allocation{{ID: "00000000-0000-4000-8000-000000000001", ClientStatus: "running"}},
		Evals: []*structs.Evaluation{{Namespace: "default", JobID: "web", Status: "pending", Type: "service", Priority: 50}}})
	alone, batched := New(hclog.NewNullLogger()), New(hclog.NewNullLogger())
	var want []any
	for _, e := range [][]byte{reg, upd} {
		want = append(want, alone.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: e}))
	}
	got := batched.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: structs.BatchEntry(structs.AppendBatchEntry(structs.AppendBatchEntry(nil, reg), upd), false)})
	if rs, ok := got.(BatchResults); !ok || isErr(rs[0]) != isErr(want[0]) || !isErr(rs[1]) || !isErr(want[1]) {
		t.Fatalf("answers %v, alone %v; want the update to fail", got, want)
	}
	if !reflect.DeepEqual(dump(t, alone.State()), dump(t, batched.State())) {
		t.Fatal("the failed update moved an index in the batch that it does not move alone")
	}
	if idx, _ := batched.State().Snapshot().Index(state.TableAllocs); idx != 0 {
		t.Fatalf("allocs table index %d, want 0 (no allocation was written)", idx)
	}
}

// TestIgnorableEntryInABatchIsSkipped: an entry of an unknown type marked
// ignorable is skipped inside a batch entry as it is alone (answered nil),
// and the entries around it are applied.
func TestIgnorableEntryInABatchIsSkipped(t *testing.T) {
	f := New(hclog.NewNullLogger())
	var body []byte
	for _, id := range []string{"a", "b"} {
		e, err := structs.Encode(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: testJob(id, 1)})
		if err != nil {
			t.Fatal(err)
		}
		body = structs.AppendBatchEntry(body, e)
		if id == "a" {
			body = structs.AppendBatchEntry(body, []byte{byte(structs.IgnoreUnknownTypeFlag | 99), 0x80})
		}
	}
	res, ok := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: structs.BatchEntry(body, false)}).(BatchResults)
	if !ok || len(res) != 3 || isErr(res[0]) || res[1] != nil || isErr(res[2]) {
		t.Fatalf("answers %v, want a registration, nil, a registration", res)
	}
	for _, id := range []string{"a", "b"} {
		if j, _ := f.State().JobByID(nil, "default", id); j == nil {
			t.Fatalf("job %s not applied", id)
		}
	}
}

// TestDamagedBatchEntryStopsTheServer: a batch entry that does not split
// is damage, not something to skip.
func TestDamagedBatchEntryStopsTheServer(t *testing.T) {
	reg, _ := structs.Encode(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: testJob("web", 1)})
	body := structs.AppendBatchEntry(nil, reg)
	for name, data := range map[string][]byte{
		"truncated":    structs.BatchEntry(body[:len(body)-1], false),
		"nested":       structs.BatchEntry(structs.AppendBatchEntry(nil, structs.BatchEntry(body, false)), false),
		"unknown type": structs.BatchEntry(structs.AppendBatchEntry(nil, []byte{99, 0x80}), false),
	} {
		t.Run(name, func(t *testing.T) {
			f := New(hclog.NewNullLogger())
			defer func() {
				msg := fmt.Sprint(recover())
				if !strings.Contains(msg, "damaged") && !strings.Contains(msg, "unknown type") {
					t.Fatalf("applied a damaged batch entry: panic %q, want one that says the log is damaged or needs an upgrade", msg)
				}
			}()
			f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
		})
	}
}

// BenchmarkApplyJobRegisterBatch64 is the cost per entry when raft hands
// the FSM 64 committed entries at once (many concurrent writers).
func BenchmarkApplyJobRegisterBatch64(b *testing.B) {
	f := New(hclog.NewNullLogger())
	logs := make([]*raft.Log, b.N)
	for i := range logs {
		j := testJob(fmt.Sprintf("job-%07d", i), 3)
		ev := &structs.Evaluation{ID: structs.GenerateUUID(), Namespace: "default", JobID: j.ID, Status: "pending", Type: "service", Priority: 50}
		buf, err := structs.Encode(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: j, Eval: ev, SubmitTime: 1})
		if err != nil {
			b.Fatal(err)
		}
		logs[i] = &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: buf}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 64 {
		for _, r := range f.ApplyBatch(logs[i:min(i+64, b.N)]) {
			if isErr(r) {
				b.Fatal(r)
			}
		}
	}
}

// wantOneFailure fails t unless exactly one of results is an error: the
// deregistration of a job that does not exist.
func wantOneFailure(t *testing.T, results []any) {
	t.Helper()
	failed := 0
	for _, r := range results {
		if isErr(r) {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d entries failed, want exactly the deregister of the missing job", failed)
	}
}

func isErr(res any) bool {
	err, ok := res.(error)
	return ok && err != nil
}

// TestEnforceIndexIsCheckedWhereApplied: of two check-and-set registrations
// made against the same index, exactly one wins, even in one batch.
func TestEnforceIndexIsCheckedWhereApplied(t *testing.T) {
	f := New(hclog.NewNullLogger())
	res := apply(t, f, 1, structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: testJob("web", 1), EnforceIndex: true})
	first, ok := res.(*RegisterResult)
	if !ok || first.JobModifyIndex != 1 {
		t.Fatalf("first register = %v, want JobModifyIndex 1", res)
	}
	var logs []*raft.Log
	for i, count := range []int{2, 3} {
		buf, _ := structs.Encode(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: testJob("web", count), EnforceIndex: true, JobModifyIndex: 1})
		logs = append(logs, &raft.Log{Index: uint64(2 + i), Type: raft.LogCommand, Data: buf})
	}
	results := f.ApplyBatch(logs)
	if isErr(results[0]) || !isErr(results[1]) || !errors.Is(results[1].(error), structs.ErrIndexMismatch) {
		t.Fatalf("results = %v, want the first to win and the second to fail with an index mismatch", results)
	}
	if j, _ := f.State().JobByID(nil, "default", "web"); j.TaskGroups[0].Count != 2 {
		t.Fatalf("count = %d, want 2 (the winner's)", j.TaskGroups[0].Count)
	}
}

// TestPlanResultsShareTheJob: a plan entry carries its job once; the
// allocations it places point at the stored job version, and stops keep
// the job they ran.
func TestPlanResultsShareTheJob(t *testing.T) {
	f := New(hclog.NewNullLogger())
	job := testJob("web", 2)
	apply(t, f, 1, structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job})
	stored, _ := f.State().JobByID(nil, "default", "web")
	alloc := func(name string) *structs.Allocation {
		return &structs.Allocation{ID: structs.GenerateUUID(), Namespace: "default", JobID: "web", TaskGroup: "web",
			Name: name, NodeID: "n1", DesiredStatus: structs.AllocDesiredStatusRun, ClientStatus: structs.AllocClientStatusPending}
	}
	a0, a1 := alloc("web.web[0]"), alloc("web.web[1]")
	sent := stored.Copy()
	if res := apply(t, f, 2, structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{
		EvalID: "e1", Job: sent, Allocs: []*structs.Allocation{a0, a1}}); isErr(res) {
		t.Fatal(res)
	}
	got0, _ := f.State().AllocByID(nil, a0.ID)
	got1, _ := f.State().AllocByID(nil, a1.ID)
	if got0 == nil || got1 == nil || got0.Job != stored || got1.Job != stored {
		t.Fatalf("allocations' jobs %p %p, want the stored job %p", jobOf(got0), jobOf(got1), stored)
	}
	stop := *a0
	stop.DesiredStatus = structs.AllocDesiredStatusStop
	if res := apply(t, f, 3, structs.ApplyPlanResultsRequestType, &structs.ApplyPlanResultsRequest{
		EvalID: "e2", Job: sent, Allocs: []*structs.Allocation{&stop}}); isErr(res) {
		t.Fatal(res)
	}
	if got, _ := f.State().AllocByID(nil, a0.ID); got.Job == nil || got.DesiredStatus != structs.AllocDesiredStatusStop {
		t.Fatalf("stopped allocation: job %p status %s, want its job kept and status stop", got.Job, got.DesiredStatus)
	}
}

// A large plan entry is written compressed; it applies as the same entry
// uncompressed does, and a damaged one stops the server with the index.
func TestCompressedPlanEntry(t *testing.T) {
	plan := func() *structs.ApplyPlanResultsRequest {
		req := &structs.ApplyPlanResultsRequest{EvalID: "e1", Job: testJob("web", 60)}
		for i := range 60 {
			req.Allocs = append(req.Allocs, &structs.Allocation{ID: structs.GenerateUUID(), Namespace: "default", JobID: "web",
				TaskGroup: "web", Name: fmt.Sprintf("web.web[%d]", i), NodeID: structs.GenerateUUID(),
				DesiredStatus: structs.AllocDesiredStatusRun, ClientStatus: structs.AllocClientStatusPending})
		}
		return req
	}
	req := plan()
	entry, err := structs.EncodeEntry(structs.ApplyPlanResultsRequestType, req, true)
	if err != nil || structs.MessageType(entry[0]) != structs.CompressedEntryType {
		t.Fatalf("a plan of 60 placements was not compressed (type %d, err %v)", entry[0], err)
	}
	compressed, plain := New(hclog.NewNullLogger()), New(hclog.NewNullLogger())
	for _, f := range []*FSM{compressed, plain} {
		apply(t, f, 1, structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: testJob("web", 60)})
	}
	if res := compressed.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: entry}); isErr(res) {
		t.Fatal(res)
	}
	if res := applyPlain(t, plain, 2, structs.ApplyPlanResultsRequestType, req); isErr(res) {
		t.Fatal(res)
	}
	got, _ := compressed.State().AllocsByJob(nil, "default", "web", true)
	want, _ := plain.State().AllocsByJob(nil, "default", "web", true)
	if len(got) != 60 || !reflect.DeepEqual(got, want) {
		t.Fatalf("compressed entry stored %d allocations, the plain one %d (or they differ)", len(got), len(want))
	}

	entry[len(entry)-3] ^= 0xff
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmtAny(r), "raft log entry 3") {
			t.Fatalf("damaged compressed entry: recover() = %v, want a panic naming entry 3", r)
		}
	}()
	compressed.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: entry})
}

func jobOf(a *structs.Allocation) *structs.Job {
	if a == nil {
		return nil
	}
	return a.Job
}
