package jobspec

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/skiffhq/skiff/structs"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the parser's output")

// goldenOptions are the options a testdata file is parsed with, besides
// Filename and BaseDir.
var goldenOptions = map[string]Options{
	"variables.hcl": {
		Vars:     []string{"replicas=3"},
		VarFiles: []string{"testdata/variables.vars.hcl"},
		Environ:  []string{"SKIFF_VAR_environment=staging", "NOMAD_VAR_environment=ignored", "HOME=/root"},
	},
}

// corpus returns the job files of testdata (not the var files).
func corpus(t testing.TB) []string {
	files, err := filepath.Glob("testdata/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".vars.hcl") {
			out = append(out, f)
		}
	}
	return out
}

func encodeJob(t *testing.T, job *structs.Job) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(job); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestGolden parses every job file of testdata and compares the job with
// its .golden file; go test ./jobspec -update rewrites them.
func TestGolden(t *testing.T) {
	files := corpus(t)
	if len(files) < 10 {
		t.Fatalf("got %d job files in testdata, want at least 10", len(files))
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			opts := goldenOptions[name]
			opts.Filename = name
			opts.BaseDir = "testdata"
			job, err := ParseFile(path, opts)
			if err != nil {
				t.Fatalf("parse %s:\n%v", name, err)
			}
			got := encodeJob(t, job)
			golden := strings.TrimSuffix(path, ".hcl") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./jobspec -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("parsed job differs from %s (run go test ./jobspec -update if the change is intended):\n%s",
					golden, firstDiff(string(got), string(want)))
			}
		})
	}
}

// firstDiff shows the first differing line of got and want, with context.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			from := max(0, i-3)
			return "line " + strconv.Itoa(i+1) + ":\n  context: " + strings.Join(g[from:i], "\n           ") +
				"\n  got:  " + gl + "\n  want: " + wl
		}
	}
	return "(no difference)"
}
