package structs

// The messages of an exec session (GET /v1/client/allocation/:id/exec, a
// websocket of JSON text messages), in Nomad's shapes, shared by the
// agent that serves the session and the api client that opens it. The
// client sends ExecStreamingInput, the agent ExecStreamingOutput.
type (
	// ExecStreamingIOOperation is data of a stream, or its end.
	ExecStreamingIOOperation struct {
		Data  []byte `json:"data,omitempty"`
		Close bool   `json:"close,omitempty"`
	}
	// ExecTerminalSize is a terminal's size in characters.
	ExecTerminalSize struct {
		Height int `json:"height,omitempty"`
		Width  int `json:"width,omitempty"`
	}
	// ExecStreamingInput is stdin data, the end of stdin or a new
	// terminal size; an empty one is a heartbeat.
	ExecStreamingInput struct {
		Stdin   *ExecStreamingIOOperation `json:"stdin,omitempty"`
		TTYSize *ExecTerminalSize         `json:"tty_size,omitempty"`
	}
	// ExecStreamingExitResult is how the command ended.
	ExecStreamingExitResult struct {
		ExitCode int `json:"exit_code"`
	}
	// ExecStreamingOutput is output of the command, or its exit.
	ExecStreamingOutput struct {
		Stdout *ExecStreamingIOOperation `json:"stdout,omitempty"`
		Stderr *ExecStreamingIOOperation `json:"stderr,omitempty"`
		Exited bool                      `json:"exited,omitempty"`
		Result *ExecStreamingExitResult  `json:"result,omitempty"`
	}
)
