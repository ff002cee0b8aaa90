package allocrunner

import (
	"cmp"
	"maps"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/skiffhq/skiff/structs"
)

// envPrefixes are the prefixes every runtime variable is set under: Skiff's
// own, and Nomad's so that job files and images written for Nomad work.
var envPrefixes = []string{"SKIFF_", "NOMAD_"}

// Paths of the task directories inside the container.
const (
	containerAllocDir   = "/alloc"
	containerLocalDir   = "/local"
	containerSecretsDir = "/secrets"
)

// nodeIPAttribute is the node attribute holding its address, used for
// IP_<label> when the allocation names no address of its own.
const nodeIPAttribute = "unique.network.ip-address"

// envInput is what a task's environment is computed from.
type envInput struct {
	alloc  *structs.Allocation
	group  *structs.TaskGroup
	task   *structs.Task
	node   *structs.Node
	region string
}

// taskEnv returns the environment of a task, as Nomad documents it under
// "Runtime Environment", each variable under both the SKIFF_ and NOMAD_
// prefixes:
//
//	ALLOC_ID SHORT_ALLOC_ID ALLOC_NAME ALLOC_INDEX JOB_ID JOB_NAME
//	JOB_PARENT_ID (when set) GROUP_NAME TASK_NAME NAMESPACE REGION DC
//	CPU_LIMIT MEMORY_LIMIT MEMORY_MAX_LIMIT (when above MEMORY_LIMIT)
//	ALLOC_DIR=/alloc TASK_DIR=/local SECRETS_DIR=/secrets
//	per port label: PORT_<l> (the port inside the task: "to" if mapped, else
//	the host port) HOST_PORT_<l> IP_<l> HOST_IP_<l> ADDR_<l> HOST_ADDR_<l>
//	(host IP and port)
//	META_<key> for job, group and task meta merged (task wins), both as
//	written and upper-cased
//
// Characters not valid in a variable name become "_". No node ID is set
// (Nomad sets none either; ${node.unique.id} interpolates it). Then the
// task's env block is added, its keys and values interpolated by
// interpolate.
func taskEnv(in envInput) map[string]string {
	base := map[string]string{}
	set := func(k, v string) {
		for _, p := range envPrefixes {
			base[p+k] = v
		}
	}
	setIdentity(set, in)
	setResources(set, in)
	setPorts(set, in)
	for k, v := range mergedMeta(in) {
		set("META_"+cleanEnvKey(k), v)
		set("META_"+strings.ToUpper(cleanEnvKey(k)), v)
	}
	out := maps.Clone(base)
	for k, v := range in.task.Env {
		out[interpolate(k, base, in)] = interpolate(v, base, in)
	}
	return out
}

func setIdentity(set func(k, v string), in envInput) {
	a, job := in.alloc, in.alloc.Job
	set("ALLOC_ID", a.ID)
	set("SHORT_ALLOC_ID", a.ID[:min(8, len(a.ID))])
	set("ALLOC_NAME", a.Name)
	set("ALLOC_INDEX", strconv.Itoa(allocIndex(a.Name)))
	set("JOB_ID", a.JobID)
	set("JOB_NAME", job.Name)
	if job.ParentID != "" {
		set("JOB_PARENT_ID", job.ParentID)
	}
	set("GROUP_NAME", in.group.Name)
	set("TASK_NAME", in.task.Name)
	set("NAMESPACE", a.Namespace)
	set("REGION", in.region)
	if in.node != nil {
		set("DC", in.node.Datacenter)
	}
	set("ALLOC_DIR", containerAllocDir)
	set("TASK_DIR", containerLocalDir)
	set("SECRETS_DIR", containerSecretsDir)
}

func setResources(set func(k, v string), in envInput) {
	cpu, mem, memMax := taskResources(in.alloc, in.task)
	set("CPU_LIMIT", strconv.Itoa(cpu))
	set("MEMORY_LIMIT", strconv.Itoa(mem))
	if memMax > mem {
		set("MEMORY_MAX_LIMIT", strconv.Itoa(memMax))
	}
}

// taskResources returns the CPU (MHz) and memory (MB) the scheduler gave
// the task, falling back to what the task asked for.
func taskResources(a *structs.Allocation, t *structs.Task) (cpu, mem, memMax int) {
	if t.Resources != nil {
		cpu, mem, memMax = t.Resources.CPU, t.Resources.MemoryMB, t.Resources.MemoryMaxMB
	}
	if a.AllocatedResources != nil {
		if r := a.AllocatedResources.Tasks[t.Name]; r != nil {
			cpu, mem, memMax = int(r.Cpu.CpuShares), int(r.Memory.MemoryMB), int(r.Memory.MemoryMaxMB)
		}
	}
	return cpu, mem, memMax
}

// setPorts sets the port variables of the group's shared ports and of the
// task's own networks.
func setPorts(set func(k, v string), in envInput) {
	nodeIP := ""
	if in.node != nil {
		nodeIP = in.node.Attributes[nodeIPAttribute]
	}
	one := func(label string, host, to int, ip string) {
		l := cleanEnvKey(label)
		ip = cmp.Or(ip, nodeIP)
		inTask := host
		if to > 0 {
			inTask = to
		}
		set("PORT_"+l, strconv.Itoa(inTask))
		set("HOST_PORT_"+l, strconv.Itoa(host))
		if ip != "" {
			addr := net.JoinHostPort(ip, strconv.Itoa(host))
			set("IP_"+l, ip)
			set("HOST_IP_"+l, ip)
			set("ADDR_"+l, addr)
			set("HOST_ADDR_"+l, addr)
		}
	}
	r := in.alloc.AllocatedResources
	if r == nil {
		return
	}
	for _, p := range r.Shared.Ports {
		one(p.Label, p.Value, p.To, cmp.Or(p.HostIP, networkIP(r.Shared.Networks, p.Label)))
	}
	if tr := r.Tasks[in.task.Name]; tr != nil {
		for _, nw := range tr.Networks {
			for _, p := range append(append([]structs.Port(nil), nw.ReservedPorts...), nw.DynamicPorts...) {
				one(p.Label, p.Value, p.To, nw.IP)
			}
		}
	}
}

// networkIP returns the IP of the network that holds the port label.
func networkIP(nets []*structs.NetworkResource, label string) string {
	for _, nw := range nets {
		for _, ports := range [][]structs.Port{nw.ReservedPorts, nw.DynamicPorts} {
			for _, p := range ports {
				if p.Label == label {
					return nw.IP
				}
			}
		}
	}
	return ""
}

// mergedMeta is job meta, overridden by group meta, overridden by task meta.
func mergedMeta(in envInput) map[string]string {
	m := map[string]string{}
	maps.Copy(m, in.alloc.Job.Meta)
	maps.Copy(m, in.group.Meta)
	maps.Copy(m, in.task.Meta)
	return m
}

// allocIndex parses the index out of an allocation name "job.group[3]".
func allocIndex(name string) int {
	open := strings.LastIndexByte(name, '[')
	if open < 0 || !strings.HasSuffix(name, "]") {
		return 0
	}
	i, err := strconv.Atoi(name[open+1 : len(name)-1])
	if err != nil {
		return 0
	}
	return i
}

var invalidEnvChars = regexp.MustCompile(`[^A-Za-z0-9_]`)

// cleanEnvKey replaces characters not valid in a variable name with "_".
func cleanEnvKey(k string) string { return invalidEnvChars.ReplaceAllString(k, "_") }

var interpolation = regexp.MustCompile(`\$\{([^{}]+)\}`)

// interpolate replaces each ${name} in s: a runtime variable of env (e.g.
// ${NOMAD_PORT_http}, ${SKIFF_ALLOC_ID}), ${attr.<a>} (a node attribute),
// ${meta.<k>} (node meta), ${node.unique.id}, ${node.unique.name},
// ${node.datacenter}, ${node.class}, ${node.pool} and ${node.region}.
// References to anything else are left as written, as Nomad does.
func interpolate(s string, env map[string]string, in envInput) string {
	if !strings.Contains(s, "${") {
		return s
	}
	return interpolation.ReplaceAllStringFunc(s, func(ref string) string {
		name := strings.TrimSpace(ref[2 : len(ref)-1])
		if v, ok := lookupVar(name, env, in); ok {
			return v
		}
		return ref
	})
}

func lookupVar(name string, env map[string]string, in envInput) (string, bool) {
	if v, ok := env[name]; ok {
		return v, true
	}
	n := in.node
	if n == nil {
		return "", false
	}
	if k, ok := strings.CutPrefix(name, "attr."); ok {
		v, ok := n.Attributes[k]
		return v, ok
	}
	if k, ok := strings.CutPrefix(name, "meta."); ok {
		v, ok := n.Meta[k]
		return v, ok
	}
	switch name {
	case "node.unique.id":
		return n.ID, true
	case "node.unique.name":
		return n.Name, true
	case "node.datacenter":
		return n.Datacenter, true
	case "node.class":
		return n.NodeClass, true
	case "node.pool":
		return n.NodePool, true
	case "node.region":
		return in.region, true
	}
	return "", false
}

// interpolateConfig returns a copy of a task's driver config with every
// string interpolated like the env block (Nomad interpolates driver config
// too: args = ["--port", "${NOMAD_PORT_http}"]). The job's own maps are
// not changed.
func interpolateConfig(v any, env map[string]string, in envInput) any {
	switch x := v.(type) {
	case string:
		return interpolate(x, env, in)
	case []string:
		out := make([]string, len(x))
		for i, s := range x {
			out[i] = interpolate(s, env, in)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = interpolateConfig(e, env, in)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = interpolateConfig(e, env, in)
		}
		return out
	case []map[string]any:
		out := make([]map[string]any, len(x))
		for i, e := range x {
			out[i] = interpolateConfig(e, env, in).(map[string]any)
		}
		return out
	case map[string]string:
		out := make(map[string]string, len(x))
		for k, e := range x {
			out[k] = interpolate(e, env, in)
		}
		return out
	}
	return v
}
