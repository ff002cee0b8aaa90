package agent

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/quick"

	"github.com/skiffhq/skiff/structs"
)

// TestJobListJSONMatchesEncodingJSON holds appendJobList to what
// encoding/json writes for the same stubs: random stubs (every field,
// including ones added later, filled by testing/quick), and strings
// chosen for every escaping rule.
func TestJobListJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var stubs []*structs.JobListStub
	for range 300 {
		s := new(structs.JobListStub)
		v := reflect.ValueOf(s).Elem()
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				fv, ok := quick.Value(f.Type, rng)
				if !ok {
					t.Fatalf("quick cannot make a JobListStub's %s", f.Name)
				}
				v.Field(i).Set(fv)
			}
		}
		stubs = append(stubs, s)
	}
	tricky := []string{"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "\b\f\n\r\t\x00\x01\x1f\x7f",
		"line\u2028sep\u2029", "é ✓ 😀", "bad \xff utf-8 \xc3", "\xed\xa0\x80 surrogate", "/slash/"}
	for i, s := range tricky {
		stub := &structs.JobListStub{ID: s, Name: tricky[(i+1)%len(tricky)], Datacenters: []string{s, ""},
			Meta:       map[string]string{s: s, "b": "1", "a": s},
			JobSummary: &structs.JobSummary{JobID: s, Summary: map[string]structs.TaskGroupSummary{s: {Queued: -1, Running: 1 << 40}, "web": {}}}}
		stubs = append(stubs, stub)
	}
	// Empty and absent: an empty Meta is left out, nil lists and maps
	// are null, an empty list is [].
	stubs = append(stubs, &structs.JobListStub{Meta: map[string]string{}, Datacenters: []string{}},
		&structs.JobListStub{JobSummary: &structs.JobSummary{Summary: map[string]structs.TaskGroupSummary{}}}, nil)

	for i, s := range stubs {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJobStub(nil, s, new(listScratch)); !bytes.Equal(got, want) {
			t.Fatalf("stub %d:\n got %s\nwant %s", i, got, want)
		}
	}
	// Twice, as a server's shared stubs (KeepMemo): the second list is
	// made of the stubs' memos (SetMemo).
	for _, s := range stubs {
		if s != nil {
			s.KeepMemo()
		}
	}
	for round := range 2 {
		for _, list := range [][]*structs.JobListStub{stubs, {}, nil} {
			want, _ := json.Marshal(list)
			if got := appendJobList(nil, list); !bytes.Equal(got, want) {
				t.Fatalf("round %d, list of %d:\n got %.300s\nwant %.300s", round, len(list), got, want)
			}
		}
	}
	for i, s := range stubs {
		if s == nil {
			continue
		}
		if want, _ := json.Marshal(s); !bytes.Equal(s.Memo(), want) {
			t.Fatalf("stub %d kept %q, want its JSON %s", i, s.Memo(), want)
		}
	}
	// A stub decoded from the wire is listed once: it keeps nothing.
	decoded := &structs.JobListStub{ID: "web"}
	appendJobList(nil, []*structs.JobListStub{decoded})
	if decoded.Memo() != nil {
		t.Fatalf("a stub not made to be shared kept %q", decoded.Memo())
	}
}

func BenchmarkJobListJSON(b *testing.B) {
	stubs := make([]*structs.JobListStub, 10_000)
	for i := range stubs {
		stubs[i] = &structs.JobListStub{ID: "job-000123", Name: "job-000123", Namespace: "default", Datacenters: []string{"dc1"},
			NodePool: "default", Type: "service", Priority: 50, Status: "pending", CreateIndex: 10, ModifyIndex: 12, JobModifyIndex: 10,
			JobSummary: &structs.JobSummary{JobID: "job-000123", Namespace: "default", Summary: map[string]structs.TaskGroupSummary{"web": {Queued: 3}}}}
	}
	b.Run("impl=encoding-json", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(stubs)
		}
	})
	b.Run("impl=append", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = appendJobList(buf[:0], stubs)
		}
	})
	// A list's own buffer, as the handler makes it: 512 bytes per stub, or
	// the size the last list needed per stub.
	per := len(appendJobList(nil, stubs)) / len(stubs)
	for _, size := range []struct {
		name string
		per  int
	}{{"buffer=512-per-stub", 512}, {"buffer=last-size", per + per/8}} {
		b.Run("impl=append/"+size.name, func(b *testing.B) {
			for b.Loop() {
				_ = appendJobList(make([]byte, 0, size.per*len(stubs)+3), stubs)
			}
		})
	}
}

func TestJobListEndpointAndPretty(t *testing.T) {
	_, addr := testAgent(t)
	for _, id := range []string{"b", "a"} {
		body := `{"Job": {"ID": "` + id + `", "Meta": {"team": "<core>"}, "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "containerd", "Config": {"image": "a"}}]}]}}`
		if resp, out := do(t, "PUT", addr+"/v1/jobs", strings.NewReader(body)); resp.StatusCode != 200 {
			t.Fatalf("register %s: %d %s", id, resp.StatusCode, out)
		}
	}
	resp, compact := do(t, "GET", addr+"/v1/jobs", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Content-Length") != strconv.Itoa(len(compact)) {
		t.Fatalf("list: %d %v %q", resp.StatusCode, resp.Header, compact)
	}
	var stubs []*structs.JobListStub
	if err := json.Unmarshal([]byte(compact), &stubs); err != nil {
		t.Fatal(err)
	}
	if len(stubs) != 2 || stubs[0].ID != "a" || stubs[1].ID != "b" || stubs[0].Meta["team"] != "<core>" || stubs[0].JobSummary == nil || stubs[0].JobSummary.JobID != "a" {
		t.Fatalf("list = %s", compact)
	}
	// The scheduler may update the summaries between two reads: compare
	// a pretty list with the compact lists read just before and after it
	// when those two are the same.
	for try := 0; ; try++ {
		_, pretty := do(t, "GET", addr+"/v1/jobs?pretty", nil)
		_, after := do(t, "GET", addr+"/v1/jobs", nil)
		if after != compact && try < 50 {
			compact = after
			continue
		}
		var want bytes.Buffer
		_ = json.Indent(&want, []byte(compact), "", "    ")
		if pretty != want.String() || !strings.Contains(pretty, "\n    {\n        \"ID\": \"a\"") {
			t.Fatalf("?pretty list:\n%s\nwant\n%s", pretty, want.String())
		}
		break
	}
	// A shorter list after longer ones, in a buffer they used: just its
	// own bytes.
	resp, short := do(t, "GET", addr+"/v1/jobs?prefix=b", nil)
	stubs = nil
	if err := json.Unmarshal([]byte(short), &stubs); err != nil || len(stubs) != 1 || stubs[0].ID != "b" ||
		resp.Header.Get("Content-Length") != strconv.Itoa(len(short)) {
		t.Fatalf("?prefix=b list (%v): %q", err, short)
	}
}
