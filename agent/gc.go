package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// A server's heap is mostly state that lives long (jobs, allocations,
// nodes) and is full of pointers, and each collection marks all of it.
// With Go's default (GOGC=100: collect whenever the heap has doubled) the
// collector's share of a server's CPU grew as its state grew: S3
// (placements through raft) slowed by 31-47% from the first tenth of a run
// to the last in four runs, against -8 to +2% in the four runs at
// GOGC=400 alternating with them, which were also 10-38% faster
// (bench/README.md, session 12). A server agent therefore collects at five
// times its live heap, and bounds that with a soft memory limit of three
// quarters of the memory it may use, past which the runtime collects as
// often as it must. The price is memory between collections: C1M's peak
// RSS went from 3.5 to 6.1 GB for the same 1.48 GB of live state. An agent
// that also runs a client (-dev) gets the same settings. GOGC or
// GOMEMLIMIT in the environment leave the runtime as the user set it.
const (
	serverGCPercent = 400
	memoryLimitNum  = 3 // the limit is memoryLimitNum/memoryLimitDen
	memoryLimitDen  = 4 // of the memory the process may use
	// minGCMemory is the least memory for which the settings apply: below
	// it the limit would leave the heap no room to grow.
	minGCMemory = 256 << 20
)

// gcSettings is what SetServerGC applies.
type gcSettings struct {
	percent int
	limit   int64 // bytes
	memory  int64 // what the limit is a fraction of
}

// serverGC decides the collector's settings of a server process from its
// environment, the machine's memory and its cgroup's limit (0: none).
// cgroupKnown says whether the process's cgroups could be read: if not,
// the machine's memory may not be what the process may use (a container
// under a layout this code does not know), and a higher GOGC could not be
// bounded. ok is false when the runtime should be left alone: then, or
// when the user set GOGC or GOMEMLIMIT, or the memory is unknown or small.
func serverGC(getenv func(string) string, machine, cgroup int64, cgroupKnown bool) (s gcSettings, ok bool) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" || !cgroupKnown {
		return s, false
	}
	mem := machine
	if cgroup > 0 && (mem <= 0 || cgroup < mem) {
		mem = cgroup
	}
	if mem < minGCMemory {
		return s, false
	}
	return gcSettings{percent: serverGCPercent, limit: mem / memoryLimitDen * memoryLimitNum, memory: mem}, true
}

// SetServerGC applies the garbage collector settings of a server agent to
// this process and logs them. The agent calls it when it runs a server;
// the benchmarks call it so that they measure what the agent runs.
func SetServerGC(logger hclog.Logger) {
	self, _ := os.ReadFile("/proc/self/cgroup")
	cgroup, known := cgroupMemoryLimit("/sys/fs/cgroup", self)
	s, ok := serverGC(os.Getenv, fileBytes("/proc/meminfo", parseMemTotal), cgroup, known)
	if !ok {
		var env []any
		for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
			if v := os.Getenv(k); v != "" {
				env = append(env, k, v)
			}
		}
		if len(env) > 0 {
			logger.Info("garbage collector: as set in the environment", env...)
		} else {
			logger.Info("garbage collector: Go's defaults, the memory this process may use is unknown or small", "cgroups_read", known)
		}
		return
	}
	debug.SetGCPercent(s.percent)
	debug.SetMemoryLimit(s.limit)
	logger.Info("garbage collector: a server's settings; set GOGC or GOMEMLIMIT to choose others",
		"gogc", s.percent, "memory_limit", gib(s.limit),
		"of_memory", fmt.Sprintf("%d/%d of %s", memoryLimitNum, memoryLimitDen, gib(s.memory)))
}

func gib(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

// fileBytes returns what parse finds in the file at path, in bytes: 0
// when the file cannot be read.
func fileBytes(path string, parse func([]byte) int64) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return parse(data)
}

// parseMemTotal returns MemTotal of a /proc/meminfo file in bytes, 0 when
// it has none.
func parseMemTotal(data []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil && kb > 0 {
				return kb << 10
			}
		}
	}
	return 0
}

// cgroupMemoryLimit returns the lowest memory limit (in bytes, 0 for
// none) of this process's cgroups and their parents, under root (where
// the cgroup file systems are mounted), from self (the contents of
// /proc/self/cgroup): cgroup v2's memory.max (the "0::" line), and cgroup
// v1's memory.limit_in_bytes (the line of the memory controller, mounted
// at root/memory). known is false when self names neither. Under systemd
// a unit's MemoryMax= is its own cgroup's limit; in a container the
// container's cgroup is usually the root of what it sees, which the walk
// up to the root reads too; a path that climbs above the namespace's root
// ("/..") is read as the root.
func cgroupMemoryLimit(root string, self []byte) (limit int64, known bool) {
	var lowest int64
	walk := func(mount, file, dir string) {
		if strings.HasPrefix(dir, "/..") || !strings.HasPrefix(dir, "/") {
			dir = "/"
		}
		for dir = path.Clean(dir); ; dir = path.Dir(dir) {
			if n := fileBytes(filepath.Join(mount, dir, file), parseCgroupLimit); n > 0 && (lowest == 0 || n < lowest) {
				lowest = n
			}
			if dir == "/" {
				return
			}
		}
	}
	for _, line := range strings.Split(string(self), "\n") {
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		controllers, dir, ok := strings.Cut(rest, ":")
		switch {
		case !ok:
		case id == "0" && controllers == "":
			known = true
			walk(root, "memory.max", dir)
		case slices.Contains(strings.Split(controllers, ","), "memory"):
			known = true
			walk(filepath.Join(root, "memory"), "memory.limit_in_bytes", dir)
		}
	}
	return lowest, known
}

// parseCgroupLimit returns a cgroup memory limit in bytes, 0 when there
// is none ("max" in v2; v1 writes a number near 2^63 instead).
func parseCgroupLimit(data []byte) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0
	}
	return n
}
