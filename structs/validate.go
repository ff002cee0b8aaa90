package structs

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// FieldError is one problem with one field of a job. Path names the field
// in the job file's terms, as block names with quoted labels and attribute
// names joined by dots:
//
//	group["api"].task["web"].resources.memory
//
// The job-file parser maps Path back to the file position it came from
// (the longest prefix of it that it recorded).
type FieldError struct {
	Path string
	Msg  string
}

// Error renders the problem as `group "api", task "web": resources.memory: msg`.
func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return HumanPath(e.Path) + ": " + e.Msg
}

// HumanPath renders a FieldError path for people:
// group["api"].task["web"].count -> group "api", task "web": count.
func HumanPath(p string) string {
	parts := splitPath(p)
	var blocks, attrs []string
	for _, s := range parts {
		if i := strings.IndexByte(s, '['); i > 0 && strings.HasSuffix(s, "]") {
			if len(attrs) > 0 {
				blocks = append(blocks, strings.Join(attrs, "."))
				attrs = nil
			}
			blocks = append(blocks, s[:i]+" "+s[i+1:len(s)-1])
			continue
		}
		attrs = append(attrs, s)
	}
	out := strings.Join(blocks, ", ")
	if len(attrs) > 0 {
		if out != "" {
			out += ": "
		}
		out += strings.Join(attrs, ".")
	}
	return out
}

// splitPath splits on dots outside of brackets and quotes.
func splitPath(p string) []string {
	var parts []string
	depth, inQuote, start := 0, false, 0
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '"' && (i == 0 || p[i-1] != '\\'):
			inQuote = !inQuote
		case inQuote:
		case c == '[':
			depth++
		case c == ']':
			depth--
		case c == '.' && depth == 0:
			parts = append(parts, p[start:i])
			start = i + 1
		}
	}
	return append(parts, p[start:])
}

// BlockPath returns the path element of a labelled block: group["api"].
func BlockPath(parent, block, label string) string {
	el := fmt.Sprintf("%s[%q]", block, label)
	if parent == "" {
		return el
	}
	return parent + "." + el
}

// AttrPath appends an attribute or unlabelled block to a path.
func AttrPath(parent string, names ...string) string {
	all := strings.Join(names, ".")
	if parent == "" {
		return all
	}
	return parent + "." + all
}

// ValidationError holds every problem found in one pass over a job.
type ValidationError struct {
	Errors []*FieldError
}

func (v *ValidationError) Error() string {
	msgs := make([]string, len(v.Errors))
	for i, e := range v.Errors {
		msgs[i] = e.Error()
	}
	if len(msgs) == 1 {
		return "invalid job: " + msgs[0]
	}
	return fmt.Sprintf("invalid job, %d problems:\n  %s", len(msgs), strings.Join(msgs, "\n  "))
}

type validator struct{ errs []*FieldError }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// idCharsRule says what validID refuses, for job IDs and namespaces.
const idCharsRule = `may not contain spaces, NUL bytes, slashes or the characters ?#%\`

var (
	validID      = regexp.MustCompile(`^[^\s\x00/?#%\\]+$`)
	validTaskSvc = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_.\-${}]*[a-zA-Z0-9}])?$`)
)

// Validate checks a canonicalized job and returns a *ValidationError
// listing every problem, or nil.
func (j *Job) Validate() error {
	v := &validator{}
	j.validate(v)
	if len(v.errs) == 0 {
		return nil
	}
	return &ValidationError{Errors: v.errs}
}

func (j *Job) validate(v *validator) {
	switch {
	case j.ID == "":
		v.add("id", "job ID is missing; give the job a name: job \"web\" { ... }")
	case len(j.ID) > MaxJobIDLength:
		v.add("id", "job ID is %d characters long; the limit is %d", len(j.ID), MaxJobIDLength)
	case !validID.MatchString(j.ID):
		v.add("id", "job ID %q %s", j.ID, idCharsRule)
	}
	if j.Name == "" {
		v.add("name", "name is empty")
	}
	switch {
	case j.Namespace == "":
		v.add("namespace", "namespace is empty")
	case j.Namespace == AllNamespaces:
		v.add("namespace", "namespace %q stands for every namespace in queries; give the job a namespace of its own", AllNamespaces)
	case !validID.MatchString(j.Namespace):
		// The state store keys jobs by namespace, NUL, ID: a NUL in a
		// namespace would make those keys ambiguous.
		v.add("namespace", "namespace %q %s", j.Namespace, idCharsRule)
	}
	if j.Region == "" {
		v.add("region", "region is empty")
	}
	switch j.Type {
	case JobTypeService, JobTypeBatch, JobTypeSystem, JobTypeSysBatch:
	default:
		v.add("type", "unknown job type %q; use one of service, batch, system, sysbatch", j.Type)
	}
	if j.Priority < MinPriority || j.Priority > MaxPriority {
		v.add("priority", "priority must be between %d and %d (got %d)", MinPriority, MaxPriority, j.Priority)
	}
	for i, dc := range j.Datacenters {
		if dc == "" {
			v.add("datacenters", "datacenter %d is empty", i)
		}
	}
	validateConstraints(v, "", j.Constraints)
	validateAffinities(v, "", j.Affinities)
	validateSpreads(v, "", j.Spreads)
	if j.Periodic != nil && j.Periodic.Enabled && j.Periodic.Spec == "" {
		v.add("periodic.cron", "periodic job needs a cron expression")
	}
	if j.Periodic != nil && j.Type != JobTypeBatch && j.Type != JobTypeSysBatch {
		v.add("periodic", "periodic is only for batch and sysbatch jobs (job type is %q)", j.Type)
	}
	if p := j.ParameterizedJob; p != nil {
		if !slices.Contains([]string{"optional", "required", "forbidden"}, p.Payload) {
			v.add("parameterized.payload", "payload must be optional, required or forbidden (got %q)", p.Payload)
		}
		if j.Type != JobTypeBatch && j.Type != JobTypeSysBatch {
			v.add("parameterized", "parameterized is only for batch and sysbatch jobs (job type is %q)", j.Type)
		}
	}
	if len(j.TaskGroups) == 0 {
		v.add("", "job has no groups; add at least one group \"name\" { task \"name\" { ... } }")
	}
	seen := map[string]bool{}
	for _, tg := range j.TaskGroups {
		if seen[tg.Name] {
			v.add(BlockPath("", "group", tg.Name), "group %q is defined more than once", tg.Name)
		}
		seen[tg.Name] = true
		tg.validate(v, j)
	}
}

func (tg *TaskGroup) validate(v *validator, j *Job) {
	p := BlockPath("", "group", tg.Name)
	if tg.Name == "" {
		v.add(p, "group name is empty")
	}
	if tg.Count < 0 {
		v.add(AttrPath(p, "count"), "count must be >= 0 (got %d)", tg.Count)
	}
	if (j.Type == JobTypeSystem || j.Type == JobTypeSysBatch) && tg.Count > 1 {
		v.add(AttrPath(p, "count"), "a %s job runs one allocation per node; count must be 0 or 1 (got %d)", j.Type, tg.Count)
	}
	if len(tg.Tasks) == 0 {
		v.add(p, "group has no tasks; add a task \"name\" { driver = \"containerd\" ... }")
	}
	validateConstraints(v, p, tg.Constraints)
	validateAffinities(v, p, tg.Affinities)
	validateSpreads(v, p, tg.Spreads)
	if tg.RestartPolicy != nil {
		tg.RestartPolicy.validate(v, AttrPath(p, "restart"))
	}
	if r := tg.ReschedulePolicy; r != nil {
		rp := AttrPath(p, "reschedule")
		if r.Attempts < 0 {
			v.add(AttrPath(rp, "attempts"), "attempts must be >= 0 (got %d)", r.Attempts)
		}
		if r.Delay < 0 {
			v.add(AttrPath(rp, "delay"), "delay must be >= 0")
		}
		if r.DelayFunction != "" && !slices.Contains(RescheduleDelayFunctions, r.DelayFunction) {
			v.add(AttrPath(rp, "delay_function"), "unknown delay_function %q; use constant, exponential or fibonacci", r.DelayFunction)
		}
		if r.DelayFunction != "" && r.DelayFunction != "constant" && r.MaxDelay > 0 && r.MaxDelay < r.Delay {
			v.add(AttrPath(rp, "max_delay"), "max_delay (%s) is less than delay (%s)", r.MaxDelay, r.Delay)
		}
	}
	if u := tg.Update; u != nil {
		u.validate(v, AttrPath(p, "update"), j.Type)
	}
	if m := tg.Migrate; m != nil {
		mp := AttrPath(p, "migrate")
		if m.MaxParallel < 0 {
			v.add(AttrPath(mp, "max_parallel"), "max_parallel must be >= 0 (got %d)", m.MaxParallel)
		}
		if m.HealthCheck != UpdateHealthCheckChecks && m.HealthCheck != UpdateHealthCheckTaskStates {
			v.add(AttrPath(mp, "health_check"), "health_check must be checks or task_states (got %q)", m.HealthCheck)
		}
	}
	if d := tg.Disconnect; d != nil && d.Reconcile != "" && !slices.Contains(DisconnectReconcileOptions, d.Reconcile) {
		v.add(AttrPath(p, "disconnect", "reconcile"), "unknown reconcile %q; use one of %s", d.Reconcile, strings.Join(DisconnectReconcileOptions, ", "))
	}
	if tg.EphemeralDisk != nil && tg.EphemeralDisk.SizeMB <= 0 {
		v.add(AttrPath(p, "ephemeral_disk", "size"), "size must be > 0 MB (got %d)", tg.EphemeralDisk.SizeMB)
	}
	if s := tg.Scaling; s != nil {
		sp := AttrPath(p, "scaling")
		if s.Min < 0 || (s.Max > 0 && s.Min > s.Max) {
			v.add(AttrPath(sp, "min"), "min must be >= 0 and <= max (got min %d, max %d)", s.Min, s.Max)
		}
		if int64(tg.Count) < s.Min || (s.Max > 0 && int64(tg.Count) > s.Max) {
			v.add(AttrPath(p, "count"), "count %d is outside the scaling bounds [%d, %d]", tg.Count, s.Min, s.Max)
		}
	}
	validateNetworks(v, p, tg.Networks)
	for name, vol := range tg.Volumes {
		vp := BlockPath(p, "volume", name)
		if vol.Type != "host" && vol.Type != "" {
			v.add(AttrPath(vp, "type"), "volume type %q is not supported; use \"host\"", vol.Type)
		}
		if vol.Source == "" {
			v.add(AttrPath(vp, "source"), "volume needs a source (the name of a client host_volume)")
		}
	}
	seen := map[string]bool{}
	leaders := 0
	for _, t := range tg.Tasks {
		if seen[t.Name] {
			v.add(BlockPath(p, "task", t.Name), "task %q is defined more than once in group %q", t.Name, tg.Name)
		}
		seen[t.Name] = true
		if t.Leader {
			leaders++
		}
		t.validate(v, p, tg)
	}
	if leaders > 1 {
		v.add(p, "only one task may be the leader (%d are)", leaders)
	}
	for _, s := range tg.Services {
		validateService(v, p, s, tg)
	}
	var diskNeeded int
	for _, t := range tg.Tasks {
		if t.LogConfig != nil {
			diskNeeded += t.LogConfig.MaxFiles * t.LogConfig.MaxFileSizeMB
		}
	}
	if tg.EphemeralDisk != nil && tg.EphemeralDisk.SizeMB > 0 && diskNeeded > tg.EphemeralDisk.SizeMB {
		v.add(AttrPath(p, "ephemeral_disk", "size"), "the tasks' logs may use %d MB (max_files x max_file_size) but the disk is %d MB; raise size or lower the log limits", diskNeeded, tg.EphemeralDisk.SizeMB)
	}
}

func (r *RestartPolicy) validate(v *validator, p string) {
	if r.Attempts < 0 {
		v.add(AttrPath(p, "attempts"), "attempts must be >= 0 (got %d)", r.Attempts)
	}
	if r.Delay < 0 {
		v.add(AttrPath(p, "delay"), "delay must be >= 0")
	}
	if r.Mode != RestartModeFail && r.Mode != RestartModeDelay {
		v.add(AttrPath(p, "mode"), "mode must be \"fail\" or \"delay\" (got %q)", r.Mode)
	}
	if r.Attempts > 0 && r.Interval > 0 && r.Delay*time.Duration(r.Attempts) > r.Interval {
		v.add(AttrPath(p, "interval"), "%d attempts with a %s delay do not fit in the %s interval; lengthen interval or lower attempts", r.Attempts, r.Delay, r.Interval)
	}
}

func (u *UpdateStrategy) validate(v *validator, p, jobType string) {
	if jobType != JobTypeService && jobType != JobTypeSystem {
		v.add(p, "update is only for service and system jobs (job type is %q)", jobType)
	}
	if u.MaxParallel < 0 {
		v.add(AttrPath(p, "max_parallel"), "max_parallel must be >= 0 (got %d)", u.MaxParallel)
	}
	if u.Canary < 0 {
		v.add(AttrPath(p, "canary"), "canary must be >= 0 (got %d)", u.Canary)
	}
	if u.Canary > 0 && jobType == JobTypeSystem {
		v.add(AttrPath(p, "canary"), "system jobs cannot have canaries")
	}
	if !slices.Contains([]string{UpdateHealthCheckChecks, UpdateHealthCheckTaskStates, UpdateHealthCheckManual}, u.HealthCheck) {
		v.add(AttrPath(p, "health_check"), "health_check must be checks, task_states or manual (got %q)", u.HealthCheck)
	}
	if u.MinHealthyTime < 0 || u.HealthyDeadline < 0 || u.ProgressDeadline < 0 || u.Stagger < 0 {
		v.add(p, "durations must be >= 0")
	}
	if u.HealthyDeadline > 0 && u.MinHealthyTime >= u.HealthyDeadline {
		v.add(AttrPath(p, "min_healthy_time"), "min_healthy_time (%s) must be less than healthy_deadline (%s)", u.MinHealthyTime, u.HealthyDeadline)
	}
	if u.ProgressDeadline > 0 && u.HealthyDeadline > u.ProgressDeadline {
		v.add(AttrPath(p, "healthy_deadline"), "healthy_deadline (%s) must not exceed progress_deadline (%s)", u.HealthyDeadline, u.ProgressDeadline)
	}
	if u.AutoPromote && u.Canary == 0 {
		v.add(AttrPath(p, "auto_promote"), "auto_promote needs canary > 0")
	}
}

func (t *Task) validate(v *validator, gp string, tg *TaskGroup) {
	p := BlockPath(gp, "task", t.Name)
	if t.Name == "" {
		v.add(p, "task name is empty")
	} else if strings.ContainsAny(t.Name, "/\x00") {
		v.add(p, "task name %q may not contain '/'", t.Name)
	}
	switch t.Driver {
	case "":
		v.add(AttrPath(p, "driver"), "driver is missing; set driver = \"containerd\"")
	case "containerd", "docker":
		validateDriverConfig(v, AttrPath(p, "config"), t.Driver, t.Config)
	default:
		v.add(AttrPath(p, "driver"), "driver %q is not supported; use \"containerd\" (\"docker\" is accepted as an alias)", t.Driver)
	}
	validateConstraints(v, p, t.Constraints)
	validateAffinities(v, p, t.Affinities)
	if r := t.Resources; r != nil {
		rp := AttrPath(p, "resources")
		if r.CPU < 0 || (r.CPU == 0 && r.Cores == 0) {
			v.add(AttrPath(rp, "cpu"), "cpu must be >= 1 MHz (got %d)", r.CPU)
		}
		if r.Cores < 0 {
			v.add(AttrPath(rp, "cores"), "cores must be >= 0 (got %d)", r.Cores)
		}
		if r.CPU > 0 && r.Cores > 0 {
			v.add(AttrPath(rp, "cores"), "set cpu or cores, not both")
		}
		if r.MemoryMB < 10 {
			v.add(AttrPath(rp, "memory"), "memory must be >= 10 MB (got %d)", r.MemoryMB)
		}
		if r.MemoryMaxMB != 0 && r.MemoryMaxMB < r.MemoryMB {
			v.add(AttrPath(rp, "memory_max"), "memory_max (%d) must be >= memory (%d)", r.MemoryMaxMB, r.MemoryMB)
		}
		if r.DiskMB < 0 {
			v.add(AttrPath(rp, "disk"), "disk must be >= 0 (got %d)", r.DiskMB)
		}
		validateNetworks(v, rp, r.Networks)
	}
	if t.RestartPolicy != nil {
		t.RestartPolicy.validate(v, AttrPath(p, "restart"))
	}
	if t.KillTimeout < 0 {
		v.add(AttrPath(p, "kill_timeout"), "kill_timeout must be >= 0")
	}
	if l := t.LogConfig; l != nil && !l.Disabled {
		if l.MaxFiles < 1 {
			v.add(AttrPath(p, "logs", "max_files"), "max_files must be >= 1 (got %d)", l.MaxFiles)
		}
		if l.MaxFileSizeMB < 1 {
			v.add(AttrPath(p, "logs", "max_file_size"), "max_file_size must be >= 1 MB (got %d)", l.MaxFileSizeMB)
		}
	}
	if lc := t.Lifecycle; lc != nil {
		if !slices.Contains([]string{LifecycleHookPrestart, LifecycleHookPoststart, LifecycleHookPoststop}, lc.Hook) {
			v.add(AttrPath(p, "lifecycle", "hook"), "hook must be prestart, poststart or poststop (got %q)", lc.Hook)
		}
	}
	for i, vm := range t.VolumeMounts {
		mp := AttrPath(p, fmt.Sprintf("volume_mount[%d]", i))
		if _, ok := tg.Volumes[vm.Volume]; !ok {
			v.add(AttrPath(mp, "volume"), "volume %q is not declared in group %q; add a volume %q block to the group", vm.Volume, tg.Name, vm.Volume)
		}
		if !strings.HasPrefix(vm.Destination, "/") {
			v.add(AttrPath(mp, "destination"), "destination must be an absolute path (got %q)", vm.Destination)
		}
	}
	for i, tmpl := range t.Templates {
		tp := AttrPath(p, fmt.Sprintf("template[%d]", i))
		if tmpl.DestPath == "" {
			v.add(AttrPath(tp, "destination"), "template needs a destination")
		}
		if (tmpl.SourcePath == "") == (tmpl.EmbeddedTmpl == "") {
			v.add(tp, "template needs exactly one of source or data")
		}
		if !slices.Contains([]string{"noop", "restart", "signal", "script"}, tmpl.ChangeMode) {
			v.add(AttrPath(tp, "change_mode"), "change_mode must be noop, restart or signal (got %q)", tmpl.ChangeMode)
		}
		if tmpl.ChangeMode == "signal" && tmpl.ChangeSignal == "" {
			v.add(AttrPath(tp, "change_signal"), "change_mode \"signal\" needs change_signal")
		}
	}
	for _, s := range t.Services {
		validateService(v, p, s, tg)
	}
}

func validateService(v *validator, parent string, s *Service, tg *TaskGroup) {
	sp := BlockPath(parent, "service", s.Name)
	if s.Name == "" {
		v.add(sp, "service needs a name")
	} else if !validTaskSvc.MatchString(s.Name) {
		v.add(AttrPath(sp, "name"), "service name %q may contain only letters, digits, '-', '_' and '.'", s.Name)
	}
	if s.Provider != "" && s.Provider != "nomad" && s.Provider != "skiff" {
		v.add(AttrPath(sp, "provider"), "provider %q is not supported; Skiff has its own service catalogue (use \"skiff\" or leave it out)", s.Provider)
	}
	for i, c := range s.Checks {
		cp := AttrPath(sp, fmt.Sprintf("check[%d]", i))
		if !slices.Contains([]string{"http", "tcp", "script"}, c.Type) {
			v.add(AttrPath(cp, "type"), "check type must be http, tcp or script (got %q)", c.Type)
		}
		if c.Interval <= 0 {
			v.add(AttrPath(cp, "interval"), "interval must be > 0")
		}
		if c.Timeout <= 0 {
			v.add(AttrPath(cp, "timeout"), "timeout must be > 0")
		}
		if c.Type == "http" && c.Path == "" {
			v.add(AttrPath(cp, "path"), "http checks need a path")
		}
		if c.Type == "script" && c.Command == "" {
			v.add(AttrPath(cp, "command"), "script checks need a command")
		}
	}
	_ = tg
}

func validateConstraints(v *validator, parent string, cs []*Constraint) {
	for i, c := range cs {
		p := AttrPath(parent, fmt.Sprintf("constraint[%d]", i))
		op := c.Operand
		if op == "" {
			op = "="
		}
		if !slices.Contains(ConstraintOperands, op) {
			v.add(AttrPath(p, "operator"), "unknown operator %q; use one of %s", c.Operand, strings.Join(ConstraintOperands, ", "))
			continue
		}
		switch op {
		case ConstraintDistinctHosts:
		case ConstraintAttributeIsSet, ConstraintAttributeIsNotSet, ConstraintDistinctProperty:
			if c.LTarget == "" {
				v.add(AttrPath(p, "attribute"), "operator %q needs an attribute", op)
			}
		default:
			if c.LTarget == "" {
				v.add(AttrPath(p, "attribute"), "constraint needs an attribute, such as \"${attr.kernel.name}\"")
			}
			if c.RTarget == "" && op != "=" && op != "==" && op != "is" && op != "!=" && op != "not" {
				v.add(AttrPath(p, "value"), "operator %q needs a value", op)
			}
			if op == ConstraintRegex {
				if _, err := regexp.Compile(c.RTarget); err != nil {
					v.add(AttrPath(p, "value"), "invalid regular expression: %v", err)
				}
			}
		}
	}
}

func validateAffinities(v *validator, parent string, as []*Affinity) {
	for i, a := range as {
		p := AttrPath(parent, fmt.Sprintf("affinity[%d]", i))
		if a.LTarget == "" {
			v.add(AttrPath(p, "attribute"), "affinity needs an attribute")
		}
		if a.Weight == 0 || a.Weight < -100 || a.Weight > 100 {
			v.add(AttrPath(p, "weight"), "weight must be between -100 and 100 and not 0 (got %d)", a.Weight)
		}
		op := a.Operand
		if op == "" {
			op = "="
		}
		if !slices.Contains(ConstraintOperands, op) || op == ConstraintDistinctHosts || op == ConstraintDistinctProperty {
			v.add(AttrPath(p, "operator"), "operator %q cannot be used in an affinity", a.Operand)
		}
	}
}

func validateSpreads(v *validator, parent string, ss []*Spread) {
	for i, s := range ss {
		p := AttrPath(parent, fmt.Sprintf("spread[%d]", i))
		if s.Attribute == "" {
			v.add(AttrPath(p, "attribute"), "spread needs an attribute, such as \"${node.datacenter}\"")
		}
		if s.Weight <= 0 || s.Weight > 100 {
			v.add(AttrPath(p, "weight"), "weight must be between 1 and 100 (got %d)", s.Weight)
		}
		sum := 0
		seen := map[string]bool{}
		for _, t := range s.SpreadTarget {
			sum += int(t.Percent)
			if seen[t.Value] {
				v.add(AttrPath(p, "target"), "target %q is listed more than once", t.Value)
			}
			seen[t.Value] = true
		}
		if sum > 100 {
			v.add(AttrPath(p, "target"), "target percentages add up to %d; they may add up to at most 100", sum)
		}
	}
}

func validateNetworks(v *validator, parent string, ns []*NetworkResource) {
	labels := map[string]bool{}
	for i, n := range ns {
		p := AttrPath(parent, "network")
		if len(ns) > 1 {
			p = AttrPath(parent, fmt.Sprintf("network[%d]", i))
		}
		if n.Mode != "" && !slices.Contains([]string{"host", "bridge", "none"}, n.Mode) && !strings.HasPrefix(n.Mode, "cni/") {
			v.add(AttrPath(p, "mode"), "network mode %q is not supported; use host, bridge, none or cni/<name>", n.Mode)
		}
		for _, ports := range [][]Port{n.ReservedPorts, n.DynamicPorts} {
			for _, port := range ports {
				pp := BlockPath(p, "port", port.Label)
				if port.Label == "" {
					v.add(pp, "port needs a label")
				}
				if labels[port.Label] {
					v.add(pp, "port %q is defined more than once", port.Label)
				}
				labels[port.Label] = true
				if port.Value < 0 || port.Value > 65535 {
					v.add(AttrPath(pp, "static"), "static port must be 0..65535 (got %d)", port.Value)
				}
				if port.To < -1 || port.To > 65535 {
					v.add(AttrPath(pp, "to"), "to must be -1..65535 (got %d)", port.To)
				}
			}
		}
	}
}
