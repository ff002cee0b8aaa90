package structs

import "time"

// Deployment statuses.
const (
	DeploymentStatusRunning    = "running"
	DeploymentStatusPaused     = "paused"
	DeploymentStatusFailed     = "failed"
	DeploymentStatusSuccessful = "successful"
	DeploymentStatusCancelled  = "cancelled"
	DeploymentStatusBlocked    = "blocked"
)

// Deployment tracks the rollout of one job version.
type Deployment struct {
	ID                 string
	Namespace          string
	JobID              string
	JobVersion         uint64
	JobModifyIndex     uint64
	JobSpecModifyIndex uint64
	JobCreateIndex     uint64
	TaskGroups         map[string]*DeploymentState
	Status             string
	StatusDescription  string
	CreateIndex        uint64
	ModifyIndex        uint64
}

// Active reports whether the deployment may still make progress.
func (d *Deployment) Active() bool {
	switch d.Status {
	case DeploymentStatusRunning, DeploymentStatusPaused, DeploymentStatusBlocked:
		return true
	}
	return false
}

// DeploymentState is the progress of one task group in a deployment.
type DeploymentState struct {
	AutoRevert        bool
	AutoPromote       bool
	ProgressDeadline  time.Duration
	RequireProgressBy time.Time
	Promoted          bool
	PlacedCanaries    []string
	DesiredCanaries   int
	DesiredTotal      int
	PlacedAllocs      int
	HealthyAllocs     int
	UnhealthyAllocs   int
}

// Deployment status descriptions, as Nomad words them.
const (
	DeploymentDescRunning           = "Deployment is running"
	DeploymentDescSuccessful        = "Deployment completed successfully"
	DeploymentDescPaused            = "Deployment is paused"
	DeploymentDescBlocked           = "Deployment is blocked"
	DeploymentDescFailedByUser      = "Deployment marked as failed"
	DeploymentDescFailedAllocations = "Failed due to unhealthy allocations"
	DeploymentDescProgressDeadline  = "Failed due to progress deadline"
	DeploymentDescNewerJob          = "Cancelled due to newer version of job"
	DeploymentDescStoppedJob        = "Cancelled because job is stopped"
)
