package jobspec

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/hashicorp/cronexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/skiffhq/skiff/structs"
)

var jobSchema = &schema{
	attrs: []string{"region", "namespace", "id", "name", "type", "priority", "all_at_once",
		"datacenters", "node_pool", "meta"},
	blocks: []string{"meta", "constraint", "affinity", "spread", "update", "reschedule",
		"migrate", "periodic", "parameterized", "group"},
	unsupported: map[string]string{
		"multiregion":      "a Skiff cluster runs one region; submit the job to each region instead",
		"vault":            vaultHint,
		"vault_token":      vaultHint,
		"vault_namespace":  vaultHint,
		"consul":           consulHint,
		"consul_token":     consulHint,
		"consul_namespace": consulHint,
		"ui":               "",
		"task":             `put tasks inside a group "name" { ... } block`,
	},
}

const (
	vaultHint  = "Skiff has no Vault integration; keep secrets in Skiff variables and render them with a template block"
	consulHint = "Skiff has its own service catalogue and no Consul integration; remove it"
)

// decodeJob decodes the job block. Paths of job-level fields have no
// prefix ("priority", "constraint[0]"), as structs.Job.Validate builds them.
func (p *parser) decodeJob(blk *hclsyntax.Block) *structs.Job {
	if !p.labels(blk, "", 1) {
		return nil
	}
	p.record("", blk.DefRange())
	p.record("id", blk.LabelRanges[0])
	j := &structs.Job{ID: blk.Labels[0]}
	b := p.open(blk.Body, "", jobSchema)
	b.str("id", &j.ID)
	b.str("name", &j.Name)
	b.str("region", &j.Region)
	b.str("namespace", &j.Namespace)
	b.str("type", &j.Type)
	b.int("priority", &j.Priority)
	b.boolean("all_at_once", &j.AllAtOnce)
	b.strList("datacenters", &j.Datacenters)
	b.str("node_pool", &j.NodePool)
	j.Meta = b.strMap("meta")
	j.Constraints = p.constraints(b)
	j.Affinities = p.affinities(b)
	j.Spreads = p.spreads(b)

	jobType := j.Type
	if jobType == "" {
		jobType = structs.JobTypeService
	}
	if u := b.single("update"); u != nil {
		j.Update = p.update(u, "update", structs.DefaultUpdateStrategy())
	}
	if r := b.single("reschedule"); r != nil && p.jobTypeAllows(r, "", jobType, structs.JobTypeService, structs.JobTypeBatch) {
		j.Reschedule = p.reschedule(r, "reschedule", structs.DefaultReschedulePolicy(jobType))
	}
	if m := b.single("migrate"); m != nil && p.jobTypeAllows(m, "", jobType, structs.JobTypeService) {
		j.Migrate = p.migrate(m, "migrate", structs.DefaultMigrateStrategy())
	}
	if pb := b.single("periodic"); pb != nil {
		j.Periodic = p.periodic(pb)
	}
	if pb := b.single("parameterized"); pb != nil {
		pj := &structs.ParameterizedJobConfig{}
		pbb := p.open(pb.Body, "parameterized", &schema{attrs: []string{"payload", "meta_required", "meta_optional"}})
		pbb.str("payload", &pj.Payload)
		pbb.strList("meta_required", &pj.MetaRequired)
		pbb.strList("meta_optional", &pj.MetaOptional)
		j.ParameterizedJob = pj
	}
	for _, gb := range b.blocks("group") {
		if p.labels(gb, "", 1) {
			j.TaskGroups = append(j.TaskGroups, p.decodeGroup(gb, j, jobType))
		}
	}
	return j
}

var constraintShorthands = []string{
	structs.ConstraintDistinctHosts, structs.ConstraintDistinctProperty, structs.ConstraintRegex,
	structs.ConstraintVersion, structs.ConstraintSemver, structs.ConstraintSetContains,
	structs.ConstraintSetContainsAny, structs.ConstraintSetContainsAll,
}

var constraintSchema = &schema{attrs: append([]string{"attribute", "operator", "value"}, constraintShorthands...)}

// constraints decodes the constraint blocks of parent, indexed
// constraint[i] as structs.Job.Validate does. Nomad's shorthands
// (distinct_hosts = true, regexp = "...", ...) set the operator.
func (p *parser) constraints(parent *body) []*structs.Constraint {
	var out []*structs.Constraint
	for _, blk := range parent.blocks("constraint") {
		path := structs.AttrPath(parent.path, fmt.Sprintf("constraint[%d]", len(out)))
		p.labels(blk, parent.path, 0)
		p.record(path, blk.DefRange())
		b := p.open(blk.Body, path, constraintSchema)
		c := &structs.Constraint{}
		b.str("attribute", &c.LTarget)
		b.str("operator", &c.Operand)
		b.str("value", &c.RTarget)
		var short []*hclsyntax.Attribute
		for _, name := range constraintShorthands {
			if a := blk.Body.Attributes[name]; a != nil {
				short = append(short, a)
			}
		}
		if len(short) > 1 || len(short) == 1 && c.Operand != "" {
			b.bad(short[len(short)-1], "set the operator once: either operator = \"...\" or one shorthand such as %s", short[0].Name)
		} else if len(short) == 1 {
			a := short[0]
			c.Operand = a.Name
			switch a.Name {
			case structs.ConstraintDistinctHosts:
				var on bool
				if !b.boolean(a.Name, &on) || !on {
					p.forget(path) // distinct_hosts = false asks for nothing
					continue
				}
			case structs.ConstraintDistinctProperty:
				b.str(a.Name, &c.LTarget)
				p.record(structs.AttrPath(path, "attribute"), a.SrcRange)
			default:
				b.str(a.Name, &c.RTarget)
				p.record(structs.AttrPath(path, "value"), a.SrcRange)
			}
			p.record(structs.AttrPath(path, "operator"), a.SrcRange)
		}
		if c.Operand == "" {
			c.Operand = "="
		}
		out = append(out, c)
	}
	return out
}

var affinitySchema = &schema{attrs: []string{"attribute", "operator", "value", "weight"}}

func (p *parser) affinities(parent *body) []*structs.Affinity {
	var out []*structs.Affinity
	for i, blk := range parent.blocks("affinity") {
		path := structs.AttrPath(parent.path, fmt.Sprintf("affinity[%d]", i))
		p.labels(blk, parent.path, 0)
		p.record(path, blk.DefRange())
		b := p.open(blk.Body, path, affinitySchema)
		a := &structs.Affinity{Operand: "=", Weight: 50}
		b.str("attribute", &a.LTarget)
		b.str("operator", &a.Operand)
		b.str("value", &a.RTarget)
		var w int64
		if b.integer("weight", -100, 100, &w) {
			a.Weight = int8(w)
		}
		out = append(out, a)
	}
	return out
}

var spreadSchema = &schema{attrs: []string{"attribute", "weight"}, blocks: []string{"target"}}

func (p *parser) spreads(parent *body) []*structs.Spread {
	var out []*structs.Spread
	for i, blk := range parent.blocks("spread") {
		path := structs.AttrPath(parent.path, fmt.Sprintf("spread[%d]", i))
		p.labels(blk, parent.path, 0)
		p.record(path, blk.DefRange())
		b := p.open(blk.Body, path, spreadSchema)
		s := &structs.Spread{Weight: 50}
		b.str("attribute", &s.Attribute)
		var w int64
		if b.integer("weight", 0, 100, &w) {
			s.Weight = int8(w)
		}
		for _, tb := range b.blocks("target") {
			if !p.labels(tb, path, 1) {
				continue
			}
			tp := structs.BlockPath(path, "target", tb.Labels[0])
			p.record(structs.AttrPath(path, "target"), tb.DefRange())
			p.record(tp, tb.DefRange())
			t := &structs.SpreadTarget{Value: tb.Labels[0]}
			var pct int64
			if p.open(tb.Body, tp, &schema{attrs: []string{"percent"}}).integer("percent", 0, 100, &pct) {
				t.Percent = uint8(pct)
			}
			s.SpreadTarget = append(s.SpreadTarget, t)
		}
		out = append(out, s)
	}
	return out
}

var updateSchema = &schema{attrs: []string{"max_parallel", "health_check", "min_healthy_time",
	"healthy_deadline", "progress_deadline", "auto_revert", "auto_promote", "canary", "stagger"}}

// update decodes an update block over base: the fields it leaves out keep
// base's values (the defaults, or the job's update block for a group).
func (p *parser) update(blk *hclsyntax.Block, path string, base *structs.UpdateStrategy) *structs.UpdateStrategy {
	u := *base
	b := p.open(blk.Body, path, updateSchema)
	b.int("max_parallel", &u.MaxParallel)
	b.str("health_check", &u.HealthCheck)
	b.duration("min_healthy_time", &u.MinHealthyTime)
	b.duration("healthy_deadline", &u.HealthyDeadline)
	b.duration("progress_deadline", &u.ProgressDeadline)
	b.boolean("auto_revert", &u.AutoRevert)
	b.boolean("auto_promote", &u.AutoPromote)
	b.int("canary", &u.Canary)
	b.duration("stagger", &u.Stagger)
	return &u
}

var restartSchema = &schema{attrs: []string{"attempts", "interval", "delay", "mode", "render_templates"}}

func (p *parser) restart(blk *hclsyntax.Block, path string, base *structs.RestartPolicy) *structs.RestartPolicy {
	r := *base
	b := p.open(blk.Body, path, restartSchema)
	b.int("attempts", &r.Attempts)
	b.duration("interval", &r.Interval)
	b.duration("delay", &r.Delay)
	b.str("mode", &r.Mode)
	b.boolean("render_templates", &r.RenderTemplates)
	return &r
}

var rescheduleSchema = &schema{attrs: []string{"attempts", "interval", "delay", "delay_function", "max_delay", "unlimited"}}

func (p *parser) reschedule(blk *hclsyntax.Block, path string, base *structs.ReschedulePolicy) *structs.ReschedulePolicy {
	r := *base
	b := p.open(blk.Body, path, rescheduleSchema)
	b.int("attempts", &r.Attempts)
	b.duration("interval", &r.Interval)
	b.duration("delay", &r.Delay)
	b.str("delay_function", &r.DelayFunction)
	b.duration("max_delay", &r.MaxDelay)
	b.boolean("unlimited", &r.Unlimited)
	return &r
}

var migrateSchema = &schema{attrs: []string{"max_parallel", "health_check", "min_healthy_time", "healthy_deadline"}}

func (p *parser) migrate(blk *hclsyntax.Block, path string, base *structs.MigrateStrategy) *structs.MigrateStrategy {
	m := *base
	b := p.open(blk.Body, path, migrateSchema)
	b.int("max_parallel", &m.MaxParallel)
	b.str("health_check", &m.HealthCheck)
	b.duration("min_healthy_time", &m.MinHealthyTime)
	b.duration("healthy_deadline", &m.HealthyDeadline)
	return &m
}

var periodicSchema = &schema{attrs: []string{"cron", "crons", "prohibit_overlap", "time_zone", "enabled"}}

// periodic decodes the periodic block; it is enabled unless it says
// otherwise, and its cron expression is checked here, with its position.
func (p *parser) periodic(blk *hclsyntax.Block) *structs.PeriodicConfig {
	pc := &structs.PeriodicConfig{Enabled: true, SpecType: "cron", TimeZone: "UTC"}
	b := p.open(blk.Body, "periodic", periodicSchema)
	b.boolean("enabled", &pc.Enabled)
	b.boolean("prohibit_overlap", &pc.ProhibitOverlap)
	b.str("time_zone", &pc.TimeZone)
	cronAttr := blk.Body.Attributes["cron"]
	if crons := blk.Body.Attributes["crons"]; crons != nil {
		var list []string
		switch {
		case cronAttr != nil:
			b.bad(crons, "set cron or crons, not both")
		case !b.strList("crons", &list):
		case len(list) != 1:
			b.bad(crons, "Skiff supports one cron expression per job (got %d); use cron = \"...\"", len(list))
		default:
			pc.Spec = list[0]
			p.record("periodic.cron", crons.SrcRange)
			cronAttr = crons
		}
	} else {
		b.str("cron", &pc.Spec)
	}
	if cronAttr != nil && pc.Spec != "" {
		if err := checkCron(pc.Spec); err != nil {
			b.p.fail(cronAttr.SrcRange, "periodic", "periodic.cron",
				"invalid cron expression %q: %v; use five fields such as \"*/15 * * * *\" or a macro such as \"@daily\"", pc.Spec, err)
		}
	}
	return pc
}

// checkCron parses a cron expression; the parser is not trusted not to
// panic on malformed input.
func checkCron(spec string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot be parsed")
		}
	}()
	_, err = cronexpr.Parse(spec)
	return err
}

var groupSchema = &schema{
	attrs: []string{"count", "shutdown_delay", "max_run_duration", "stop_after_client_disconnect",
		"max_client_disconnect", "meta"},
	blocks: []string{"constraint", "affinity", "spread", "task", "volume", "restart", "reschedule",
		"disconnect", "ephemeral_disk", "update", "migrate", "network", "service", "scaling", "meta"},
	unsupported: map[string]string{
		"consul":                     consulHint,
		"vault":                      vaultHint,
		"prevent_reschedule_on_lost": "",
	},
}

// decodeGroup decodes a group "name" block of job j.
func (p *parser) decodeGroup(blk *hclsyntax.Block, j *structs.Job, jobType string) *structs.TaskGroup {
	name := blk.Labels[0]
	path := structs.BlockPath("", "group", name)
	p.labelledOnce(blk, path, "group")
	tg := &structs.TaskGroup{Name: name}
	b := p.open(blk.Body, path, groupSchema)
	b.int("count", &tg.Count)
	countSet := blk.Body.Attributes["count"] != nil
	tg.Constraints = p.constraints(b)
	tg.Affinities = p.affinities(b)
	tg.Spreads = p.spreads(b)
	tg.Meta = b.strMap("meta")
	b.durationPtr("shutdown_delay", &tg.ShutdownDelay)
	b.durationPtr("max_run_duration", &tg.MaxRunDuration)

	if r := b.single("restart"); r != nil {
		tg.RestartPolicy = p.restart(r, structs.AttrPath(path, "restart"), structs.DefaultRestartPolicy(jobType))
	}
	if r := b.single("reschedule"); r != nil && p.jobTypeAllows(r, path, jobType, structs.JobTypeService, structs.JobTypeBatch) {
		base := structs.DefaultReschedulePolicy(jobType)
		if j.Reschedule != nil {
			base = j.Reschedule
		}
		tg.ReschedulePolicy = p.reschedule(r, structs.AttrPath(path, "reschedule"), base)
	} else {
		p.alias("reschedule", structs.AttrPath(path, "reschedule"))
	}
	if u := b.single("update"); u != nil {
		base := structs.DefaultUpdateStrategy()
		if j.Update != nil {
			base = j.Update
		}
		tg.Update = p.update(u, structs.AttrPath(path, "update"), base)
	} else if j.Update != nil {
		// Canonicalize passes the job's update block down to service
		// groups only; pass it to every group, so that it reaches system
		// groups and is validated (and refused) for batch ones.
		c := *j.Update
		tg.Update = &c
		p.alias("update", structs.AttrPath(path, "update"))
	}
	if m := b.single("migrate"); m != nil && p.jobTypeAllows(m, path, jobType, structs.JobTypeService) {
		base := structs.DefaultMigrateStrategy()
		if j.Migrate != nil {
			base = j.Migrate
		}
		tg.Migrate = p.migrate(m, structs.AttrPath(path, "migrate"), base)
	} else {
		p.alias("migrate", structs.AttrPath(path, "migrate"))
	}
	tg.Disconnect = p.disconnect(b)
	if e := b.single("ephemeral_disk"); e != nil {
		ed := &structs.EphemeralDisk{SizeMB: 300}
		eb := p.open(e.Body, structs.AttrPath(path, "ephemeral_disk"), &schema{attrs: []string{"size", "sticky", "migrate"}})
		eb.int("size", &ed.SizeMB)
		eb.boolean("sticky", &ed.Sticky)
		eb.boolean("migrate", &ed.Migrate)
		tg.EphemeralDisk = ed
	}
	tg.Networks = p.networks(b)
	tg.Volumes = p.volumes(b)
	tg.Scaling = p.scaling(b)
	if !countSet {
		tg.Count = 1
		if tg.Scaling != nil && blockHas(b, "scaling", "min") {
			tg.Count = int(tg.Scaling.Min)
		}
	}
	jobName := j.Name
	if jobName == "" {
		jobName = j.ID
	}
	for _, sb := range b.blocks("service") {
		if s := p.service(sb, path, jobName+"-"+name); s != nil {
			tg.Services = append(tg.Services, s)
		}
	}
	for _, tb := range b.blocks("task") {
		if p.labels(tb, path, 1) {
			tg.Tasks = append(tg.Tasks, p.decodeTask(tb, path, jobName+"-"+name, jobType, tg))
		}
	}
	return tg
}

// jobTypeAllows reports whether blk may be used in a job of type jobType,
// and reports it if not: structs.Job.Canonicalize ignores reschedule and
// migrate blocks where they do not apply, and Skiff never ignores a block
// silently.
func (p *parser) jobTypeAllows(blk *hclsyntax.Block, parent, jobType string, allowed ...string) bool {
	if slices.Contains(allowed, jobType) {
		return true
	}
	p.fail(blk.DefRange(), parent, structs.AttrPath(parent, blk.Type),
		"%s is only for %s jobs (job type is %q); remove it", blk.Type, strings.Join(allowed, " and "), jobType)
	return false
}

// labelledOnce records a labelled block and reports a second one of the
// same name with both positions.
func (p *parser) labelledOnce(blk *hclsyntax.Block, path, kind string) {
	if first, ok := p.pos[path]; ok {
		p.dups[path] = true
		if p.underDup(parentPath(path)) {
			return // the duplicate parent is reported; its children repeat the first's
		}
		p.problem(blk.DefRange(), withContext(parentPath(path), fmt.Sprintf(
			"%s %q is defined more than once (first at line %d); give each %s its own name",
			kind, blk.Labels[0], first.Start.Line, kind)))
		return
	}
	p.record(path, blk.DefRange())
}

// underDup reports whether path or one of its parents was defined twice.
func (p *parser) underDup(path string) bool {
	for ; path != ""; path = parentPath(path) {
		if p.dups[path] {
			return true
		}
	}
	return false
}

// blockHas reports whether the single block typ of b sets attribute attr.
func blockHas(b *body, typ, attr string) bool {
	for _, blk := range b.blocks(typ) {
		if blk.Body.Attributes[attr] != nil {
			return true
		}
	}
	return false
}

var disconnectSchema = &schema{attrs: []string{"lost_after", "stop_on_client_after", "replace", "reconcile"}}

// disconnect decodes the disconnect block, or Nomad's older group
// attributes stop_after_client_disconnect and max_client_disconnect.
func (p *parser) disconnect(b *body) *structs.DisconnectStrategy {
	blk := b.single("disconnect")
	old := []string{"stop_after_client_disconnect", "max_client_disconnect"}
	if blk == nil && b.b.Attributes[old[0]] == nil && b.b.Attributes[old[1]] == nil {
		return nil
	}
	replace := true
	d := &structs.DisconnectStrategy{Reconcile: "best_score", Replace: &replace}
	if blk == nil {
		b.durationPtr(old[0], &d.StopOnClientAfter)
		b.duration(old[1], &d.LostAfter)
		return d
	}
	for _, name := range old {
		if a := b.b.Attributes[name]; a != nil {
			b.bad(a, "%s is the older form of the disconnect block; move it into disconnect { ... }", name)
		}
	}
	db := p.open(blk.Body, structs.AttrPath(b.path, "disconnect"), disconnectSchema)
	db.duration("lost_after", &d.LostAfter)
	db.durationPtr("stop_on_client_after", &d.StopOnClientAfter)
	db.boolean("replace", d.Replace)
	db.str("reconcile", &d.Reconcile)
	return d
}

var volumeSchema = &schema{
	attrs: []string{"type", "source", "read_only", "per_alloc"},
	unsupported: map[string]string{
		"access_mode":     csiHint,
		"attachment_mode": csiHint,
		"mount_options":   csiHint,
		"sticky":          csiHint,
	},
}

const csiHint = "Skiff supports host volumes only (type = \"host\")"

func (p *parser) volumes(b *body) map[string]*structs.VolumeRequest {
	var out map[string]*structs.VolumeRequest
	for _, blk := range b.blocks("volume") {
		if !p.labels(blk, b.path, 1) {
			continue
		}
		name := blk.Labels[0]
		path := structs.BlockPath(b.path, "volume", name)
		if _, dup := out[name]; dup {
			p.labelledOnce(blk, path, "volume")
			continue
		}
		p.record(path, blk.DefRange())
		vb := p.open(blk.Body, path, volumeSchema)
		v := &structs.VolumeRequest{Name: name, Type: "host"}
		vb.str("type", &v.Type)
		vb.str("source", &v.Source)
		vb.boolean("read_only", &v.ReadOnly)
		vb.boolean("per_alloc", &v.PerAlloc)
		if out == nil {
			out = map[string]*structs.VolumeRequest{}
		}
		out[name] = v
	}
	return out
}

var scalingSchema = &schema{attrs: []string{"min", "max", "enabled"}, blocks: []string{"policy"}}

func (p *parser) scaling(b *body) *structs.ScalingPolicy {
	blk := b.single("scaling")
	if blk == nil {
		return nil
	}
	path := structs.AttrPath(b.path, "scaling")
	sb := p.open(blk.Body, path, scalingSchema)
	s := &structs.ScalingPolicy{Type: "horizontal", Enabled: true}
	sb.integer("min", 0, math.MaxInt32, &s.Min)
	sb.integer("max", 0, math.MaxInt32, &s.Max)
	sb.boolean("enabled", &s.Enabled)
	if blk.Body.Attributes["max"] == nil {
		p.fail(blk.DefRange(), path, structs.AttrPath(path, "max"), "scaling needs max, the largest count the group may be scaled to")
	}
	if pb := sb.single("policy"); pb != nil {
		s.Policy = p.freeform(pb.Body, structs.AttrPath(path, "policy"))
	}
	return s
}
