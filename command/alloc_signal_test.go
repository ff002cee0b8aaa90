package command

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestAllocSignalAndRestart(t *testing.T) {
	f := newFakeAgent(t)
	f.json("GET /v1/allocations", 0, fixtureAllocs())
	ok := func(w http.ResponseWriter, r *http.Request) { reply(w, 0, map[string]any{}) }
	f.handle("POST /v1/client/allocation/"+allocID1+"/signal", ok)
	f.handle("POST /v1/client/allocation/"+allocID1+"/restart", ok)
	notRunning := func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `task "server" is dead: task is not running`, http.StatusConflict)
	}
	f.handle("POST /v1/client/allocation/"+allocID2+"/signal", notRunning)
	f.handle("POST /v1/client/allocation/"+allocID2+"/restart", notRunning)

	tests := []struct {
		args     []string
		code     int
		path     string // the request expected, with its JSON body
		body     string
		inStderr string
	}{
		{[]string{"alloc", "signal", "-s", "SIGUSR1", "a1b2c3d4", "server"}, 0,
			"/v1/client/allocation/" + allocID1 + "/signal", `{"Task":"server","Signal":"SIGUSR1"}`, `Sent SIGUSR1 to task "server" of allocation a1b2c3d4`},
		{[]string{"alloc", "signal", "a1b2c3d4"}, 0,
			"/v1/client/allocation/" + allocID1 + "/signal", `{"Task":"","Signal":"SIGKILL"}`, "the running tasks of allocation a1b2c3d4"},
		{[]string{"alloc", "signal", "--s=HUP", allocID1}, 0,
			"/v1/client/allocation/" + allocID1 + "/signal", `{"Task":"","Signal":"HUP"}`, "Sent HUP"},
		{[]string{"alloc", "restart", "a1b2c3d4", "server"}, 0,
			"/v1/client/allocation/" + allocID1 + "/restart", `{"TaskName":"server"}`, `Restarting task "server"`},
		{[]string{"alloc", "restart", "a1b2c3d4"}, 0,
			"/v1/client/allocation/" + allocID1 + "/restart", `{"TaskName":""}`, "Restarting the running tasks"},
		{[]string{"alloc", "signal", "a1b2c3d5", "server"}, 1, "", "", "task is not running"},
		{[]string{"alloc", "restart", "a1b2c3d5"}, 1, "", "", "task is not running"},
		{[]string{"alloc", "restart", "ffff0000"}, 1, "", "", `no allocation with ID or prefix "ffff0000"`},
		{[]string{"alloc", "signal"}, 1, "", "", "expected the allocation ID"},
		{[]string{"alloc", "restart", "a", "b", "c"}, 1, "", "", "expected the allocation ID"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			before := 0
			if tt.path != "" {
				before = len(f.requests("POST", tt.path))
			}
			res := runCLI(t, f.srv.URL, tt.args...)
			if res.code != tt.code || !strings.Contains(res.stderr, tt.inStderr) || res.stdout != "" {
				t.Fatalf("got code %d, stdout %q, stderr %q; want %d, nothing on stdout, stderr containing %q",
					res.code, res.stdout, res.stderr, tt.code, tt.inStderr)
			}
			if tt.path == "" {
				return
			}
			reqs := f.requests("POST", tt.path)
			if len(reqs) != before+1 {
				t.Fatalf("%d requests to %s, want %d", len(reqs), tt.path, before+1)
			}
			body, _ := io.ReadAll(reqs[len(reqs)-1].Body)
			var got, want any
			_ = json.Unmarshal(body, &got)
			_ = json.Unmarshal([]byte(tt.body), &want)
			if gb, _ := json.Marshal(got); string(gb) != mustJSON(want) {
				t.Errorf("body %s, want %s", body, tt.body)
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
