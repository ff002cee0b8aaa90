package jobspec

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// metaJob returns a job file whose job meta holds one entry, v, set to
// the expression expr, after the given preamble.
func metaJob(preamble, expr string) string {
	return preamble + `
job "j" {
  meta {
    v = ` + expr + `
  }
  group "g" {
    task "t" {
      driver = "containerd"
      config {
        image = "busybox:1.36"
      }
    }
  }
}
`
}

// parseMeta parses src and returns the job's meta value "v".
func parseMeta(t *testing.T, src string, opts Options) string {
	t.Helper()
	if opts.Filename == "" {
		opts.Filename = "job.hcl"
	}
	job, err := Parse([]byte(src), opts)
	if err != nil {
		t.Fatalf("parse:\n%v", err)
	}
	return job.Meta["v"]
}

// TestVariablePrecedence checks default < NOMAD_VAR < SKIFF_VAR < var
// files (in order) < inline var content < -var (in order).
func TestVariablePrecedence(t *testing.T) {
	dir := t.TempDir()
	file1 := filepath.Join(dir, "one.hcl")
	file2 := filepath.Join(dir, "two.hcl")
	for path, content := range map[string]string{file1: `x = "file1"`, file2: `x = "file2"`} {
		if err := os.WriteFile(path, []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := metaJob(`variable "x" { default = "default" }`, "var.x")
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"default", Options{}, "default"},
		{"nomad env", Options{Environ: []string{"NOMAD_VAR_x=nomad-env"}}, "nomad-env"},
		{"skiff env over nomad env", Options{Environ: []string{"SKIFF_VAR_x=skiff-env", "NOMAD_VAR_x=nomad-env"}}, "skiff-env"},
		{"other env ignored", Options{Environ: []string{"x=plain", "SKIFF_VAR_y=other"}}, "default"},
		{"var file over env", Options{Environ: []string{"SKIFF_VAR_x=env"}, VarFiles: []string{file1}}, "file1"},
		{"later var file wins", Options{VarFiles: []string{file1, file2}}, "file2"},
		{"inline content over files", Options{VarFiles: []string{file2}, VarContent: `x = "content"`}, "content"},
		{"-var over everything", Options{Environ: []string{"SKIFF_VAR_x=env"}, VarFiles: []string{file1}, VarContent: `x = "content"`, Vars: []string{"x=flag"}}, "flag"},
		{"later -var wins", Options{Vars: []string{"x=first", "x=second"}}, "second"},
		{"-var value with =", Options{Vars: []string{"x=a=b"}}, "a=b"},
		{"empty -var value", Options{Vars: []string{"x="}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseMeta(t, src, tt.opts); got != tt.want {
				t.Errorf("got var.x = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTypedVariables checks that -var and environment strings are
// converted to the declared type, and parsed as HCL for collections.
func TestTypedVariables(t *testing.T) {
	pre := `
variable "n" {
  type    = number
  default = 1
}
variable "l" {
  type    = list(string)
  default = []
}
variable "m" {
  type    = map(number)
  default = {}
}
variable "o" {
  type    = object({ a = string, b = optional(number, 7) })
  default = { a = "x" }
}
variable "b" {
  type    = bool
  default = false
}`
	tests := []struct {
		name, expr string
		opts       Options
		want       string
	}{
		{"number from -var", "var.n + 1", Options{Vars: []string{"n=41"}}, "42"},
		{"list from env", `join("+", var.l)`, Options{Environ: []string{`SKIFF_VAR_l=["a", "b"]`}}, "a+b"},
		{"map from -var", `var.m["k"] * 2`, Options{Vars: []string{`m={ k = 21 }`}}, "42"},
		{"object default with optional", `"${var.o.a}${var.o.b}"`, Options{}, "x7"},
		{"object from var content", `"${var.o.a}${var.o.b}"`, Options{VarContent: `o = { a = "y", b = 1 }`}, "y1"},
		{"bool from env", `var.b ? "yes" : "no"`, Options{Environ: []string{"SKIFF_VAR_b=true"}}, "yes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseMeta(t, metaJob(pre, tt.expr), tt.opts); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestNodeInterpolations checks that runtime interpolations survive as
// text while var, local and functions are evaluated.
func TestNodeInterpolations(t *testing.T) {
	pre := `
variable "b" { default = "x" }
locals { l = "loc-${var.b}" }`
	tests := []struct{ expr, want string }{
		{`"${attr.a}-${var.b}"`, "${attr.a}-x"},
		{`"${node.datacenter}"`, "${node.datacenter}"},
		{`"${ node.unique.name }"`, "${node.unique.name}"},
		{`"${NOMAD_PORT_http}"`, "${NOMAD_PORT_http}"},
		{`"${NOMAD_ALLOC_DIR}/data"`, "${NOMAD_ALLOC_DIR}/data"},
		{`"${SKIFF_ALLOC_ID}"`, "${SKIFF_ALLOC_ID}"},
		{`"${HOME}/.cache"`, "${HOME}/.cache"},
		{`"${env["HOME"]}"`, `${env["HOME"]}`},
		{`"${attr.unique.network.ip-address}:${meta.port}"`, "${attr.unique.network.ip-address}:${meta.port}"},
		{`"${meta.list[0]}"`, "${meta.list[0]}"},
		{`"${device.model}"`, "${device.model}"},
		{`"$${var.b}"`, "${var.b}"},
		{`"${upper(var.b)}-${local.l}"`, "X-loc-x"},
		{`"${var.b == "x" ? "${attr.a}" : "no"}"`, "${attr.a}"},
		{`format("%s/%s", "${attr.a}", var.b)`, "${attr.a}/x"},
		{"<<EOT\n${meta.rack} ${var.b}\nEOT", "${meta.rack} x\n"},
		{`"%{ if var.b == "x" }${attr.yes}%{ else }no%{ endif }"`, "${attr.yes}"},
		{`"plain"`, "plain"},
		{`join(",", [for R in ["a"] : "${R}-${attr.x}"])`, "a-${attr.x}"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			if got := parseMeta(t, metaJob(pre, tt.expr), Options{}); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestFunctions checks a sample of the functions, including file().
func TestFunctions(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "greeting.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ expr, want string }{
		{`trimspace(file("greeting.txt"))`, "hello"},
		{`upper("abc")`, "ABC"},
		{`join(",", sort(["b", "a"]))`, "a,b"},
		{`length(split(",", "a,b,c"))`, "3"},
		{`lookup({ a = "1" }, "b", "dflt")`, "dflt"},
		{`jsonencode(jsondecode("{\"a\":[1,2]}"))`, `{"a":[1,2]}`},
		{`regex_replace("a-b-c", "-", "_")`, "a_b_c"},
		{`replace("a-b", "-", "+")`, "a+b"},
		{`try(jsondecode("{").x, "bad json")`, "bad json"},
		{`can(regex("^[0-9]+$", "123"))`, "true"},
		{`min(3, max(1, 2))`, "2"},
		{`substr("skiff", 0, 3)`, "ski"},
		{`coalesce(null, "second")`, "second"},
		{`element(reverse(range(3)), 0)`, "2"},
		{`tostring(ceil(1.2) + floor(1.8) + abs(-1))`, "4"},
		{`formatlist("%s!", ["a"])[0]`, "a!"},
		{`length(flatten([[1], [2, 3]]))`, "3"},
		{`join(",", keys(merge({ a = 1 }, { b = 2 })))`, "a,b"},
		{`contains(toset(["a"]), "a")`, "true"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			if got := parseMeta(t, metaJob("", tt.expr), Options{BaseDir: dir}); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFileFunctionErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, maxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ path, want string }{
		{"missing.txt", "no such file or directory"},
		{"big", "is larger than 4 MiB"},
		{".", "is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			_, err := Parse([]byte(metaJob("", `file("`+tt.path+`")`)), Options{BaseDir: dir})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "job.hcl:4:9: ") {
				t.Errorf("got %v, want an error at job.hcl:4:9 containing %q", err, tt.want)
			}
		})
	}
}

// TestUnknownRootHints checks the hint given for names that are neither
// variables nor node values.
func TestUnknownRootHints(t *testing.T) {
	pre := `
variable "name" { default = "x" }
locals { port = 80 }`
	tests := []struct{ expr, want string }{
		{`"${name}"`, `unknown variable "name"; did you mean var.name?`},
		{`"${port}"`, `unknown variable "port"; did you mean local.port?`},
		{`"${vra.name}"`, `unknown variable "vra"; did you mean var?`},
		{`"${other}"`, `unknown variable "other"; job variables are var.NAME and locals are local.NAME`},
		{`local.prot`, `local.prot is not defined; define it in a locals { prot = ... } block, or did you mean local.port?`},
		{`"${upper(attr.x)}"`, `attr.x is resolved on the node when the task is placed, so it can only be used inside a string on its own: "${attr.x}"`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := Parse([]byte(metaJob(pre, tt.expr)), Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestFreeformValues checks the Go types of free-form blocks: int for
// whole numbers, float64 otherwise, []any for lists and nested blocks.
func TestFreeformValues(t *testing.T) {
	src := `job "j" {
  group "g" {
    count = 1
    scaling {
      max = 3
      policy {
        n     = 3
        f     = 1.5
        big   = 1e3
        list  = [1, "a", true]
        obj   = { a = 1 }
        empty = null
        check "c" {
          target = 70
        }
        block {}
        block {
          x = "y"
        }
      }
    }
    task "t" {
      driver = "containerd"
      config {
        image = "busybox:1.36"
      }
    }
  }
}`
	job, err := Parse([]byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := job.TaskGroups[0].Scaling.Policy
	want := map[string]any{
		"n": 3, "f": 1.5, "big": 1000, "list": []any{1, "a", true},
		"obj": map[string]any{"a": 1}, "empty": nil,
		"check": []any{map[string]any{"c": map[string]any{"target": 70}}},
		"block": []any{map[string]any{}, map[string]any{"x": "y"}},
	}
	delete(want, "empty") // null is left out, as an unset attribute
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
}

// TestDefaults checks the defaults the parser applies where the structs
// leave them to the job file: count 1 (or scaling.min), update fields
// from the job's block, periodic enabled.
func TestDefaults(t *testing.T) {
	src := `job "j" {
  update {
    max_parallel = 3
  }
  group "plain" {` + minimalTask + `
  }
  group "scaled" {
    scaling {
      min = 4
      max = 8
    }
    update {
      canary = 1
    }` + minimalTask + `
  }
  group "zero" {
    count = 0` + minimalTask + `
  }
}`
	job, err := Parse([]byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, tg := range job.TaskGroups {
		counts[tg.Name] = tg.Count
	}
	if want := map[string]int{"plain": 1, "scaled": 4, "zero": 0}; !reflect.DeepEqual(counts, want) {
		t.Errorf("got counts %v, want %v", counts, want)
	}
	u := job.LookupTaskGroup("scaled").Update
	if u.MaxParallel != 3 || u.Canary != 1 || u.HealthCheck != "checks" {
		t.Errorf("got update %+v, want max_parallel 3 from the job, canary 1 from the group, health_check checks by default", u)
	}
}
