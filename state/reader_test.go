package state

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/skiffhq/skiff/structs"
)

func TestPrefixLookups(t *testing.T) {
	s := New()
	idx := uint64(1)
	for _, key := range [][2]string{
		{"default", "web"}, {"default", "web-2"}, {"default", "api"},
		{"prod", "web"}, {"prod", "worker"}, {"dev", "z"}, {"dev-eu", "a"},
	} {
		must(t, s.UpsertJob(idx, testJob(key[0], key[1])))
		idx++
	}
	web := getJob(t, s, "default", "web")
	prodWeb := getJob(t, s, "prod", "web")
	must(t, s.UpsertEvals(idx, []*structs.Evaluation{
		testEval("default", "web", "aa11", structs.EvalStatusPending),
		testEval("default", "web", "aa22", structs.EvalStatusPending),
		testEval("prod", "web", "ab33", structs.EvalStatusPending),
	}))
	a1, a2, a3 := testAlloc(web, "ca11", "node-1"), testAlloc(web, "cb22", "node-1"), testAlloc(prodWeb, "ca33", "node-12")
	must(t, s.UpsertAllocs(idx+1, []*structs.Allocation{a1, a2, a3}))
	for _, n := range []string{"node-1", "node-12", "other"} {
		must(t, s.UpsertNode(idx+2, testNode(n)))
	}

	jobIDs := func(js []*structs.Job, err error) []string { must(t, err); return ids(js, jobKey) }
	evalIDs := func(es []*structs.Evaluation, err error) []string {
		must(t, err)
		return ids(es, func(e *structs.Evaluation) string { return e.ID })
	}
	allocIDs := func(as []*structs.Allocation, err error) []string {
		must(t, err)
		return ids(as, func(a *structs.Allocation) string { return a.ID })
	}
	nodeIDs := func(ns []*structs.Node, err error) []string {
		must(t, err)
		return ids(ns, func(n *structs.Node) string { return n.ID })
	}
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"jobs default/web", jobIDs(s.JobsByIDPrefix(nil, "default", "web")), []string{"default/web", "default/web-2"}},
		{"jobs default/", jobIDs(s.JobsByIDPrefix(nil, "default", "")), []string{"default/api", "default/web", "default/web-2"}},
		{"jobs prod/web", jobIDs(s.JobsByIDPrefix(nil, "prod", "web")), []string{"prod/web"}},
		{"jobs */w", jobIDs(s.JobsByIDPrefix(nil, AllNamespaces, "w")), []string{"default/web", "default/web-2", "prod/web", "prod/worker"}},
		{"jobs */ sorted by namespace then ID", jobIDs(s.JobsByIDPrefix(nil, AllNamespaces, "")),
			[]string{"default/api", "default/web", "default/web-2", "dev/z", "dev-eu/a", "prod/web", "prod/worker"}},
		{"jobs dev/ (not dev-eu)", jobIDs(s.JobsByIDPrefix(nil, "dev", "")), []string{"dev/z"}},
		{"jobs unknown namespace", jobIDs(s.JobsByIDPrefix(nil, "nope", "")), []string{}},
		{"evals default/aa", evalIDs(s.EvalsByIDPrefix(nil, "default", "aa")), []string{"aa11", "aa22"}},
		{"evals default/a", evalIDs(s.EvalsByIDPrefix(nil, "default", "a")), []string{"aa11", "aa22"}},
		{"evals */a", evalIDs(s.EvalsByIDPrefix(nil, AllNamespaces, "a")), []string{"aa11", "aa22", "ab33"}},
		{"evals prod/aa", evalIDs(s.EvalsByIDPrefix(nil, "prod", "aa")), []string{}},
		{"allocs */ca", allocIDs(s.AllocsByIDPrefix(nil, AllNamespaces, "ca")), []string{"ca11", "ca33"}},
		{"allocs default/c", allocIDs(s.AllocsByIDPrefix(nil, "default", "c")), []string{"ca11", "cb22"}},
		{"allocs on node-1 (not node-12)", allocIDs(s.AllocsByNode(nil, "node-1")), []string{"ca11", "cb22"}},
		{"nodes node-1", nodeIDs(s.NodesByIDPrefix(nil, "node-1")), []string{"node-1", "node-12"}},
		{"nodes o", nodeIDs(s.NodesByIDPrefix(nil, "o")), []string{"other"}},
		{"evals of job default/web (not web-2)", evalIDs(s.EvalsByJob(nil, "default", "web")), []string{"aa11", "aa22"}},
	}
	for _, tt := range tests {
		if !slices.Equal(tt.got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestCopyOnWrite(t *testing.T) {
	s := New()
	must(t, s.UpsertJob(10, testJob("default", "web")))
	job := getJob(t, s, "default", "web")
	in := testAlloc(job, "a1", "n1")
	must(t, s.UpsertAllocs(11, []*structs.Allocation{in}))
	must(t, s.UpsertNode(12, testNode("n1")))

	// The caller's input is not kept.
	in.DesiredStatus = structs.AllocDesiredStatusEvict
	alloc, err := s.AllocByID(nil, "a1")
	must(t, err)
	if alloc.DesiredStatus != structs.AllocDesiredStatusRun || in.CreateIndex != 0 {
		t.Errorf("got stored DesiredStatus %q, caller's CreateIndex %d; want run, 0", alloc.DesiredStatus, in.CreateIndex)
	}

	// Changing a copy of what a read returned does not change the store.
	c := alloc.Copy()
	c.ClientStatus = structs.AllocClientStatusFailed
	jc := job.Copy()
	jc.TaskGroups[0].Name = "changed"
	if again, _ := s.AllocByID(nil, "a1"); again.ClientStatus != structs.AllocClientStatusPending {
		t.Errorf("got stored ClientStatus %q after changing a copy, want pending", again.ClientStatus)
	}
	if again := getJob(t, s, "default", "web"); again.TaskGroups[0].Name != "web" {
		t.Errorf("got stored group %q after changing a copy, want web", again.TaskGroups[0].Name)
	}

	// Writes replace rows; objects already read and snapshots do not change.
	snap := s.Snapshot()
	node, _ := s.NodeByID(nil, "n1")
	must(t, s.UpdateAllocsFromClient(20, []*structs.Allocation{{ID: "a1", ClientStatus: structs.AllocClientStatusRunning}}))
	must(t, s.UpdateNodeStatus(21, "n1", structs.NodeStatusDown, 5))
	if alloc.ClientStatus != structs.AllocClientStatusPending || alloc.ModifyIndex != 11 {
		t.Errorf("an alloc already read changed: got %q at %d, want pending at 11", alloc.ClientStatus, alloc.ModifyIndex)
	}
	if node.Status != structs.NodeStatusReady {
		t.Errorf("a node already read changed: got %q, want ready", node.Status)
	}
	if job.Status != structs.JobStatusPending { // read before the alloc made the job running
		t.Errorf("a job already read changed: got status %q, want pending", job.Status)
	}
	if now := getJob(t, s, "default", "web"); now.Status != structs.JobStatusRunning {
		t.Errorf("store: got job status %q, want running", now.Status)
	}
	if a, _ := snap.AllocByID(nil, "a1"); a.ClientStatus != structs.AllocClientStatusPending {
		t.Errorf("snapshot: got ClientStatus %q, want pending", a.ClientStatus)
	}
	if idx, _ := snap.LatestIndex(); idx != 12 {
		t.Errorf("snapshot: got latest index %d, want 12", idx)
	}
	if a, _ := s.AllocByID(nil, "a1"); a.ClientStatus != structs.AllocClientStatusRunning {
		t.Errorf("store: got ClientStatus %q, want running", a.ClientStatus)
	}
}

func TestUpsertAllocsKeepsClientFields(t *testing.T) {
	setup := func(t *testing.T) (*Store, *structs.Job) {
		s := New()
		must(t, s.UpsertJob(10, testJob("default", "web")))
		job := getJob(t, s, "default", "web")
		a := testAlloc(job, "a1", "n1")
		a.DeploymentStatus = &structs.AllocDeploymentStatus{Canary: true}
		must(t, s.UpsertAllocs(11, []*structs.Allocation{a}))
		healthy := true
		must(t, s.UpdateAllocsFromClient(12, []*structs.Allocation{{
			ID: "a1", ClientStatus: structs.AllocClientStatusRunning, ClientDescription: "all tasks running",
			TaskStates: map[string]*structs.TaskState{"server": {State: "running"}}, ModifyTime: 777,
			DeploymentStatus: &structs.AllocDeploymentStatus{Healthy: &healthy},
		}}))
		return s, job
	}
	tests := []struct {
		name       string
		update     func(a *structs.Allocation)
		wantClient string
		wantDesc   string
	}{
		{"server stop keeps what the client reported", func(a *structs.Allocation) {
			a.ClientStatus, a.ClientDescription = structs.AllocClientStatusPending, ""
			a.DesiredStatus = structs.AllocDesiredStatusStop
		}, structs.AllocClientStatusRunning, "all tasks running"},
		{"server marks lost", func(a *structs.Allocation) {
			a.ClientStatus, a.ClientDescription = structs.AllocClientStatusLost, "node down"
			a.DesiredStatus = structs.AllocDesiredStatusStop
		}, structs.AllocClientStatusLost, "node down"},
		{"server marks unknown", func(a *structs.Allocation) {
			a.ClientStatus, a.ClientDescription = structs.AllocClientStatusUnknown, "node disconnected"
		}, structs.AllocClientStatusUnknown, "node disconnected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, job := setup(t)
			u := testAlloc(job, "a1", "n1")
			u.Job, u.TaskStates, u.DeploymentStatus = nil, nil, nil
			tt.update(u)
			must(t, s.UpsertAllocs(20, []*structs.Allocation{u}))
			got, err := s.AllocByID(nil, "a1")
			must(t, err)
			if got.ClientStatus != tt.wantClient || got.ClientDescription != tt.wantDesc {
				t.Errorf("got client status %q (%q), want %q (%q)", got.ClientStatus, got.ClientDescription, tt.wantClient, tt.wantDesc)
			}
			if got.DesiredStatus != u.DesiredStatus {
				t.Errorf("got desired status %q, want %q", got.DesiredStatus, u.DesiredStatus)
			}
			if got.TaskStates["server"] == nil || got.Job == nil {
				t.Errorf("got TaskStates %v Job %v, want the stored ones kept", got.TaskStates, got.Job)
			}
			if ds := got.DeploymentStatus; ds == nil || !ds.Canary || ds.Healthy == nil || !*ds.Healthy {
				t.Errorf("got DeploymentStatus %+v, want the stored canary and health kept", ds)
			}
			if got.CreateIndex != 11 || got.ModifyIndex != 20 || got.AllocModifyIndex != 20 {
				t.Errorf("got indexes create %d modify %d alloc-modify %d, want 11 20 20", got.CreateIndex, got.ModifyIndex, got.AllocModifyIndex)
			}
		})
	}
}

func TestUpdateAllocsFromClientTakesOnlyClientFields(t *testing.T) {
	s := New()
	must(t, s.UpsertJob(10, testJob("default", "web")))
	a := testAlloc(getJob(t, s, "default", "web"), "a1", "n1")
	a.DeploymentStatus = &structs.AllocDeploymentStatus{Canary: true}
	must(t, s.UpsertAllocs(11, []*structs.Allocation{a}))
	healthy := false
	must(t, s.UpdateAllocsFromClient(12, []*structs.Allocation{{
		ID: "a1", ClientStatus: structs.AllocClientStatusFailed, ClientDescription: "oom",
		ModifyTime: 99, TaskStates: map[string]*structs.TaskState{"server": {State: "dead", Failed: true}},
		// Not the client's to change:
		DesiredStatus: structs.AllocDesiredStatusStop, NodeID: "elsewhere", JobID: "other",
		TaskGroup: "other", CreateIndex: 1, AllocModifyIndex: 1,
		DeploymentStatus: &structs.AllocDeploymentStatus{Healthy: &healthy, Canary: false},
	}}))
	got, err := s.AllocByID(nil, "a1")
	must(t, err)
	checks := []struct {
		name      string
		got, want any
	}{
		{"ClientStatus", got.ClientStatus, structs.AllocClientStatusFailed},
		{"ClientDescription", got.ClientDescription, "oom"},
		{"ModifyTime", got.ModifyTime, int64(99)},
		{"task failed", got.TaskStates["server"] != nil && got.TaskStates["server"].Failed, true},
		{"DesiredStatus", got.DesiredStatus, structs.AllocDesiredStatusRun},
		{"NodeID", got.NodeID, "n1"},
		{"JobID", got.JobID, "web"},
		{"TaskGroup", got.TaskGroup, "web"},
		{"CreateIndex", got.CreateIndex, uint64(11)},
		{"AllocModifyIndex", got.AllocModifyIndex, uint64(11)},
		{"ModifyIndex", got.ModifyIndex, uint64(12)},
		{"Canary", got.DeploymentStatus.Canary, true},
		{"Healthy set", got.DeploymentStatus.Healthy != nil && !*got.DeploymentStatus.Healthy, true},
		{"health ModifyIndex", got.DeploymentStatus.ModifyIndex, uint64(12)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	healthy = true // the store must not share the caller's pointer
	if *got.DeploymentStatus.Healthy {
		t.Errorf("got the caller's Healthy pointer stored, want a copy")
	}
}

func TestUpsertAllocsErrors(t *testing.T) {
	s := New()
	must(t, s.UpsertJob(10, testJob("default", "web")))
	job := getJob(t, s, "default", "web")
	orphan := testAlloc(job, "a2", "n1")
	orphan.JobID, orphan.Job = "missing", nil
	tests := []struct {
		name  string
		alloc *structs.Allocation
	}{
		{"no ID", testAlloc(job, "", "n1")},
		{"no namespace", func() *structs.Allocation { a := testAlloc(job, "a3", "n1"); a.Namespace = ""; return a }()},
		{"no job anywhere", orphan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok := testAlloc(job, "a1", "n1")
			if err := s.UpsertAllocs(20, []*structs.Allocation{ok, tt.alloc}); err == nil {
				t.Fatalf("got no error, want one")
			}
			if a, _ := s.AllocByID(nil, "a1"); a != nil {
				t.Errorf("got alloc a1 written by a failed batch, want none")
			}
			if idx, _ := s.Index(TableAllocs); idx != 0 {
				t.Errorf("got allocs index %d after a failed write, want 0", idx)
			}
		})
	}
}

func TestAllocsByJobIncarnation(t *testing.T) {
	s := New()
	must(t, s.UpsertJob(10, testJob("default", "web")))
	must(t, s.UpsertAllocs(11, []*structs.Allocation{testAlloc(getJob(t, s, "default", "web"), "old", "n1")}))
	must(t, s.DeleteJob(12, "default", "web"))
	if got := count(s.AllocsByJob(nil, "default", "web", false)); got != 1 {
		t.Errorf("job gone: got %d allocs, want 1", got)
	}
	must(t, s.UpsertJob(13, testJob("default", "web")))
	must(t, s.UpsertAllocs(14, []*structs.Allocation{testAlloc(getJob(t, s, "default", "web"), "new", "n1")}))
	tests := []struct {
		any  bool
		want []string
	}{{false, []string{"new"}}, {true, []string{"new", "old"}}}
	for _, tt := range tests {
		as, err := s.AllocsByJob(nil, "default", "web", tt.any)
		must(t, err)
		if got := ids(as, func(a *structs.Allocation) string { return a.ID }); !slices.Equal(got, tt.want) {
			t.Errorf("anyCreateIndex %v: got %v, want %v", tt.any, got, tt.want)
		}
	}
	sum, _ := s.JobSummaryByID(nil, "default", "web")
	if got := sum.Summary["web"].Starting; got != 1 {
		t.Errorf("got %d starting in the new job's summary, want 1 (the old job's alloc left out)", got)
	}
}

func TestNodes(t *testing.T) {
	s := New()
	must(t, s.UpsertNode(10, testNode("n1")))
	n := testNode("n1")
	n.Name = "renamed"
	must(t, s.UpsertNode(20, n))
	must(t, s.UpsertNode(21, testNode("n2")))
	got, err := s.NodeByID(nil, "n1")
	must(t, err)
	if got.Name != "renamed" || got.CreateIndex != 10 || got.ModifyIndex != 20 {
		t.Errorf("got node %q create %d modify %d, want renamed 10 20", got.Name, got.CreateIndex, got.ModifyIndex)
	}
	must(t, s.UpdateNodeStatus(30, "n1", structs.NodeStatusDown, 1234))
	got, _ = s.NodeByID(nil, "n1")
	if got.Status != structs.NodeStatusDown || got.StatusUpdatedAt != 1234 || got.ModifyIndex != 30 || got.Name != "renamed" {
		t.Errorf("got %q at %d modify %d name %q, want down 1234 30 renamed", got.Status, got.StatusUpdatedAt, got.ModifyIndex, got.Name)
	}
	if bySecret, _ := s.NodeBySecretID(nil, "secret-n2"); bySecret == nil || bySecret.ID != "n2" {
		t.Errorf("got %v by secret ID, want n2", bySecret)
	}
	if err := s.UpdateNodeStatus(31, "nope", structs.NodeStatusDown, 1); !errors.Is(err, structs.ErrNotFound) {
		t.Errorf("status of a missing node: got %v, want ErrNotFound", err)
	}
	if err := s.DeleteNodes(32, []string{"n1", "nope"}); !errors.Is(err, structs.ErrNotFound) {
		t.Errorf("delete with a missing node: got %v, want ErrNotFound", err)
	}
	if got, _ := s.NodeByID(nil, "n1"); got == nil {
		t.Errorf("got n1 deleted by a failed batch, want it kept")
	}
	must(t, s.DeleteNodes(33, []string{"n1", "n2"}))
	if got := count(s.Nodes(nil)); got != 0 {
		t.Errorf("got %d nodes after delete, want 0", got)
	}
	if idx, _ := s.Index(TableNodes); idx != 33 {
		t.Errorf("got nodes index %d, want 33", idx)
	}
}

func TestDeployments(t *testing.T) {
	s := New()
	must(t, s.UpsertJob(1, testJob("default", "web")))
	job := getJob(t, s, "default", "web")
	// IDs sort against creation order, so that order by ID is not enough.
	must(t, s.UpsertDeployment(10, testDeployment(job, "d-z")))
	must(t, s.UpsertDeployment(20, testDeployment(job, "d-a")))
	must(t, s.UpsertDeployment(30, testDeployment(testJob("default", "web-2"), "d-other")))
	d := testDeployment(job, "d-z")
	d.Status = structs.DeploymentStatusFailed
	must(t, s.UpsertDeployment(40, d))

	ds, err := s.DeploymentsByJobID(nil, "default", "web")
	must(t, err)
	if got := ids(ds, func(d *structs.Deployment) string { return d.ID }); !slices.Equal(got, []string{"d-a", "d-z"}) {
		t.Errorf("got deployments %v, want [d-a d-z] (newest first)", got)
	}
	latest, err := s.LatestDeploymentByJobID(nil, "default", "web")
	must(t, err)
	if latest == nil || latest.ID != "d-a" {
		t.Errorf("got latest %v, want d-a", latest)
	}
	got, _ := s.DeploymentByID(nil, "d-z")
	if got.CreateIndex != 10 || got.ModifyIndex != 40 || got.Status != structs.DeploymentStatusFailed {
		t.Errorf("got create %d modify %d status %q, want 10 40 failed", got.CreateIndex, got.ModifyIndex, got.Status)
	}
	if none, _ := s.LatestDeploymentByJobID(nil, "default", "nope"); none != nil {
		t.Errorf("got %v for a job without deployments, want nil", none)
	}
	active, err := s.ActiveDeployments(nil)
	must(t, err)
	if got := ids(active, func(d *structs.Deployment) string { return d.ID }); !slices.Equal(got, []string{"d-a", "d-other"}) {
		t.Errorf("got active deployments %v, want [d-a d-other] (d-z failed)", got)
	}
}

func TestIndexes(t *testing.T) {
	s := New()
	if idx, _ := s.LatestIndex(); idx != 0 {
		t.Errorf("empty store: got latest index %d, want 0", idx)
	}
	if idx, _ := s.MaxIndex(TableJobs); idx != 1 {
		t.Errorf("empty store: got MaxIndex %d, want 1", idx)
	}
	must(t, s.UpsertNode(5, testNode("n1")))
	must(t, s.UpsertJob(7, testJob("default", "web")))
	must(t, s.UpsertEvals(9, []*structs.Evaluation{testEval("default", "web", "e1", structs.EvalStatusPending)}))
	tests := []struct {
		table string
		want  uint64
	}{
		{TableNodes, 5}, {TableJobs, 7}, {TableJobVersions, 7}, {TableJobSummary, 7}, {TableEvals, 9},
		{TableAllocs, 0}, {TableDeployments, 0}, {"no-such-table", 0},
	}
	for _, tt := range tests {
		if got, err := s.Index(tt.table); err != nil || got != tt.want {
			t.Errorf("Index(%q): got %d, %v, want %d", tt.table, got, err, tt.want)
		}
	}
	if got, _ := s.LatestIndex(); got != 9 {
		t.Errorf("got latest index %d, want 9", got)
	}
	if got, _ := s.MaxIndex(TableNodes, TableJobs); got != 7 {
		t.Errorf("got MaxIndex(nodes, jobs) %d, want 7", got)
	}
	entries, err := s.Indexes()
	must(t, err)
	keys := ids(entries, func(e *IndexEntry) string { return e.Key })
	if want := []string{TableEvals, TableJobSummary, TableJobVersions, TableJobs, TableNodes}; !slices.Equal(keys, want) {
		t.Errorf("got index keys %v, want %v", keys, want)
	}
}

func TestWriteValidation(t *testing.T) {
	s := New()
	noNS := testJob("default", "web")
	noNS.Namespace = ""
	tests := []struct {
		name string
		err  error
	}{
		{"nil job", s.UpsertJob(1, nil)},
		{"job without namespace", s.UpsertJob(1, noNS)},
		{"eval without ID", s.UpsertEvals(1, []*structs.Evaluation{{Namespace: "default", JobID: "web"}})},
		{"node without ID", s.UpsertNode(1, &structs.Node{})},
		{"deployment without job", s.UpsertDeployment(1, &structs.Deployment{ID: "d1", Namespace: "default"})},
	}
	for _, tt := range tests {
		if tt.err == nil {
			t.Errorf("%s: got no error, want one", tt.name)
		}
	}
	if idx, _ := s.LatestIndex(); idx != 0 {
		t.Errorf("got latest index %d after failed writes, want 0", idx)
	}
}

// TestEligibilityAndDrainKeepStatusTime: StatusUpdatedAt is when the
// status last changed (a disconnected node's lost_after counts from it);
// an eligibility change or a drain must not move it.
func TestEligibilityAndDrainKeepStatusTime(t *testing.T) {
	s := New()
	must(t, s.UpsertNode(10, testNode("n1")))
	must(t, s.UpdateNodeStatus(11, "n1", structs.NodeStatusDisconnected, 1000))
	must(t, s.UpdateNodeEligibility(12, "n1", structs.NodeSchedulingIneligible))
	must(t, s.UpdateNodeDrain(13, "n1", &structs.DrainStrategy{Deadline: time.Minute}, false))
	must(t, s.UpdateNodeDrain(14, "n1", nil, true))
	got, _ := s.NodeByID(nil, "n1")
	if got.StatusUpdatedAt != 1000 || got.ModifyIndex != 14 || got.SchedulingEligibility != structs.NodeSchedulingEligible {
		t.Errorf("after eligibility and drain changes: status time %d modify %d eligibility %s; want 1000 14 eligible",
			got.StatusUpdatedAt, got.ModifyIndex, got.SchedulingEligibility)
	}
}

// AllocsByNode merges a node's live and terminal allocations in ID order,
// and a watch on it fires when one of them changes.
func TestAllocsByNodeMergesLiveAndTerminal(t *testing.T) {
	s := New()
	job := testJob("default", "web")
	must(t, s.UpsertJob(9, job))
	var allocs []*structs.Allocation
	for i, id := range []string{"a1", "b2", "c3", "d4", "e5"} {
		a := testAlloc(job, id, "n1")
		a.ClientStatus = structs.AllocClientStatusRunning
		if i%2 == 1 {
			a.ClientStatus = structs.AllocClientStatusComplete
		}
		allocs = append(allocs, a)
	}
	allocs = append(allocs, testAlloc(job, "c0", "n2"))
	must(t, s.UpsertAllocs(10, allocs))

	ws := memdb.NewWatchSet()
	got, err := s.AllocsByNode(ws, "n1")
	must(t, err)
	var ids []string
	for _, a := range got {
		ids = append(ids, a.ID)
	}
	if want := []string{"a1", "b2", "c3", "d4", "e5"}; !slices.Equal(ids, want) {
		t.Fatalf("allocs on n1: got %v, want %v", ids, want)
	}
	done := allocs[0].Copy()
	done.ClientStatus = structs.AllocClientStatusFailed
	must(t, s.UpsertAllocs(11, []*structs.Allocation{done}))
	if ws.Watch(time.After(time.Second)) {
		t.Fatal("the watch on n1's allocations did not fire when one of them failed")
	}
}

// The reads of one Snapshot share a memdb read transaction; goroutines
// may read one snapshot at once (run under -race).
func TestSnapshotConcurrentReads(t *testing.T) {
	s := New()
	job := testJob("default", "web")
	must(t, s.UpsertJob(1, job))
	must(t, s.UpsertNode(2, testNode("node-a")))
	stored := getJob(t, s, "default", "web")
	must(t, s.UpsertAllocs(3, []*structs.Allocation{testAlloc(stored, "a1", "node-a"), testAlloc(stored, "a2", "node-a")}))
	snap := s.Snapshot()
	must(t, s.UpsertAllocs(4, []*structs.Allocation{testAlloc(stored, "a3", "node-a")})) // not in snap
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				allocs, err := snap.AllocsByNode(nil, "node-a")
				if err == nil && len(allocs) != 2 {
					err = fmt.Errorf("snapshot sees %d allocations on node-a, want 2", len(allocs))
				}
				if j, e := snap.JobByID(nil, "default", "web"); e != nil || j == nil {
					err = fmt.Errorf("job: %v, %v", j, e)
				}
				if u, e := snap.NodeUsage("node-a"); e != nil || u == nil {
					err = fmt.Errorf("usage: %v, %v", u, e)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// A blocking read of a job's, a node's or a deployment's allocations wakes
// when one of them changes, even if none joins or leaves, and not when an
// allocation of another job, node and deployment changes.
func TestAllocListsWake(t *testing.T) {
	s := New()
	web, api := testJob("default", "web"), testJob("default", "api")
	must(t, s.UpsertJob(9, web))
	must(t, s.UpsertJob(9, api))
	a, b := testAlloc(web, "a1", "n1"), testAlloc(api, "b1", "n2")
	a.DeploymentID, b.DeploymentID = "d1", "d2"
	must(t, s.UpsertAllocs(10, []*structs.Allocation{a, b}))

	reads := map[string]func(memdb.WatchSet) error{
		"job":        func(ws memdb.WatchSet) error { _, err := s.AllocsByJob(ws, "default", "web", false); return err },
		"node":       func(ws memdb.WatchSet) error { _, err := s.AllocsByNode(ws, "n1"); return err },
		"deployment": func(ws memdb.WatchSet) error { _, err := s.AllocsByDeployment(ws, "d1"); return err },
	}
	idx := uint64(11)
	for name, read := range reads {
		ws := memdb.NewWatchSet()
		must(t, read(ws))
		must(t, s.UpdateAllocsFromClient(idx, []*structs.Allocation{{ID: "b1", ClientStatus: structs.AllocClientStatusRunning}}))
		idx++
		if !ws.Watch(time.After(50 * time.Millisecond)) {
			t.Fatalf("%s: the watch fired when another job's allocation changed", name)
		}
		must(t, s.UpdateAllocsFromClient(idx, []*structs.Allocation{{ID: "a1", ClientStatus: structs.AllocClientStatusRunning}}))
		idx++
		if ws.Watch(time.After(time.Second)) {
			t.Fatalf("%s: the watch did not fire when the allocation's client status changed", name)
		}
	}
}

// IDs are keys as they are (no terminator): an ID that is the prefix of
// another is still found alone, and prefix reads find both.
func TestIDKeysThatArePrefixes(t *testing.T) {
	s := New()
	job := testJob("default", "web")
	must(t, s.UpsertJob(9, job))
	must(t, s.UpsertAllocs(10, []*structs.Allocation{testAlloc(job, "a1", "n1"), testAlloc(job, "a10", "n1"), testAlloc(job, "b", "n1")}))
	for id, want := range map[string]bool{"a1": true, "a10": true, "a": false, "a100": false, "": false} {
		a, err := s.AllocByID(nil, id)
		must(t, err)
		if (a != nil) != want || (a != nil && a.ID != id) {
			t.Fatalf("AllocByID(%q) = %v, want found=%v", id, a, want)
		}
	}
	for prefix, want := range map[string][]string{"a1": {"a1", "a10"}, "a10": {"a10"}, "": {"a1", "a10", "b"}, "c": nil} {
		got, err := s.AllocsByIDPrefix(nil, "default", prefix)
		must(t, err)
		var ids []string
		for _, a := range got {
			ids = append(ids, a.ID)
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("AllocsByIDPrefix(%q) = %v, want %v", prefix, ids, want)
		}
	}
}
