package jobspec

import (
	"path/filepath"
	"reflect"
	"testing"
)

// TestExamples parses the user-facing examples, and checks the facts the
// documentation and end-to-end tests rely on.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../examples/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("got %d example job files, want at least 2", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := ParseFile(f, Options{}); err != nil {
				t.Errorf("parse:\n%v", err)
			}
		})
	}

	job, err := ParseFile("../examples/web.hcl", Options{})
	if err != nil {
		t.Fatal(err)
	}
	tg := job.LookupTaskGroup("web")
	if tg == nil || tg.Count != 2 || len(tg.Tasks) != 1 {
		t.Fatalf("got group %+v, want group \"web\" with count 2 and one task", tg)
	}
	cfg := tg.Tasks[0].Config
	want := map[string]any{
		"image":   "127.0.0.1:5000/skiff/busybox:latest",
		"command": "httpd",
		"args":    []any{"-f", "-p", "8080"},
		"ports":   []any{"http"},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got config %#v, want %#v", cfg, want)
	}
	if n := tg.Networks; len(n) != 1 || len(n[0].DynamicPorts) != 1 || n[0].DynamicPorts[0].To != 8080 {
		t.Errorf("got networks %+v, want one dynamic port \"http\" mapped to 8080", n)
	}

	job, err = ParseFile("../examples/web.hcl", Options{Vars: []string{"image=registry.example.com/busybox:1.36"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := job.TaskGroups[0].Tasks[0].Config["image"]; got != "registry.example.com/busybox:1.36" {
		t.Errorf("got image %v with -var image=..., want registry.example.com/busybox:1.36", got)
	}
}
