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
		{"placed since: nothing blocked", []*structs.Evaluation{ok("c", structs.EvalStatusComplete), failed("b")}, ""},
		{"blocked, no failure recorded", []*structs.Evaluation{ok("b", structs.EvalStatusBlocked), ok("a", structs.EvalStatusComplete)}, ""},
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
