package command

import (
	"fmt"
	"runtime/debug"
)

// Version and GitCommit describe the build; release builds set them with
// -ldflags "-X github.com/skiffhq/skiff/command.Version=... -X ...GitCommit=...".
var (
	Version   = "0.1.0-dev"
	GitCommit = ""
)

// VersionCommand is "skiff version".
type VersionCommand struct{ Meta }

func (c *VersionCommand) Synopsis() string { return "Print the Skiff version" }

func (c *VersionCommand) Help() string {
	return helpText("version", "Prints the version of this skiff binary and the commit it was built from.", "", false)
}

func (c *VersionCommand) Run(args []string) int {
	if len(args) != 0 {
		return c.usageError(c.Help(), "expected no arguments")
	}
	fmt.Fprintln(c.stdout, versionString())
	return exitOK
}

// versionString is "Skiff v0.1.0-dev (abcdef12)", the commit from
// GitCommit or else from the build's VCS stamp.
func versionString() string {
	commit := GitCommit
	if commit == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			dirty := false
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					commit = s.Value
				case "vcs.modified":
					dirty = s.Value == "true"
				}
			}
			if len(commit) > 8 {
				commit = commit[:8]
			}
			if commit != "" && dirty {
				commit += "-dirty"
			}
		}
	}
	if commit == "" {
		return "Skiff v" + Version
	}
	return fmt.Sprintf("Skiff v%s (%s)", Version, commit)
}
