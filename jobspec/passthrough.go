package jobspec

import (
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Node interpolations.
//
// Job files use ${...} for two different things. HCL evaluates var.x,
// local.x and function calls when the file is parsed; Nomad's runtime
// interpolations (${attr.kernel.name}, ${meta.rack}, ${node.datacenter},
// ${NOMAD_PORT_http}, ${env["HOME"]}) are resolved on the node when the
// task is placed, so they must reach the job as literal text.
//
// keepNodeInterpolations rewrites the syntax tree before anything is
// evaluated: every interpolation inside a string whose expression is a
// plain reference to a node value is replaced by its own source text, so
// "${attr.a}-${var.b}" evaluates to "${attr.a}-x" when var.b is "x".
// Anything else (a function call or an operator over a node value, or an
// unknown lower-case name) is left to be evaluated, and reported with a
// hint if it cannot be.

// nodeRoots are the roots of node interpolations.
var nodeRoots = map[string]bool{
	"attr": true, "meta": true, "node": true, "env": true, "device": true, "unique": true,
}

// passThroughRoot reports whether a reference rooted at name is resolved on
// the node: the node roots, NOMAD_* and SKIFF_* runtime variables, and
// upper-case names, which are task environment variables (${HOME}).
func passThroughRoot(name string) bool {
	if nodeRoots[name] || strings.HasPrefix(name, "NOMAD_") || strings.HasPrefix(name, "SKIFF_") {
		return true
	}
	if name == "" {
		return false
	}
	for _, r := range name {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return name[0] < '0' || name[0] > '9'
}

// keepNodeInterpolations replaces node interpolations in every string of
// body with their source text (see above).
func keepNodeInterpolations(body *hclsyntax.Body) {
	hclsyntax.Walk(body, &nodeInterpolations{})
}

// nodeInterpolations is the walker of keepNodeInterpolations. It tracks
// the iterator names of the for expressions it is in, which are never
// node values even when they are upper-case.
type nodeInterpolations struct {
	scope []string
}

func (w *nodeInterpolations) Enter(n hclsyntax.Node) hcl.Diagnostics {
	switch e := n.(type) {
	case *hclsyntax.ForExpr:
		w.scope = append(w.scope, e.KeyVar, e.ValVar)
	case *hclsyntax.TemplateExpr:
		for i, part := range e.Parts {
			if lit, ok := w.literal(part); ok {
				e.Parts[i] = lit
			}
		}
	case *hclsyntax.TemplateWrapExpr:
		if lit, ok := w.literal(e.Wrapped); ok {
			e.Wrapped = lit
		}
	}
	return nil
}

func (w *nodeInterpolations) Exit(n hclsyntax.Node) hcl.Diagnostics {
	if _, ok := n.(*hclsyntax.ForExpr); ok {
		w.scope = w.scope[:len(w.scope)-2]
	}
	return nil
}

// literal returns "${<source of e>}" as a literal if e is a plain
// reference to a node value.
func (w *nodeInterpolations) literal(e hclsyntax.Expression) (hclsyntax.Expression, bool) {
	st, ok := e.(*hclsyntax.ScopeTraversalExpr)
	if !ok {
		return nil, false
	}
	root := st.Traversal.RootName()
	if !passThroughRoot(root) || slices.Contains(w.scope, root) {
		return nil, false
	}
	text := "${" + traversalText(st.Traversal) + "}"
	return &hclsyntax.LiteralValueExpr{Val: cty.StringVal(text), SrcRange: st.SrcRange}, true
}

// traversalText renders a traversal the way it was written:
// attr.unique.network.ip-address, env["HOME"], meta.list[0].
func traversalText(t hcl.Traversal) string {
	var sb strings.Builder
	for _, step := range t {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			sb.WriteString(s.Name)
		case hcl.TraverseAttr:
			sb.WriteString("." + s.Name)
		case hcl.TraverseIndex:
			sb.WriteString("[" + indexText(s.Key) + "]")
		case hcl.TraverseSplat:
			sb.WriteString("[*]")
		}
	}
	return sb.String()
}

func indexText(k cty.Value) string {
	switch {
	case k.IsNull() || !k.IsKnown():
		return ""
	case k.Type() == cty.String:
		return quote(k.AsString())
	case k.Type() == cty.Number:
		return k.AsBigFloat().Text('f', -1)
	}
	return ""
}

// quote writes s as a quoted index key.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
