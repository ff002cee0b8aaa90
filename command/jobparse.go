package command

import (
	"path/filepath"

	"github.com/skiffhq/skiff/jobspec"
	"github.com/skiffhq/skiff/structs"
)

// parseJobFile parses, canonicalizes and validates the HCL job file at path
// with its -var and -var-file values; environ supplies SKIFF_VAR_name
// variables. Problems come back as one error with a file:line:col per line.
// It is a variable so that tests can do without real job files.
var parseJobFile = func(path string, vars, varFiles, environ []string) (*structs.Job, error) {
	return jobspec.ParseFile(path, jobspec.Options{
		Filename: path,
		Vars:     vars,
		VarFiles: varFiles,
		Environ:  environ,
		BaseDir:  filepath.Dir(path),
	})
}
