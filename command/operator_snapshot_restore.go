package command

import (
	"fmt"
	"os"
)

// SnapshotRestoreCommand is "skiff operator snapshot restore".
type SnapshotRestoreCommand struct{ Meta }

func (c *SnapshotRestoreCommand) Synopsis() string {
	return "Restore the cluster state from a snapshot"
}

func (c *SnapshotRestoreCommand) Help() string {
	return helpText("operator snapshot restore [options] FILE", `
Replaces the cluster's entire state with the snapshot in FILE, as saved by
"skiff operator snapshot save". Everything written since the snapshot is
lost.`, "", true)
}

func (c *SnapshotRestoreCommand) Run(args []string) int {
	fs := c.flagSet("operator snapshot restore", c.Help, true)
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() != 1 {
		return c.usageError(c.Help(), "expected one argument, the snapshot file")
	}
	path := fs.Arg(0)
	f, err := os.Open(path)
	if err != nil {
		return c.fail(err, "opening the snapshot")
	}
	defer f.Close()
	client, err := c.client()
	if err != nil {
		return c.fail(err, "")
	}
	wm, err := client.Operator().SnapshotRestore(c.ctx, f, nil)
	if err != nil {
		return c.fail(err, "restoring %s", path)
	}
	fmt.Fprintf(c.stdout, "Snapshot %s restored, index %d\n", path, wm.LastIndex)
	return exitOK
}
