package allocrunner

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// allocDir is the directory tree of one allocation:
//
//	<root>/<allocID>/alloc/{data,logs,tmp}    shared by the tasks, mounted at /alloc
//	<root>/<allocID>/<task>/local             mounted at /local
//	<root>/<allocID>/<task>/secrets           mounted at /secrets, mode 0700
//	<root>/<allocID>/<task>/tmp
//
// Directories the tasks write to are world-writable, since a container may
// run as any user; tmp directories are sticky like /tmp.
type allocDir struct {
	dir string // <root>/<allocID>
}

const sharedDirName = "alloc"

func (d *allocDir) sharedDir() string { return filepath.Join(d.dir, sharedDirName) }
func (d *allocDir) logDir() string    { return filepath.Join(d.dir, sharedDirName, "logs") }
func (d *allocDir) taskDir(task string) string {
	return filepath.Join(d.dir, task)
}

type dirSpec struct {
	path string
	mode os.FileMode
}

// buildShared creates the shared part; it is idempotent.
func (d *allocDir) buildShared() error {
	s := d.sharedDir()
	return makeDirs([]dirSpec{
		{d.dir, 0o755},
		{s, 0o755},
		{filepath.Join(s, "data"), 0o777},
		{filepath.Join(s, "logs"), 0o777},
		{filepath.Join(s, "tmp"), os.ModeSticky | 0o777},
	})
}

// buildTask creates the task's own directories; it is idempotent. A task
// name that is not a plain directory name is refused.
func (d *allocDir) buildTask(task string) error {
	if task == "" || task == "." || task == ".." || task == sharedDirName || strings.ContainsAny(task, `/\`) {
		return fmt.Errorf("task name %q cannot be a directory name in the allocation directory", task)
	}
	t := d.taskDir(task)
	return makeDirs([]dirSpec{
		{t, 0o755},
		{filepath.Join(t, "local"), 0o777},
		{filepath.Join(t, "secrets"), 0o700},
		{filepath.Join(t, "tmp"), os.ModeSticky | 0o777},
	})
}

// makeDirs creates each directory and sets its mode exactly (MkdirAll
// is subject to the umask).
func makeDirs(specs []dirSpec) error {
	for _, s := range specs {
		if err := os.MkdirAll(s.path, s.mode.Perm()); err != nil {
			return fmt.Errorf("create %s: %w", s.path, err)
		}
		if err := os.Chmod(s.path, s.mode); err != nil {
			return fmt.Errorf("set mode of %s: %w", s.path, err)
		}
	}
	return nil
}
