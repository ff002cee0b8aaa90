// Command skiff is Skiff's single binary: the agent and the CLI.
package main

import (
	"os"

	"github.com/skiffhq/skiff/agent"
	"github.com/skiffhq/skiff/command"
)

func main() {
	command.RunAgent = func(args []string) int { return agent.Run(args, os.Stderr) }
	os.Exit(command.Run(os.Args[1:]))
}
