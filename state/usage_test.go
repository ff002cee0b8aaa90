package state

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/skiffhq/skiff/structs"
)

// TestNodeUsageFollowsAllocations: after any sequence of allocation
// writes (placements, client updates, stops, deletes), each node's usage
// row equals the sum over its live allocations, and a restore rebuilds
// the same rows.
func TestNodeUsageFollowsAllocations(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := New()
	job := &structs.Job{ID: "j", Namespace: "default", Datacenters: []string{"dc1"},
		TaskGroups: []*structs.TaskGroup{{Name: "g", Count: 1, Tasks: []*structs.Task{{Name: "t", Driver: "containerd"}}}}}
	job.Canonicalize()
	if err := s.UpsertJob(1, job); err != nil {
		t.Fatal(err)
	}
	nodes := []string{"n1", "n2", "n3"}
	var ids []string
	index := uint64(1)
	for range 400 {
		index++
		switch op := rng.IntN(4); {
		case op == 0 || len(ids) == 0: // place
			a := &structs.Allocation{ID: structs.GenerateUUID(), Namespace: "default", JobID: "j", TaskGroup: "g",
				NodeID: nodes[rng.IntN(len(nodes))], DesiredStatus: structs.AllocDesiredStatusRun, ClientStatus: structs.AllocClientStatusPending,
				AllocatedResources: &structs.AllocatedResources{
					Tasks: map[string]*structs.AllocatedTaskResources{"t": {
						Cpu: structs.AllocatedCpuResources{CpuShares: int64(10 + rng.IntN(90))}, Memory: structs.AllocatedMemoryResources{MemoryMB: int64(1 + rng.IntN(64))}}},
					Shared: structs.AllocatedSharedResources{DiskMB: int64(rng.IntN(10)),
						Ports: []structs.AllocatedPortMapping{{Label: "http", Value: 20000 + rng.IntN(5)}}}}}
			if err := s.UpsertAllocs(index, []*structs.Allocation{a}); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, a.ID)
		case op == 1: // the client reports
			id := ids[rng.IntN(len(ids))]
			status := []string{structs.AllocClientStatusRunning, structs.AllocClientStatusComplete, structs.AllocClientStatusFailed}[rng.IntN(3)]
			if err := s.UpdateAllocsFromClient(index, []*structs.Allocation{{ID: id, ClientStatus: status}}); err != nil {
				t.Fatal(err)
			}
		case op == 2: // the servers stop it
			a, _ := s.AllocByID(nil, ids[rng.IntN(len(ids))])
			stop := a.Copy()
			stop.DesiredStatus = structs.AllocDesiredStatusStop
			if err := s.UpsertAllocs(index, []*structs.Allocation{stop}); err != nil {
				t.Fatal(err)
			}
		default: // garbage-collected
			i := rng.IntN(len(ids))
			if err := s.DeleteEvals(index, nil, []string{ids[i]}); err != nil {
				t.Fatal(err)
			}
			ids = append(ids[:i], ids[i+1:]...)
		}
		checkUsage(t, s.Snapshot(), nodes)
	}

	restored := New()
	r := restored.Restore()
	allocs, _ := s.Allocs(nil)
	for _, a := range allocs {
		if err := r.AllocRestore(a); err != nil {
			t.Fatal(err)
		}
	}
	must(t, r.Commit())
	checkUsage(t, restored.Snapshot(), nodes)
}

func checkUsage(t *testing.T, snap *Snapshot, nodes []string) {
	t.Helper()
	for _, n := range nodes {
		allocs, err := snap.AllocsByNode(nil, n)
		if err != nil {
			t.Fatal(err)
		}
		want := structs.NodeUsage{NodeID: n, Ports: map[int]int{}}
		for _, a := range allocs {
			if a.TerminalStatus() {
				continue
			}
			cpu, mem, disk, ports := structs.AllocUsage(a)
			want.CPU += cpu
			want.MemoryMB += mem
			want.DiskMB += disk
			for _, p := range ports {
				want.Ports[p]++
			}
		}
		got, err := snap.NodeUsage(n)
		if err != nil {
			t.Fatal(err)
		}
		if got.CPU != want.CPU || got.MemoryMB != want.MemoryMB || got.DiskMB != want.DiskMB || len(got.Ports) != len(want.Ports) {
			t.Fatalf("node %s usage %+v, want %+v", n, got, want)
		}
		for p, c := range want.Ports {
			if got.Ports[p] != c {
				t.Fatalf("node %s port %d held %d times, want %d", n, p, got.Ports[p], c)
			}
		}
	}
}

// BenchmarkClientStatusUpdate is the FSM's most frequent write: a client
// reporting a status change of one allocation on a node with 50 others.
func BenchmarkClientStatusUpdate(b *testing.B) {
	s := New()
	job := testJob("default", "web")
	if err := s.UpsertJob(10, job); err != nil {
		b.Fatal(err)
	}
	var allocs []*structs.Allocation
	for i := range 50 {
		a := testAlloc(job, fmt.Sprintf("a%02d", i), "n1")
		allocs = append(allocs, a)
	}
	if err := s.UpsertAllocs(11, allocs); err != nil {
		b.Fatal(err)
	}
	statuses := []string{structs.AllocClientStatusRunning, structs.AllocClientStatusPending}
	b.ResetTimer()
	for i := range b.N {
		u := &structs.Allocation{ID: allocs[i%50].ID, ClientStatus: statuses[i%2]}
		if err := s.UpdateAllocsFromClient(uint64(12+i), []*structs.Allocation{u}); err != nil {
			b.Fatal(err)
		}
	}
}
