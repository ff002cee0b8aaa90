package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/skiffhq/skiff/internal/testcontainerd"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// benchImage imports the busybox archive once into the test containerd so
// that neither Skiff nor the raw baseline pulls during the measurement.
func benchImage(b *testing.B, env *testcontainerd.Env) (archive, name string) {
	b.Helper()
	archive = testcontainerd.BusyboxArchive(b)
	c, err := containerd.New(env.Address, containerd.WithDefaultNamespace(env.Namespace))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	f, err := os.Open(archive)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ctx := context.Background()
	imgs, err := c.Import(ctx, f)
	if err != nil || len(imgs) == 0 {
		b.Fatalf("import %s: %v", archive, err)
	}
	img := containerd.NewImage(c, imgs[0])
	if err := img.Unpack(ctx, "overlayfs"); err != nil {
		b.Fatal(err)
	}
	return archive, imgs[0].Name
}

func sleepJob(id, image string, count int) *structs.Job {
	return &structs.Job{ID: id, Datacenters: []string{"dc1"}, TaskGroups: []*structs.TaskGroup{{
		Name: "g", Count: count,
		Tasks: []*structs.Task{{Name: "t", Driver: "containerd", KillSignal: "SIGKILL",
			Config:    map[string]any{"image": image, "command": "sleep", "args": []any{"3600"}},
			Resources: &structs.Resources{CPU: 10, MemoryMB: 16}}},
	}}}
}

// waitRunning waits with blocking queries until n allocations of the job
// are running, as the API reports them.
func waitRunning(b *testing.B, a *agentProc, jobID string, n int, timeout time.Duration) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	var index uint64
	for time.Now().Before(deadline) {
		var allocs []*structs.AllocListStub
		h, err := call(context.Background(), "GET", fmt.Sprintf("%s/v1/job/%s/allocations?index=%d&wait=5s", a.addr(), jobID, index), nil, &allocs)
		if err != nil {
			b.Fatal(err)
		}
		running := 0
		for _, al := range allocs {
			if al.ClientStatus == structs.AllocClientStatusRunning {
				running++
			}
			if al.ClientStatus == structs.AllocClientStatusFailed {
				b.Fatalf("allocation %s failed: %s", al.Name, al.ClientDescription)
			}
		}
		if running >= n {
			return
		}
		index, _ = strconv.ParseUint(h.Get("X-Nomad-Index"), 10, 64)
	}
	b.Fatalf("job %s: fewer than %d allocations running after %s", jobID, n, timeout)
}

func stopJob(b *testing.B, a *agentProc, jobID string) {
	b.Helper()
	if _, err := call(context.Background(), "DELETE", a.addr()+"/v1/job/"+jobID+"?purge=true", nil, nil); err != nil {
		b.Fatal(err)
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// rawRun creates and starts one container of the image with the raw
// containerd client and returns when its task runs.
func rawRun(ctx context.Context, c *containerd.Client, image containerd.Image, id string) error {
	ctr, err := c.NewContainer(ctx, id, containerd.WithNewSnapshot(id, image),
		containerd.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("sleep", "3600")))
	if err != nil {
		return err
	}
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		return err
	}
	return task.Start(ctx)
}

// BenchmarkJobRunToRunning is S4: job registration through the HTTP API to
// its allocation "running" as the API reports it (one container, image
// present), 20 times, next to the raw containerd client's create -> start
// of the same image in the same run. It also reports how long after the
// task started (the client's TaskState.StartedAt) the API showed running.
// Run with -benchtime 1x.
func BenchmarkJobRunToRunning(b *testing.B) {
	const runs = 20
	env := testcontainerd.Start(b)
	archive, imageName := benchImage(b, env)
	a := containerAgent(b, env, "127.0.0.1:1") // no registry: the image is an archive
	raw, err := containerd.New(env.Address, containerd.WithDefaultNamespace(env.Namespace))
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	ctx := context.Background()
	image, err := raw.GetImage(ctx, imageName)
	if err != nil {
		b.Fatal(err)
	}
	for n := 0; n < b.N; n++ {
		var skiff, rawT, report []time.Duration
		for i := range runs {
			id := fmt.Sprintf("s4-%d-%d", n, i)
			start := time.Now()
			if _, err := call(ctx, "PUT", a.addr()+"/v1/jobs", map[string]any{"Job": sleepJob(id, "oci-archive:"+archive, 1)}, nil); err != nil {
				b.Fatal(err)
			}
			waitRunning(b, a, id, 1, 30*time.Second)
			seen := time.Now()
			skiff = append(skiff, seen.Sub(start))
			var allocs []*structs.Allocation
			if _, err := call(ctx, "GET", a.addr()+"/v1/job/"+id+"/allocations", nil, &allocs); err == nil && len(allocs) == 1 {
				var full structs.Allocation
				if _, err := call(ctx, "GET", a.addr()+"/v1/allocation/"+allocs[0].ID, nil, &full); err == nil {
					if ts := full.TaskStates["t"]; ts != nil && !ts.StartedAt.IsZero() {
						report = append(report, seen.Sub(ts.StartedAt))
					}
				}
			}
			stopJob(b, a, id)

			rid := fmt.Sprintf("raw-%d-%d", n, i)
			start = time.Now()
			if err := rawRun(ctx, raw, image, rid); err != nil {
				b.Fatal(err)
			}
			rawT = append(rawT, time.Since(start))
		}
		b.ReportMetric(float64(percentile(skiff, 0.5).Microseconds())/1000, "skiff-p50-ms")
		b.ReportMetric(float64(percentile(skiff, 0.99).Microseconds())/1000, "skiff-p99-ms")
		b.ReportMetric(float64(percentile(rawT, 0.5).Microseconds())/1000, "raw-p50-ms")
		b.ReportMetric(float64(percentile(rawT, 0.99).Microseconds())/1000, "raw-p99-ms")
		if len(report) > 0 {
			b.ReportMetric(float64(percentile(report, 0.5).Microseconds())/1000, "started-to-api-p50-ms")
		}
	}
}

// BenchmarkHundredAllocs is S5: one job of 100 allocations on one node,
// registration to all 100 running (API), next to the raw containerd client
// creating and starting 100 containers with 8 in parallel. Run with
// -benchtime 1x.
func BenchmarkHundredAllocs(b *testing.B) {
	const count, parallel = 100, 8
	env := testcontainerd.Start(b)
	archive, imageName := benchImage(b, env)
	a := containerAgent(b, env, "127.0.0.1:1")
	raw, err := containerd.New(env.Address, containerd.WithDefaultNamespace(env.Namespace))
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	ctx := context.Background()
	image, err := raw.GetImage(ctx, imageName)
	if err != nil {
		b.Fatal(err)
	}
	for n := 0; n < b.N; n++ {
		id := fmt.Sprintf("s5-%d", n)
		start := time.Now()
		if _, err := call(ctx, "PUT", a.addr()+"/v1/jobs", map[string]any{"Job": sleepJob(id, "oci-archive:"+archive, count)}, nil); err != nil {
			b.Fatal(err)
		}
		waitRunning(b, a, id, count, 5*time.Minute)
		skiff := time.Since(start)
		stopJob(b, a, id)
		testutil.WaitFor(b, 2*time.Minute, "skiff's tasks stopped", func() bool { return len(containerPIDs(b, env)) == 0 })

		start = time.Now()
		var wg sync.WaitGroup
		ids := make(chan int)
		errs := make(chan error, count)
		for range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range ids {
					if err := rawRun(ctx, raw, image, fmt.Sprintf("raw5-%d-%d", n, i)); err != nil {
						errs <- err
					}
				}
			}()
		}
		for i := range count {
			ids <- i
		}
		close(ids)
		wg.Wait()
		rawD := time.Since(start)
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(count)/skiff.Seconds(), "skiff-allocs/s")
		b.ReportMetric(float64(count)/rawD.Seconds(), "raw-containers/s")
		b.ReportMetric(rawD.Seconds()/skiff.Seconds(), "ratio")
	}
}

// rssKiB reads a process's resident set size.
func rssKiB(b testing.TB, pid int) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			v, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return v
		}
	}
	return 0
}

// BenchmarkClientAgent is S8's client part: the RSS of a client-only
// agent process idle and with 50 running allocations, and the time a
// restarted client (after kill -9) takes to re-attach to all 50. Run with
// -benchtime 1x.
func BenchmarkClientAgent(b *testing.B) {
	const count = 50
	env := testcontainerd.Start(b)
	archive, _ := benchImage(b, env)
	srv := newCluster(b, 1, clusterOpts{})
	srv.leader()
	cl := clientOnlyAgent(b, env, []int{srv.agents[0].rpc})
	waitNodeReady(b, srv.agents[0])
	for n := 0; n < b.N; n++ {
		time.Sleep(2 * time.Second) // let the idle agent settle before reading its RSS
		idle := rssKiB(b, cl.cmd.Process.Pid)
		id := fmt.Sprintf("s8-%d", n)
		if _, err := call(context.Background(), "PUT", srv.agents[0].addr()+"/v1/jobs", map[string]any{"Job": sleepJob(id, "oci-archive:"+archive, count)}, nil); err != nil {
			b.Fatal(err)
		}
		waitRunning(b, srv.agents[0], id, count, 5*time.Minute)
		busy := rssKiB(b, cl.cmd.Process.Pid)

		cl.kill()
		start := time.Now()
		cl.start()
		testutil.WaitFor(b, 2*time.Minute, "50 tasks re-attached", func() bool {
			return strings.Count(cl.tail(5000), "re-attached to running task") >= count
		})
		reattach := time.Since(start)
		if got := len(containerPIDs(b, env)); got != count {
			b.Fatalf("%d tasks run after the restart, want %d", got, count)
		}
		b.ReportMetric(float64(idle)/1024, "idle-RSS-MiB")
		b.ReportMetric(float64(busy)/1024, "50-allocs-RSS-MiB")
		b.ReportMetric(float64(reattach.Milliseconds()), "reattach-50-ms")
		stopJob(b, srv.agents[0], id)
	}
}
