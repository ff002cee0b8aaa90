package allocrunner

import "github.com/skiffhq/skiff/structs"

// role is where a task sits in its group's lifecycle.
type role int

const (
	roleMain role = iota
	rolePrestart
	rolePrestartSidecar
	rolePoststart
	rolePoststartSidecar
	rolePoststop
)

// roleOf reads a task's lifecycle block. A poststop sidecar makes no sense
// and is treated as a poststop task.
func roleOf(t *structs.Task) role {
	lc := t.Lifecycle
	if lc == nil {
		return roleMain
	}
	switch lc.Hook {
	case structs.LifecycleHookPrestart:
		if lc.Sidecar {
			return rolePrestartSidecar
		}
		return rolePrestart
	case structs.LifecycleHookPoststart:
		if lc.Sidecar {
			return rolePoststartSidecar
		}
		return rolePoststart
	case structs.LifecycleHookPoststop:
		return rolePoststop
	}
	return roleMain
}

// sidecar reports whether the task runs alongside the main tasks until
// they are done.
func (r role) sidecar() bool { return r == rolePrestartSidecar || r == rolePoststartSidecar }

// ephemeral reports whether a successful exit ends the task in any job
// type (prestart and poststart hooks that are not sidecars, and poststop
// tasks run to completion).
func (r role) ephemeral() bool {
	return r == rolePrestart || r == rolePoststart || r == rolePoststop
}

func (r role) String() string {
	return [...]string{"main", "prestart", "prestart sidecar", "poststart", "poststart sidecar", "poststop"}[r]
}
