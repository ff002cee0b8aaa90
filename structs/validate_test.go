package structs

import (
	"strings"
	"testing"
)

func TestJobNamespaceIsValidated(t *testing.T) {
	for ns, want := range map[string]string{
		"":        "namespace is empty",
		"*":       `namespace "*" stands for every namespace`,
		"a\x00b":  "may not contain spaces",
		"team a":  "may not contain spaces",
		"team/ab": "may not contain spaces",
		"prod":    "",
	} {
		job := &Job{ID: "j", Namespace: ns, TaskGroups: []*TaskGroup{{Name: "g", Tasks: []*Task{{Name: "t", Driver: "containerd", Config: map[string]any{"image": "a"}}}}}}
		job.Canonicalize()
		job.Namespace = ns // Canonicalize fills an empty one
		err := job.Validate()
		switch {
		case want == "" && err != nil:
			t.Errorf("namespace %q: %v", ns, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("namespace %q: err = %v, want it to say %q", ns, err, want)
		}
	}
}
