package command

import (
	"testing"

	"github.com/skiffhq/skiff/structs"
)

func TestStandingFailure(t *testing.T) {
	failed := func(id string) *structs.Evaluation {
		return &structs.Evaluation{ID: id, Status: structs.EvalStatusComplete,
			FailedTGAllocs: map[string]*structs.AllocMetric{"web": {NodesEvaluated: 1}}}
	}
	ok := func(id, status string) *structs.Evaluation { return &structs.Evaluation{ID: id, Status: status} }
	for _, tc := range []struct {
		name  string
		evals []*structs.Evaluation // newest first
		want  string
	}{
		{"none", nil, ""},
		{"the newest failed", []*structs.Evaluation{failed("b"), ok("a", structs.EvalStatusComplete)}, "b"},
		{"blocked after a failure", []*structs.Evaluation{ok("c", structs.EvalStatusBlocked), failed("b"), failed("a")}, "b"},
		{"a pending one is not finished", []*structs.Evaluation{ok("d", structs.EvalStatusPending), ok("c", structs.EvalStatusBlocked), failed("b")}, "b"},
		{"placed since", []*structs.Evaluation{ok("c", structs.EvalStatusComplete), failed("b")}, ""},
		{"placed by a newer version, an old one still blocked", []*structs.Evaluation{ok("c", structs.EvalStatusComplete), ok("b", structs.EvalStatusBlocked), failed("a")}, ""},
		{"blocked, no failure recorded", []*structs.Evaluation{ok("b", structs.EvalStatusBlocked), ok("a", structs.EvalStatusComplete)}, ""},
		{"only blocked", []*structs.Evaluation{ok("a", structs.EvalStatusBlocked)}, ""},
	} {
		got := ""
		if e := standingFailure(tc.evals); e != nil {
			got = e.ID
		}
		if got != tc.want {
			t.Errorf("%s: standingFailure = %q, want %q", tc.name, got, tc.want)
		}
	}
}
