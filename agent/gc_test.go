package agent

import (
	"os"
	"path/filepath"
	"testing"
)

func TestServerGCSettings(t *testing.T) {
	const gib = int64(1) << 30
	none := func(string) string { return "" }
	cases := []struct {
		name            string
		env             map[string]string
		machine, cgroup int64
		cgroupUnknown   bool
		want            gcSettings
		ok              bool
	}{
		{name: "machine memory", machine: 24 * gib, want: gcSettings{400, 18 * gib, 24 * gib}, ok: true},
		{name: "a lower cgroup limit wins", machine: 24 * gib, cgroup: 4 * gib, want: gcSettings{400, 3 * gib, 4 * gib}, ok: true},
		{name: "a cgroup limit above the machine's memory does not", machine: 8 * gib, cgroup: 64 * gib, want: gcSettings{400, 6 * gib, 8 * gib}, ok: true},
		{name: "only a cgroup limit", cgroup: 2 * gib, want: gcSettings{400, 3 * gib / 2, 2 * gib}, ok: true},
		{name: "memory unknown: defaults kept", ok: false},
		{name: "cgroups unreadable: defaults kept", machine: 24 * gib, cgroupUnknown: true, ok: false},
		{name: "too little memory: defaults kept", cgroup: 200 << 20, machine: 24 * gib, ok: false},
		{name: "GOGC set by the user", env: map[string]string{"GOGC": "100"}, machine: 24 * gib, ok: false},
		{name: "GOMEMLIMIT set by the user", env: map[string]string{"GOMEMLIMIT": "2GiB"}, machine: 24 * gib, ok: false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			getenv := none
			if c.env != nil {
				getenv = func(k string) string { return c.env[k] }
			}
			got, ok := serverGC(getenv, c.machine, c.cgroup, !c.cgroupUnknown)
			if ok != c.ok || (ok && got != c.want) {
				t.Fatalf("serverGC = %+v, %v; want %+v, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

func TestParseMemoryFiles(t *testing.T) {
	meminfo := "MemTotal:       24591336 kB\nMemFree:        20000000 kB\nMemAvailable:   22000000 kB\n"
	if got, want := parseMemTotal([]byte(meminfo)), int64(24591336)<<10; got != want {
		t.Errorf("parseMemTotal = %d, want %d", got, want)
	}
	if got := parseMemTotal([]byte("MemFree: 1 kB\n")); got != 0 {
		t.Errorf("parseMemTotal without MemTotal = %d, want 0", got)
	}
	for in, want := range map[string]int64{"4294967296\n": 4 << 30, "max\n": 0, "": 0, "-1": 0} {
		if got := parseCgroupLimit([]byte(in)); got != want {
			t.Errorf("parseCgroupLimit(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestCgroupMemoryLimit(t *testing.T) {
	root := t.TempDir()
	write := func(file, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, file)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// cgroup v2: an 8 GiB slice, no limit on the unit, a lower one on
	// another unit that is not ours.
	write("system.slice/memory.max", "8589934592\n")
	write("system.slice/skiff.service/memory.max", "max\n")
	write("system.slice/other.service/memory.max", "1073741824\n")
	// cgroup v1 (its memory controller mounted at root/memory): 2 GiB on a
	// container, "no limit" on the root.
	write("memory/memory.limit_in_bytes", "9223372036854771712\n")
	write("memory/docker/abc/memory.limit_in_bytes", "2147483648\n")

	const gib = int64(1) << 30
	for _, c := range []struct {
		name  string
		self  string
		want  int64
		known bool
	}{
		{"v2: a parent's limit", "0::/system.slice/skiff.service\n", 8 * gib, true},
		{"v2: no limit up to the root", "0::/user.slice\n", 0, true},
		{"v2: above the namespace's root reads the root", "0::/../../x\n", 0, true},
		{"v1: the container's limit", "12:pids:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n", 2 * gib, true},
		{"v1: a container whose path is not mounted reads the root", "4:memory:/docker/elsewhere\n", 0, true},
		{"hybrid: v1 memory, v2 for the rest", "4:cpu,memory:/docker/abc\n0::/system.slice/skiff.service\n", 2 * gib, true},
		{"nothing known", "1:name=systemd:/\n", 0, false},
		{"no /proc/self/cgroup", "", 0, false},
	} {
		got, known := cgroupMemoryLimit(root, []byte(c.self))
		if got != c.want || known != c.known {
			t.Errorf("%s: cgroupMemoryLimit = %d, %v; want %d, %v", c.name, got, known, c.want, c.known)
		}
	}
	// The unit's own limit, lower than its slice's, wins.
	write("system.slice/skiff.service/memory.max", "2147483648\n")
	if got, _ := cgroupMemoryLimit(root, []byte("0::/system.slice/skiff.service\n")); got != 2*gib {
		t.Errorf("the unit's own, lower limit = %d, want %d", got, 2*gib)
	}
}
