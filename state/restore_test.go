package state

import (
	"reflect"
	"testing"
	"time"

	"github.com/skiffhq/skiff/structs"
)

// populate writes a little of everything, through the write methods.
func populate(t *testing.T) *Store {
	t.Helper()
	s := New()
	must(t, s.UpsertNode(1, testNode("node-a")))
	must(t, s.UpsertNode(2, testNode("node-b")))
	must(t, s.UpdateNodeStatus(3, "node-b", structs.NodeStatusDown, 1700000000))
	for i, key := range []structs.NamespacedID{{Namespace: "default", ID: "web"}, {Namespace: "prod", ID: "api"}} {
		base := uint64(10 * (i + 1))
		must(t, s.UpsertJob(base, testJob(key.Namespace, key.ID)))
		changed := testJob(key.Namespace, key.ID)
		changed.TaskGroups[0].Count = 4
		must(t, s.UpsertJob(base+1, changed))
		must(t, s.UpsertEvals(base+2, []*structs.Evaluation{
			testEval(key.Namespace, key.ID, key.ID+"-eval", structs.EvalStatusPending),
		}))
		job := getJob(t, s, key.Namespace, key.ID)
		a1, a2 := testAlloc(job, key.ID+"-alloc-1", "node-a"), testAlloc(job, key.ID+"-alloc-2", "node-b")
		a1.DeploymentID = key.ID + "-deploy"
		a1.EvalID = key.ID + "-eval" // the evaluation stored above
		a1.DeploymentStatus = &structs.AllocDeploymentStatus{Canary: true}
		must(t, s.UpsertAllocs(base+3, []*structs.Allocation{a1, a2}))
		healthy := true
		must(t, s.UpdateAllocsFromClient(base+4, []*structs.Allocation{
			{ID: a1.ID, ClientStatus: structs.AllocClientStatusRunning, DeploymentStatus: &structs.AllocDeploymentStatus{Healthy: &healthy, Timestamp: time.Unix(1700000000, 0).UTC()},
				TaskStates: map[string]*structs.TaskState{"server": {State: "running"}}},
			{ID: a2.ID, ClientStatus: structs.AllocClientStatusFailed},
		}))
		must(t, s.UpsertDeployment(base+5, testDeployment(job, key.ID+"-deploy")))
	}
	return s
}

// roundTrip copies v through the snapshot encoding, as FSM.Restore reads it.
func roundTrip[T any](t *testing.T, v *T) *T {
	t.Helper()
	buf, err := structs.Encode(0, v)
	must(t, err)
	out := new(T)
	must(t, structs.Decode(buf[1:], out))
	return out
}

type tableDump struct {
	name string
	rows func(snap *Snapshot) (any, error)
}

var allTables = []tableDump{
	{TableJobs, func(s *Snapshot) (any, error) { return s.Jobs(nil) }},
	{TableJobVersions, func(s *Snapshot) (any, error) { return s.JobVersions(nil) }},
	{TableJobSummary, func(s *Snapshot) (any, error) { return s.JobSummaries(nil) }},
	{TableEvals, func(s *Snapshot) (any, error) { return s.Evals(nil) }},
	{TableAllocs, func(s *Snapshot) (any, error) { return s.Allocs(nil) }},
	{TableNodes, func(s *Snapshot) (any, error) { return s.Nodes(nil) }},
	{TableDeployments, func(s *Snapshot) (any, error) { return s.Deployments(nil) }},
	{TableIndex, func(s *Snapshot) (any, error) { return s.Indexes() }},
}

// restoreAll loads every row of src into r, each through the encoding.
func restoreAll(t *testing.T, src *Snapshot, r *Restore) {
	t.Helper()
	restore := func(err error) { t.Helper(); must(t, err) }
	jobs, _ := src.Jobs(nil)
	for _, j := range jobs {
		restore(r.JobRestore(roundTrip(t, j)))
	}
	versions, _ := src.JobVersions(nil)
	for _, j := range versions {
		restore(r.JobVersionRestore(roundTrip(t, j)))
	}
	sums, _ := src.JobSummaries(nil)
	for _, s := range sums {
		restore(r.JobSummaryRestore(roundTrip(t, s)))
	}
	evals, _ := src.Evals(nil)
	for _, e := range evals {
		restore(r.EvalRestore(roundTrip(t, e)))
	}
	allocs, _ := src.Allocs(nil)
	for _, a := range allocs {
		restore(r.AllocRestore(roundTrip(t, a)))
	}
	nodes, _ := src.Nodes(nil)
	for _, n := range nodes {
		// Not through the encoding: structs.Node.SecretID is tagged
		// json:"-", which the msgpack codec honours, so it would be lost.
		restore(r.NodeRestore(n.Copy()))
	}
	deps, _ := src.Deployments(nil)
	for _, d := range deps {
		restore(r.DeploymentRestore(roundTrip(t, d)))
	}
	idx, _ := src.Indexes()
	for _, e := range idx {
		restore(r.IndexRestore(roundTrip(t, e)))
	}
}

func TestRestoreRoundTrip(t *testing.T) {
	src := populate(t)
	dst := New()
	r := dst.Restore()
	restoreAll(t, src.Snapshot(), r)

	before := dst.Snapshot()
	for _, tbl := range allTables {
		rows, err := tbl.rows(before)
		must(t, err)
		if n := reflect.ValueOf(rows).Len(); n != 0 {
			t.Errorf("%s: got %d rows visible before Commit, want 0", tbl.name, n)
		}
	}
	must(t, r.Commit())

	want, got := src.Snapshot(), dst.Snapshot()
	for _, tbl := range allTables {
		t.Run(tbl.name, func(t *testing.T) {
			w, err := tbl.rows(want)
			must(t, err)
			g, err := tbl.rows(got)
			must(t, err)
			if reflect.ValueOf(w).Len() == 0 {
				t.Fatalf("source table %s is empty; populate writes nothing to it", tbl.name)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("got rows\n%#v\nwant\n%#v", g, w)
			}
		})
	}

	// The lists of allocations by job, node and deployment were rebuilt.
	checks := []struct {
		name      string
		got, want int
	}{
		{"allocs on node-a", count(dst.AllocsByNode(nil, "node-a")), 2},
		{"terminal allocs on node-b", count(terminal(dst.AllocsByNode(nil, "node-b"))), 2},
		{"allocs of job prod/api", count(dst.AllocsByJob(nil, "prod", "api", false)), 2},
		{"allocs of eval", count(dst.AllocsByEval(nil, "web-eval")), 1},
		{"allocs of deployment", count(dst.AllocsByDeployment(nil, "web-deploy")), 1},
		{"evals of job default/web", count(dst.EvalsByJob(nil, "default", "web")), 1},
		{"versions of default/web", count(dst.JobVersionsByID(nil, "default", "web")), 2},
		{"deployments of prod/api", count(dst.DeploymentsByJobID(nil, "prod", "api")), 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, c.got, c.want)
		}
	}
	if n, _ := dst.NodeBySecretID(nil, "secret-node-b"); n == nil || n.ID != "node-b" {
		t.Errorf("got node %v by secret ID, want node-b", n)
	}
	wantLatest, _ := src.LatestIndex()
	if got, _ := dst.LatestIndex(); got != wantLatest || got == 0 {
		t.Errorf("got latest index %d, want %d", got, wantLatest)
	}

	// Writes continue on the restored store, and its summaries stay exact.
	must(t, dst.UpdateAllocsFromClient(wantLatest+1, []*structs.Allocation{{ID: "web-alloc-1", ClientStatus: structs.AllocClientStatusComplete}}))
	checkSummaries(t, dst, "after a write to the restored store")
}

func TestRestoreAbort(t *testing.T) {
	src := populate(t)
	dst := New()
	r := dst.Restore()
	restoreAll(t, src.Snapshot(), r)
	r.Abort()
	for _, tbl := range allTables {
		rows, err := tbl.rows(dst.Snapshot())
		must(t, err)
		if n := reflect.ValueOf(rows).Len(); n != 0 {
			t.Errorf("%s: got %d rows after Abort, want 0", tbl.name, n)
		}
	}
	must(t, dst.UpsertNode(1, testNode("n1"))) // the write lock was released
}

// terminal keeps the terminal allocations of a read.
func terminal(allocs []*structs.Allocation, err error) ([]*structs.Allocation, error) {
	var out []*structs.Allocation
	for _, a := range allocs {
		if a.TerminalStatus() {
			out = append(out, a)
		}
	}
	return out, err
}

func count[T any](rows []*T, err error) int {
	if err != nil {
		return -1
	}
	return len(rows)
}
