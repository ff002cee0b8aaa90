package structs

import (
	"crypto/rand"
	"fmt"
	"maps"
)

// GenerateUUID returns a random version-4 UUID.
func GenerateUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("read random bytes: %v", err))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// deepCopy copies any value through the msgpack codec. It is for types
// that change rarely (jobs); hot paths get hand-written copies.
func deepCopy[T any](in *T) *T {
	if in == nil {
		return nil
	}
	buf, err := Encode(0, in)
	if err != nil {
		panic(fmt.Sprintf("copy %T: %v", in, err))
	}
	out := new(T)
	if err := Decode(buf[1:], out); err != nil {
		panic(fmt.Sprintf("copy %T: %v", in, err))
	}
	return out
}

// Copy returns a deep copy of the job.
func (j *Job) Copy() *Job { return deepCopy(j) }

// Copy returns a copy of the evaluation; maps are copied, metrics shared.
func (e *Evaluation) Copy() *Evaluation {
	if e == nil {
		return nil
	}
	c := *e
	c.FailedTGAllocs = maps.Clone(e.FailedTGAllocs)
	c.ClassEligibility = maps.Clone(e.ClassEligibility)
	c.QueuedAllocations = maps.Clone(e.QueuedAllocations)
	return &c
}

// Copy returns a copy of the node; its maps are copied.
func (n *Node) Copy() *Node {
	if n == nil {
		return nil
	}
	c := *n
	c.Attributes = maps.Clone(n.Attributes)
	c.Meta = maps.Clone(n.Meta)
	c.Drivers = maps.Clone(n.Drivers)
	c.HostVolumes = maps.Clone(n.HostVolumes)
	if n.DrainStrategy != nil {
		d := *n.DrainStrategy
		c.DrainStrategy = &d
	}
	return &c
}

// Copy returns a copy of the allocation that shares its Job (jobs are
// immutable) and copies its task states map.
func (a *Allocation) Copy() *Allocation {
	if a == nil {
		return nil
	}
	c := *a
	c.TaskStates = maps.Clone(a.TaskStates)
	if a.DeploymentStatus != nil {
		d := *a.DeploymentStatus
		c.DeploymentStatus = &d
	}
	return &c
}

// Copy returns a copy of the deployment with its group states copied.
func (d *Deployment) Copy() *Deployment {
	if d == nil {
		return nil
	}
	c := *d
	c.TaskGroups = make(map[string]*DeploymentState, len(d.TaskGroups))
	for k, v := range d.TaskGroups {
		s := *v
		s.PlacedCanaries = append([]string(nil), v.PlacedCanaries...)
		c.TaskGroups[k] = &s
	}
	return &c
}

// Copy returns a copy of the summary with its own map.
func (s *JobSummary) Copy() *JobSummary {
	if s == nil {
		return nil
	}
	c := *s
	c.Summary = maps.Clone(s.Summary)
	return &c
}
