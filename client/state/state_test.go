package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/client/driver"
	"github.com/skiffhq/skiff/structs"
)

// impls opens each DB implementation for a test; reopen returns the same
// store as a restarted agent would see it (nil when it cannot).
type impl struct {
	name string
	open func(t *testing.T) (db DB, reopen func() DB)
}

func impls() []impl {
	return []impl{
		{"mem", func(t *testing.T) (DB, func() DB) {
			m := NewMemDB()
			return m, nil
		}},
		{"bolt", func(t *testing.T) (DB, func() DB) {
			path := filepath.Join(t.TempDir(), "client", "state.db")
			db, err := Open(path)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			t.Cleanup(func() { db.Close() })
			return db, func() DB {
				if err := db.Close(); err != nil {
					t.Fatalf("close: %v", err)
				}
				db2, err := Open(path)
				if err != nil {
					t.Fatalf("reopen: %v", err)
				}
				t.Cleanup(func() { db2.Close() })
				return db2
			}
		}},
	}
}

func testAlloc(id string) *structs.Allocation {
	return &structs.Allocation{
		ID: id, Name: "web.api[0]", JobID: "web", TaskGroup: "api",
		DesiredStatus: structs.AllocDesiredStatusRun, ClientStatus: structs.AllocClientStatusRunning,
		Job: &structs.Job{ID: "web", Type: structs.JobTypeService, TaskGroups: []*structs.TaskGroup{{
			Name: "api", Tasks: []*structs.Task{{Name: "srv", Driver: "containerd",
				Config: map[string]any{"image": "nginx"}, KillTimeout: 5 * time.Second}},
		}}},
	}
}

func testTaskState(now time.Time) *LocalTaskState {
	return &LocalTaskState{
		Handle: &driver.TaskHandle{ID: "a1/srv", ContainerID: "a1-srv", PID: 42, StartedAt: now,
			DriverState: map[string]string{"k": "v"}},
		State: &structs.TaskState{State: "running", Restarts: 2, StartedAt: now, LastRestart: now.Add(-time.Minute),
			Events: []*structs.TaskEvent{{Type: "Started", Time: now.UnixNano(), Details: map[string]string{"a": "b"}}}},
		Restart: RestartState{IntervalStart: now.Add(-time.Hour), Count: 2, NextStart: now.Add(time.Second)},
	}
}

func checkTaskState(t *testing.T, got, want *LocalTaskState) {
	t.Helper()
	if got == nil || got.Handle == nil || got.State == nil {
		t.Fatalf("got %+v, want a full task state", got)
	}
	if got.Handle.ID != want.Handle.ID || got.Handle.PID != want.Handle.PID ||
		!got.Handle.StartedAt.Equal(want.Handle.StartedAt) || got.Handle.DriverState["k"] != "v" {
		t.Errorf("handle: got %+v, want %+v", got.Handle, want.Handle)
	}
	if got.State.State != "running" || got.State.Restarts != 2 || !got.State.StartedAt.Equal(want.State.StartedAt) ||
		len(got.State.Events) != 1 || got.State.Events[0].Details["a"] != "b" {
		t.Errorf("state: got %+v, want %+v", got.State, want.State)
	}
	if got.Restart.Count != 2 || !got.Restart.IntervalStart.Equal(want.Restart.IntervalStart) ||
		!got.Restart.NextStart.Equal(want.Restart.NextStart) {
		t.Errorf("restart: got %+v, want %+v", got.Restart, want.Restart)
	}
}

func TestRoundTrip(t *testing.T) {
	now := time.Now()
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			db, reopen := im.open(t)
			if err := db.PutAlloc(testAlloc("a1")); err != nil {
				t.Fatal(err)
			}
			want := testTaskState(now)
			put := testTaskState(now)
			if err := db.PutTaskState("a1", "srv", put); err != nil {
				t.Fatal(err)
			}
			put.State.Restarts = 99 // the store keeps its own copy
			check := func(db DB) {
				allocs, err := db.Allocs()
				if err != nil {
					t.Fatal(err)
				}
				if len(allocs) != 1 || allocs[0].ID != "a1" || allocs[0].Job == nil ||
					allocs[0].Job.TaskGroups[0].Tasks[0].Config["image"] != "nginx" {
					t.Fatalf("allocs: got %+v, want a1 with its job", allocs)
				}
				states, err := db.TaskStates("a1")
				if err != nil {
					t.Fatal(err)
				}
				checkTaskState(t, states["srv"], want)
			}
			check(db)
			if reopen != nil {
				check(reopen())
			}
		})
	}
}

func TestDeleteAlloc(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			db, reopen := im.open(t)
			for _, id := range []string{"a1", "a2"} {
				if err := db.PutAlloc(testAlloc(id)); err != nil {
					t.Fatal(err)
				}
				if err := db.PutTaskState(id, "srv", testTaskState(time.Now())); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.DeleteAlloc("a1"); err != nil {
				t.Fatal(err)
			}
			if err := db.DeleteAlloc("never-there"); err != nil {
				t.Errorf("delete of a missing alloc: got %v, want nil", err)
			}
			if reopen != nil {
				db = reopen()
			}
			allocs, err := db.Allocs()
			if err != nil {
				t.Fatal(err)
			}
			if len(allocs) != 1 || allocs[0].ID != "a2" {
				t.Errorf("allocs after delete: got %d, want only a2", len(allocs))
			}
			states, err := db.TaskStates("a1")
			if err != nil {
				t.Fatal(err)
			}
			if len(states) != 0 {
				t.Errorf("task states of deleted alloc: got %d, want 0", len(states))
			}
		})
	}
}

func TestTaskStateBeforeAlloc(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			db, _ := im.open(t)
			if err := db.PutTaskState("a1", "srv", testTaskState(time.Now())); err != nil {
				t.Fatal(err)
			}
			allocs, err := db.Allocs()
			if err != nil {
				t.Fatal(err)
			}
			if len(allocs) != 0 {
				t.Errorf("allocs: got %d, want 0 (no alloc stored yet)", len(allocs))
			}
		})
	}
}

func TestOpenDamagedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a bolt file ", 1024)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if err == nil {
		t.Fatal("open of a damaged file: got nil error")
	}
	for _, want := range []string{path, "delete the file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestOpenLocked(t *testing.T) {
	old := lockTimeout
	lockTimeout = 50 * time.Millisecond
	defer func() { lockTimeout = old }()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = Open(path)
	if err == nil || !strings.Contains(err.Error(), "second agent") {
		t.Errorf("second open: got %v, want an error about another agent", err)
	}
}

func TestClosedMemDB(t *testing.T) {
	m := NewMemDB()
	m.Close()
	if err := m.PutAlloc(testAlloc("a1")); err == nil {
		t.Error("PutAlloc after Close: got nil error")
	}
}
