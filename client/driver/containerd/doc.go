// Package containerd is Skiff's task driver on containerd (1.6 or newer),
// through the containerd 2 Go client. It implements driver.Driver.
//
// A task becomes one container in the driver's namespace, named after the
// task ID (ContainerID) and labelled with skiff.alloc_id, skiff.task,
// skiff.job, skiff.group and skiff.task_id, so ListTasks and RecoverTask
// find it again. Tasks share the host's network namespace (no CNI yet).
//
// Nothing about a running task lives only in the agent:
//
//	agent ──gRPC──▶ containerd ──▶ containerd-shim-runc-v2 ──▶ task (runc)
//	                                      │ fds 3, 4, 5
//	                                      ▼
//	                          logger: <skiff> logmon <spec>
//	                          (LoggerMain) ──▶ <LogDir>/<task>.stdout.N
//
// The shim starts the logger (containerd "binary://" logging) and owns
// the task's stdout and stderr pipes, so output keeps reaching the rotated
// log files while the agent is down or restarting, and while containerd
// itself restarts. A new Driver re-attaches with RecoverTask; the exit
// status of a task that ended meanwhile is kept by the shim until
// DestroyTask deletes the task.
//
// The shim builds the logger's command line from the log URI's query and
// passes it no environment, so the logger runs as
// "LoggerBinary LoggerArgs[0] <LogSpec>"; the skiff binary must route
// "logmon" to LoggerMain before any other start-up work.
//
// StartPrivate runs a containerd daemon confined to one directory, for
// dev mode and tests.
package containerd
