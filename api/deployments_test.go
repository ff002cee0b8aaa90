package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/skiffhq/skiff/structs"
)

// TestDeploymentRequests checks the method, path and body each call sends,
// and that it decodes the answer.
func TestDeploymentRequests(t *testing.T) {
	const id = "8a1b2c3d-0000-4000-8000-000000000001"
	zero := uint64(0)
	c, rec := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/job/web/deployment":
			if r.URL.Query().Get("none") != "" {
				writeJSON(w, nil)
				return
			}
			writeJSON(w, &structs.Deployment{ID: id})
		case "/v1/deployments", "/v1/job/web/deployments":
			writeJSON(w, []*structs.Deployment{{ID: id}})
		case "/v1/deployment/" + id:
			writeJSON(w, &structs.Deployment{ID: id, Status: structs.DeploymentStatusRunning})
		case "/v1/deployment/allocations/" + id:
			writeJSON(w, []*structs.AllocListStub{{ID: "a"}})
		default:
			writeJSON(w, &structs.DeploymentUpdateResponse{EvalID: "e", RevertedJobVersion: &zero})
		}
	}, nil)
	ctx := context.Background()

	if got, err := c.Deployments().Resolve(ctx, id[:8], nil); err != nil || got != id {
		t.Fatalf("resolve: %q, %v", got, err)
	}
	if rec.last.URL.Query().Get("prefix") != id[:8] {
		t.Errorf("resolve sent prefix %q", rec.last.URL.Query().Get("prefix"))
	}
	if d, _, err := c.Deployments().Info(ctx, id, nil); err != nil || d.Status != structs.DeploymentStatusRunning {
		t.Fatalf("info: %+v, %v", d, err)
	}
	if a, _, err := c.Deployments().Allocations(ctx, id, nil); err != nil || len(a) != 1 {
		t.Fatalf("allocations: %v, %v", a, err)
	}
	if ds, _, err := c.Jobs().Deployments(ctx, "web", true, nil); err != nil || len(ds) != 1 || rec.last.URL.Query().Get("all") != "true" {
		t.Fatalf("job deployments: %v, %v, query %q", ds, err, rec.last.URL.RawQuery)
	}
	if d, _, err := c.Jobs().LatestDeployment(ctx, "web", nil); err != nil || d == nil || d.ID != id {
		t.Fatalf("latest: %+v, %v", d, err)
	}
	if d, _, err := c.Jobs().LatestDeployment(ctx, "web", &QueryOptions{Params: map[string]string{"none": "1"}}); err != nil || d != nil {
		t.Fatalf("latest of none: %+v, %v; want nil", d, err)
	}

	resp, _, err := c.Deployments().Fail(ctx, id, nil)
	if err != nil || resp.EvalID != "e" || resp.RevertedJobVersion == nil {
		t.Fatalf("fail: %+v, %v", resp, err)
	}
	var body map[string]any
	if rec.last.Method != http.MethodPut || rec.last.URL.Path != "/v1/deployment/fail/"+id ||
		json.Unmarshal(rec.body, &body) != nil || body["DeploymentID"] != id {
		t.Errorf("fail sent %s %s %s", rec.last.Method, rec.last.URL.Path, rec.body)
	}
	if _, _, err := c.Deployments().Pause(ctx, id, false, nil); err != nil {
		t.Fatal(err)
	}
	body = nil
	if rec.last.URL.Path != "/v1/deployment/pause/"+id || json.Unmarshal(rec.body, &body) != nil || body["Pause"] != false {
		t.Errorf("pause sent %s %s", rec.last.URL.Path, rec.body)
	}

	for _, tt := range []struct {
		all    bool
		groups []string
	}{{true, nil}, {false, []string{"web", "api"}}} {
		resp, _, err := c.Deployments().Promote(ctx, id, tt.all, tt.groups, nil)
		if err != nil || resp.EvalID != "e" {
			t.Fatalf("promote: %+v, %v", resp, err)
		}
		var sent struct {
			DeploymentID string
			All          bool
			Groups       []string
		}
		if rec.last.Method != http.MethodPut || rec.last.URL.Path != "/v1/deployment/promote/"+id || json.Unmarshal(rec.body, &sent) != nil ||
			sent.DeploymentID != id || sent.All != tt.all || !slices.Equal(sent.Groups, tt.groups) {
			t.Errorf("promote(all %v, groups %v) sent %s %s %s", tt.all, tt.groups, rec.last.Method, rec.last.URL.Path, rec.body)
		}
	}
}
