package containerd

import (
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/pkg/identifiers"
)

func TestContainerID(t *testing.T) {
	long := strings.Repeat("x", 100)
	for _, tt := range []struct {
		taskID string
		want   string // "" means: only check validity and the hash suffix
	}{
		{"7f3c2a10-8a2b-4c1e-9f00-123456789abc/web", "7f3c2a10-8a2b-4c1e-9f00-123456789abc-web"},
		{"alloc/my_task.v2", "alloc-my_task.v2"},
		{"alloc/web server", ""},
		{"alloc/wéb", ""},
		{"/", ""},
		{"alloc/" + long, ""},
	} {
		got := ContainerID(tt.taskID)
		if err := identifiers.Validate(got); err != nil {
			t.Errorf("ContainerID(%q) = %q, not a valid containerd ID: %v", tt.taskID, got, err)
		}
		if tt.want != "" && got != tt.want {
			t.Errorf("ContainerID(%q) = %q, want %q", tt.taskID, got, tt.want)
		}
		if again := ContainerID(tt.taskID); again != got {
			t.Errorf("ContainerID(%q) not stable: %q then %q", tt.taskID, got, again)
		}
	}
	// Task IDs that sanitise alike still get distinct container IDs.
	if a, b := ContainerID("alloc/a b"), ContainerID("alloc/a+b"); a == b {
		t.Errorf("distinct task IDs share container ID %q", a)
	}
}

func TestParseSignal(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    syscall.Signal
		wantErr bool
	}{
		{"", syscall.SIGTERM, false},
		{"SIGTERM", syscall.SIGTERM, false},
		{"SIGINT", syscall.SIGINT, false},
		{"sigquit", syscall.SIGQUIT, false},
		{"HUP", syscall.SIGHUP, false},
		{"SIGUSR1", syscall.SIGUSR1, false},
		{"9", syscall.SIGKILL, false},
		{"SIGNOPE", 0, true},
		{"0", 0, true},
		{"99", 0, true},
	} {
		got, err := ParseSignal(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
