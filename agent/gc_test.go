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
		want            gcSettings
		ok              bool
	}{
		{name: "machine memory", machine: 24 * gib, want: gcSettings{400, 18 * gib, 24 * gib}, ok: true},
		{name: "a lower cgroup limit wins", machine: 24 * gib, cgroup: 4 * gib, want: gcSettings{400, 3 * gib, 4 * gib}, ok: true},
		{name: "a cgroup limit above the machine's memory does not", machine: 8 * gib, cgroup: 64 * gib, want: gcSettings{400, 6 * gib, 8 * gib}, ok: true},
		{name: "only a cgroup limit", cgroup: 2 * gib, want: gcSettings{400, 3 * gib / 2, 2 * gib}, ok: true},
		{name: "memory unknown: defaults kept", ok: false},
		{name: "GOGC set by the user", env: map[string]string{"GOGC": "100"}, machine: 24 * gib, ok: false},
		{name: "GOMEMLIMIT set by the user", env: map[string]string{"GOMEMLIMIT": "2GiB"}, machine: 24 * gib, ok: false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			getenv := none
			if c.env != nil {
				getenv = func(k string) string { return c.env[k] }
			}
			got, ok := serverGC(getenv, c.machine, c.cgroup)
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
	write := func(dir, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, dir, "memory.max"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("system.slice", "8589934592\n")             // 8 GiB on the slice
	write("system.slice/skiff.service", "max\n")      // none on the unit
	write("system.slice/other.service", "1073741824") // not ours
	self := []byte("0::/system.slice/skiff.service\n")
	if got, want := cgroupMemoryLimit(root, self), int64(8)<<30; got != want {
		t.Errorf("limit from a parent = %d, want %d", got, want)
	}
	write("system.slice/skiff.service", "2147483648\n")
	if got, want := cgroupMemoryLimit(root, self), int64(2)<<30; got != want {
		t.Errorf("the unit's own, lower limit = %d, want %d", got, want)
	}
	if got := cgroupMemoryLimit(root, []byte("0::/elsewhere\n")); got != 0 {
		t.Errorf("a cgroup with no limit up to the root = %d, want 0", got)
	}
	if got := cgroupMemoryLimit(filepath.Join(root, "missing"), self); got != 0 {
		t.Errorf("no cgroup2 mount = %d, want 0", got)
	}
}
