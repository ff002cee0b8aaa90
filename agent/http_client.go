package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff/client/allocrunner"
	"github.com/skiffhq/skiff/server"
	"github.com/skiffhq/skiff/structs"
)

// The /v1/client/... endpoints are served by the agent whose client runs
// the allocation; any other agent proxies the request there (the node's
// HTTPAddr), so the CLI can talk to any agent.

func (a *Agent) nodeAllocations(w http.ResponseWriter, r *http.Request) (any, error) {
	args := server.NodeSpecificRequest{NodeID: r.PathValue("id")}
	var reply structs.AllocsGetResponse
	if err := a.read(w, r, "Node.GetAllocs", &args, &args.QueryOptions, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	if reply.Allocs == nil {
		reply.Allocs = []*structs.Allocation{}
	}
	return reply.Allocs, nil
}

// localRunner returns the runner of allocID if this agent's client runs
// it. Otherwise it proxies the request to the agent that does and
// returns nil with done set.
func (a *Agent) localRunner(w http.ResponseWriter, r *http.Request, allocID string) (ar *allocrunner.AllocRunner, done bool, err error) {
	if a.client != nil {
		if ar := a.client.AllocRunner(allocID); ar != nil {
			return ar, false, nil
		}
	}
	if r.Header.Get("X-Skiff-Proxied") != "" {
		return nil, false, &httpError{http.StatusNotFound, fmt.Sprintf("allocation %s is not running on this node", allocID)}
	}
	args := server.AllocSpecificRequest{AllocID: allocID}
	var reply server.SingleAllocResponse
	if err := a.rpc("Alloc.GetAlloc", &args, &reply); err != nil {
		return nil, false, err
	}
	if reply.Alloc == nil {
		return nil, false, &httpError{http.StatusNotFound, fmt.Sprintf("allocation %q not found", allocID)}
	}
	nargs := server.NodeSpecificRequest{NodeID: reply.Alloc.NodeID}
	var nreply server.SingleNodeResponse
	if err := a.rpc("Node.GetNode", &nargs, &nreply); err != nil {
		return nil, false, err
	}
	if nreply.Node == nil || nreply.Node.HTTPAddr == "" {
		return nil, false, &httpError{http.StatusNotFound, fmt.Sprintf("the node of allocation %s is unknown or has no HTTP address", allocID)}
	}
	if a.client != nil && nreply.Node.ID == a.client.NodeID() {
		return nil, false, &httpError{http.StatusNotFound, fmt.Sprintf("allocation %s has not started on this node yet; retry shortly", allocID)}
	}
	target := &url.URL{Scheme: "http", Host: nreply.Node.HTTPAddr}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1 // stream logs as they come
	r.Header.Set("X-Skiff-Proxied", "1")
	proxy.ServeHTTP(w, r)
	return nil, true, nil
}

// allocLogs streams a task's stdout or stderr: ?task=NAME&type=stdout|stderr
// &follow=true&origin=start|end&offset=N. Skiff always answers in plain
// text (Nomad's framed JSON is not implemented; plain=true is implied).
func (a *Agent) allocLogs(w http.ResponseWriter, r *http.Request) (any, error) {
	allocID := r.PathValue("alloc")
	q := r.URL.Query()
	task, typ := q.Get("task"), q.Get("type")
	if typ == "" {
		typ = "stdout"
	}
	if typ != "stdout" && typ != "stderr" {
		return nil, badRequest("type must be stdout or stderr (got %q)", typ)
	}
	ar, done, err := a.localRunner(w, r, allocID)
	if err != nil || done {
		return nil, err
	}
	if task == "" {
		names := ar.Alloc().TaskNames()
		if len(names) == 0 {
			return nil, &httpError{http.StatusNotFound, fmt.Sprintf("allocation %s has no task on this node yet; retry shortly", allocID)}
		}
		if len(names) != 1 {
			return nil, badRequest("allocation %s has several tasks (%s); name one with ?task=", allocID, strings.Join(names, ", "))
		}
		task = names[0]
	}
	follow, _ := strconv.ParseBool(q.Get("follow"))
	offset, _ := strconv.ParseInt(q.Get("offset"), 10, 64)
	fromEnd := q.Get("origin") == "end"
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	streamLogs(r.Context(), w, ar, task, typ, offset, fromEnd, follow)
	return nil, nil
}

// logFiles returns the rotated files of a task's stream, oldest first.
func logFiles(dir, task, typ string) []string {
	prefix := task + "." + typ + "."
	entries, _ := os.ReadDir(dir)
	type f struct {
		n    int
		path string
	}
	var fs []f
	for _, e := range entries {
		if rest, ok := strings.CutPrefix(e.Name(), prefix); ok {
			if n, err := strconv.Atoi(rest); err == nil {
				fs = append(fs, f{n, filepath.Join(dir, e.Name())})
			}
		}
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].n < fs[j].n })
	out := make([]string, len(fs))
	for i, x := range fs {
		out[i] = x.path
	}
	return out
}

// streamLogs copies the log files to w; with follow it keeps reading the
// newest file (and the ones rotation creates) until the task is dead and
// drained, or the caller goes away.
func streamLogs(ctx context.Context, w io.Writer, ar *allocrunner.AllocRunner, task, typ string, offset int64, fromEnd, follow bool) {
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	dir := ar.LogDir()
	files := logFiles(dir, task, typ)
	idx := 0
	var pos int64
	if fromEnd && len(files) > 0 {
		idx = len(files) - 1
		if st, err := os.Stat(files[idx]); err == nil {
			pos = max(st.Size()-offset, 0)
		}
	} else {
		pos = offset
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if idx < len(files) {
			n, err := copyFrom(w, files[idx], pos)
			pos += n
			flush()
			if err != nil && !errors.Is(err, io.EOF) {
				return
			}
			files = logFiles(dir, task, typ)
			if idx+1 < len(files) {
				idx, pos = idx+1, 0 // rotated: go on with the next file
				continue
			}
		} else {
			files = logFiles(dir, task, typ)
		}
		if !follow {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ar.WaitCh():
			follow = false // drain what is left, then stop
		case <-tick.C:
		}
	}
}

func copyFrom(w io.Writer, path string, pos int64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := f.Seek(pos, io.SeekStart); err != nil {
		return 0, err
	}
	return io.Copy(w, f)
}

// allocStats returns the resource usage of an allocation's tasks.
func (a *Agent) allocStats(w http.ResponseWriter, r *http.Request) (any, error) {
	ar, done, err := a.localRunner(w, r, r.PathValue("id"))
	if err != nil || done {
		return nil, err
	}
	stats, err := ar.Stats(r.Context())
	if err != nil {
		return nil, err
	}
	out := map[string]any{"Tasks": map[string]any{}}
	var cpu, rss uint64
	for name, s := range stats {
		if s == nil {
			continue
		}
		out["Tasks"].(map[string]any)[name] = map[string]any{
			"ResourceUsage": map[string]any{
				"MemoryStats": map[string]any{"RSS": s.MemoryRSSBytes, "Usage": s.MemoryUsage, "MaxUsage": s.MemoryMaxUsage},
				"CpuStats":    map[string]any{"TotalTicks": float64(s.CPUTotalNanos) / 1e6, "ThrottledPeriods": s.ThrottledPeriod},
			},
			"Timestamp": s.Timestamp.UnixNano(),
		}
		cpu += s.CPUTotalNanos
		rss += s.MemoryRSSBytes
	}
	out["ResourceUsage"] = map[string]any{
		"MemoryStats": map[string]any{"RSS": rss},
		"CpuStats":    map[string]any{"TotalTicks": float64(cpu) / 1e6},
	}
	return out, nil
}
