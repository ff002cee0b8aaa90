// Package jobspec parses Nomad-style HCL2 job files into structs.Job.
//
// A job file holds variable "name" { ... } blocks, locals { ... } blocks
// and exactly one job "id" { ... } block, with the blocks, attributes and
// defaults of Nomad's job specification for everything Skiff implements.
// Expressions may use var.NAME, local.NAME and the HCL functions of the
// cty standard library plus file(). Nomad's runtime interpolations
// ("${attr.kernel.name}", "${meta.rack}", "${NOMAD_PORT_http}", ...) are
// kept as literal text for the node to resolve.
//
// Parse returns a canonicalized and validated job, or an *Error listing
// every problem found in one pass, each at the file:line:col it came from:
// syntax errors, blocks and attributes Skiff does not know or does not
// support, values of the wrong type, variables without a value, and the
// validation errors of structs.Job.Validate, whose field paths are mapped
// back to the position they were written at.
//
// Decoding records the position of every block and attribute under the
// path structs.FieldError uses (group["api"].task["web"].resources.memory,
// constraint[0].operator); a validation error is reported at the longest
// recorded prefix of its path. Settings a group or task inherits (the
// job's update, reschedule and migrate blocks, the group's restart block)
// are recorded under the inheriting path too.
package jobspec
