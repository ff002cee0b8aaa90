package client

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/structs"
)

// cniDirs are where CNI plugins are looked for.
var cniDirs = []string{"/opt/cni/bin", "/usr/lib/cni"}

// fingerprint fills the node's attributes, resources and drivers from
// this machine. It reads /proc and calls each driver's Fingerprint.
func (c *Client) fingerprint(ctx context.Context, n *structs.Node) {
	attrs := map[string]string{
		"kernel.name":   runtime.GOOS,
		"cpu.arch":      runtime.GOARCH,
		"os.name":       runtime.GOOS,
		"skiff.version": c.config.Version,
	}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		attrs["kernel.version"] = unix.ByteSliceToString(uts.Release[:])
		attrs["kernel.arch"] = unix.ByteSliceToString(uts.Machine[:])
	}
	if host, err := os.Hostname(); err == nil {
		attrs["unique.hostname"] = host
	}
	if ip := c.nodeIP(); ip != "" {
		attrs["unique.network.ip-address"] = ip
	}
	for k, v := range osRelease() {
		attrs[k] = v
	}

	cores := runtime.NumCPU()
	mhz, model := cpuInfo()
	if mhz <= 0 {
		mhz = 1000 // virtual machines may not say; count 1 GHz a core
	}
	total := int64(cores) * int64(mhz)
	attrs["cpu.numcores"] = strconv.Itoa(cores)
	attrs["cpu.frequency"] = strconv.Itoa(mhz)
	attrs["cpu.totalcompute"] = strconv.FormatInt(total, 10)
	if model != "" {
		attrs["cpu.modelname"] = model
	}
	memMB := memTotalMB()
	attrs["memory.totalbytes"] = strconv.FormatInt(memMB<<20, 10)
	var diskFree, diskTotal int64
	var fs unix.Statfs_t
	if unix.Statfs(c.config.DataDir, &fs) == nil {
		diskFree = int64(fs.Bavail) * int64(fs.Bsize) >> 20
		diskTotal = int64(fs.Blocks) * int64(fs.Bsize) >> 20
		attrs["unique.storage.volume"] = c.config.DataDir
		attrs["unique.storage.bytestotal"] = strconv.FormatInt(diskTotal<<20, 10)
		attrs["unique.storage.bytesfree"] = strconv.FormatInt(diskFree<<20, 10)
	}
	for _, dir := range cniDirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !e.IsDir() {
				attrs["plugins.cni.version."+e.Name()] = "1"
			}
		}
		attrs["plugins.cni.dir"] = dir
		break
	}

	n.Drivers = map[string]*structs.DriverInfo{}
	for name, d := range c.config.Drivers {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fp := d.Fingerprint(fctx)
		cancel()
		n.Drivers[name] = driverInfo(fp)
		for k, v := range fp.Attributes {
			attrs[k] = v
		}
	}
	if c.servers != nil {
		attrs[structs.AttrLiveness] = "1" // holdLiveness runs
	}
	n.Attributes = attrs
	n.NodeResources = &structs.NodeResources{
		Cpu:            structs.NodeCpuResources{CpuShares: total, TotalCpuCores: uint16(cores)},
		Memory:         structs.NodeMemoryResources{MemoryMB: memMB},
		Disk:           structs.NodeDiskResources{DiskMB: diskFree},
		MinDynamicPort: 20000, MaxDynamicPort: 32000,
	}
	n.ReservedResources = &structs.NodeReservedResources{
		Cpu:    structs.NodeCpuResources{CpuShares: int64(c.config.ReservedCPU)},
		Memory: structs.NodeMemoryResources{MemoryMB: int64(c.config.ReservedMemoryMB)},
	}
}

func driverInfo(fp *driver.Fingerprint) *structs.DriverInfo {
	return &structs.DriverInfo{
		Attributes: fp.Attributes, Detected: true, Healthy: fp.Healthy,
		HealthDescription: fp.Description, UpdateTime: time.Now(),
	}
}

// cpuInfo returns the highest per-core MHz /proc/cpuinfo reports and the
// model name.
func cpuInfo() (mhz int, model string) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0, ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "cpu MHz":
			if f, err := strconv.ParseFloat(v, 64); err == nil && int(f) > mhz {
				mhz = int(f)
			}
		case "model name":
			model = v
		}
	}
	return mhz, model
}

// memTotalMB reads MemTotal from /proc/meminfo.
func memTotalMB() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb >> 10
		}
	}
	return 0
}

// osRelease reads the distribution's name and version.
func osRelease() map[string]string {
	b, err := os.ReadFile(filepath.Join("/etc", "os-release"))
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"`)
		switch k {
		case "ID":
			out["os.name"] = v
		case "VERSION_ID":
			out["os.version"] = v
		}
	}
	return out
}

// nodeIP is the address other machines reach this node's tasks at: the
// agent's advertised HTTP address when it names one, else the machine's
// private IP.
func (c *Client) nodeIP() string {
	if host, _, err := net.SplitHostPort(c.config.HTTPAddr); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			return ip.String()
		}
	}
	ip, _ := sockaddr.GetPrivateIP()
	return ip
}
