package jobspec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// minimal is a valid group body used by the error cases.
const minimalTask = `
    task "web" {
      driver = "containerd"
      config {
        image = "nginx:1.27"
      }
    }`

// TestErrors checks the exact messages, with file:line:col, of bad job
// files. Every problem of a file must be reported, in file order.
func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		opts Options
		want []string
	}{
		{
			name: "negative count",
			src: `job "web" {
  group "api" {
    count = -1` + minimalTask + `
  }
}`,
			want: []string{`web.hcl:3:5: group "api": count must be >= 0 (got -1)`},
		},
		{
			name: "unsupported vault block",
			src: `job "web" {
  group "api" {` + minimalTask[:len(minimalTask)-6] + `
      vault {
        policies = ["db"]
      }
    }
  }
}`,
			want: []string{`web.hcl:8:7: group "api", task "web": Skiff does not support the "vault" block; Skiff has no Vault integration; keep secrets in Skiff variables and render them with a template block`},
		},
		{
			name: "typo",
			src: `job "web" {
  group "api" {
    cuont = 3` + minimalTask + `
  }
}`,
			want: []string{`web.hcl:3:5: group "api": unknown attribute "cuont"; did you mean "count"?`},
		},
		{
			name: "typo in block name",
			src: `job "web" {
  group "api" {
    resart {
      attempts = 1
    }` + minimalTask + `
  }
}`,
			want: []string{`web.hcl:3:5: group "api": unknown block "resart"; did you mean "restart"?`},
		},
		{
			name: "wrong type",
			src: `job "web" {
  group "api" {
    count = "three"` + minimalTask + `
  }
}`,
			want: []string{`web.hcl:3:5: group "api": count must be a number (got string "three")`},
		},
		{
			name: "fractional count",
			src: `job "web" {
  group "api" {
    count = 1.5` + minimalTask + `
  }
}`,
			want: []string{`web.hcl:3:5: group "api": count must be a whole number (got 1.5)`},
		},
		{
			name: "bad duration",
			src: `job "web" {
  group "api" {
    restart {
      delay = "5 minutes"
    }` + minimalTask + `
  }
}`,
			want: []string{`web.hcl:4:7: group "api", restart: invalid duration "5 minutes" for delay; use a number with a unit, such as "30s", "5m" or "1h30m"`},
		},
		{
			name: "duration as a number",
			src: `job "web" {
  group "api" {` + minimalTask[:len(minimalTask)-6] + `
      kill_timeout = 30
    }
  }
}`,
			want: []string{`web.hcl:8:7: group "api", task "web": kill_timeout must be a duration string such as "30s", "5m" or "1h30m" (got number 30)`},
		},
		{
			name: "missing variable",
			src: `variable "image" {
  type = string
}
job "web" {
  group "api" {
    task "web" {
      driver = "containerd"
      config {
        image = var.image
      }
    }
  }
}`,
			want: []string{`web.hcl:1:1: variable "image" is not set; give it a value with -var image=..., a -var-file, or the SKIFF_VAR_image environment variable, or give it a default`},
		},
		{
			name: "unknown operator",
			src: `job "web" {
  group "api" {
    constraint {
      attribute = "${attr.kernel.name}"
      operator  = "~="
      value     = "linux"
    }` + minimalTask + `
  }
}`,
			want: []string{`web.hcl:5:7: group "api", constraint[0]: unknown operator "~="; use one of =, ==, is, !=, not, <, <=, >, >=, distinct_hosts, distinct_property, regexp, version, semver, set_contains, set_contains_all, set_contains_any, is_set, is_not_set`},
		},
		{
			name: "several problems at once",
			src: `job "web" {
  priority = 500
  group "api" {
    count = -2
    vault {}
    task "web" {
      driver = "exec"
      config {
        imgae = "nginx"
      }
      resources {
        memory = 4
      }
    }
  }
}`,
			want: []string{
				`web.hcl:2:3: priority must be between 1 and 100 (got 500)`,
				`web.hcl:4:5: group "api": count must be >= 0 (got -2)`,
				`web.hcl:5:5: group "api": Skiff does not support the "vault" block; Skiff has no Vault integration; keep secrets in Skiff variables and render them with a template block`,
				`web.hcl:7:7: group "api", task "web": driver "exec" is not supported; use "containerd" ("docker" is accepted as an alias)`,
				`web.hcl:12:9: group "api", task "web", resources: memory must be >= 10 MB (got 4)`,
			},
		},
		{
			name: "several validation problems in one task",
			src: `job "web" {
  group "api" {
    task "web" {
      driver = "docker"
      config {
        imgae = "nginx"
      }
      volume_mount {
        volume      = "data"
        destination = "data"
      }
    }
  }
}`,
			want: []string{
				`web.hcl:5:7: group "api", task "web", config: config needs an image, such as image = "registry.example.com/web:1.0" or "oci-archive:/path/image.tar"`,
				`web.hcl:6:9: group "api", task "web", config: unknown key "imgae" for driver "docker"; did you mean "image"?`,
				`web.hcl:9:9: group "api", task "web", volume_mount[0]: volume "data" is not declared in group "api"; add a volume "data" block to the group`,
				`web.hcl:10:9: group "api", task "web", volume_mount[0]: destination must be an absolute path (got "data")`,
			},
		},
		{
			name: "undeclared variable",
			src: `variable "image" {
  default = "nginx"
}
job "web" {
  group "api" {
    task "web" {
      driver = "containerd"
      config {
        image = var.imgae
      }
    }
  }
}`,
			want: []string{`web.hcl:9:17: group "api", task "web", config: var.imgae is not declared; declare it with variable "imgae" { default = ... }, or did you mean var.image?`},
		},
		{
			name: "node value outside a string",
			src: `job "web" {
  constraint {
    attribute = attr.kernel.name
    value     = "linux"
  }
  group "api" {` + minimalTask + `
  }
}`,
			want: []string{`web.hcl:3:17: constraint[0]: attr.kernel.name is resolved on the node when the task is placed, so it can only be used inside a string on its own: "${attr.kernel.name}"`},
		},
		{
			name: "unknown lower-case interpolation",
			src: `job "web" {
  group "api" {` + minimalTask[:len(minimalTask)-6] + `
      env {
        GREETING = "hello ${name}"
      }
    }
  }
}`,
			want: []string{`web.hcl:9:29: group "api", task "web", env: unknown variable "name"; job variables are var.NAME and locals are local.NAME (write $${name} for a literal "${name}")`},
		},
		{
			name: "syntax error",
			src: `job "web" {
  group "api" {
    count = 
  }
}`,
			want: []string{`web.hcl:3:13: Invalid expression: Expected the start of an expression, but found an invalid expression token.`},
		},
		{
			name: "no job",
			src:  `variable "x" { default = 1 }`,
			want: []string{`web.hcl:1:1: no job block; a job file needs one job "name" { group "name" { task "name" { ... } } }`},
		},
		{
			name: "group defined twice",
			src: `job "web" {
  group "api" {` + minimalTask + `
  }
  group "api" {` + minimalTask + `
  }
}`,
			want: []string{`web.hcl:10:3: group "api" is defined more than once (first at line 2); give each group its own name`},
		},
		{
			name: "bad cron",
			src: `job "nightly" {
  type = "batch"
  periodic {
    cron = "every day"
  }
  group "api" {` + minimalTask + `
  }
}`,
			want: []string{`web.hcl:4:5: periodic: invalid cron expression "every day": missing field(s); use five fields such as "*/15 * * * *" or a macro such as "@daily"`},
		},
		{
			name: "job update inherited by a system group",
			src: `job "agents" {
  type = "system"
  update {
    canary = 1
  }
  group "agent" {` + minimalTask + `
  }
}`,
			want: []string{`web.hcl:4:5: group "agent", update: system jobs cannot have canaries`},
		},
		{
			name: "update in a batch job",
			src: `job "once" {
  type = "batch"
  update {
    max_parallel = 2
  }
  group "run" {` + minimalTask + `
  }
}`,
			want: []string{`web.hcl:3:3: group "run": update is only for service and system jobs (job type is "batch")`},
		},
		{
			name: "reschedule in a system job",
			src: `job "agents" {
  type = "system"
  group "agent" {
    reschedule {
      attempts = 3
    }` + minimalTask + `
  }
}`,
			want: []string{`web.hcl:4:5: group "agent": reschedule is only for service and batch jobs (job type is "system"); remove it`},
		},
		{
			name: "block written as an attribute",
			src: `job "web" {
  group "api" {
    restart = { attempts = 1 }` + minimalTask + `
  }
}`,
			want: []string{`web.hcl:3:5: group "api": restart is a block, not an attribute; write restart { ... }`},
		},
		{
			name: "check problems",
			src: `job "web" {
  group "api" {
    service {
      name = "api"
      check {
        type     = "http"
        interval = "10s"
        timeout  = "1s"
      }
      check {
        type = "grpc"
      }
    }` + minimalTask + `
  }
}`,
			want: []string{
				`web.hcl:5:7: group "api", service "api", check[0]: http checks need a path`,
				`web.hcl:10:7: group "api", service "api", check[1]: interval must be > 0`,
				`web.hcl:10:7: group "api", service "api", check[1]: timeout must be > 0`,
				`web.hcl:11:9: group "api", service "api", check[1]: check type must be http, tcp or script (got "grpc")`,
			},
		},
		{
			name: "spread out of range",
			src: `job "web" {
  spread {
    attribute = "${node.datacenter}"
    weight    = 150
    target "dc1" {
      percent = 70
    }
    target "dc2" {
      percent = 70
    }
  }
  group "api" {` + minimalTask + `
  }
}`,
			want: []string{
				`web.hcl:4:5: spread[0]: weight must be between 0 and 100 (got 150)`,
				`web.hcl:5:5: spread[0]: target percentages add up to 140; they may add up to at most 100`,
			},
		},
		{
			name: "failed variable validation",
			src: `variable "replicas" {
  type    = number
  default = 3
  validation {
    condition     = var.replicas <= 2
    error_message = "at most 2 replicas fit on the test cluster"
  }
}
job "web" {
  group "api" {
    count = var.replicas` + minimalTask + `
  }
}`,
			want: []string{`web.hcl:5:21: variable "replicas": at most 2 replicas fit on the test cluster`},
		},
		{
			name: "unknown -var and bad -var value",
			src: `variable "replicas" {
  type    = number
  default = 1
}
job "web" {
  group "api" {
    count = var.replicas` + minimalTask + `
  }
}`,
			opts: Options{Vars: []string{"replica=2", "replicas=many", "novalue"}},
			want: []string{
				`-var "replica=2": web.hcl declares no variable "replica"; did you mean "replicas"?`,
				`-var replicas: variable "replicas" must be number: a number is required`,
				`-var "novalue": expected name=value`,
			},
		},
		{
			name: "locals cycle",
			src: `locals {
  a = "${local.b}-x"
  b = local.a
}
job "web" {
  group "api" {` + minimalTask + `
  }
}`,
			want: []string{
				`web.hcl:2:3: local "a" depends on itself (through a, b); break the cycle`,
				`web.hcl:3:3: local "b" depends on itself (through a, b); break the cycle`,
			},
		},
		{
			name: "two jobs",
			src: `job "a" {
  group "api" {` + minimalTask + `
  }
}
job "b" {}`,
			want: []string{`web.hcl:11:1: only one job block is allowed per file; move this job to its own file`},
		},
		{
			name: "port defined twice and affinity weight",
			src: `job "web" {
  affinity {
    attribute = "${node.class}"
    value     = "big"
    weight    = 0
  }
  group "api" {
    network {
      port "http" {}
      port "http" {
        static = 70000
      }
    }` + minimalTask + `
  }
}`,
			want: []string{
				`web.hcl:5:5: affinity[0]: weight must be between -100 and 100 and not 0 (got 0)`,
				`web.hcl:10:7: group "api", network: port "http" is defined more than once (first at line 9); give each port its own name`,
				`web.hcl:11:9: group "api", network, port "http": static port must be 0..65535 (got 70000)`,
			},
		},
		{
			name: "dynamic blocks and unsupported attributes",
			src: `job "web" {
  vault_token = "s.abc"
  group "api" {
    network {
      dynamic "port" {
        for_each = ["http"]
        labels   = [port.value]
        content {}
      }
    }
    task "web" {
      driver = "docker"
      config {
        image = "nginx"
        dynamic "mount" {
          for_each = []
          content {}
        }
      }
    }
  }
}`,
			want: []string{
				`web.hcl:2:3: Skiff does not support the "vault_token" attribute; Skiff has no Vault integration; keep secrets in Skiff variables and render them with a template block`,
				`web.hcl:5:7: group "api", network: Skiff does not support dynamic blocks yet; write the blocks out, one per item`,
				`web.hcl:15:9: group "api", task "web", config: Skiff does not support dynamic blocks yet; write the blocks out, one per item`,
			},
		},
		{
			name: "inherited settings are reported once",
			src: `job "web" {
  update {
    healthy_deadline  = "20m"
  }
  group "a" {
    restart {
      attempts = 10
      delay    = "1m"
      interval = "5m"
    }` + minimalTask + `
  }
  group "b" {` + minimalTask + `
  }
}`,
			want: []string{
				`web.hcl:3:5: group "a", update: healthy_deadline (20m0s) must not exceed progress_deadline (10m0s)`,
				`web.hcl:9:7: group "a", restart: 10 attempts with a 1m0s delay do not fit in the 5m0s interval; lengthen interval or lower attempts`,
			},
		},
		{
			name: "labels",
			src: `job {
}`,
			want: []string{`web.hcl:1:1: job block needs a name; write job "name" { ... }`},
		},
		{
			name: "labels on unlabelled blocks",
			src: `job "web" {
  group "api" {
    restart "x" {}
    task {}` + minimalTask + `
  }
}`,
			want: []string{
				`web.hcl:3:5: group "api": restart block takes no label; write restart { ... }`,
				`web.hcl:4:5: group "api": task block needs a name; write task "name" { ... }`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.Filename = "web.hcl"
			job, err := Parse([]byte(tt.src), opts)
			if err == nil {
				t.Fatalf("got job %q and no error, want:\n%s", job.ID, strings.Join(tt.want, "\n"))
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("got error of type %T, want *Error: %v", err, err)
			}
			if job != nil {
				t.Errorf("got a job with the error, want nil")
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if len(perr.Problems) != len(tt.want) {
				t.Errorf("got %d problems, want %d", len(perr.Problems), len(tt.want))
			}
		})
	}
}

// TestVarFileErrors checks problems found in var files, which carry the
// var file's name and position.
func TestVarFileErrors(t *testing.T) {
	dir := t.TempDir()
	vf := filepath.Join(dir, "prod.vars.hcl")
	if err := os.WriteFile(vf, []byte("replicas = \"two\"\nimage = \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `variable "replicas" {
  type    = number
  default = 1
}
job "web" {
  group "api" {
    count = var.replicas` + minimalTask + `
  }
}`
	_, err := Parse([]byte(src), Options{Filename: "web.hcl", VarFiles: []string{vf, filepath.Join(dir, "missing.hcl")}})
	want := []string{
		`-var-file: open ` + filepath.Join(dir, "missing.hcl") + `: no such file or directory`,
		vf + `:1:12: variable "replicas" must be number: a number is required`,
		vf + `:2:1: web.hcl declares no variable "image"; declared: replicas`,
	}
	if err == nil {
		t.Fatalf("got no error, want:\n%s", strings.Join(want, "\n"))
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func TestParseFileMissing(t *testing.T) {
	_, err := ParseFile(filepath.Join(t.TempDir(), "nope.hcl"), Options{Filename: "nope.hcl"})
	var perr *Error
	if err == nil || errors.As(err, &perr) || !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "read job file: ") {
		t.Errorf("got %v (%T), want a read error wrapping os.ErrNotExist, not a problem in the file", err, err)
	}
}
