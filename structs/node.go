package structs

import "time"

// Node statuses.
const (
	NodeStatusInit         = "initializing"
	NodeStatusReady        = "ready"
	NodeStatusDown         = "down"
	NodeStatusDisconnected = "disconnected"
)

// Node scheduling eligibility.
const (
	NodeSchedulingEligible   = "eligible"
	NodeSchedulingIneligible = "ineligible"
)

// Node is a client machine that runs allocations.
type Node struct {
	ID                    string
	SecretID              string `codec:"SecretID" json:"-"` // never in API output; kept in raft and snapshots
	Name                  string
	Datacenter            string
	NodeClass             string
	ComputedClass         string // set by the servers: see ComputeClass
	NodePool              string
	HTTPAddr              string
	Attributes            map[string]string
	Meta                  map[string]string
	NodeResources         *NodeResources
	ReservedResources     *NodeReservedResources
	Drivers               map[string]*DriverInfo
	HostVolumes           map[string]*ClientHostVolume
	Status                string
	StatusDescription     string
	StatusUpdatedAt       int64
	SchedulingEligibility string
	Drain                 bool
	DrainStrategy         *DrainStrategy
	CreateIndex           uint64
	ModifyIndex           uint64
}

// Ready reports whether the scheduler may place allocations on the node.
func (n *Node) Ready() bool {
	return n.Status == NodeStatusReady && n.DrainStrategy == nil && n.SchedulingEligibility == NodeSchedulingEligible
}

// NodeResources is what a node offers.
type NodeResources struct {
	Cpu            NodeCpuResources
	Memory         NodeMemoryResources
	Disk           NodeDiskResources
	Networks       []*NetworkResource
	MinDynamicPort int
	MaxDynamicPort int
}

// NodeCpuResources is a node's CPU, in MHz (shares) and cores.
type NodeCpuResources struct {
	CpuShares     int64
	TotalCpuCores uint16
}

// NodeMemoryResources is a node's memory.
type NodeMemoryResources struct{ MemoryMB int64 }

// NodeDiskResources is a node's allocatable disk.
type NodeDiskResources struct{ DiskMB int64 }

// NodeReservedResources is kept back for the operating system and agent.
type NodeReservedResources struct {
	Cpu      NodeCpuResources
	Memory   NodeMemoryResources
	Disk     NodeDiskResources
	Networks NodeReservedNetworkResources
}

// NodeReservedNetworkResources lists host ports the scheduler must not use.
type NodeReservedNetworkResources struct{ ReservedHostPorts string }

// DriverInfo is a task driver's health on a node.
type DriverInfo struct {
	Attributes        map[string]string
	Detected          bool
	Healthy           bool
	HealthDescription string
	UpdateTime        time.Time
}

// ClientHostVolume is a host directory a client offers to jobs.
type ClientHostVolume struct {
	Name     string
	Path     string
	ReadOnly bool
}

// DrainStrategy is set while a node drains.
type DrainStrategy struct {
	Deadline         time.Duration
	IgnoreSystemJobs bool
	ForceDeadline    time.Time
	StartedAt        time.Time
}

// NodeListStub is a node's entry in a listing.
type NodeListStub struct {
	ID                    string
	Name                  string
	Datacenter            string
	NodeClass             string
	ComputedClass         string // set by the servers: see ComputeClass
	NodePool              string
	Address               string
	Version               string
	Drain                 bool
	SchedulingEligibility string
	Status                string
	StatusDescription     string
	Drivers               map[string]*DriverInfo
	CreateIndex           uint64
	ModifyIndex           uint64
}

// Stub returns the node's list entry.
func (n *Node) Stub() *NodeListStub {
	return &NodeListStub{
		ID: n.ID, Name: n.Name, Datacenter: n.Datacenter, NodeClass: n.NodeClass,
		NodePool: n.NodePool, Address: n.Attributes["unique.network.ip-address"],
		Version: n.Attributes["skiff.version"], Drain: n.DrainStrategy != nil,
		SchedulingEligibility: n.SchedulingEligibility, Status: n.Status,
		StatusDescription: n.StatusDescription, Drivers: n.Drivers,
		CreateIndex: n.CreateIndex, ModifyIndex: n.ModifyIndex,
	}
}

// AttrLiveness is the attribute of a node whose client holds a liveness
// connection to the servers ("1"): a new leader may treat such a node
// with no connection anywhere as lost (server/liveness.go).
const AttrLiveness = "skiff.liveness"
