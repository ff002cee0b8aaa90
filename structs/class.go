package structs

import (
	"encoding/binary"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
)

// ComputeClass sets n.ComputedClass: a hash of everything about the node
// that constraints can test, except values unique to the node (its ID,
// name, and attributes or meta under "unique."). Nodes with the same
// computed class are interchangeable for feasibility, so a blocked
// evaluation records which classes were feasible and only capacity on
// those classes (or on a class it never saw) wakes it.
func (n *Node) ComputeClass() {
	h := fnv.New64a()
	put := func(s string) {
		var l [4]byte
		binary.LittleEndian.PutUint32(l[:], uint32(len(s)))
		h.Write(l[:])
		h.Write([]byte(s))
	}
	putMap := func(tag string, m map[string]string) {
		keys := make([]string, 0, len(m))
		for k := range m {
			if !strings.HasPrefix(k, "unique.") {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		put(tag)
		for _, k := range keys {
			put(k)
			put(m[k])
		}
	}
	put(n.Datacenter)
	put(n.NodeClass)
	put(n.NodePool)
	putMap("attr", n.Attributes)
	putMap("meta", n.Meta)
	drivers := make([]string, 0, len(n.Drivers))
	for name, d := range n.Drivers {
		if d != nil && d.Detected && d.Healthy {
			drivers = append(drivers, name)
		}
	}
	slices.Sort(drivers)
	put("drivers")
	for _, d := range drivers {
		put(d)
	}
	n.ComputedClass = "v1:" + strconv.FormatUint(h.Sum64(), 16)
}

// FeasibilityClass is the key under which the scheduler records a node's
// feasibility and blocked evaluations wait for capacity: its computed
// class, or its node class for a node registered without one.
func (n *Node) FeasibilityClass() string {
	if n.ComputedClass != "" {
		return n.ComputedClass
	}
	return "class:" + n.NodeClass
}

// EscapesComputedClass reports whether a constraint target refers to
// something unique to a node, so that nodes of one computed class can
// differ on it and class-level feasibility says nothing.
func EscapesComputedClass(target string) bool {
	for _, p := range []string{"${node.unique.", "${attr.unique.", "${meta.unique.", "${node.name}", "${node.id}"} {
		if strings.Contains(target, p) {
			return true
		}
	}
	return false
}

// JobEscapesComputedClass reports whether any constraint of the job
// escapes computed classes (see EscapesComputedClass).
func JobEscapesComputedClass(j *Job) bool {
	escapes := func(cs []*Constraint) bool {
		for _, c := range cs {
			if EscapesComputedClass(c.LTarget) || EscapesComputedClass(c.RTarget) {
				return true
			}
		}
		return false
	}
	if escapes(j.Constraints) {
		return true
	}
	for _, tg := range j.TaskGroups {
		if escapes(tg.Constraints) {
			return true
		}
		for _, t := range tg.Tasks {
			if escapes(t.Constraints) {
				return true
			}
		}
	}
	return false
}
