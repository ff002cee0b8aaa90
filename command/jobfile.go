package command

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/skiffhq/skiff/jobspec"
	"github.com/skiffhq/skiff/structs"
)

// jobFileFlags are the flags of commands that read a job file.
type jobFileFlags struct {
	vars      stringList
	varFiles  stringList
	jsonInput bool
}

func (f *jobFileFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.vars, "var", "")
	fs.Var(&f.varFiles, "var-file", "")
	fs.BoolVar(&f.jsonInput, "json", false, "")
}

const jobFileOptions = `  -var 'key=value'
    Sets a variable of the job file; repeatable. SKIFF_VAR_key=value in
    the environment does the same, with lower precedence.

  -var-file=<path>
    Reads variables from an HCL file of key = value lines; repeatable.

  -json
    Reads the job file as JSON, in the API's shape ({"Job": {...}} or the
    job object itself, as "skiff job inspect" prints it).`

// loadJob reads a job file: HCL through jobspec, or JSON with -json. The
// job comes back canonicalized and validated; the error of an invalid file
// lists every problem, one per line.
func (m *Meta) loadJob(path string, f *jobFileFlags) (*structs.Job, error) {
	if !f.jsonInput {
		return parseJobFile(path, f.vars, f.varFiles, m.environ())
	}
	if len(f.vars) > 0 || len(f.varFiles) > 0 {
		return nil, fmt.Errorf("-var and -var-file apply to HCL job files, not to -json ones")
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read job file: %w", err)
	}
	job, err := decodeJSONJob(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	job.Canonicalize()
	if err := job.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return job, nil
}

// decodeJSONJob accepts {"Job": {...}} or a bare job object.
func decodeJSONJob(src []byte) (*structs.Job, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(src, &probe); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if raw, ok := probe["Job"]; ok && len(probe) == 1 {
		src = raw
	}
	var job structs.Job
	dec := json.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&job); err != nil {
		return nil, fmt.Errorf("decode job: %w", err)
	}
	if job.ID == "" {
		return nil, fmt.Errorf("the job has no ID")
	}
	return &job, nil
}

// reportJobFileError prints why a job file could not be used: every
// problem in it with its position, or why it could not be read.
func reportJobFileError(w io.Writer, path string, err error) {
	var perr *jobspec.Error
	if errors.As(err, &perr) {
		fmt.Fprintf(w, "Error: job file %s is invalid:\n%s\n", path, indent(err.Error(), "  "))
		return
	}
	fmt.Fprintf(w, "Error: %v\n", err)
}
