package jobspec

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/skiffhq/skiff/structs"
)

// Problem is one problem found in a job file (or in a variable value given
// to it), with the position it was found at. Line and Column are 1-based;
// they are 0 for problems that have no position in a file, such as a bad
// -var flag, and Filename is "" for problems that belong to no file.
type Problem struct {
	Filename     string
	Line, Column int
	Msg          string
}

// Error renders the problem as "web.hcl:12:5: msg".
func (p Problem) Error() string {
	switch {
	case p.Filename == "":
		return p.Msg
	case p.Line == 0:
		return p.Filename + ": " + p.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", p.Filename, p.Line, p.Column, p.Msg)
}

// Error is the error Parse and ParseFile return for any problem. It holds
// every problem found in one pass: syntax errors, decoding errors (unknown
// or unsupported blocks, wrong types, bad durations, unset variables) and
// the job's validation errors, each mapped to the file position it came
// from.
type Error struct {
	Problems []Problem
}

// Error renders one problem per line.
func (e *Error) Error() string {
	if len(e.Problems) == 0 {
		return "invalid job file"
	}
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// problem adds a problem at the start of rng.
func (p *parser) problem(rng hcl.Range, msg string) {
	p.probs = append(p.probs, Problem{
		Filename: rng.Filename, Line: rng.Start.Line, Column: rng.Start.Column, Msg: msg,
	})
}

// fail reports a problem found while decoding: msg is prefixed with the
// block it is in (ctxPath, a structs path) and badPath is marked so that
// validation does not report a consequence of the same mistake again.
func (p *parser) fail(rng hcl.Range, ctxPath, badPath, format string, args ...any) {
	p.problem(rng, withContext(ctxPath, fmt.Sprintf(format, args...)))
	p.bad[badPath] = true
}

// addDiags turns HCL error diagnostics into problems.
func (p *parser) addDiags(diags hcl.Diagnostics, ctxPath string) {
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := strings.TrimSuffix(d.Summary, ".")
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		rng := hcl.Range{Filename: p.filename}
		if d.Subject != nil {
			rng = *d.Subject
		}
		p.problem(rng, withContext(ctxPath, msg))
	}
}

// withContext prefixes msg with the blocks of path: `group "api", task "web": msg`.
func withContext(path, msg string) string {
	if c := describe(path); c != "" {
		return c + ": " + msg
	}
	return msg
}

// describe renders a structs path for people: group["api"].restart ->
// `group "api", restart`.
func describe(path string) string {
	if path == "" {
		return ""
	}
	parts := splitPath(path)
	for i, s := range parts {
		if j := strings.IndexByte(s, '['); j > 0 && strings.HasSuffix(s, "]") && s[j+1] == '"' {
			parts[i] = s[:j] + " " + s[j+1:len(s)-1]
		}
	}
	return strings.Join(parts, ", ")
}

// splitPath splits a structs path on the dots outside brackets and quotes.
func splitPath(path string) []string {
	var parts []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '[':
			depth++
		case c == ']':
			depth--
		case c == '.' && depth == 0:
			parts = append(parts, path[start:i])
			start = i + 1
		}
	}
	return append(parts, path[start:])
}

// parentPath drops the last element of a path; it returns "" for a path
// of one element.
func parentPath(path string) string {
	parts := splitPath(path)
	return strings.Join(parts[:len(parts)-1], ".")
}

// isLabelled reports whether the last element of path is a labelled block
// such as group["api"].
func isLabelled(path string) bool {
	parts := splitPath(path)
	last := parts[len(parts)-1]
	return strings.HasSuffix(last, "\"]")
}

// record remembers where the thing at path was written. The first
// definition wins, so that a duplicate does not move the others' errors.
func (p *parser) record(path string, rng hcl.Range) {
	if _, ok := p.pos[path]; !ok {
		p.pos[path] = rng
	}
}

// alias makes the positions recorded under from (and below it) also the
// positions of to, for settings a group or task inherits: an error in a
// group's update strategy that came from the job's update block points at
// the job's update block.
func (p *parser) alias(from, to string) {
	type kv struct {
		k string
		r hcl.Range
	}
	var add []kv
	for k, r := range p.pos {
		if k == from || strings.HasPrefix(k, from+".") {
			add = append(add, kv{to + k[len(from):], r})
		}
	}
	for _, a := range add {
		p.record(a.k, a.r)
	}
}

// forget drops the positions recorded under path, for a block that turned
// out to ask for nothing, so that the next one can take its index.
func (p *parser) forget(path string) {
	for k := range p.pos {
		if k == path || strings.HasPrefix(k, path+".") {
			delete(p.pos, k)
		}
	}
}

// lookup returns the position recorded for the longest prefix of path.
func (p *parser) lookup(path string) hcl.Range {
	for {
		if r, ok := p.pos[path]; ok {
			return r
		}
		if path == "" {
			return hcl.Range{Filename: p.filename}
		}
		path = parentPath(path)
	}
}

// suppressed reports whether a validation error at path repeats a problem
// already reported while decoding (path or one of its parents failed to
// decode), or a duplicate definition reported with both positions.
func (p *parser) suppressed(fe *structs.FieldError) bool {
	if p.dups[fe.Path] && strings.Contains(fe.Msg, "more than once") {
		return true
	}
	for path := fe.Path; ; path = parentPath(path) {
		if p.bad[path] {
			return true
		}
		if path == "" {
			return false
		}
	}
}

// validation maps the job's validation errors to problems at the
// positions they came from.
func (p *parser) validation(err error) {
	var ve *structs.ValidationError
	if !errors.As(err, &ve) {
		p.problem(hcl.Range{Filename: p.filename}, err.Error())
		return
	}
	// An inherited setting (a job's update block, a group's restart block)
	// is validated once per group or task that inherits it; report it once,
	// where it was written.
	type seenKey struct {
		rng hcl.Range
		msg string
	}
	seen := map[seenKey]bool{}
	for _, fe := range ve.Errors {
		if p.suppressed(fe) {
			continue
		}
		rng := p.lookup(fe.Path)
		k := seenKey{rng, fe.Msg}
		if seen[k] {
			continue
		}
		seen[k] = true
		ctx := fe.Path
		if !isLabelled(ctx) {
			ctx = parentPath(ctx)
		}
		p.problem(rng, withContext(ctx, fe.Msg))
	}
}

// result sorts and de-duplicates the problems found.
func (p *parser) result() *Error {
	rank := func(f string) int {
		switch f {
		case "":
			return 0
		case p.filename:
			return 2
		}
		return 1
	}
	sort.SliceStable(p.probs, func(i, j int) bool {
		a, b := p.probs[i], p.probs[j]
		if rank(a.Filename) != rank(b.Filename) {
			return rank(a.Filename) < rank(b.Filename)
		}
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	out := p.probs[:0]
	seen := map[Problem]bool{}
	for _, pr := range p.probs {
		if !seen[pr] {
			seen[pr] = true
			out = append(out, pr)
		}
	}
	return &Error{Problems: out}
}
