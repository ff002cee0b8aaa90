package allocrunner

import (
	"testing"

	"github.com/skiffhq/skiff/structs"
)

func TestTaskEnv(t *testing.T) {
	alloc := testAlloc(structs.JobTypeService, nil, task("web", func(t *structs.Task) {
		t.Meta = map[string]string{"version": "v2", "team-name": "core"}
		t.Env = map[string]string{
			"LISTEN":  "0.0.0.0:${NOMAD_PORT_http}",
			"WHERE":   "${node.datacenter}/${node.unique.name}/${attr.kernel.name}/${meta.rack}",
			"ID":      "${SKIFF_ALLOC_ID}",
			"UNKNOWN": "${NOMAD_NOPE} ${env.HOME}",
		}
		t.Resources = &structs.Resources{CPU: 500, MemoryMB: 256, MemoryMaxMB: 512}
	}))
	alloc.ID = "0123456789abcdef-0000"
	alloc.Name = "web.api[3]"
	alloc.Job.Meta = map[string]string{"owner": "ops", "version": "v1"}
	alloc.Job.TaskGroups[0].Meta = map[string]string{"tier": "front"}
	alloc.AllocatedResources = &structs.AllocatedResources{
		Tasks: map[string]*structs.AllocatedTaskResources{"web": {
			Cpu: structs.AllocatedCpuResources{CpuShares: 600}, Memory: structs.AllocatedMemoryResources{MemoryMB: 300}}},
		Shared: structs.AllocatedSharedResources{Ports: []structs.AllocatedPortMapping{
			{Label: "http", Value: 23456, To: 8080}, {Label: "admin-ui", Value: 9000}}},
	}
	node := &structs.Node{ID: "node-1", Name: "n1", Datacenter: "dc1",
		Attributes: map[string]string{"kernel.name": "linux", nodeIPAttribute: "10.0.0.5"},
		Meta:       map[string]string{"rack": "r7"}}
	in := envInput{alloc: alloc, group: alloc.Job.TaskGroups[0], task: alloc.Job.TaskGroups[0].Tasks[0], node: node, region: "eu"}
	env := taskEnv(in)

	tests := []struct{ key, want string }{
		{"NOMAD_ALLOC_ID", "0123456789abcdef-0000"},
		{"SKIFF_ALLOC_ID", "0123456789abcdef-0000"},
		{"NOMAD_SHORT_ALLOC_ID", "01234567"},
		{"NOMAD_ALLOC_NAME", "web.api[3]"},
		{"NOMAD_ALLOC_INDEX", "3"},
		{"NOMAD_JOB_ID", "web"},
		{"NOMAD_JOB_NAME", "web"},
		{"NOMAD_GROUP_NAME", "api"},
		{"SKIFF_TASK_NAME", "web"},
		{"NOMAD_NAMESPACE", "default"},
		{"NOMAD_REGION", "eu"},
		{"NOMAD_DC", "dc1"},
		{"NOMAD_CPU_LIMIT", "600"},
		{"NOMAD_MEMORY_LIMIT", "300"},
		{"NOMAD_ALLOC_DIR", "/alloc"},
		{"NOMAD_TASK_DIR", "/local"},
		{"SKIFF_SECRETS_DIR", "/secrets"},
		{"NOMAD_PORT_http", "8080"},
		{"NOMAD_HOST_PORT_http", "23456"},
		{"NOMAD_IP_http", "10.0.0.5"},
		{"NOMAD_ADDR_http", "10.0.0.5:23456"},
		{"SKIFF_PORT_admin_ui", "9000"},
		{"NOMAD_HOST_ADDR_admin_ui", "10.0.0.5:9000"},
		{"NOMAD_META_owner", "ops"},
		{"NOMAD_META_OWNER", "ops"},
		{"NOMAD_META_tier", "front"},
		{"NOMAD_META_version", "v2"},
		{"SKIFF_META_team_name", "core"},
		{"NOMAD_META_TEAM_NAME", "core"},
		{"LISTEN", "0.0.0.0:8080"},
		{"WHERE", "dc1/n1/linux/r7"},
		{"ID", "0123456789abcdef-0000"},
		{"UNKNOWN", "${NOMAD_NOPE} ${env.HOME}"},
	}
	for _, tt := range tests {
		if got, ok := env[tt.key]; !ok || got != tt.want {
			t.Errorf("%s: got %q (set %v), want %q", tt.key, got, ok, tt.want)
		}
	}
	for _, absent := range []string{"NOMAD_MEMORY_MAX_LIMIT", "NOMAD_JOB_PARENT_ID", "NOMAD_NODE_ID"} {
		if v, ok := env[absent]; ok {
			t.Errorf("%s: got %q, want it unset", absent, v)
		}
	}
}

func TestTaskEnvDefaults(t *testing.T) {
	alloc := testAlloc(structs.JobTypeBatch, nil, task("w", func(t *structs.Task) {
		t.Resources = &structs.Resources{CPU: 250, MemoryMB: 128, MemoryMaxMB: 512}
	}))
	alloc.Name = "no-index"
	alloc.Job.ParentID = "parent"
	in := envInput{alloc: alloc, group: alloc.Job.TaskGroups[0], task: alloc.Job.TaskGroups[0].Tasks[0]}
	env := taskEnv(in)
	for key, want := range map[string]string{
		"NOMAD_ALLOC_INDEX": "0", "NOMAD_CPU_LIMIT": "250", "NOMAD_MEMORY_LIMIT": "128",
		"NOMAD_MEMORY_MAX_LIMIT": "512", "NOMAD_JOB_PARENT_ID": "parent",
	} {
		if got := env[key]; got != want {
			t.Errorf("%s: got %q, want %q", key, got, want)
		}
	}
}

func TestInterpolateConfig(t *testing.T) {
	env := map[string]string{"NOMAD_PORT_http": "8080"}
	cfg := map[string]any{
		"image":  "nginx",
		"args":   []any{"--port", "${NOMAD_PORT_http}"},
		"nested": []map[string]any{{"x": "${NOMAD_PORT_http}"}},
		"count":  3,
	}
	out := interpolateConfig(cfg, env, envInput{}).(map[string]any)
	if got := out["args"].([]any)[1]; got != "8080" {
		t.Errorf("args: got %v, want 8080", got)
	}
	if got := out["nested"].([]map[string]any)[0]["x"]; got != "8080" {
		t.Errorf("nested: got %v", got)
	}
	if cfg["args"].([]any)[1] != "${NOMAD_PORT_http}" {
		t.Error("interpolation changed the job's own config")
	}
	if out["count"] != 3 {
		t.Errorf("count: got %v", out["count"])
	}
}
