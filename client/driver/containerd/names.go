package containerd

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"unicode"

	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/status"
)

// Container labels Skiff sets on every container it creates. ListTasks and
// RecoverTask find tasks by them.
const (
	LabelAllocID = "skiff.alloc_id"
	LabelTask    = "skiff.task"
	LabelJob     = "skiff.job"
	LabelGroup   = "skiff.group"
	LabelTaskID  = "skiff.task_id"
)

// maxIDLen is the longest identifier containerd accepts.
const maxIDLen = 76

// ContainerID derives a valid containerd container ID from a task ID:
// "<allocID>/<task>" becomes "<allocID>-<task>" when that is valid. Else
// every run of characters containerd does not accept becomes one "-",
// the result is cut to fit, and a short hash of the task ID is appended,
// so distinct task IDs keep distinct container IDs.
func ContainerID(taskID string) string {
	if simple := strings.Replace(taskID, "/", "-", 1); identifiers.Validate(simple) == nil {
		return simple
	}
	var b strings.Builder
	sep := true // suppresses separators at the start and in runs
	for _, r := range taskID {
		if r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
			sep = false
		} else if !sep {
			b.WriteByte('-')
			sep = true
		}
	}
	sum := sha256.Sum256([]byte(taskID))
	suffix := hex.EncodeToString(sum[:4])
	id := b.String()
	if limit := maxIDLen - len(suffix) - 1; len(id) > limit {
		id = id[:limit]
	}
	if id = strings.TrimRight(id, "-"); id == "" {
		return "task-" + suffix
	}
	return id + "-" + suffix
}

// ParseSignal parses a signal name ("SIGTERM", "TERM", "sigint") or
// number ("15"). An empty name means SIGTERM.
func ParseSignal(name string) (syscall.Signal, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return syscall.SIGTERM, nil
	}
	if n, err := strconv.Atoi(name); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal %d out of range 1-64", n)
		}
		return syscall.Signal(n), nil
	}
	upper := strings.ToUpper(name)
	if !strings.HasPrefix(upper, "SIG") {
		upper = "SIG" + upper
	}
	if s := unix.SignalNum(upper); s != 0 {
		return s, nil
	}
	return 0, fmt.Errorf("unknown signal %q; use a name such as SIGTERM, SIGINT, SIGQUIT, SIGHUP or SIGUSR1", name)
}

// signalName returns "SIGTERM" for syscall.SIGTERM, or the number.
func signalName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return strconv.Itoa(int(s))
}

// unwrapGRPC converts a gRPC status error from containerd into the
// matching errdefs error, whose message reads without the gRPC noise.
// Other errors (from the client side, such as a registry's) pass as they
// are.
func unwrapGRPC(err error) error {
	if _, ok := status.FromError(err); !ok || err == nil {
		return err
	}
	return errgrpc.ToNative(err)
}
