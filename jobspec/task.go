package jobspec

import (
	"fmt"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/skiffhq/skiff/structs"
	"github.com/zclconf/go-cty/cty"
)

var taskSchema = &schema{
	attrs: []string{"driver", "user", "kill_timeout", "kill_signal", "shutdown_delay", "leader",
		"kind", "env", "meta", "config"},
	blocks: []string{"config", "constraint", "affinity", "env", "service", "resources", "restart",
		"meta", "logs", "template", "volume_mount", "lifecycle"},
	unsupported: map[string]string{
		"artifact":         "build the files into the image, or render them with a template block",
		"vault":            vaultHint,
		"consul":           consulHint,
		"csi_plugin":       csiHint,
		"dispatch_payload": "dispatched payloads are not written into tasks; pass small values as dispatch meta (NOMAD_META_*)",
		"identity":         "workload identities are not configurable per task",
		"scaling":          "task resources cannot be autoscaled; use a group scaling block to scale count",
		"action":           "",
		"schedule":         "",
		"secret":           vaultHint,
	},
}

// decodeTask decodes a task "name" block of group tg (at groupPath).
func (p *parser) decodeTask(blk *hclsyntax.Block, groupPath, svcPrefix, jobType string, tg *structs.TaskGroup) *structs.Task {
	name := blk.Labels[0]
	path := structs.BlockPath(groupPath, "task", name)
	p.labelledOnce(blk, path, "task")
	t := &structs.Task{Name: name}
	b := p.open(blk.Body, path, taskSchema)
	b.str("driver", &t.Driver)
	b.str("user", &t.User)
	b.duration("kill_timeout", &t.KillTimeout)
	b.str("kill_signal", &t.KillSignal)
	b.duration("shutdown_delay", &t.ShutdownDelay)
	b.boolean("leader", &t.Leader)
	b.str("kind", &t.Kind)
	t.Env = b.strMap("env")
	t.Meta = b.strMap("meta")
	t.Config = p.taskConfig(b)
	t.Constraints = p.constraints(b)
	t.Affinities = p.affinities(b)

	if r := b.single("resources"); r != nil {
		t.Resources = p.resources(r, structs.AttrPath(path, "resources"))
	}
	restartPath := structs.AttrPath(path, "restart")
	if r := b.single("restart"); r != nil {
		base := tg.RestartPolicy
		if base == nil {
			base = structs.DefaultRestartPolicy(jobType)
		}
		t.RestartPolicy = p.restart(r, restartPath, base)
	} else {
		p.alias(structs.AttrPath(groupPath, "restart"), restartPath)
	}
	if l := b.single("logs"); l != nil {
		lc := &structs.LogConfig{MaxFiles: 10, MaxFileSizeMB: 10}
		lb := p.open(l.Body, structs.AttrPath(path, "logs"), &schema{attrs: []string{"max_files", "max_file_size", "disabled"}})
		lb.int("max_files", &lc.MaxFiles)
		lb.int("max_file_size", &lc.MaxFileSizeMB)
		lb.boolean("disabled", &lc.Disabled)
		t.LogConfig = lc
	}
	if l := b.single("lifecycle"); l != nil {
		lc := &structs.TaskLifecycle{}
		lb := p.open(l.Body, structs.AttrPath(path, "lifecycle"), &schema{attrs: []string{"hook", "sidecar"}})
		lb.str("hook", &lc.Hook)
		lb.boolean("sidecar", &lc.Sidecar)
		t.Lifecycle = lc
	}
	for i, tb := range b.blocks("template") {
		t.Templates = append(t.Templates, p.template(tb, path, i))
	}
	for i, vb := range b.blocks("volume_mount") {
		t.VolumeMounts = append(t.VolumeMounts, p.volumeMount(vb, path, i))
	}
	for _, sb := range b.blocks("service") {
		if s := p.service(sb, path, svcPrefix+"-"+name); s != nil {
			t.Services = append(t.Services, s)
		}
	}
	return t
}

// taskConfig decodes the free-form driver config, written as a block
// (config { ... }) or, less often, as an attribute (config = { ... }).
func (p *parser) taskConfig(b *body) map[string]any {
	path := structs.AttrPath(b.path, "config")
	a := b.b.Attributes["config"]
	if a == nil {
		if blk := b.single("config"); blk != nil {
			return p.freeform(blk.Body, path)
		}
		return nil
	}
	if blks := b.blocks("config"); len(blks) > 0 {
		p.fail(blks[0].DefRange(), b.path, path, "config is set both as an attribute (line %d) and as a block; keep one", a.SrcRange.Start.Line)
		return nil
	}
	v, ok := p.eval(a.Expr, b.path, path)
	if !ok {
		return nil
	}
	if !v.Type().IsObjectType() && !v.Type().IsMapType() {
		b.bad(a, "config must be a block: config { image = \"...\" } (got %s)", describeValue(v))
		return nil
	}
	out, err := goValue(v)
	if err != nil {
		b.bad(a, "config: %v", err)
		return nil
	}
	m, _ := out.(map[string]any)
	return m
}

var resourcesSchema = &schema{
	attrs:  []string{"cpu", "cores", "memory", "memory_max", "disk"},
	blocks: []string{"network"},
	unsupported: map[string]string{
		"device":  "GPUs and other devices cannot be requested",
		"numa":    "",
		"iops":    "",
		"secrets": "",
	},
}

func (p *parser) resources(blk *hclsyntax.Block, path string) *structs.Resources {
	r := &structs.Resources{}
	b := p.open(blk.Body, path, resourcesSchema)
	b.int("cpu", &r.CPU)
	b.int("cores", &r.Cores)
	b.int("memory", &r.MemoryMB)
	b.int("memory_max", &r.MemoryMaxMB)
	b.int("disk", &r.DiskMB)
	r.Networks = p.networks(b)
	return r
}

var networkSchema = &schema{
	attrs:  []string{"mode", "hostname", "mbits"},
	blocks: []string{"port"},
	unsupported: map[string]string{
		"dns": "custom DNS settings are not supported; tasks use the node's resolver",
		"cni": "",
	},
}

// networks decodes the network blocks of b, at path "network" when there
// is one and "network[i]" when there are several, as Validate does.
func (p *parser) networks(b *body) []*structs.NetworkResource {
	blks := b.blocks("network")
	var out []*structs.NetworkResource
	for i, blk := range blks {
		path := structs.AttrPath(b.path, "network")
		if len(blks) > 1 {
			path = structs.AttrPath(b.path, fmt.Sprintf("network[%d]", i))
		}
		p.labels(blk, b.path, 0)
		p.record(path, blk.DefRange())
		nb := p.open(blk.Body, path, networkSchema)
		n := &structs.NetworkResource{Mode: "host"}
		nb.str("mode", &n.Mode)
		nb.str("hostname", &n.Hostname)
		nb.int("mbits", &n.MBits)
		for _, pb := range nb.blocks("port") {
			if !p.labels(pb, path, 1) {
				continue
			}
			pp := structs.BlockPath(path, "port", pb.Labels[0])
			p.labelledOnce(pb, pp, "port")
			port := structs.Port{Label: pb.Labels[0]}
			pbb := p.open(pb.Body, pp, &schema{attrs: []string{"static", "to", "host_network"}})
			pbb.int("static", &port.Value)
			pbb.int("to", &port.To)
			pbb.str("host_network", &port.HostNetwork)
			if port.Value != 0 {
				n.ReservedPorts = append(n.ReservedPorts, port)
			} else {
				n.DynamicPorts = append(n.DynamicPorts, port)
			}
		}
		out = append(out, n)
	}
	return out
}

var serviceSchema = &schema{
	attrs: []string{"name", "tags", "canary_tags", "port", "address_mode", "address", "task",
		"provider", "meta", "on_update"},
	blocks: []string{"check", "meta"},
	unsupported: map[string]string{
		"connect":             "Skiff has no service mesh; address services through Skiff's service catalogue",
		"check_restart":       "",
		"tagged_addresses":    "",
		"weights":             "",
		"enable_tag_override": consulHint,
		"canary_meta":         "",
		"identity":            "",
		"cluster":             "",
		"kind":                "",
	},
}

// service decodes a service block of a group or task (at parent). Its path
// is service["name"], so the name is decoded first; it defaults to
// job-group or job-group-task, as in Nomad.
func (p *parser) service(blk *hclsyntax.Block, parent, defaultName string) *structs.Service {
	p.labels(blk, parent, 0)
	s := &structs.Service{AddressMode: "auto", OnUpdate: "require_healthy"}
	(&body{p: p, b: blk.Body, path: structs.AttrPath(parent, "service")}).str("name", &s.Name)
	if s.Name == "" {
		s.Name = defaultName
	}
	path := structs.BlockPath(parent, "service", s.Name)
	p.record(path, blk.DefRange())
	b := p.open(blk.Body, path, serviceSchema)
	b.strList("tags", &s.Tags)
	b.strList("canary_tags", &s.CanaryTags)
	b.str("port", &s.PortLabel)
	b.str("address_mode", &s.AddressMode)
	b.str("address", &s.Address)
	b.str("task", &s.TaskName)
	b.str("provider", &s.Provider)
	b.str("on_update", &s.OnUpdate)
	s.Meta = b.strMap("meta")
	for i, cb := range b.blocks("check") {
		s.Checks = append(s.Checks, p.check(cb, path, i, s.Name))
	}
	return s
}

var checkSchema = &schema{
	attrs: []string{"name", "type", "command", "args", "path", "protocol", "port", "method",
		"interval", "timeout", "initial_status", "task", "success_before_passing",
		"failures_before_critical", "header"},
	blocks: []string{"header"},
	unsupported: map[string]string{
		"check_restart":   "",
		"grpc_service":    "use a tcp or http check",
		"grpc_use_tls":    "use a tcp or http check",
		"tls_skip_verify": "",
		"tls_server_name": "",
		"expose":          "",
		"body":            "",
		"on_update":       "",
		"address_mode":    "",
		"notes":           "",
	},
}

func (p *parser) check(blk *hclsyntax.Block, svcPath string, i int, svcName string) *structs.ServiceCheck {
	path := structs.AttrPath(svcPath, fmt.Sprintf("check[%d]", i))
	p.labels(blk, svcPath, 0)
	p.record(path, blk.DefRange())
	b := p.open(blk.Body, path, checkSchema)
	c := &structs.ServiceCheck{}
	b.str("name", &c.Name)
	b.str("type", &c.Type)
	b.str("command", &c.Command)
	b.strList("args", &c.Args)
	b.str("path", &c.Path)
	b.str("protocol", &c.Protocol)
	b.str("port", &c.PortLabel)
	b.str("method", &c.Method)
	b.duration("interval", &c.Interval)
	b.duration("timeout", &c.Timeout)
	b.str("initial_status", &c.InitialStatus)
	b.str("task", &c.TaskName)
	b.int("success_before_passing", &c.SuccessBeforePassing)
	b.int("failures_before_critical", &c.FailuresBeforeCritical)
	c.Header = p.header(b)
	if c.Name == "" {
		c.Name = fmt.Sprintf("service: %q check", svcName)
	}
	return c
}

// header decodes a check's HTTP headers: header { Name = ["v1", "v2"] } or
// header = { Name = ["v"] }; a single string is a one-value list.
func (p *parser) header(b *body) map[string][]string {
	path := structs.AttrPath(b.path, "header")
	var vals []cty.Value
	var at []*hclsyntax.Attribute
	if a := b.b.Attributes["header"]; a != nil {
		v, ok := p.eval(a.Expr, b.path, path)
		if !ok {
			return nil
		}
		if !v.Type().IsObjectType() && !v.Type().IsMapType() {
			b.bad(a, "header must be a map of lists of strings (got %s)", describeValue(v))
			return nil
		}
		vals, at = append(vals, v), append(at, a)
	}
	for _, blk := range b.blocks("header") {
		p.labels(blk, b.path, 0)
		p.record(path, blk.DefRange())
		for _, a := range sortedAttrs(blk.Body) {
			if v, ok := p.eval(a.Expr, path, structs.AttrPath(path, a.Name)); ok {
				vals = append(vals, cty.ObjectVal(map[string]cty.Value{a.Name: v}))
				at = append(at, a)
			}
		}
	}
	if len(vals) == 0 {
		return nil
	}
	out := map[string][]string{}
	for i, v := range vals {
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			if e.IsNull() {
				continue
			}
			if s, err := toString(e); err == nil {
				out[k.AsString()] = append(out[k.AsString()], s)
				continue
			}
			l, err := toStringList(e)
			if err != nil {
				p.fail(at[i].SrcRange, b.path, path, "header %q must be a list of strings (got %s)", k.AsString(), describeValue(e))
				continue
			}
			out[k.AsString()] = append(out[k.AsString()], l...)
		}
	}
	return out
}

var templateSchema = &schema{
	attrs: []string{"source", "destination", "data", "change_mode", "change_signal", "splay",
		"perms", "left_delimiter", "right_delimiter", "env", "once"},
	unsupported: map[string]string{
		"change_script":        `use change_mode = "restart" or "signal"`,
		"uid":                  "",
		"gid":                  "",
		"error_on_missing_key": "",
		"wait":                 "use splay",
		"vault_grace":          vaultHint,
	},
}

func (p *parser) template(blk *hclsyntax.Block, taskPath string, i int) *structs.Template {
	path := structs.AttrPath(taskPath, fmt.Sprintf("template[%d]", i))
	p.labels(blk, taskPath, 0)
	p.record(path, blk.DefRange())
	b := p.open(blk.Body, path, templateSchema)
	t := &structs.Template{LeftDelim: "{{", RightDelim: "}}"}
	b.str("source", &t.SourcePath)
	b.str("destination", &t.DestPath)
	b.str("data", &t.EmbeddedTmpl)
	b.str("change_mode", &t.ChangeMode)
	b.str("change_signal", &t.ChangeSignal)
	b.duration("splay", &t.Splay)
	b.str("perms", &t.Perms)
	b.str("left_delimiter", &t.LeftDelim)
	b.str("right_delimiter", &t.RightDelim)
	b.boolean("env", &t.Envvars)
	b.boolean("once", &t.Once)
	return t
}

var volumeMountSchema = &schema{
	attrs:       []string{"volume", "destination", "read_only", "propagation_mode"},
	unsupported: map[string]string{"selinux_label": ""},
}

func (p *parser) volumeMount(blk *hclsyntax.Block, taskPath string, i int) *structs.VolumeMount {
	path := structs.AttrPath(taskPath, fmt.Sprintf("volume_mount[%d]", i))
	p.labels(blk, taskPath, 0)
	p.record(path, blk.DefRange())
	b := p.open(blk.Body, path, volumeMountSchema)
	vm := &structs.VolumeMount{PropagationMode: "private"}
	b.str("volume", &vm.Volume)
	b.str("destination", &vm.Destination)
	b.boolean("read_only", &vm.ReadOnly)
	b.str("propagation_mode", &vm.PropagationMode)
	return vm
}
