package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/skiffhq/skiff/structs"
)

// checkCapacity fails the test if any node holds more than it offers.
func checkCapacity(t *testing.T, h *harness) {
	t.Helper()
	nodes, err := h.store.Nodes(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		allocs, err := h.store.AllocsByNode(nil, n.ID)
		if err != nil {
			t.Fatal(err)
		}
		u := &nodeUsage{ports: map[int]bool{}}
		for _, a := range allocs {
			if a.TerminalStatus() {
				continue
			}
			dup := false
			forPorts(a, func(p int) {
				if u.ports[p] {
					dup = true
				}
			})
			if dup {
				t.Errorf("node %s: allocation %s reuses a port", n.ID, a.ID)
			}
			u.add(a)
		}
		cpu, mem, disk := n.Capacity()
		if u.cpu > cpu || u.mem > mem || u.disk > disk {
			t.Errorf("node %s over capacity: cpu %d/%d mem %d/%d disk %d/%d", n.ID, u.cpu, cpu, u.mem, mem, u.disk, disk)
		}
	}
}

func randomJob(r *rand.Rand, id string) *structs.Job {
	typ := []string{structs.JobTypeService, structs.JobTypeBatch}[r.IntN(2)]
	j := &structs.Job{ID: id, Type: typ, Datacenters: []string{"dc*"}}
	for g := range 1 + r.IntN(3) {
		tg := &structs.TaskGroup{Name: fmt.Sprintf("g%d", g), Count: r.IntN(12)}
		for k := range 1 + r.IntN(2) {
			tg.Tasks = append(tg.Tasks, &structs.Task{Name: fmt.Sprintf("t%d", k), Driver: "containerd",
				Config:    map[string]any{"image": "busybox"},
				Resources: &structs.Resources{CPU: 100 + r.IntN(4000), MemoryMB: 64 + r.IntN(8000)}})
		}
		switch r.IntN(5) {
		case 0:
			tg.Constraints = []*structs.Constraint{{Operand: structs.ConstraintDistinctHosts}}
		case 1:
			tg.Spreads = []*structs.Spread{{Attribute: "${meta.rack}", Weight: 50}}
		case 2:
			tg.Constraints = []*structs.Constraint{{LTarget: "${meta.rack}", Operand: "set_contains_any", RTarget: "r0,r1"}}
		case 3:
			tg.Networks = []*structs.NetworkResource{{DynamicPorts: []structs.Port{{Label: "http"}},
				ReservedPorts: []structs.Port{{Label: "fixed", Value: 8000 + r.IntN(3)}}}}
		}
		j.TaskGroups = append(j.TaskGroups, tg)
	}
	j.Canonicalize()
	return j
}

// TestPropertyRandomJobs registers, scales and re-evaluates random jobs on
// random nodes, checking after every evaluation that no group has more
// live allocations than its count and no node is over capacity.
func TestPropertyRandomJobs(t *testing.T) {
	for trial := range 20 {
		r := rand.New(rand.NewPCG(uint64(trial), 7))
		h := newHarness(t)
		h.seed = uint64(trial + 1)
		var nodes []*structs.Node
		for i := range 3 + r.IntN(15) {
			n := testNode(i, 3)
			n.NodeResources.Cpu.CpuShares = int64(2000 + r.IntN(14000))
			n.NodeResources.Memory.MemoryMB = int64(4000 + r.IntN(30000))
			nodes = append(nodes, n)
		}
		h.addNodes(nodes...)
		var jobs []*structs.Job
		for k := range 4 {
			jobs = append(jobs, h.addJob(randomJob(r, fmt.Sprintf("job%d", k))))
		}
		for step := range 12 {
			k := r.IntN(len(jobs))
			switch r.IntN(4) {
			case 0: // scale a group
				j := jobs[k].Copy()
				j.TaskGroups[r.IntN(len(j.TaskGroups))].Count = r.IntN(15)
				jobs[k] = h.addJob(j)
			case 1: // a node goes down
				n := nodes[r.IntN(len(nodes))]
				if err := h.store.UpdateNodeStatus(h.next(), n.ID, structs.NodeStatusDown, 1); err != nil {
					t.Fatal(err)
				}
			case 2: // a destructive update
				j := jobs[k].Copy()
				j.TaskGroups[0].Tasks[0].Env = map[string]string{"STEP": fmt.Sprint(step)}
				jobs[k] = h.addJob(j)
			}
			eval := h.process(jobs[k], structs.EvalTriggerJobRegister)
			if eval.Status != structs.EvalStatusComplete {
				t.Fatalf("trial %d step %d: status %s (%s)", trial, step, eval.Status, eval.StatusDescription)
			}
			checkCapacity(t, h)
			perGroup := map[string]int{}
			for _, a := range h.liveAllocs(jobs[k]) {
				perGroup[a.TaskGroup]++
			}
			for _, tg := range jobs[k].TaskGroups {
				if perGroup[tg.Name] > tg.Count {
					t.Errorf("trial %d step %d: %s/%s has %d live allocations, count %d", trial, step, jobs[k].ID, tg.Name, perGroup[tg.Name], tg.Count)
				}
			}
		}
	}
}
