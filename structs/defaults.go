package structs

import "time"

// Canonicalize fills in Nomad's defaults for every field a job file may
// leave out. It is idempotent. Group Count is not defaulted here, because 0
// is a valid count: the job-file parser and the HTTP layer set it to 1 when
// it is absent.
func (j *Job) Canonicalize() {
	if j.Region == "" {
		j.Region = DefaultRegion
	}
	if j.Namespace == "" {
		j.Namespace = DefaultNamespace
	}
	if j.Name == "" {
		j.Name = j.ID
	}
	if j.Type == "" {
		j.Type = JobTypeService
	}
	if j.Priority == 0 {
		j.Priority = DefaultPriority
	}
	if len(j.Datacenters) == 0 {
		j.Datacenters = []string{"*"}
	}
	if j.NodePool == "" {
		j.NodePool = DefaultNodePool
	}
	if j.Periodic != nil && j.Periodic.SpecType == "" {
		j.Periodic.SpecType = "cron"
	}
	if j.ParameterizedJob != nil && j.ParameterizedJob.Payload == "" {
		j.ParameterizedJob.Payload = "optional"
	}
	for _, tg := range j.TaskGroups {
		tg.canonicalize(j)
	}
}

func (tg *TaskGroup) canonicalize(j *Job) {
	if j.Type == JobTypeSystem || j.Type == JobTypeSysBatch {
		if tg.Count == 0 {
			tg.Count = 1
		}
	}
	if tg.RestartPolicy == nil {
		tg.RestartPolicy = DefaultRestartPolicy(j.Type)
	}
	if tg.ReschedulePolicy == nil && (j.Type == JobTypeService || j.Type == JobTypeBatch) {
		if j.Reschedule != nil {
			c := *j.Reschedule
			tg.ReschedulePolicy = &c
		} else {
			tg.ReschedulePolicy = DefaultReschedulePolicy(j.Type)
		}
	}
	if tg.EphemeralDisk == nil {
		tg.EphemeralDisk = &EphemeralDisk{SizeMB: 300}
	}
	if tg.Migrate == nil && j.Type == JobTypeService {
		if j.Migrate != nil {
			c := *j.Migrate
			tg.Migrate = &c
		} else {
			tg.Migrate = DefaultMigrateStrategy()
		}
	}
	// A job-level update block is the default for every service group.
	if j.Type == JobTypeService && j.Update != nil && tg.Update == nil {
		c := *j.Update
		tg.Update = &c
	}
	for _, t := range tg.Tasks {
		t.canonicalize(tg)
	}
}

func (t *Task) canonicalize(tg *TaskGroup) {
	if t.Resources == nil {
		t.Resources = &Resources{}
	}
	if t.Resources.CPU == 0 && t.Resources.Cores == 0 {
		t.Resources.CPU = 100
	}
	if t.Resources.MemoryMB == 0 {
		t.Resources.MemoryMB = 300
	}
	if t.KillTimeout == 0 {
		t.KillTimeout = 5 * time.Second
	}
	if t.LogConfig == nil {
		t.LogConfig = &LogConfig{MaxFiles: 10, MaxFileSizeMB: 10}
	}
	if t.RestartPolicy == nil && tg.RestartPolicy != nil {
		c := *tg.RestartPolicy
		t.RestartPolicy = &c
	}
	for _, tmpl := range t.Templates {
		if tmpl.ChangeMode == "" {
			tmpl.ChangeMode = "restart"
		}
		if tmpl.Perms == "" {
			tmpl.Perms = "0644"
		}
		if tmpl.Splay == 0 {
			tmpl.Splay = 5 * time.Second
		}
	}
}

// DefaultRestartPolicy is Nomad's restart policy for a job type.
func DefaultRestartPolicy(jobType string) *RestartPolicy {
	if jobType == JobTypeBatch || jobType == JobTypeSysBatch {
		return &RestartPolicy{Attempts: 3, Interval: 24 * time.Hour, Delay: 15 * time.Second, Mode: RestartModeFail}
	}
	return &RestartPolicy{Attempts: 2, Interval: 30 * time.Minute, Delay: 15 * time.Second, Mode: RestartModeFail}
}

// DefaultReschedulePolicy is Nomad's reschedule policy for a job type.
func DefaultReschedulePolicy(jobType string) *ReschedulePolicy {
	if jobType == JobTypeBatch {
		return &ReschedulePolicy{Attempts: 1, Interval: 24 * time.Hour, Delay: 5 * time.Second, DelayFunction: "constant"}
	}
	return &ReschedulePolicy{Delay: 30 * time.Second, DelayFunction: "exponential", MaxDelay: time.Hour, Unlimited: true}
}

// DefaultUpdateStrategy is the update block's defaults, applied to the
// fields an update block leaves out.
func DefaultUpdateStrategy() *UpdateStrategy {
	return &UpdateStrategy{
		Stagger: 30 * time.Second, MaxParallel: 1, HealthCheck: UpdateHealthCheckChecks,
		MinHealthyTime: 10 * time.Second, HealthyDeadline: 5 * time.Minute,
		ProgressDeadline: 10 * time.Minute,
	}
}

// DefaultMigrateStrategy is the migrate block's defaults.
func DefaultMigrateStrategy() *MigrateStrategy {
	return &MigrateStrategy{MaxParallel: 1, HealthCheck: UpdateHealthCheckChecks,
		MinHealthyTime: 10 * time.Second, HealthyDeadline: 5 * time.Minute}
}
