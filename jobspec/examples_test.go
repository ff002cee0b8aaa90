package jobspec

import (
	"path/filepath"
	"reflect"
	"strings"
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
	if cfg["image"] != "127.0.0.1:5000/skiff/busybox:latest" || cfg["command"] != "sh" || !reflect.DeepEqual(cfg["ports"], []any{"http"}) {
		t.Errorf("got config %#v, want the local registry's busybox running sh with port http", cfg)
	}
	// The runtime interpolation is left for the client to fill in.
	if args, _ := cfg["args"].([]any); len(args) != 2 || !strings.Contains(args[1].(string), "httpd -f -p ${NOMAD_PORT_http}") {
		t.Errorf("got args %#v, want sh -c with httpd on ${NOMAD_PORT_http}", cfg["args"])
	}
	if n := tg.Networks; len(n) != 1 || len(n[0].DynamicPorts) != 1 || n[0].DynamicPorts[0].Label != "http" {
		t.Errorf("got networks %+v, want one dynamic port \"http\"", n)
	}

	job, err = ParseFile("../examples/web.hcl", Options{Vars: []string{"image=registry.example.com/busybox:1.36"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := job.TaskGroups[0].Tasks[0].Config["image"]; got != "registry.example.com/busybox:1.36" {
		t.Errorf("got image %v with -var image=..., want registry.example.com/busybox:1.36", got)
	}
}
