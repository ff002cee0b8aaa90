package containerd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiffhq/skiff/client/driver"
)

// Limits of the cgroup CPU shares value.
const (
	minCPUShares = 2
	maxCPUShares = 262144
)

// checkPolicy refuses settings the node operator has not allowed. It runs
// before any image is pulled.
func (d *Driver) checkPolicy(s *taskSettings) error {
	if s.privileged && !d.cfg.AllowPrivileged {
		return errors.New("config: privileged = true is not allowed on this node; the operator must enable allow_privileged in the client's containerd plugin config")
	}
	if len(s.mounts) > 0 && !d.cfg.AllowHostMounts {
		return fmt.Errorf("config: host bind mounts (mount/mounts blocks, first: %s) are not allowed on this node; the operator must enable allow_host_mounts in the client's containerd plugin config", s.mounts[0].source)
	}
	return nil
}

// processArgs applies Docker's rules: an entrypoint from the task config
// replaces the image's entrypoint and drops the image's cmd; command plus
// args, or args alone, replace the cmd.
func processArgs(ic ocispec.ImageConfig, s *taskSettings) ([]string, error) {
	entrypoint, cmd := ic.Entrypoint, ic.Cmd
	if len(s.entrypoint) > 0 {
		entrypoint, cmd = s.entrypoint, nil
	}
	switch {
	case s.command != "":
		cmd = append([]string{s.command}, s.args...)
	case len(s.args) > 0:
		cmd = s.args
	}
	args := append(slices.Clone(entrypoint), cmd...)
	if len(args) == 0 {
		return nil, errors.New("config: nothing to run: the image has no entrypoint or cmd; set command (and args) in the task config")
	}
	return args, nil
}

// normalizeCaps turns "net_admin" into "CAP_NET_ADMIN"; "ALL" stays.
func normalizeCaps(caps []string) []string {
	out := make([]string, 0, len(caps))
	for _, c := range caps {
		c = strings.ToUpper(strings.TrimSpace(c))
		if c != "ALL" && !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		out = append(out, c)
	}
	return out
}

// specOpts returns the options that build the task's OCI runtime spec on
// top of containerd's defaults: image config first, then the task's
// settings, Skiff's directories, resources and the host network.
func (d *Driver) specOpts(cfg *driver.TaskConfig, s *taskSettings, ic ocispec.ImageConfig, img oci.Image) ([]oci.SpecOpts, error) {
	args, err := processArgs(ic, s)
	if err != nil {
		return nil, err
	}
	env := maps.Clone(cfg.Env)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, s.env)

	opts := []oci.SpecOpts{
		oci.WithImageConfig(img),
		oci.WithProcessArgs(args...),
		oci.WithEnv(sortedEnv(env)),
		// No CNI yet: tasks share the host's network namespace, so a
		// port a task listens on is a port of the host.
		oci.WithHostNamespace(specs.NetworkNamespace),
		oci.WithHostHostsFile,
		oci.WithHostResolvconf,
	}
	if s.workDir != "" {
		opts = append(opts, oci.WithProcessCwd(s.workDir))
	}
	user := s.user
	if user == "" {
		user = cfg.User
	}
	if user != "" {
		opts = append(opts, oci.WithUser(user))
	}
	if s.hostname != "" {
		opts = append(opts, oci.WithHostname(s.hostname))
	}
	if s.readonlyRootfs {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if s.privileged {
		opts = append(opts, oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices)
	}
	if drop := normalizeCaps(s.capDrop); len(drop) > 0 {
		if slices.Contains(drop, "ALL") {
			opts = append(opts, oci.WithCapabilities([]string{}))
		} else {
			opts = append(opts, oci.WithDroppedCapabilities(drop))
		}
	}
	if add := normalizeCaps(s.capAdd); len(add) > 0 {
		if slices.Contains(add, "ALL") {
			opts = append(opts, oci.WithAllKnownCapabilities)
		} else {
			opts = append(opts, oci.WithAddedCapabilities(add))
		}
	}
	opts = append(opts, oci.WithMounts(taskMounts(cfg, s)))
	opts = append(opts, withResources(cfg))
	return opts, nil
}

// taskMounts returns the task's cgroup mount, the bind mounts of Skiff's
// task directories and those of the task's own mount blocks (already
// allowed by checkPolicy).
func taskMounts(cfg *driver.TaskConfig, s *taskSettings) []specs.Mount {
	// The task's own cgroup, read-only, as Docker does: runtimes such as
	// the JVM read their memory and CPU limits there. containerd 2's
	// default spec no longer has this mount.
	mounts := []specs.Mount{{
		Destination: "/sys/fs/cgroup",
		Type:        "cgroup",
		Source:      "cgroup",
		Options:     []string{"nosuid", "noexec", "nodev", "relatime", "ro"},
	}}
	for _, m := range []struct{ src, dst string }{
		{cfg.AllocDir, "/alloc"},
		{cfg.TaskLocalDir, "/local"},
		{cfg.TaskSecretsDir, "/secrets"},
	} {
		if m.src != "" {
			mounts = append(mounts, specs.Mount{Destination: m.dst, Type: "bind", Source: m.src, Options: []string{"rbind", "rw"}})
		}
	}
	for _, m := range s.mounts {
		mode := "rw"
		if m.readonly {
			mode = "ro"
		}
		mounts = append(mounts, specs.Mount{Destination: m.target, Type: "bind", Source: m.source, Options: []string{"rbind", mode}})
	}
	return mounts
}

// withResources sets CPU shares from CPUMHz and the memory limit from
// MemoryMB, or from MemoryMaxMB with MemoryMB as the soft limit.
func withResources(cfg *driver.TaskConfig) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		r := s.Linux.Resources
		shares := uint64(min(max(cfg.CPUMHz, minCPUShares), maxCPUShares))
		r.CPU = &specs.LinuxCPU{Shares: &shares}
		const mb = 1 << 20
		switch {
		case cfg.MemoryMaxMB > cfg.MemoryMB && cfg.MemoryMB > 0:
			limit, soft := int64(cfg.MemoryMaxMB)*mb, int64(cfg.MemoryMB)*mb
			r.Memory = &specs.LinuxMemory{Limit: &limit, Reservation: &soft}
		case cfg.MemoryMB > 0:
			limit := int64(cfg.MemoryMB) * mb
			r.Memory = &specs.LinuxMemory{Limit: &limit}
		case cfg.MemoryMaxMB > 0:
			limit := int64(cfg.MemoryMaxMB) * mb
			r.Memory = &specs.LinuxMemory{Limit: &limit}
		}
		return nil
	}
}
