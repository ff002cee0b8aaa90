package jobspec

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics, that it returns either a
// valid job or an *Error with at least one problem, and nothing else.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.hcl")
	examples, _ := filepath.Glob("../examples/*.hcl")
	for _, path := range append(seeds, examples...) {
		src, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(src))
	}
	f.Add(`job "x" { group "g" { count = -1 } }`)
	f.Add(`variable "v" {} job "x" { meta { a = "${var.v}-${attr.x}" } }`)
	f.Add(`locals { a = local.a } job "x" {}`)
	f.Add(`job "x" { group "g" { task "t" { config { a "b" "c" { d = [1, {e = 2.5}] } } } } }`)
	f.Fuzz(func(t *testing.T, src string) {
		job, err := Parse([]byte(src), Options{Filename: "fuzz.hcl", BaseDir: "testdata"})
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) || len(perr.Problems) == 0 {
				t.Fatalf("got error %T %q, want *Error with problems", err, err)
			}
			if job != nil {
				t.Fatal("got a job and an error")
			}
			return
		}
		if job == nil {
			t.Fatal("got neither a job nor an error")
		}
		if err := job.Validate(); err != nil {
			t.Fatalf("returned job does not validate: %v", err)
		}
	})
}
