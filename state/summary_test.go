package state

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/skiffhq/skiff/structs"
)

// recount counts allocations by group the way the summary is specified,
// independently of the store's code.
func recount(allocs []*structs.Allocation) map[string]structs.TaskGroupSummary {
	out := map[string]structs.TaskGroupSummary{}
	for _, a := range allocs {
		g := out[a.TaskGroup]
		switch a.ClientStatus {
		case structs.AllocClientStatusPending, "":
			if a.DesiredStatus == structs.AllocDesiredStatusRun {
				g.Starting++
			}
		case structs.AllocClientStatusRunning:
			g.Running++
		case structs.AllocClientStatusComplete:
			g.Complete++
		case structs.AllocClientStatusFailed:
			g.Failed++
		case structs.AllocClientStatusLost:
			g.Lost++
		case structs.AllocClientStatusUnknown:
			g.Unknown++
		}
		out[a.TaskGroup] = g
	}
	return nonZero(out)
}

// nonZero drops empty groups and Queued, which allocations do not drive.
func nonZero(m map[string]structs.TaskGroupSummary) map[string]structs.TaskGroupSummary {
	out := map[string]structs.TaskGroupSummary{}
	for k, v := range m {
		v.Queued = 0
		if v != (structs.TaskGroupSummary{}) {
			out[k] = v
		}
	}
	return out
}

// checkSummaries fails unless every job has a summary equal to a recount of
// the allocations of its current incarnation, and no summary is orphaned.
func checkSummaries(t *testing.T, s *Store, when string) {
	t.Helper()
	snap := s.Snapshot()
	jobs, err := snap.Jobs(nil)
	must(t, err)
	sums, err := snap.JobSummaries(nil)
	must(t, err)
	if len(sums) != len(jobs) {
		t.Fatalf("%s: got %d summaries for %d jobs", when, len(sums), len(jobs))
	}
	for _, j := range jobs {
		sum, err := snap.JobSummaryByID(nil, j.Namespace, j.ID)
		must(t, err)
		if sum == nil {
			t.Fatalf("%s: job %s has no summary", when, jobKey(j))
		}
		all, err := snap.AllocsByJob(nil, j.Namespace, j.ID, true)
		must(t, err)
		var current []*structs.Allocation
		for _, a := range all {
			if a.Job.CreateIndex == j.CreateIndex {
				current = append(current, a)
			}
		}
		if got, want := nonZero(sum.Summary), recount(current); !maps.Equal(got, want) {
			t.Fatalf("%s: job %s: got summary %+v, want recount %+v", when, jobKey(j), got, want)
		}
	}
}

// checkAllocLists fails unless the allocations read by job, by node and
// by deployment are those a scan of every allocation finds, in ID order,
// and the store keeps no list for a job, deployment or unregistered node
// without allocations (a registered node keeps an empty one).
func checkAllocLists(t *testing.T, s *Store, when string) {
	t.Helper()
	snap := s.Snapshot()
	all, err := snap.Allocs(nil)
	must(t, err)
	byJob := map[structs.NamespacedID][]string{}
	byNode := map[string][]string{}
	byDeployment := map[string][]string{}
	for _, a := range all { // in ID order
		byJob[structs.NamespacedID{Namespace: a.Namespace, ID: a.JobID}] = append(byJob[structs.NamespacedID{Namespace: a.Namespace, ID: a.JobID}], a.ID)
		byNode[a.NodeID] = append(byNode[a.NodeID], a.ID)
		if a.DeploymentID != "" {
			byDeployment[a.DeploymentID] = append(byDeployment[a.DeploymentID], a.ID)
		}
	}
	ids := func(as []*structs.Allocation, err error) []string {
		t.Helper()
		must(t, err)
		var out []string
		for _, a := range as {
			out = append(out, a.ID)
		}
		return out
	}
	for k, want := range byJob {
		if got := ids(snap.AllocsByJob(nil, k.Namespace, k.ID, true)); !slices.Equal(got, want) {
			t.Fatalf("%s: allocations of job %s: got %v, want %v", when, k, got, want)
		}
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if got := ids(snap.AllocsByNode(nil, n)); !slices.Equal(got, byNode[n]) {
			t.Fatalf("%s: allocations on node %s: got %v, want %v", when, n, got, byNode[n])
		}
	}
	for _, d := range []string{"d1", "d2", "d3"} {
		if got := ids(snap.AllocsByDeployment(nil, d)); !slices.Equal(got, byDeployment[d]) {
			t.Fatalf("%s: allocations of deployment %s: got %v, want %v", when, d, got, byDeployment[d])
		}
	}
	rows, err := list[allocRefs](nil, snap.txn(), TableAllocRefs, indexID, nil)
	must(t, err)
	nodes, err := snap.Nodes(nil)
	must(t, err)
	idle := 0
	for _, n := range nodes {
		if _, ok := byNode[n.ID]; !ok {
			idle++
		}
	}
	if want := len(byJob) + len(byNode) + idle + len(byDeployment); len(rows) != want {
		t.Fatalf("%s: %d allocation lists stored, want %d (one per job, node and deployment with allocations, and per registered node without)", when, len(rows), want)
	}
}

// checkSameAllocs fails unless two stores hold the same versions of the
// same allocations.
func checkSameAllocs(t *testing.T, a, b *Store, when string) {
	t.Helper()
	version := func(s *Store) []string {
		all, err := s.Allocs(nil)
		must(t, err)
		var out []string
		for _, x := range all {
			out = append(out, fmt.Sprintf("%s@%d/%s/%s", x.ID, x.ModifyIndex, x.ClientStatus, x.DeploymentID))
		}
		return out
	}
	if va, vb := version(a), version(b); !slices.Equal(va, vb) {
		t.Fatalf("%s: written one by one the store holds %v, written in batches %v", when, va, vb)
	}
}

func TestSummaryMatchesRecount(t *testing.T) {
	clientStatuses := []string{"", structs.AllocClientStatusPending, structs.AllocClientStatusRunning,
		structs.AllocClientStatusComplete, structs.AllocClientStatusFailed, structs.AllocClientStatusLost,
		structs.AllocClientStatusUnknown}
	desired := []string{structs.AllocDesiredStatusRun, structs.AllocDesiredStatusStop, structs.AllocDesiredStatusEvict}
	keys := []structs.NamespacedID{{Namespace: "default", ID: "web"}, {Namespace: "default", ID: "api"}, {Namespace: "prod", ID: "web"}}
	// Lists here hold tens of allocations: chunks of at most 8 split, and
	// those of one merge.
	setRefChunkMax(t, 8)

	for seed := range 20 {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 99))
			pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
			s := New()
			// mirror gets the same writes through batches of a few
			// writes each, as the FSM makes them.
			mirror := New()
			mb := mirror.Batch()
			copies := func(as []*structs.Allocation) []*structs.Allocation {
				out := make([]*structs.Allocation, len(as))
				for i, a := range as {
					out[i] = a.Copy()
				}
				return out
			}
			idx := uint64(1)
			var oldIncarnations []*structs.Job // jobs as they were before a purge
			for _, k := range keys {
				j := testJob(k.Namespace, k.ID)
				j.TaskGroups = append(j.TaskGroups, &structs.TaskGroup{Name: "worker", Count: 1, Tasks: j.TaskGroups[0].Tasks})
				must(t, s.UpsertJob(idx, j))
				must(t, mb.UpsertJob(idx, j.Copy()))
			}
			var allocIDs []string
			randomAlloc := func() *structs.Allocation {
				existing, err := s.AllocByID(nil, allocIDs[rng.IntN(len(allocIDs))])
				must(t, err)
				return existing
			}
			for step := range 250 {
				idx++
				var desc string
				switch op := rng.IntN(10); {
				case op < 3 || len(allocIDs) == 0: // the plan applier places a batch of allocations
					var batch []*structs.Allocation
					for range 1 + rng.IntN(3) {
						k := keys[rng.IntN(len(keys))]
						job, err := s.JobByID(nil, k.Namespace, k.ID)
						must(t, err)
						a := testAlloc(job, fmt.Sprintf("alloc-%03d", len(allocIDs)), pick([]string{"n1", "n2", "n3"}))
						a.DeploymentID = pick([]string{"", "d1", "d2"})
						a.AllocatedResources = &structs.AllocatedResources{
							Tasks: map[string]*structs.AllocatedTaskResources{"server": {
								Cpu: structs.AllocatedCpuResources{CpuShares: int64(10 + rng.IntN(90))}, Memory: structs.AllocatedMemoryResources{MemoryMB: 64}}},
							Shared: structs.AllocatedSharedResources{Ports: []structs.AllocatedPortMapping{{Label: "http", Value: 20000 + rng.IntN(3)}}}}
						a.TaskGroup = pick([]string{"web", "worker", "gone"})
						a.ClientStatus, a.DesiredStatus = pick(clientStatuses), pick(desired)
						switch r := rng.IntN(4); {
						case r == 0: // the store attaches the job
							a.Job = nil
						case r == 1 && len(oldIncarnations) > 0: // a straggler of a purged job
							old := oldIncarnations[rng.IntN(len(oldIncarnations))]
							a.Namespace, a.JobID, a.Job = old.Namespace, old.ID, old
						}
						allocIDs = append(allocIDs, a.ID)
						batch = append(batch, a)
					}
					desc = fmt.Sprintf("upsert %d new allocs", len(batch))
					must(t, s.UpsertAllocs(idx, batch))
					must(t, mb.UpsertAllocs(idx, copies(batch)))
				case op < 5: // the servers change existing allocations
					var batch []*structs.Allocation
					for range 1 + rng.IntN(3) {
						a := randomAlloc()
						if a == nil {
							continue
						}
						a = a.Copy()
						a.DesiredStatus = pick(desired)
						a.ClientStatus = pick(clientStatuses) // only lost and unknown stick
						if rng.IntN(3) == 0 {
							a.Job = nil
						}
						if rng.IntN(4) == 0 { // a new deployment takes the allocation over
							a.DeploymentID = pick([]string{"", "d1", "d2", "d3"})
						}
						batch = append(batch, a)
					}
					desc = fmt.Sprintf("server update of %d allocs", len(batch))
					must(t, s.UpsertAllocs(idx, batch))
					must(t, mb.UpsertAllocs(idx, copies(batch)))
				case op < 8: // clients report, sometimes twice on one alloc, sometimes on a deleted one
					var batch []*structs.Allocation
					for range 1 + rng.IntN(4) {
						batch = append(batch, &structs.Allocation{ID: allocIDs[rng.IntN(len(allocIDs))], ClientStatus: pick(clientStatuses[1:])})
					}
					desc = fmt.Sprintf("client update of %d allocs", len(batch))
					must(t, s.UpdateAllocsFromClient(idx, batch))
					must(t, mb.UpdateAllocsFromClient(idx, copies(batch)))
				case op == 8: // garbage collection
					gc := []string{allocIDs[rng.IntN(len(allocIDs))], allocIDs[rng.IntN(len(allocIDs))]}
					desc = fmt.Sprintf("delete allocs %v", gc)
					must(t, s.DeleteEvals(idx, nil, gc))
					must(t, mb.DeleteEvals(idx, nil, gc))
				default: // a job changes, or is purged and registered again
					k := keys[rng.IntN(len(keys))]
					job, err := s.JobByID(nil, k.Namespace, k.ID)
					must(t, err)
					if rng.IntN(2) == 0 {
						oldIncarnations = append(oldIncarnations, job)
						must(t, s.DeleteJob(idx, k.Namespace, k.ID))
						must(t, mb.DeleteJob(idx, k.Namespace, k.ID))
						idx++
						desc = "purge and register " + jobKey(job)
						must(t, s.UpsertJob(idx, testJob(k.Namespace, k.ID)))
						must(t, mb.UpsertJob(idx, testJob(k.Namespace, k.ID)))
					} else {
						j := job.Copy()
						j.TaskGroups[0].Count++
						desc = "update " + jobKey(job)
						must(t, s.UpsertJob(idx, j))
						must(t, mb.UpsertJob(idx, j.Copy()))
					}
				}
				when := fmt.Sprintf("step %d (%s)", step, desc)
				checkSummaries(t, s, when)
				checkAllocLists(t, s, when)
				checkUsage(t, s.Snapshot(), []string{"n1", "n2", "n3"})
				if rng.IntN(4) == 0 || step == 249 {
					must(t, mb.Commit())
					mb = mirror.Batch()
					checkAllocLists(t, mirror, when+", batched")
					checkUsage(t, mirror.Snapshot(), []string{"n1", "n2", "n3"})
					checkSameAllocs(t, s, mirror, when)
				}
			}
		})
	}
}

func TestSummaryCounts(t *testing.T) {
	s := New()
	must(t, s.UpsertJob(10, testJob("default", "web")))
	job := getJob(t, s, "default", "web")
	mk := func(id, client, desired string) *structs.Allocation {
		a := testAlloc(job, id, "n1")
		a.ClientStatus, a.DesiredStatus = client, desired
		return a
	}
	run, stop := structs.AllocDesiredStatusRun, structs.AllocDesiredStatusStop
	must(t, s.UpsertAllocs(11, []*structs.Allocation{
		mk("a1", structs.AllocClientStatusPending, run),
		mk("a2", structs.AllocClientStatusPending, stop), // counted nowhere
		mk("a3", structs.AllocClientStatusRunning, run),
		mk("a4", structs.AllocClientStatusFailed, run),
	}))
	must(t, s.UpdateAllocsFromClient(12, []*structs.Allocation{
		{ID: "a1", ClientStatus: structs.AllocClientStatusRunning},
		{ID: "a3", ClientStatus: structs.AllocClientStatusComplete},
		{ID: "missing", ClientStatus: structs.AllocClientStatusRunning},
	}))
	must(t, s.UpsertEvals(13, []*structs.Evaluation{{ID: "e1", Namespace: "default", JobID: "web",
		Status: structs.EvalStatusComplete, QueuedAllocations: map[string]int{"web": 3}}}))

	sum, err := s.JobSummaryByID(nil, "default", "web")
	must(t, err)
	want := structs.TaskGroupSummary{Queued: 3, Running: 1, Complete: 1, Failed: 1}
	if got := sum.Summary["web"]; got != want {
		t.Errorf("got summary %+v, want %+v", got, want)
	}
	if sum.CreateIndex != 10 || sum.ModifyIndex != 13 {
		t.Errorf("got summary CreateIndex %d ModifyIndex %d, want 10 13", sum.CreateIndex, sum.ModifyIndex)
	}
	if idx, _ := s.Index(TableJobSummary); idx != 13 {
		t.Errorf("got job_summary index %d, want 13", idx)
	}
	if got := slices.Sorted(maps.Keys(sum.Summary)); !slices.Equal(got, []string{"web"}) {
		t.Errorf("got summary groups %v, want [web]", got)
	}
}

// TestSnapshotsConsistentUnderWrites reads snapshots while the writer
// changes allocations: in every snapshot the summary must agree with the
// allocations, which it only does if a write is seen whole or not at all.
func TestSnapshotsConsistentUnderWrites(t *testing.T) {
	s := New()
	must(t, s.UpsertJob(1, testJob("default", "web")))
	job := getJob(t, s, "default", "web")
	var allocs []*structs.Allocation
	for i := range 20 {
		allocs = append(allocs, testAlloc(job, fmt.Sprintf("a%02d", i), "n1"))
	}
	must(t, s.UpsertAllocs(2, allocs))

	done := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				snap := s.Snapshot()
				sum, err := snap.JobSummaryByID(nil, "default", "web")
				if err != nil {
					errs <- err
					return
				}
				current, err := snap.AllocsByJob(nil, "default", "web", false)
				if err != nil {
					errs <- err
					return
				}
				if got, want := nonZero(sum.Summary), recount(current); !maps.Equal(got, want) {
					errs <- fmt.Errorf("snapshot at summary index %d: got summary %+v, want recount %+v", sum.ModifyIndex, got, want)
					return
				}
			}
		}()
	}
	statuses := []string{structs.AllocClientStatusRunning, structs.AllocClientStatusFailed, structs.AllocClientStatusComplete}
	for i := range 200 {
		var batch []*structs.Allocation
		for j := range 5 {
			batch = append(batch, &structs.Allocation{ID: allocs[(i*5+j)%len(allocs)].ID, ClientStatus: statuses[(i+j)%len(statuses)]})
		}
		must(t, s.UpdateAllocsFromClient(uint64(3+i), batch))
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
