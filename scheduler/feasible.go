package scheduler

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/skiffhq/skiff/structs"
)

// Keys of AllocMetric.ConstraintFiltered that are not constraints.
const (
	filterMissingDrivers = "missing drivers"
	filterDistinctHosts  = "distinct_hosts"
)

// target is a parsed constraint operand: a node field or a literal.
type target struct {
	kind string // "literal", "node", "attr", "meta"
	key  string
}

func parseTarget(s string) target {
	if !strings.HasPrefix(s, "${") || !strings.HasSuffix(s, "}") {
		return target{kind: "literal", key: s}
	}
	in := s[2 : len(s)-1]
	switch {
	case strings.HasPrefix(in, "attr."):
		return target{kind: "attr", key: in[len("attr."):]}
	case strings.HasPrefix(in, "meta."):
		return target{kind: "meta", key: in[len("meta."):]}
	case strings.HasPrefix(in, "node."):
		return target{kind: "node", key: in[len("node."):]}
	}
	return target{kind: "literal", key: s}
}

// resolve returns the target's value on node n and whether it is set.
func (t target) resolve(n *structs.Node) (string, bool) {
	switch t.kind {
	case "literal":
		return t.key, true
	case "attr":
		v, ok := n.Attributes[t.key]
		return v, ok
	case "meta":
		v, ok := n.Meta[t.key]
		return v, ok
	case "node":
		switch t.key {
		case "unique.id":
			return n.ID, true
		case "unique.name":
			return n.Name, true
		case "datacenter":
			return n.Datacenter, true
		case "class":
			return n.NodeClass, n.NodeClass != ""
		case "pool":
			if n.NodePool == "" {
				return structs.DefaultNodePool, true
			}
			return n.NodePool, true
		case "region":
			v, ok := n.Attributes["skiff.region"]
			return v, ok
		}
	}
	return "", false
}

// checker is a constraint or affinity compiled once per evaluation.
type checker struct {
	key      string // "LTarget Operand RTarget", as Nomad prints constraints
	l, r     target
	op       string
	set      []string // set_contains* operands
	re       *regexp.Regexp
	ver      []verClause
	badRight bool // the right operand did not compile: matches nothing
}

func compile(l, op, r string) *checker {
	if op == "" {
		op = "="
	}
	c := &checker{key: strings.TrimSpace(l + " " + op + " " + r), l: parseTarget(l), r: parseTarget(r), op: op}
	switch op {
	case structs.ConstraintRegex:
		re, err := regexp.Compile(r)
		c.re, c.badRight = re, err != nil
	case structs.ConstraintVersion, structs.ConstraintSemver:
		v, err := parseVerConstraint(r, op == structs.ConstraintSemver)
		c.ver, c.badRight = v, err != nil
	case structs.ConstraintSetContains, structs.ConstraintSetContainsAll, structs.ConstraintSetContainsAny:
		c.set = splitSet(r)
	}
	return c
}

func splitSet(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// match reports whether node n satisfies the check. distinct_* operators
// are not checked here (they depend on the plan) and always match.
func (c *checker) match(n *structs.Node) bool {
	lv, lok := c.l.resolve(n)
	switch c.op {
	case structs.ConstraintDistinctHosts, structs.ConstraintDistinctProperty:
		return true
	case structs.ConstraintAttributeIsSet:
		return lok
	case structs.ConstraintAttributeIsNotSet:
		return !lok
	}
	rv, rok := c.r.resolve(n)
	switch c.op {
	case "=", "==", "is":
		return lok && rok && lv == rv
	case "!=", "not":
		return !lok || !rok || lv != rv
	case "<", "<=", ">", ">=":
		return lok && rok && compareOrder(c.op, lv, rv)
	}
	if !lok || c.badRight {
		return false
	}
	switch c.op {
	case structs.ConstraintRegex:
		return c.re.MatchString(lv)
	case structs.ConstraintVersion, structs.ConstraintSemver:
		v, err := parseVersion(lv, c.op == structs.ConstraintSemver)
		return err == nil && v.satisfies(c.ver)
	case structs.ConstraintSetContains, structs.ConstraintSetContainsAll:
		have := splitSet(lv)
		for _, want := range c.set {
			if !contains(have, want) {
				return false
			}
		}
		return true
	case structs.ConstraintSetContainsAny:
		// The common case is a single value on the node (a rack name).
		if !strings.Contains(lv, ",") {
			return contains(c.set, strings.TrimSpace(lv))
		}
		for _, h := range splitSet(lv) {
			if contains(c.set, h) {
				return true
			}
		}
		return false
	}
	return false // unknown operator: validation should have refused it
}

func contains(set []string, s string) bool {
	for _, x := range set {
		if x == s {
			return true
		}
	}
	return false
}

// compareOrder compares numerically when both sides are numbers, else
// lexically.
func compareOrder(op, l, r string) bool {
	var cmp int
	lf, lerr := strconv.ParseFloat(l, 64)
	rf, rerr := strconv.ParseFloat(r, 64)
	if lerr == nil && rerr == nil {
		switch {
		case lf < rf:
			cmp = -1
		case lf > rf:
			cmp = 1
		}
	} else {
		cmp = strings.Compare(l, r)
	}
	switch op {
	case "<":
		return cmp < 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	}
	return cmp >= 0
}

// groupChecks is the compiled feasibility of one task group.
type groupChecks struct {
	tg      *structs.TaskGroup
	drivers []string
	checks  []*checker // static constraints: job, group, tasks
	// distinct_hosts at job level (jobWide) or group level.
	distinctHosts, distinctHostsJob bool
	distinctProps                   []distinctProp
	affinities                      []*affinity
	spreads                         []*spreadState
	// cache of static feasibility by node position in the node set: 0
	// unknown, 1 feasible, else 2 + the index in reasons of the
	// ConstraintFiltered key that excluded it.
	cache   []int32
	reasons []string
	// byClass caches the same results by computed node class (numbered
	// by the node set: classOf), for groups whose checks read nothing
	// unique to a node (nil otherwise): nodes of one class have the same
	// drivers, attributes, meta, datacenter, class and pool, so one check
	// answers for all of them.
	byClass []int32
	classOf []int32
	classOK map[string]bool // shared with the planCtx
}

// unique reports whether t reads a value unique to a node, which its
// computed class does not cover.
func (t target) unique() bool {
	switch t.kind {
	case "attr", "meta", "node":
		return strings.HasPrefix(t.key, "unique.")
	}
	return false
}

type distinctProp struct {
	key     string
	attr    target
	limit   int
	jobWide bool
}

type affinity struct {
	*checker
	weight float64
}

func newGroupChecks(job *structs.Job, tg *structs.TaskGroup, set *nodeSet, classOK map[string]bool) *groupChecks {
	g := &groupChecks{tg: tg, cache: make([]int32, len(set.nodes)), classOK: classOK}
	add := func(cs []*structs.Constraint, jobWide bool) {
		for _, k := range cs {
			switch k.Operand {
			case structs.ConstraintDistinctHosts:
				if jobWide {
					g.distinctHostsJob = true
				} else {
					g.distinctHosts = true
				}
			case structs.ConstraintDistinctProperty:
				limit := 1
				if n, err := strconv.Atoi(k.RTarget); err == nil && n > 0 {
					limit = n
				}
				g.distinctProps = append(g.distinctProps, distinctProp{
					key: strings.TrimSpace(k.LTarget + " " + k.Operand + " " + k.RTarget), attr: parseTarget(k.LTarget),
					limit: limit, jobWide: jobWide,
				})
			default:
				g.checks = append(g.checks, compile(k.LTarget, k.Operand, k.RTarget))
			}
		}
	}
	addAff := func(as []*structs.Affinity) {
		for _, a := range as {
			if a.Weight != 0 {
				g.affinities = append(g.affinities, &affinity{compile(a.LTarget, a.Operand, a.RTarget), float64(a.Weight)})
			}
		}
	}
	add(job.Constraints, true)
	add(tg.Constraints, false)
	addAff(job.Affinities)
	addAff(tg.Affinities)
	seen := map[string]bool{}
	for _, t := range tg.Tasks {
		add(t.Constraints, false)
		addAff(t.Affinities)
		if !seen[t.Driver] && t.Driver != "" {
			seen[t.Driver] = true
			g.drivers = append(g.drivers, t.Driver)
		}
	}
	for _, s := range append(append([]*structs.Spread(nil), job.Spreads...), tg.Spreads...) {
		g.spreads = append(g.spreads, newSpreadState(s))
	}
	if !slices.ContainsFunc(g.checks, func(k *checker) bool { return k.l.unique() || k.r.unique() }) {
		g.byClass, g.classOf = make([]int32, set.classes), set.class
	}
	return g
}

// static returns "" when n passes the group's node-only checks, else the
// reason it does not (a ConstraintFiltered key). k is the node's position
// in the node set, by which the result is cached.
func (g *groupChecks) static(k int32, n *structs.Node) string {
	if c := g.cache[k]; c != 0 {
		return g.reason(c)
	}
	cls := int32(-1)
	if g.byClass != nil {
		cls = g.classOf[k]
	}
	var c int32
	if cls >= 0 {
		if c = g.byClass[cls]; c == 0 {
			c = g.code(g.check(n))
			g.byClass[cls] = c
			g.noteClass(n, c) // the same for every node of the class
		}
	} else {
		c = g.code(g.check(n))
		g.noteClass(n, c)
	}
	g.cache[k] = c
	return g.reason(c)
}

// noteClass records whether n's feasibility class passed the static
// checks (cache code c), for blocked evaluations.
func (g *groupChecks) noteClass(n *structs.Node, c int32) {
	if c == 1 {
		g.classOK[n.FeasibilityClass()] = true
	} else if _, seen := g.classOK[n.FeasibilityClass()]; !seen {
		g.classOK[n.FeasibilityClass()] = false
	}
}

// code is the cache code of a check result: 1 for feasible, else 2 + the
// reason's index in reasons.
func (g *groupChecks) code(r string) int32 {
	if r == "" {
		return 1
	}
	k := slices.Index(g.reasons, r)
	if k < 0 {
		k = len(g.reasons)
		g.reasons = append(g.reasons, r)
	}
	return int32(k + 2)
}

// reason is the check result of a cache code.
func (g *groupChecks) reason(c int32) string {
	if c <= 1 {
		return ""
	}
	return g.reasons[c-2]
}

// check runs the node-only checks.
func (g *groupChecks) check(n *structs.Node) string {
	r := ""
	for _, d := range g.drivers {
		if !driverOK(n, d) {
			r = filterMissingDrivers
			break
		}
	}
	if r == "" {
		for _, k := range g.checks {
			if !k.match(n) {
				r = k.key
				break
			}
		}
	}
	return r
}

// driverOK reports whether node n runs tasks of driver d. The containerd
// driver also serves "docker" tasks.
func driverOK(n *structs.Node, d string) bool {
	ok := func(name string) bool {
		i := n.Drivers[name]
		return i != nil && i.Detected && i.Healthy
	}
	if ok(d) {
		return true
	}
	return d == "docker" && ok("containerd")
}

// dynamic returns "" when placing one more allocation of the group on n
// keeps distinct_hosts and distinct_property, else the reason.
func (c *planCtx) dynamic(g *groupChecks, n *structs.Node) string {
	if g.distinctHosts || g.distinctHostsJob {
		for _, a := range c.jobOn[n.ID] {
			if g.distinctHostsJob || a.TaskGroup == g.tg.Name {
				return filterDistinctHosts
			}
		}
	}
	for _, p := range g.distinctProps {
		v, ok := p.attr.resolve(n)
		if !ok {
			return p.key
		}
		used := 0
		for nodeID, allocs := range c.jobOn {
			other := n
			if nodeID != n.ID {
				other, _ = c.node(nodeID) // an error reads as a gone node
			}
			if other == nil {
				continue
			}
			if ov, ok := p.attr.resolve(other); !ok || ov != v {
				continue
			}
			for _, a := range allocs {
				if p.jobWide || a.TaskGroup == g.tg.Name {
					used++
				}
			}
		}
		if used >= p.limit {
			return p.key
		}
	}
	return ""
}
