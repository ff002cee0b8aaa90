package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// A server's heap is mostly state that lives long (jobs, allocations,
// nodes) and is full of pointers, and each collection marks all of it.
// With Go's default (GOGC=100: collect whenever the heap has doubled) the
// collector's share of a server's CPU grew as its state grew: S3
// (placements through raft) slowed by 31-47% from the first tenth of a run
// to the last, and ran 25-35% faster at GOGC=400 with no slowdown at all
// (bench/README.md, session 12). A server agent therefore collects at five
// times its live heap, and bounds that with a soft memory limit of three
// quarters of the memory it may use, past which the runtime collects as
// often as it must. The price is memory between collections: C1M's peak
// RSS went from 3.5 to 6.1 GB for the same 1.48 GB of live state. GOGC or
// GOMEMLIMIT in the environment leave the runtime as the user set it.
const (
	serverGCPercent = 400
	memoryLimitNum  = 3 // the limit is memoryLimitNum/memoryLimitDen
	memoryLimitDen  = 4 // of the memory the process may use
)

// gcSettings is what SetServerGC applies.
type gcSettings struct {
	percent int
	limit   int64 // bytes
	memory  int64 // what the limit is a fraction of
}

// serverGC decides the collector's settings of a server process from its
// environment and the memory it may use (the machine's, or its cgroup's
// limit when lower; 0 when unknown). ok is false when the runtime should
// be left alone: the user set GOGC or GOMEMLIMIT, or the memory is unknown
// and a higher GOGC could not be bounded.
func serverGC(getenv func(string) string, machine, cgroup int64) (s gcSettings, ok bool) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return s, false
	}
	mem := machine
	if cgroup > 0 && (mem <= 0 || cgroup < mem) {
		mem = cgroup
	}
	if mem <= 0 {
		return s, false
	}
	return gcSettings{percent: serverGCPercent, limit: mem / memoryLimitDen * memoryLimitNum, memory: mem}, true
}

// SetServerGC applies the garbage collector settings of a server agent to
// this process and returns a line for the log. The agent calls it when it
// runs a server; benchmarks call it so that they measure what the binary
// runs.
func SetServerGC() string {
	self, _ := os.ReadFile("/proc/self/cgroup")
	s, ok := serverGC(os.Getenv, fileBytes("/proc/meminfo", parseMemTotal), cgroupMemoryLimit("/sys/fs/cgroup", self))
	if !ok {
		if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
			return fmt.Sprintf("garbage collector: GOGC=%q GOMEMLIMIT=%q from the environment", os.Getenv("GOGC"), os.Getenv("GOMEMLIMIT"))
		}
		return "garbage collector: Go's defaults (the memory this process may use is unknown)"
	}
	debug.SetGCPercent(s.percent)
	debug.SetMemoryLimit(s.limit)
	return fmt.Sprintf("garbage collector: GOGC=%d, memory limit %s (3/4 of %s); set GOGC or GOMEMLIMIT to choose otherwise",
		s.percent, gib(s.limit), gib(s.memory))
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

// cgroupMemoryLimit returns the lowest cgroup v2 memory.max (in bytes)
// of this process's cgroup and its parents, under root (the cgroup2 mount)
// and from self (the contents of /proc/self/cgroup); 0 when there is none.
// Under systemd a unit's MemoryMax= is its own cgroup's memory.max; in a
// container, the container's cgroup is the root of what it sees.
func cgroupMemoryLimit(root string, self []byte) int64 {
	dir := "/"
	for _, line := range strings.Split(string(self), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok && strings.HasPrefix(p, "/") {
			dir = path.Clean(p)
		}
	}
	var lowest int64
	for {
		if n := fileBytes(filepath.Join(root, dir, "memory.max"), parseCgroupLimit); n > 0 && (lowest == 0 || n < lowest) {
			lowest = n
		}
		if dir == "/" {
			return lowest
		}
		dir = path.Dir(dir)
	}
}

// parseCgroupLimit returns a cgroup v2 memory.max in bytes, 0 when there
// is no limit ("max").
func parseCgroupLimit(data []byte) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return n
}
