package jobspec

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/skiffhq/skiff/structs"
	"github.com/zclconf/go-cty/cty"
)

// Options configure a parse.
type Options struct {
	// Filename names the job file in messages; "" means "job.hcl".
	Filename string
	// Vars are -var flags, "name=value"; later ones win, and they win over
	// every other source.
	Vars []string
	// VarFiles are -var-file paths: HCL files of name = value lines,
	// applied in order.
	VarFiles []string
	// VarContent is var-file content given inline (the Variables field of
	// the HTTP /v1/jobs/parse request). It wins over VarFiles.
	VarContent string
	// Environ is os.Environ()-style; SKIFF_VAR_name=value (and, below it,
	// NOMAD_VAR_name=value) set variables, with the lowest precedence
	// after defaults. Variables the job does not declare are ignored.
	Environ []string
	// BaseDir is the directory file() reads relative paths from; "" means
	// the directory of Filename.
	BaseDir string
	// NoFileAccess turns file() into an error. The agent sets it when it
	// parses a job file sent over HTTP, so that a job cannot read the
	// server's files and get them back in the parsed job.
	NoFileAccess bool
}

// Parse parses an HCL2 job file into a job that has been canonicalized
// (structs.Job.Canonicalize) and validated (structs.Job.Validate).
//
// Problems of any kind are returned together as an *Error, each with the
// file position it came from; the job is nil then. Parse reads files only
// through the file() function and VarFiles.
func Parse(src []byte, opts Options) (*structs.Job, error) {
	p := newParser(src, opts)
	job := p.run()
	if len(p.probs) > 0 {
		return nil, p.result()
	}
	return job, nil
}

// ParseFile reads and parses the job file at path. opts.Filename defaults
// to path.
func ParseFile(path string, opts Options) (*structs.Job, error) {
	if opts.Filename == "" {
		opts.Filename = path
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read job file: %w", err) // not an *Error: nothing in the file is at fault
	}
	return Parse(src, opts)
}

// parser holds the state of one Parse call.
type parser struct {
	opts     Options
	filename string
	baseDir  string
	src      []byte

	probs []Problem
	pos   map[string]hcl.Range // structs path -> where it was written
	bad   map[string]bool      // structs paths that failed to decode
	dups  map[string]bool      // labelled paths defined more than once

	vars      map[string]*variable
	varNames  []string // in declaration order
	localDefs map[string]*hclsyntax.Attribute
	locals    map[string]cty.Value
	ctx       *hcl.EvalContext
}

func newParser(src []byte, opts Options) *parser {
	p := &parser{
		opts: opts, filename: opts.Filename, baseDir: opts.BaseDir, src: src,
		pos: map[string]hcl.Range{}, bad: map[string]bool{}, dups: map[string]bool{},
		vars: map[string]*variable{}, localDefs: map[string]*hclsyntax.Attribute{},
		locals: map[string]cty.Value{},
	}
	if p.filename == "" {
		p.filename = "job.hcl"
	}
	if p.baseDir == "" {
		p.baseDir = filepath.Dir(p.filename)
	}
	p.ctx = &hcl.EvalContext{Functions: functions(p.baseDir, !p.opts.NoFileAccess)}
	return p
}

var topSchema = &schema{
	blocks: []string{"variable", "locals", "job"},
	unsupported: map[string]string{
		"variables": `declare each variable with variable "name" { default = ... }`,
	},
}

// run parses, decodes, canonicalizes and validates. It returns nil if the
// file could not be decoded at all.
func (p *parser) run() *structs.Job {
	file, diags := hclsyntax.ParseConfig(p.src, p.filename, hcl.InitialPos)
	if diags.HasErrors() {
		// A syntax error makes the rest of the file unreliable: report the
		// syntax errors alone rather than what follows from them.
		p.addDiags(diags, "")
		return nil
	}
	body := file.Body.(*hclsyntax.Body)
	keepNodeInterpolations(body)

	p.open(body, "", topSchema)
	var jobBlocks []*hclsyntax.Block
	var localsBlocks []*hclsyntax.Block
	for _, blk := range body.Blocks {
		switch blk.Type {
		case "variable":
			p.declareVariable(blk)
		case "locals":
			if p.labels(blk, "", 0) {
				localsBlocks = append(localsBlocks, blk)
			}
		case "job":
			jobBlocks = append(jobBlocks, blk)
		}
	}
	p.setVariables()
	p.evalLocals(localsBlocks)

	switch len(jobBlocks) {
	case 0:
		p.problem(hcl.Range{Filename: p.filename, Start: hcl.InitialPos},
			`no job block; a job file needs one job "name" { group "name" { task "name" { ... } } }`)
		return nil
	case 1:
	default:
		for _, blk := range jobBlocks[1:] {
			p.problem(blk.DefRange(), "only one job block is allowed per file; move this job to its own file")
		}
	}
	job := p.decodeJob(jobBlocks[0])
	if job == nil {
		return nil
	}
	job.Canonicalize()
	if err := job.Validate(); err != nil {
		p.validation(err)
	}
	return job
}
