package structs

import (
	"testing"
	"time"
)

func diffTestJob() *Job {
	j := &Job{ID: "web", Datacenters: []string{"dc1"}, TaskGroups: []*TaskGroup{{
		Name: "web", Count: 2,
		Tasks: []*Task{
			{Name: "httpd", Driver: "containerd", Config: map[string]any{"image": "busybox:1", "args": []any{"-p", "80"}},
				Resources: &Resources{CPU: 100, MemoryMB: 64}, KillTimeout: 5 * time.Second},
			{Name: "log", Driver: "containerd", Config: map[string]any{"image": "busybox:1"}},
		},
	}}}
	j.Canonicalize()
	return j
}

func TestDiffJobs(t *testing.T) {
	old := diffTestJob()
	if d := DiffJobs(old, diffTestJob()); d.Type != DiffTypeNone || len(d.Fields) != 0 || d.TaskGroups[0].Type != DiffTypeNone {
		t.Fatalf("diff of equal jobs: %+v, want None", d)
	}
	// Server-managed fields never make a diff.
	managed := diffTestJob()
	managed.Version, managed.JobModifyIndex, managed.Status = 7, 99, "running"
	if d := DiffJobs(old, managed); d.Type != DiffTypeNone {
		t.Fatalf("server-managed fields made a diff: %+v", d.Fields)
	}

	changed := diffTestJob()
	changed.TaskGroups[0].Count = 3
	changed.TaskGroups[0].Tasks[0].Config["args"] = []any{"-p", "8080"}
	changed.TaskGroups[0].Tasks[0].KillTimeout = 10 * time.Second
	changed.TaskGroups[0].Tasks = changed.TaskGroups[0].Tasks[:1]
	changed.Meta = map[string]string{"owner": "web-team"}
	d := DiffJobs(old, changed)
	if d.Type != DiffTypeEdited {
		t.Fatalf("type %s, want Edited", d.Type)
	}
	want := map[string]FieldDiff{
		"Meta[owner]": {Type: DiffTypeAdded, New: "web-team"},
	}
	for _, f := range d.Fields {
		if w, ok := want[f.Name]; !ok || w.Type != f.Type || w.New != f.New {
			t.Errorf("job field %+v not expected", f)
		}
	}
	g := d.TaskGroups[0]
	if g.Type != DiffTypeEdited || len(g.Fields) != 1 || g.Fields[0].Name != "Count" || g.Fields[0].Old != "2" || g.Fields[0].New != "3" {
		t.Fatalf("group diff %+v, want Count 2 => 3", g.Fields)
	}
	byName := map[string]*TaskDiff{}
	for _, td := range g.Tasks {
		byName[td.Name] = td
	}
	if byName["log"] == nil || byName["log"].Type != DiffTypeDeleted {
		t.Errorf("task log: %+v, want Deleted", byName["log"])
	}
	httpd := byName["httpd"]
	if httpd == nil || httpd.Type != DiffTypeEdited {
		t.Fatalf("task httpd: %+v, want Edited", httpd)
	}
	got := map[string]string{}
	for _, f := range httpd.Fields {
		got[f.Name] = f.Old + " => " + f.New
	}
	if got["Config[args][1]"] != "80 => 8080" || got["KillTimeout"] != "5s => 10s" || len(got) != 2 {
		t.Errorf("httpd fields %v, want Config[args][1] 80 => 8080 and KillTimeout 5s => 10s", got)
	}

	if d := DiffJobs(nil, changed); d.Type != DiffTypeAdded || d.TaskGroups[0].Type != DiffTypeAdded {
		t.Errorf("diff of a new job: %s / %s, want Added", d.Type, d.TaskGroups[0].Type)
	}
}
