package structs

import (
	"slices"
	"testing"
)

func TestNullEntries(t *testing.T) {
	job := &Job{
		ID:          "j",
		Constraints: []*Constraint{nil},
		TaskGroups: []*TaskGroup{
			{Name: "ok", Tasks: []*Task{{Name: "t"}}}, // nil optional blocks (RestartPolicy, ...) are not null entries
			nil,
			{Name: "g", Volumes: map[string]*VolumeRequest{"data": nil}, Tasks: []*Task{nil, {Name: "t", Templates: []*Template{{}, nil}}}},
		},
	}
	got := NullEntries(job)
	want := []string{
		"Constraints[0]",
		"TaskGroups[1]",
		"TaskGroups[2].Tasks[0]",
		"TaskGroups[2].Tasks[1].Templates[1]",
		`TaskGroups[2].Volumes["data"]`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("NullEntries = %q\nwant %q", got, want)
	}
	job.Constraints, job.TaskGroups = nil, job.TaskGroups[:1]
	if got := NullEntries(job); len(got) != 0 {
		t.Fatalf("a job without null entries: NullEntries = %q", got)
	}
}
