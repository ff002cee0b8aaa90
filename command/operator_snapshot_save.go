package command

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/skiffhq/skiff/api"
)

// SnapshotSaveCommand is "skiff operator snapshot save".
type SnapshotSaveCommand struct{ Meta }

func (c *SnapshotSaveCommand) Synopsis() string { return "Save a snapshot of the cluster state" }

func (c *SnapshotSaveCommand) Help() string {
	return helpText("operator snapshot save [options] FILE", `
Saves a snapshot of the cluster's state to FILE, for "skiff operator
snapshot restore". The snapshot is written to FILE.tmp and renamed once
complete, so FILE is never a partial snapshot.`, `  -stale
    Let any server answer, not only the leader.`, true)
}

func (c *SnapshotSaveCommand) Run(args []string) int {
	var stale bool
	fs := c.flagSet("operator snapshot save", c.Help, true)
	fs.BoolVar(&stale, "stale", false, "")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 1 {
		return c.usageError(c.Help(), "expected one argument, the file to write")
	}
	path := fs.Arg(0)
	client, err := c.client()
	if err != nil {
		return c.fail(err, "")
	}
	body, qm, err := client.Operator().SnapshotSave(c.ctx, &api.QueryOptions{AllowStale: stale})
	if err != nil {
		return c.fail(err, "taking a snapshot")
	}
	defer body.Close()
	n, err := writeFileAtomic(path, body)
	if err != nil {
		return c.fail(err, "saving the snapshot")
	}
	fmt.Fprintf(c.stdout, "Snapshot saved to %s (%d bytes, index %d)\n", path, n, qm.LastIndex)
	return exitOK
}

// writeFileAtomic copies r to path.tmp, syncs it, and renames it to path.
// On error path is untouched and path.tmp removed.
func writeFileAtomic(path string, r io.Reader) (n int64, err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if n, err = io.Copy(f, r); err != nil {
		return n, fmt.Errorf("write %s: %w", tmp, err)
	}
	if n == 0 {
		return 0, errors.New("the agent sent an empty snapshot")
	}
	if err = f.Sync(); err != nil {
		return n, fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return n, fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return n, err
	}
	return n, nil
}
