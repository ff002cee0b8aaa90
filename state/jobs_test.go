package state

import (
	"errors"
	"slices"
	"testing"

	"github.com/skiffhq/skiff/structs"
)

func TestUpsertJobVersioning(t *testing.T) {
	type want struct {
		version, createIndex, modifyIndex, jobModifyIndex uint64
		versions                                          []uint64 // tracked, newest first
	}
	tests := []struct {
		name   string
		second func(j *structs.Job) // applied to a fresh copy of the job for the upsert at 20; nil: no second upsert
		want   want
	}{
		{"new job", nil, want{0, 10, 10, 10, []uint64{0}}},
		{"same spec again", func(j *structs.Job) {}, want{0, 10, 20, 10, []uint64{0}}},
		{"only server-managed fields differ", func(j *structs.Job) {
			j.Version, j.Stable, j.Status, j.StatusDescription = 7, true, structs.JobStatusDead, "x"
			j.SubmitTime, j.CreateIndex, j.ModifyIndex, j.JobModifyIndex = 12345, 3, 4, 5
		}, want{0, 10, 20, 10, []uint64{0}}},
		{"nil and empty collections are the same spec", func(j *structs.Job) {
			j.Meta = map[string]string{}
			j.Constraints = []*structs.Constraint{}
			j.TaskGroups[0].Tasks[0].Templates = []*structs.Template{}
		}, want{0, 10, 20, 10, []uint64{0}}},
		{"changed image", func(j *structs.Job) {
			j.TaskGroups[0].Tasks[0].Config["image"] = "nginx:1.28"
		}, want{1, 10, 20, 20, []uint64{1, 0}}},
		{"changed count", func(j *structs.Job) { j.TaskGroups[0].Count = 3 }, want{1, 10, 20, 20, []uint64{1, 0}}},
		{"stop is a new version", func(j *structs.Job) { j.Stop = true }, want{1, 10, 20, 20, []uint64{1, 0}}},
		{"meta added", func(j *structs.Job) { j.Meta = map[string]string{"team": "a"} }, want{1, 10, 20, 20, []uint64{1, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			must(t, s.UpsertJob(10, testJob("default", "web")))
			if tt.second != nil {
				j := testJob("default", "web")
				tt.second(j)
				must(t, s.UpsertJob(20, j))
			}
			got := getJob(t, s, "default", "web")
			if got.Version != tt.want.version {
				t.Errorf("got Version %d, want %d", got.Version, tt.want.version)
			}
			if got.CreateIndex != tt.want.createIndex {
				t.Errorf("got CreateIndex %d, want %d", got.CreateIndex, tt.want.createIndex)
			}
			if got.ModifyIndex != tt.want.modifyIndex {
				t.Errorf("got ModifyIndex %d, want %d", got.ModifyIndex, tt.want.modifyIndex)
			}
			if got.JobModifyIndex != tt.want.jobModifyIndex {
				t.Errorf("got JobModifyIndex %d, want %d", got.JobModifyIndex, tt.want.jobModifyIndex)
			}
			if got.Stable {
				t.Errorf("got Stable true, want false")
			}
			versions, err := s.JobVersionsByID(nil, "default", "web")
			must(t, err)
			gotVersions := []uint64{}
			for _, v := range versions {
				gotVersions = append(gotVersions, v.Version)
			}
			if !slices.Equal(gotVersions, tt.want.versions) {
				t.Errorf("got versions %v, want %v", gotVersions, tt.want.versions)
			}
			wantVersionsIndex := uint64(10)
			if len(tt.want.versions) > 1 {
				wantVersionsIndex = 20
			}
			if idx, _ := s.Index(TableJobVersions); idx != wantVersionsIndex {
				t.Errorf("got job_version index %d, want %d", idx, wantVersionsIndex)
			}
			if idx, _ := s.Index(TableJobs); idx != tt.want.modifyIndex {
				t.Errorf("got jobs index %d, want %d", idx, tt.want.modifyIndex)
			}
		})
	}
}

func TestJobVersionsPrunedToTracked(t *testing.T) {
	s := New()
	other := testJob("other", "web") // same ID in another namespace: kept apart
	must(t, s.UpsertJob(1, other))
	for i := range 8 {
		j := testJob("default", "web")
		j.TaskGroups[0].Count = i + 1 // a new spec each time
		must(t, s.UpsertJob(uint64(10+i), j))
	}
	versions, err := s.JobVersionsByID(nil, "default", "web")
	must(t, err)
	var got []uint64
	for _, v := range versions {
		got = append(got, v.Version)
	}
	if want := []uint64{7, 6, 5, 4, 3, 2}; !slices.Equal(got, want) {
		t.Errorf("got versions %v, want %v", got, want)
	}
	for _, tt := range []struct {
		version uint64
		present bool
	}{{0, false}, {1, false}, {2, true}, {7, true}, {8, false}} {
		j, err := s.JobByIDAndVersion(nil, "default", "web", tt.version)
		must(t, err)
		if (j != nil) != tt.present {
			t.Errorf("version %d: got present %v, want %v", tt.version, j != nil, tt.present)
		}
		if j != nil && j.TaskGroups[0].Count != int(tt.version)+1 {
			t.Errorf("version %d: got count %d, want %d", tt.version, j.TaskGroups[0].Count, tt.version+1)
		}
	}
	all, err := s.JobVersions(nil)
	must(t, err)
	if len(all) != JobTrackedVersions+1 {
		t.Errorf("got %d versions in the table, want %d", len(all), JobTrackedVersions+1)
	}
	if cur := getJob(t, s, "default", "web"); cur.Version != 7 {
		t.Errorf("got current version %d, want 7", cur.Version)
	}
}

func TestUpsertJobCopiesInput(t *testing.T) {
	s := New()
	j := testJob("default", "web")
	must(t, s.UpsertJob(5, j))
	if j.CreateIndex != 0 || j.Status != "" {
		t.Errorf("caller's job changed: got CreateIndex %d, Status %q, want 0, \"\"", j.CreateIndex, j.Status)
	}
	j.TaskGroups[0].Count = 99
	j.TaskGroups[0].Tasks[0].Config["image"] = "evil"
	got := getJob(t, s, "default", "web")
	if got.TaskGroups[0].Count != 2 || got.TaskGroups[0].Tasks[0].Config["image"] != "nginx:1.27" {
		t.Errorf("got stored count %d image %v after changing the caller's job, want 2 nginx:1.27",
			got.TaskGroups[0].Count, got.TaskGroups[0].Tasks[0].Config["image"])
	}
}

func TestDeleteJob(t *testing.T) {
	s := New()
	must(t, s.UpsertJob(10, testJob("default", "web")))
	must(t, s.UpsertJob(11, testJob("default", "api")))
	must(t, s.DeleteJob(20, "default", "web"))

	if j, _ := s.JobByID(nil, "default", "web"); j != nil {
		t.Errorf("got job %s after delete, want none", jobKey(j))
	}
	if v, _ := s.JobVersionsByID(nil, "default", "web"); len(v) != 0 {
		t.Errorf("got %d versions after delete, want 0", len(v))
	}
	if sum, _ := s.JobSummaryByID(nil, "default", "web"); sum != nil {
		t.Errorf("got a summary after delete, want none")
	}
	if j, _ := s.JobByID(nil, "default", "api"); j == nil {
		t.Errorf("got no job api, want it untouched")
	}
	for _, table := range []string{TableJobs, TableJobVersions, TableJobSummary} {
		if idx, _ := s.Index(table); idx != 20 {
			t.Errorf("got %s index %d, want 20", table, idx)
		}
	}
	err := s.DeleteJob(21, "default", "web")
	if !errors.Is(err, structs.ErrNotFound) {
		t.Errorf("delete missing job: got %v, want ErrNotFound", err)
	}
	if idx, _ := s.Index(TableJobs); idx != 20 {
		t.Errorf("got jobs index %d after a failed delete, want 20", idx)
	}
}

func TestJobStatus(t *testing.T) {
	type step struct {
		desc string
		do   func(s *Store, idx uint64, job *structs.Job) error
		want string
	}
	register := func(mut func(*structs.Job)) func(*Store, uint64, *structs.Job) error {
		return func(s *Store, idx uint64, job *structs.Job) error {
			j := job.Copy()
			if mut != nil {
				mut(j)
			}
			return s.UpsertJob(idx, j)
		}
	}
	eval := func(id, status string) func(*Store, uint64, *structs.Job) error {
		return func(s *Store, idx uint64, job *structs.Job) error {
			return s.UpsertEvals(idx, []*structs.Evaluation{testEval(job.Namespace, job.ID, id, status)})
		}
	}
	alloc := func(id, desired string) func(*Store, uint64, *structs.Job) error {
		return func(s *Store, idx uint64, job *structs.Job) error {
			stored, err := s.JobByID(nil, job.Namespace, job.ID)
			if err != nil {
				return err
			}
			a := testAlloc(stored, id, "n1")
			a.DesiredStatus = desired
			return s.UpsertAllocs(idx, []*structs.Allocation{a})
		}
	}
	client := func(id, status string) func(*Store, uint64, *structs.Job) error {
		return func(s *Store, idx uint64, job *structs.Job) error {
			return s.UpdateAllocsFromClient(idx, []*structs.Allocation{{ID: id, ClientStatus: status}})
		}
	}
	gcEval := func(id string) func(*Store, uint64, *structs.Job) error {
		return func(s *Store, idx uint64, job *structs.Job) error { return s.DeleteEvals(idx, []string{id}, nil) }
	}
	const (
		pending = structs.JobStatusPending
		running = structs.JobStatusRunning
		dead    = structs.JobStatusDead
	)
	run, stop := structs.AllocDesiredStatusRun, structs.AllocDesiredStatusStop
	tests := []struct {
		name  string
		job   *structs.Job
		steps []step
	}{
		{"service lifecycle", testJob("default", "web"), []step{
			{"registered", register(nil), pending},
			{"eval pending", eval("e1", structs.EvalStatusPending), pending},
			{"alloc placed", alloc("a1", run), running},
			{"eval complete", eval("e1", structs.EvalStatusComplete), running},
			{"alloc failed", client("a1", structs.AllocClientStatusFailed), dead},
			{"reschedule eval", eval("e2", structs.EvalStatusPending), pending},
			{"replacement placed", alloc("a2", run), running},
			{"job stopped", register(func(j *structs.Job) { j.Stop = true }), running},
			{"alloc told to stop", alloc("a2", stop), dead},
		}},
		{"batch completes", func() *structs.Job {
			j := testJob("default", "report")
			j.Type = structs.JobTypeBatch
			return j
		}(), []step{
			{"registered", register(nil), pending},
			{"eval pending", eval("b1", structs.EvalStatusPending), pending},
			{"alloc running", alloc("ba1", run), running},
			{"eval complete", eval("b1", structs.EvalStatusComplete), running},
			{"alloc complete", client("ba1", structs.AllocClientStatusComplete), dead},
		}},
		{"evaluations garbage collected", testJob("default", "empty"), []step{
			{"registered", register(nil), pending},
			{"eval pending", eval("g1", structs.EvalStatusPending), pending},
			{"eval deleted", gcEval("g1"), dead},
		}},
		{"system job", func() *structs.Job {
			j := testJob("default", "agent")
			j.Type = structs.JobTypeSystem
			return j
		}(), []step{
			{"registered", register(nil), running},
			{"eval pending", eval("s1", structs.EvalStatusPending), running},
			{"stopped", register(func(j *structs.Job) { j.Stop = true }), dead},
		}},
		{"periodic parent", func() *structs.Job {
			j := testJob("default", "cron")
			j.Type = structs.JobTypeBatch
			j.Periodic = &structs.PeriodicConfig{Enabled: true, Spec: "@daily", SpecType: "cron"}
			return j
		}(), []step{
			{"registered", register(nil), running},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			for i, st := range tt.steps {
				idx := uint64(100 + i)
				must(t, st.do(s, idx, tt.job))
				got := getJob(t, s, tt.job.Namespace, tt.job.ID)
				if got.Status != st.want {
					t.Fatalf("step %d (%s): got status %q, want %q", i, st.desc, got.Status, st.want)
				}
			}
		})
	}
}

func TestJobStatusChangeMovesModifyIndex(t *testing.T) {
	s := New()
	job := testJob("default", "web")
	must(t, s.UpsertJob(10, job))
	stored := getJob(t, s, "default", "web")
	must(t, s.UpsertAllocs(11, []*structs.Allocation{testAlloc(stored, "a1", "n1")}))
	got := getJob(t, s, "default", "web")
	if got.Status != structs.JobStatusRunning || got.ModifyIndex != 11 {
		t.Errorf("got status %q ModifyIndex %d, want running 11", got.Status, got.ModifyIndex)
	}
	if got.JobModifyIndex != 10 || got.Version != 0 {
		t.Errorf("got JobModifyIndex %d Version %d, want 10 0", got.JobModifyIndex, got.Version)
	}
	if idx, _ := s.Index(TableJobs); idx != 11 {
		t.Errorf("got jobs index %d, want 11", idx)
	}
	// An alloc write that does not change the status leaves the job alone.
	must(t, s.UpdateAllocsFromClient(12, []*structs.Allocation{{ID: "a1", ClientStatus: structs.AllocClientStatusRunning}}))
	if idx, _ := s.Index(TableJobs); idx != 11 {
		t.Errorf("got jobs index %d after a status-neutral alloc update, want 11", idx)
	}
	if stored.Status != structs.JobStatusPending {
		t.Errorf("a stored job was modified in place: got status %q, want pending", stored.Status)
	}
}

func TestSpecEqual(t *testing.T) {
	tests := []struct {
		name string
		mut  func(j *structs.Job)
		want bool
	}{
		{"identical", func(j *structs.Job) {}, true},
		{"nil vs empty meta", func(j *structs.Job) { j.TaskGroups[0].Meta = map[string]string{} }, true},
		{"env value differs", func(j *structs.Job) { j.TaskGroups[0].Tasks[0].Env["MODE"] = "dev" }, false},
		{"datacenters differ", func(j *structs.Job) { j.Datacenters = []string{"dc2"} }, false},
		{"config value differs", func(j *structs.Job) { j.TaskGroups[0].Tasks[0].Config["init"] = false }, false},
		{"config key added", func(j *structs.Job) { j.TaskGroups[0].Tasks[0].Config["user"] = "nobody" }, false},
		{"nested pointer nil", func(j *structs.Job) { j.TaskGroups[0].RestartPolicy = nil }, false},
		{"payload nil vs empty", func(j *structs.Job) { j.Payload = []byte{} }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testJob("default", "web").Copy()
			a.TaskGroups[0].Meta = nil
			b := a.Copy()
			tt.mut(b)
			if got := specEqual(a, b); got != tt.want {
				t.Errorf("got specEqual %v, want %v", got, tt.want)
			}
		})
	}
}

// Versions are found by a prefix of the (namespace, ID, version) index:
// a job whose ID extends another's ("web-2", "web") keeps its own.
func TestJobVersionsOfPrefixedIDs(t *testing.T) {
	s := New()
	idx := uint64(10)
	for v := range JobTrackedVersions + 2 { // "web" prunes its oldest
		j := testJob("default", "web")
		j.TaskGroups[0].Count = v + 1
		idx++
		must(t, s.UpsertJob(idx, j))
	}
	for v := range 2 {
		j := testJob("default", "web-2")
		j.TaskGroups[0].Count = v + 1
		idx++
		must(t, s.UpsertJob(idx, j))
	}
	count := func(id string) int {
		vs, err := s.JobVersionsByID(nil, "default", id)
		must(t, err)
		for _, v := range vs {
			if v.ID != id {
				t.Fatalf("versions of %s include %s", id, v.ID)
			}
		}
		return len(vs)
	}
	if got := count("web"); got != JobTrackedVersions {
		t.Fatalf("web keeps %d versions, want %d", got, JobTrackedVersions)
	}
	if got := count("web-2"); got != 2 {
		t.Fatalf("web-2 keeps %d versions, want 2", got)
	}
	idx++
	must(t, s.DeleteJob(idx, "default", "web"))
	if got := count("web"); got != 0 {
		t.Fatalf("after purging web: %d versions left", got)
	}
	if got := count("web-2"); got != 2 {
		t.Fatalf("purging web took web-2's versions: %d left, want 2", got)
	}
}

// TestBatchReadsItsOwnWrites: within one batch, a read by ID sees the
// batch's earlier writes, deletes included (reads by ID are answered
// from what the transaction wrote, then the state it started from).
func TestBatchReadsItsOwnWrites(t *testing.T) {
	s := New()
	must(t, s.UpsertJob(1, testJob("default", "web")))
	b := s.Batch()
	defer b.Abort()
	changed := testJob("default", "web")
	changed.Priority = 70
	must(t, b.UpsertJob(2, changed))
	if j, err := b.JobByID("default", "web"); err != nil || j == nil || j.Version != 1 || j.Priority != 70 {
		t.Fatalf("after an update in the batch: %+v %v, want version 1, priority 70", j, err)
	}
	must(t, b.DeleteJob(3, "default", "web"))
	if j, err := b.JobByID("default", "web"); err != nil || j != nil {
		t.Fatalf("after a purge in the batch: %+v %v, want no job", j, err)
	}
	must(t, b.UpsertJob(4, testJob("default", "web")))
	if j, err := b.JobByID("default", "web"); err != nil || j == nil || j.Version != 0 || j.CreateIndex != 4 {
		t.Fatalf("registered again after the purge: %+v %v, want version 0 created at 4", j, err)
	}
	n := testNode("n1")
	must(t, b.UpsertNode(5, n))
	if got, err := b.NodeByID("n1"); err != nil || got == nil || got.CreateIndex != 5 {
		t.Fatalf("node written in the batch: %+v %v", got, err)
	}
	if j, _ := s.JobByID(nil, "default", "web"); j == nil || j.Version != 0 || j.ModifyIndex != 1 {
		t.Fatalf("the store changed before the batch committed: %+v", j)
	}
	must(t, b.Commit())
	if j, _ := s.JobByID(nil, "default", "web"); j == nil || j.CreateIndex != 4 {
		t.Fatalf("after commit: %+v, want the job registered at 4", j)
	}
	if v, _ := s.JobVersionsByID(nil, "default", "web"); len(v) != 1 {
		t.Fatalf("after commit: %d tracked versions, want 1 (the purge dropped the others)", len(v))
	}
}
