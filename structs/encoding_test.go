package structs

import (
	"bytes"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func benchRequest() *JobRegisterRequest {
	j := &Job{ID: "web", Datacenters: []string{"dc1"}, Meta: map[string]string{"team": "a"},
		TaskGroups: []*TaskGroup{{Name: "g", Count: 3,
			Networks: []*NetworkResource{{DynamicPorts: []Port{{Label: "http", To: 8080}}}},
			Tasks: []*Task{{Name: "t", Driver: "containerd", Env: map[string]string{"A": "b"},
				Config: map[string]any{"image": "registry.example.com/web:1.4.2", "args": []any{"-listen", ":8080"},
					"mounts": []any{map[string]any{"type": "bind", "source": "/srv", "readonly": true}}, "auth": map[string]any{"username": "u"}},
				Resources: &Resources{CPU: 500, MemoryMB: 256}}}}}}
	j.Canonicalize()
	return &JobRegisterRequest{Job: j, SubmitTime: 7, Eval: &Evaluation{ID: GenerateUUID(), JobID: "web", Status: "pending", WaitUntil: time.Unix(5, 0).UTC()}}
}

// TestEncodeRoundTrip: what the raft log holds decodes to what was encoded.
func TestEncodeRoundTrip(t *testing.T) {
	in := benchRequest()
	buf, err := Encode(JobRegisterRequestType, in)
	if err != nil {
		t.Fatal(err)
	}
	if MessageType(buf[0]) != JobRegisterRequestType {
		t.Fatalf("type byte = %d, want %d", buf[0], JobRegisterRequestType)
	}
	var out JobRegisterRequest
	if err := Decode(buf[1:], &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, &out) {
		t.Fatalf("round trip differs:\n got  %#v\n want %#v", out.Job.TaskGroups[0].Tasks[0], in.Job.TaskGroups[0].Tasks[0])
	}
	// Node secrets must survive the log (they are hidden from JSON only).
	n := &Node{ID: "n", SecretID: "s3cret"}
	nb, _ := Encode(NodeRegisterRequestType, n)
	var nOut Node
	if err := Decode(nb[1:], &nOut); err != nil || nOut.SecretID != "s3cret" {
		t.Fatalf("node secret after round trip = %q (err %v), want s3cret", nOut.SecretID, err)
	}
}

func BenchmarkEncodeJobRegister(b *testing.B) {
	req := benchRequest()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Encode(JobRegisterRequestType, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJobRegister(b *testing.B) {
	buf, _ := Encode(JobRegisterRequestType, benchRequest())
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var out JobRegisterRequest
		if err := Decode(buf[1:], &out); err != nil {
			b.Fatal(err)
		}
	}
}

// TestGeneratedCodecIsCurrent regenerates the msgpack codecs and compares:
// a field added to a type without "make generate" would be dropped from
// the raft log and snapshots.
func TestGeneratedCodecIsCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs codecgen")
	}
	src, err := os.ReadFile("encoding.go")
	if err != nil {
		t.Fatal(err)
	}
	var steps [][]string // codecgen, then codecfix
	for _, line := range strings.Split(string(src), "\n") {
		if rest, ok := strings.CutPrefix(line, "//go:generate go run "); ok {
			steps = append(steps, strings.Fields(rest))
		}
	}
	if len(steps) == 0 {
		t.Fatal("no go:generate line in encoding.go")
	}
	defer os.Remove("structs.generated.go.check")
	for _, args := range steps {
		for i, a := range args {
			if a == "structs.generated.go" {
				args[i] = "structs.generated.go.check"
			}
		}
		out, err := exec.Command("go", append([]string{"run"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("go run %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	want, _ := os.ReadFile("structs.generated.go")
	got, _ := os.ReadFile("structs.generated.go.check")
	if !bytes.Equal(want, got) {
		t.Fatal("structs.generated.go is out of date: run \"make generate\" and commit it")
	}
}
