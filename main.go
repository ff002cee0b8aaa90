// Command skiff is Skiff's single binary: the agent and the CLI.
package main

import (
	"os"

	"github.com/skiffhq/skiff/agent"
	"github.com/skiffhq/skiff/client/driver/containerd"
	"github.com/skiffhq/skiff/command"
)

func main() {
	// "skiff logmon" is not a user command: containerd's shim runs it to
	// write a task's stdout and stderr to rotated files, so logs keep
	// flowing while the agent restarts.
	if len(os.Args) > 1 && os.Args[1] == "logmon" {
		os.Exit(containerd.LoggerMain(os.Args[2:]))
	}
	command.RunAgent = func(args []string) int { return agent.Run(args, os.Stderr) }
	os.Exit(command.Run(os.Args[1:]))
}
