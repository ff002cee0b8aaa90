package containerd

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiffhq/skiff/client/driver"
)

func TestParseSettingsShapes(t *testing.T) {
	// The same settings as HCL (blocks as lists of maps, lists as []any)
	// and as Go values.
	hcl := map[string]any{
		"image":      "web:1",
		"args":       []any{"-p", "80"},
		"env":        []any{map[string]any{"A": "1"}},
		"labels":     map[string]any{"team": "web"},
		"mount":      []any{map[string]any{"type": "bind", "source": "/srv", "target": "/data", "readonly": true}},
		"auth":       []any{map[string]any{"username": "u", "password": "p"}},
		"privileged": false,
	}
	native := map[string]any{
		"image":  "web:1",
		"args":   []string{"-p", "80"},
		"env":    map[string]string{"A": "1"},
		"labels": map[string]string{"team": "web"},
		"mounts": []map[string]any{{"source": "/srv", "target": "/data", "readonly": "true"}},
		"auth":   map[string]any{"username": "u", "password": "p"},
	}
	a, err := parseSettings(hcl)
	if err != nil {
		t.Fatalf("parse HCL shapes: %v", err)
	}
	b, err := parseSettings(native)
	if err != nil {
		t.Fatalf("parse Go shapes: %v", err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("HCL and Go shapes decode differently:\n%+v\n%+v", a, b)
	}
	want := []bindMount{{source: "/srv", target: "/data", readonly: true}}
	if !reflect.DeepEqual(a.mounts, want) || a.auth == nil || a.auth.Username != "u" || a.env["A"] != "1" {
		t.Errorf("decoded %+v", a)
	}
}

func TestParseSettingsErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{}, "image is required"},
		{map[string]any{"image": "x", "args": "not-a-list"}, "args must be a list of strings"},
		{map[string]any{"image": "x", "args": []any{1}}, "args[0] must be a string"},
		{map[string]any{"image": "x", "privileged": "maybe"}, "privileged must be true or false"},
		{map[string]any{"image": "x", "mount": []any{map[string]any{"type": "volume"}}}, `type "volume" is not supported`},
		{map[string]any{"image": "x", "mount": []any{map[string]any{"source": "rel", "target": "/t"}}}, "must be an absolute host path"},
		{map[string]any{"image": "x", "auth": []any{map[string]any{}, map[string]any{}}}, "only one auth block"},
	} {
		_, err := parseSettings(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseSettings(%v) = %v, want an error containing %q", tt.cfg, err, tt.want)
		}
	}
}

func TestProcessArgs(t *testing.T) {
	image := ocispec.ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"serve", "--port=80"}}
	for _, tt := range []struct {
		name string
		ic   ocispec.ImageConfig
		s    taskSettings
		want []string
	}{
		{"image defaults", image, taskSettings{}, []string{"/entry", "serve", "--port=80"}},
		{"command and args replace cmd", image, taskSettings{command: "run", args: []string{"-v"}}, []string{"/entry", "run", "-v"}},
		{"args alone replace cmd", image, taskSettings{args: []string{"-v"}}, []string{"/entry", "-v"}},
		{"entrypoint drops image cmd", image, taskSettings{entrypoint: []string{"/bin/sh", "-c"}}, []string{"/bin/sh", "-c"}},
		{"entrypoint and command", image, taskSettings{entrypoint: []string{"/bin/sh", "-c"}, command: "echo hi"}, []string{"/bin/sh", "-c", "echo hi"}},
		{"no entrypoint", ocispec.ImageConfig{Cmd: []string{"/bin/sh"}}, taskSettings{command: "/bin/echo", args: []string{"x"}}, []string{"/bin/echo", "x"}},
	} {
		got, err := processArgs(tt.ic, &tt.s)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	if _, err := processArgs(ocispec.ImageConfig{}, &taskSettings{}); err == nil {
		t.Error("an image without entrypoint or cmd and no command should be an error")
	}
}

func TestResources(t *testing.T) {
	const mb = 1 << 20
	for _, tt := range []struct {
		name                      string
		cpu, mem, memMax          int
		wantShares                uint64
		wantLimit, wantReservaton int64
	}{
		{"plain limit", 500, 256, 0, 500, 256 * mb, 0},
		{"soft and hard", 500, 256, 512, 500, 512 * mb, 256 * mb},
		{"max below memory is ignored", 500, 256, 128, 500, 256 * mb, 0},
		{"tiny cpu", 0, 0, 0, 2, 0, 0},
	} {
		s := &oci.Spec{Linux: &specs.Linux{}}
		cfg := &driver.TaskConfig{CPUMHz: tt.cpu, MemoryMB: tt.mem, MemoryMaxMB: tt.memMax}
		if err := withResources(cfg)(context.Background(), nil, nil, s); err != nil {
			t.Fatal(err)
		}
		r := s.Linux.Resources
		if got := *r.CPU.Shares; got != tt.wantShares {
			t.Errorf("%s: shares %d, want %d", tt.name, got, tt.wantShares)
		}
		var limit, reservation int64
		if r.Memory != nil {
			if r.Memory.Limit != nil {
				limit = *r.Memory.Limit
			}
			if r.Memory.Reservation != nil {
				reservation = *r.Memory.Reservation
			}
		}
		if limit != tt.wantLimit || reservation != tt.wantReservaton {
			t.Errorf("%s: limit %d reservation %d, want %d and %d", tt.name, limit, reservation, tt.wantLimit, tt.wantReservaton)
		}
	}
}

func TestCheckPolicy(t *testing.T) {
	s := &taskSettings{privileged: true}
	d := &Driver{}
	if err := d.checkPolicy(s); err == nil {
		t.Error("privileged allowed by default")
	}
	d.cfg.AllowPrivileged = true
	if err := d.checkPolicy(s); err != nil {
		t.Errorf("privileged refused with AllowPrivileged: %v", err)
	}
	s = &taskSettings{mounts: []bindMount{{source: "/etc", target: "/etc2"}}}
	if err := d.checkPolicy(s); err == nil {
		t.Error("host mount allowed by default")
	}
	d.cfg.AllowHostMounts = true
	if err := d.checkPolicy(s); err != nil {
		t.Errorf("host mount refused with AllowHostMounts: %v", err)
	}
}

func TestInsecure(t *testing.T) {
	d := &Driver{cfg: Config{InsecureRegistries: []string{"reg.local:5000", "plain.example"}}}
	for host, want := range map[string]bool{
		"reg.local:5000":     true,
		"reg.local:5001":     false,
		"plain.example":      true,
		"plain.example:8080": true,
		"docker.io":          false,
	} {
		if got := d.insecure(host); got != want {
			t.Errorf("insecure(%q) = %v, want %v", host, got, want)
		}
	}
}
