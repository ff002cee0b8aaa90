package scheduler

import (
	"slices"
	"testing"

	"github.com/skiffhq/skiff/structs"
)

func TestConstraintOperators(t *testing.T) {
	n := testNode(7, 25) // rack r7, id node-00007
	n.Attributes["kernel.version"] = "5.15.0"
	n.Attributes["os.version"] = "1.3.0-beta.2"
	n.Attributes["tags"] = "ssd,gpu,fast"
	n.Attributes["mem.gb"] = "32"
	cases := []struct {
		l, op, r string
		want     bool
	}{
		{"${meta.rack}", "=", "r7", true},
		{"${meta.rack}", "", "r7", true},
		{"${meta.rack}", "==", "r8", false},
		{"${meta.rack}", "is", "r7", true},
		{"${meta.rack}", "!=", "r7", false},
		{"${meta.rack}", "not", "r8", true},
		{"${meta.missing}", "!=", "x", true},
		{"${meta.missing}", "=", "", false},
		{"${attr.mem.gb}", "<", "100", true}, // numeric: lexically "32" > "100"
		{"${attr.mem.gb}", "<=", "32", true},
		{"${attr.mem.gb}", ">", "4", true}, // numeric: lexically "32" < "4"
		{"${attr.mem.gb}", ">=", "33", false},
		{"${attr.kernel.name}", "<", "mac", true}, // lexical
		{"${attr.kernel.name}", ">", "mac", false},
		{"${attr.kernel.name}", "regexp", "^lin", true},
		{"${attr.kernel.name}", "regexp", "^win", false},
		{"${attr.kernel.name}", "regexp", "([", false},
		{"${attr.kernel.version}", "version", ">= 5.10, < 6.0", true},
		{"${attr.kernel.version}", "version", "< 5.10", false},
		{"${attr.kernel.version}", "version", "~> 5.15", true},
		{"${attr.kernel.version}", "version", "~> 5.14.0", false},
		{"${attr.kernel.version}", "semver", ">= 5.15.0", true},
		{"${attr.os.version}", "semver", ">= 1.3.0-beta.1", true},
		{"${attr.os.version}", "semver", ">= 1.3.0-beta.10", false},
		{"${attr.os.version}", "version", ">= 1.0", false}, // a pre-release meets only pre-release clauses
		{"${attr.tags}", "set_contains", "gpu,ssd", true},
		{"${attr.tags}", "set_contains_all", "gpu,nvme", false},
		{"${attr.tags}", "set_contains_any", "nvme, gpu", true},
		{"${attr.tags}", "set_contains_any", "nvme,hdd", false},
		{"${meta.rack}", "set_contains_any", "r1,r7", true},
		{"${meta.rack}", "is_set", "", true},
		{"${meta.zone}", "is_set", "", false},
		{"${meta.zone}", "is_not_set", "", true},
		{"${node.unique.id}", "=", "node-00007", true},
		{"${node.unique.name}", "=", "n7", true},
		{"${node.datacenter}", "=", "dc1", true},
		{"${node.class}", "=", "standard", true},
		{"${node.pool}", "=", "default", true},
		{"${attr.kernel.name}", "=", "${attr.kernel.name}", true},
		{"${meta.rack}", "bogus", "r7", false},
	}
	for _, c := range cases {
		if got := compile(c.l, c.op, c.r).match(n); got != c.want {
			t.Errorf("%s %s %s: got %v, want %v", c.l, c.op, c.r, got, c.want)
		}
	}
}

func TestVersionCompare(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"1.2.3", "1.2.3", 0},
		{"1.2.3", "1.10.0", -1},
		{"2.0.0", "1.99.99", 1},
		{"1.0.0-alpha", "1.0.0", -1},
		{"1.0.0-alpha", "1.0.0-alpha.1", -1},
		{"1.0.0-alpha.1", "1.0.0-alpha.beta", -1},
		{"1.0.0-beta.2", "1.0.0-beta.11", -1},
		{"1.0.0-rc.1", "1.0.0-beta.11", 1},
		{"1.0.0+build.5", "1.0.0", 0},
	}
	for _, c := range cases {
		a, err := parseVersion(c.a, true)
		if err != nil {
			t.Fatalf("parse %s: %v", c.a, err)
		}
		b, err := parseVersion(c.b, true)
		if err != nil {
			t.Fatalf("parse %s: %v", c.b, err)
		}
		if got := a.compare(b); got != c.want {
			t.Errorf("compare(%s, %s): got %d, want %d", c.a, c.b, got, c.want)
		}
	}
	if _, err := parseVersion("1.2", true); err == nil {
		t.Errorf("semver 1.2: got no error, want one")
	}
	if _, err := parseVersion("v1.2", false); err != nil {
		t.Errorf("version v1.2: got %v, want no error", err)
	}
}

func TestFiltersCountInMetric(t *testing.T) {
	h := newHarness(t)
	var nodes []*structs.Node
	for i := range 10 {
		n := testNode(i, 5)
		switch {
		case i < 2:
			n.Datacenter = "dc2" // not in the job's datacenters: not evaluated
		case i < 3:
			n.NodePool = "gpu" // another pool: not evaluated
		case i < 5:
			n.Drivers["containerd"].Healthy = false
		case i < 6:
			n.Status = structs.NodeStatusDown // not ready: not evaluated
		}
		nodes = append(nodes, n)
	}
	h.addNodes(nodes...)
	job := testJob("web", structs.JobTypeService, 1)
	job.Constraints = []*structs.Constraint{{LTarget: "${meta.rack}", RTarget: "r9", Operand: "="}}
	job = h.addJob(job)
	eval := h.process(job, structs.EvalTriggerJobRegister)

	m := eval.FailedTGAllocs["web"]
	if m == nil {
		t.Fatalf("FailedTGAllocs: got %v, want a metric for web", eval.FailedTGAllocs)
	}
	if m.NodesEvaluated != 6 || m.NodesFiltered != 6 {
		t.Errorf("evaluated/filtered: got %d/%d, want 6/6", m.NodesEvaluated, m.NodesFiltered)
	}
	if got := m.ConstraintFiltered[filterMissingDrivers]; got != 2 {
		t.Errorf("missing drivers: got %d, want 2", got)
	}
	if got := m.ConstraintFiltered["${meta.rack} = r9"]; got != 4 {
		t.Errorf("rack constraint: got %d, want 4 (%v)", got, m.ConstraintFiltered)
	}
	if m.NodesInPool != 9 {
		t.Errorf("NodesInPool: got %d, want 9", m.NodesInPool)
	}
	if got := m.NodesAvailable["dc1"]; got != 6 {
		t.Errorf("NodesAvailable[dc1]: got %d, want 6", got)
	}
	want := []string{`4 nodes excluded by constraint "${meta.rack} = r9"`, "2 nodes excluded by missing drivers"}
	if got := Explain(m); !slices.Equal(got, want) {
		t.Errorf("Explain: got %q, want %q", got, want)
	}
}

func TestDatacenterGlobAndMissing(t *testing.T) {
	cases := []struct {
		dcs      []string
		placed   int
		explains string
	}{
		{[]string{"dc*"}, 1, ""},
		{[]string{"*"}, 1, ""},
		{[]string{"dc3"}, 0, `No nodes in datacenter "dc3"`},
	}
	for _, c := range cases {
		h := newHarness(t)
		h.addNodes(testNode(1, 5))
		job := testJob("web", structs.JobTypeService, 1)
		job.Datacenters = c.dcs
		job = h.addJob(job)
		eval := h.process(job, structs.EvalTriggerJobRegister)
		if got := len(h.live(job)); got != c.placed {
			t.Errorf("%v: placed %d, want %d", c.dcs, got, c.placed)
		}
		if c.explains != "" {
			if got := Explain(eval.FailedTGAllocs["web"]); !slices.Contains(got, c.explains) {
				t.Errorf("%v: Explain got %q, want it to contain %q", c.dcs, got, c.explains)
			}
		}
	}
}

func TestDockerServedByContainerd(t *testing.T) {
	n := testNode(1, 1)
	if !driverOK(n, "docker") || !driverOK(n, "containerd") || driverOK(n, "exec") {
		t.Errorf("driverOK: got docker=%v containerd=%v exec=%v, want true true false",
			driverOK(n, "docker"), driverOK(n, "containerd"), driverOK(n, "exec"))
	}
}
