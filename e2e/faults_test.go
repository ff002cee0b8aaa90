package e2e

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// kvInput is one operation of the linearizability history: a job's meta
// value "v" written (a job registration) or read (a default, linearizable
// GET), through any live server.
type kvInput struct {
	write      bool
	key, value string
}

// kvModel is a register per key: reads return the last value written.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(kvInput).key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(kvInput)
		if in.write {
			return true, in.value
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(kvInput)
		if in.write {
			return fmt.Sprintf("put(%s, %s)", in.key, in.value)
		}
		return fmt.Sprintf("get(%s) -> %q", in.key, output)
	},
}

// TestLeaderKillsAreLinearizable is the fault test: clients write
// and read through every server while the leader is killed with SIGKILL
// and restarted, again and again (SKIFF_FAULT_KILLS, 3 by default; "make
// test-faults" runs 20). The history of acknowledged operations, with
// writes whose outcome is unknown allowed either way, must be
// linearizable (checked with porcupine), and afterwards every server must
// hold the same jobs at the same versions.
func TestLeaderKillsAreLinearizable(t *testing.T) {
	kills := 3
	if v, err := strconv.Atoi(os.Getenv("SKIFF_FAULT_KILLS")); err == nil && v > 0 {
		kills = v
	}
	c := newCluster(t, 3, clusterOpts{})
	c.leader()
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }

	var mu sync.Mutex
	var history []porcupine.Operation
	record := func(op porcupine.Operation) {
		mu.Lock()
		history = append(history, op)
		mu.Unlock()
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	const clients, keys = 4, 3
	acked := make([]int, clients)
	for cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(cl), 7))
			for i := 0; i < 100000 && ctx.Err() == nil; i++ {
				a := c.agents[rng.IntN(len(c.agents))]
				if !a.running() {
					continue
				}
				key := fmt.Sprintf("k%d", rng.IntN(keys))
				if rng.IntN(2) == 0 {
					val := fmt.Sprintf("c%d-%d", cl, i)
					j := job(key)
					j.Meta = map[string]string{"v": val}
					call0 := now()
					rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					_, err := call(rctx, http.MethodPut, a.addr()+"/v1/jobs", map[string]any{"Job": j}, nil)
					cancel()
					ret := now()
					if err != nil {
						ret = math.MaxInt64 // outcome unknown: it may take effect any time after the call
					} else {
						acked[cl]++
					}
					record(porcupine.Operation{ClientId: cl, Input: kvInput{write: true, key: key, value: val}, Call: call0, Output: "", Return: ret})
					continue
				}
				call0 := now()
				var got structs.Job
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := call(rctx, http.MethodGet, a.addr()+"/v1/job/"+key, nil, &got)
				cancel()
				ret := now()
				switch {
				case err == nil:
					record(porcupine.Operation{ClientId: cl, Input: kvInput{key: key}, Call: call0, Output: got.Meta["v"], Return: ret})
				case statusOf(err) == http.StatusNotFound:
					record(porcupine.Operation{ClientId: cl, Input: kvInput{key: key}, Call: call0, Output: "", Return: ret})
				}
				// other failed reads have no effect and tell nothing
			}
		}()
	}

	for k := range kills {
		time.Sleep(300 * time.Millisecond) // let writes flow under this leader
		l := c.leader()
		l.kill()
		c.leader() // a new one among the others
		l.start()
		testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("kill %d: %s back with a leader", k+1, l.name), func() bool {
			var leader string
			_, err := call(context.Background(), http.MethodGet, l.addr()+"/v1/status/leader", nil, &leader)
			return err == nil && leader != ""
		})
	}
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()

	total := 0
	for _, n := range acked {
		total += n
	}
	if total == 0 {
		t.Fatal("no write was acknowledged: the test exercised nothing")
	}
	res, info := porcupine.CheckOperationsVerbose(kvModel, history, time.Minute)
	t.Logf("%d kills, %d operations (%d acknowledged writes): %s", kills, len(history), total, res)
	if res != porcupine.Ok {
		path := t.TempDir() + "/history.html"
		if f, err := os.Create(path); err == nil {
			_ = porcupine.Visualize(kvModel, info, f)
			f.Close()
		}
		t.Fatalf("history is %s (visualisation in %s)", res, path)
	}

	// Every server ends with the same jobs at the same versions.
	view := func(a *agentProc) string {
		var stubs []*structs.JobListStub
		if _, err := call(context.Background(), http.MethodGet, a.addr()+"/v1/jobs?stale&meta=true", nil, &stubs); err != nil {
			return "error: " + err.Error()
		}
		parts := make([]string, 0, len(stubs))
		for _, s := range stubs {
			parts = append(parts, fmt.Sprintf("%s@%d/%s", s.ID, s.JobModifyIndex, s.Meta["v"]))
		}
		sort.Strings(parts)
		return strings.Join(parts, ",")
	}
	var views []string
	testutil.WaitFor(t, 20*time.Second, "every server to hold the same jobs", func() bool {
		views = views[:0]
		for _, a := range c.agents {
			views = append(views, view(a))
		}
		return views[0] == views[1] && views[1] == views[2] && !strings.HasPrefix(views[0], "error")
	})
}
