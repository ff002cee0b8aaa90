package jobspec

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/skiffhq/skiff/structs"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// schema lists the attributes and blocks a block may contain. A name may be
// both (meta = {...} and meta {...}).
type schema struct {
	attrs  []string
	blocks []string
	// unsupported are Nomad names Skiff does not implement, with what to
	// do instead. They are errors, never ignored.
	unsupported map[string]string
}

// body is one block's body being decoded. path is the block's structs path
// (group["api"].restart); attributes are recorded under it.
type body struct {
	p    *parser
	b    *hclsyntax.Body
	path string
}

// open checks every attribute and block of b against s, reporting the
// unknown and unsupported ones, and records the positions of the
// attributes.
func (p *parser) open(b *hclsyntax.Body, path string, s *schema) *body {
	for _, a := range sortedAttrs(b) {
		ap := structs.AttrPath(path, a.Name)
		switch {
		case slices.Contains(s.attrs, a.Name):
			p.record(ap, a.SrcRange)
		case s.unsupported != nil && hasKey(s.unsupported, a.Name):
			p.fail(a.SrcRange, path, ap, "%s", unsupportedMsg(a.Name, "attribute", s.unsupported[a.Name]))
		case slices.Contains(s.blocks, a.Name):
			p.fail(a.SrcRange, path, ap, "%s is a block, not an attribute; write %s { ... }", a.Name, a.Name)
		default:
			p.fail(a.SrcRange, path, ap, "%s", unknownMsg("attribute", a.Name, s))
		}
	}
	for _, blk := range b.Blocks {
		bp := structs.AttrPath(path, blk.Type)
		switch {
		case blk.Type == "dynamic" && !slices.Contains(s.blocks, blk.Type):
			p.fail(blk.DefRange(), path, bp, "Skiff does not support dynamic blocks yet; write the blocks out, one per item")
		case slices.Contains(s.blocks, blk.Type):
		case s.unsupported != nil && hasKey(s.unsupported, blk.Type):
			p.fail(blk.DefRange(), path, bp, "%s", unsupportedMsg(blk.Type, "block", s.unsupported[blk.Type]))
		case slices.Contains(s.attrs, blk.Type):
			p.fail(blk.DefRange(), path, bp, "%s is an attribute, not a block; write %s = ...", blk.Type, blk.Type)
		default:
			p.fail(blk.DefRange(), path, bp, "%s", unknownMsg("block", blk.Type, s))
		}
	}
	return &body{p: p, b: b, path: path}
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

func unsupportedMsg(name, kind, hint string) string {
	msg := fmt.Sprintf("Skiff does not support the %q %s", name, kind)
	if hint != "" {
		return msg + "; " + hint
	}
	return msg + "; remove it"
}

func unknownMsg(kind, name string, s *schema) string {
	all := append(append([]string{}, s.attrs...), s.blocks...)
	msg := fmt.Sprintf("unknown %s %q", kind, name)
	if sug := structs.Suggest(name, all); sug != "" {
		return msg + fmt.Sprintf("; did you mean %q?", sug)
	}
	if len(all) == 0 {
		return msg + "; nothing may be set here"
	}
	sort.Strings(all)
	return msg + "; expected one of " + strings.Join(slices.Compact(all), ", ")
}

// sortedAttrs returns b's attributes in source order.
func sortedAttrs(b *hclsyntax.Body) []*hclsyntax.Attribute {
	out := make([]*hclsyntax.Attribute, 0, len(b.Attributes))
	for _, a := range b.Attributes {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SrcRange.Start.Byte < out[j].SrcRange.Start.Byte })
	return out
}

// labels checks that blk has n labels; hint shows how to write it.
func (p *parser) labels(blk *hclsyntax.Block, parent string, n int) bool {
	if len(blk.Labels) == n {
		return true
	}
	bp := structs.AttrPath(parent, blk.Type)
	switch {
	case n == 0:
		p.fail(blk.DefRange(), parent, bp, "%s block takes no label; write %s { ... }", blk.Type, blk.Type)
	case len(blk.Labels) == 0:
		p.fail(blk.DefRange(), parent, bp, "%s block needs a name; write %s \"name\" { ... }", blk.Type, blk.Type)
	default:
		p.fail(blk.DefRange(), parent, bp, "%s block takes one name, got %d labels", blk.Type, len(blk.Labels))
	}
	return false
}

// blocks returns the nested blocks of type typ, in source order.
func (b *body) blocks(typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, blk := range b.b.Blocks {
		if blk.Type == typ {
			out = append(out, blk)
		}
	}
	return out
}

// single returns the only unlabelled block of type typ, or nil; more than
// one is an error.
func (b *body) single(typ string) *hclsyntax.Block {
	all := b.blocks(typ)
	if len(all) == 0 {
		return nil
	}
	for _, extra := range all[1:] {
		b.p.fail(extra.DefRange(), b.path, structs.AttrPath(b.path, typ),
			"only one %s block is allowed here (the first is at line %d)", typ, all[0].TypeRange.Start.Line)
	}
	if !b.p.labels(all[0], b.path, 0) {
		return nil
	}
	b.p.record(structs.AttrPath(b.path, typ), all[0].DefRange())
	return all[0]
}

// value evaluates attribute name. ok is false if it is absent, null, or
// failed (the failure is reported).
func (b *body) value(name string) (cty.Value, *hclsyntax.Attribute, bool) {
	a := b.b.Attributes[name]
	if a == nil {
		return cty.NilVal, nil, false
	}
	v, ok := b.p.eval(a.Expr, b.path, structs.AttrPath(b.path, name))
	return v, a, ok
}

// bad reports a wrong value of attribute a.
func (b *body) bad(a *hclsyntax.Attribute, format string, args ...any) {
	b.p.fail(a.SrcRange, b.path, structs.AttrPath(b.path, a.Name), format, args...)
}

func (b *body) str(name string, dst *string) bool {
	v, a, ok := b.value(name)
	if !ok {
		return false
	}
	s, err := toString(v)
	if err != nil {
		b.bad(a, "%s must be a string (got %s)", name, describeValue(v))
		return false
	}
	*dst = s
	return true
}

func (b *body) boolean(name string, dst *bool) bool {
	v, a, ok := b.value(name)
	if !ok {
		return false
	}
	c, err := convert.Convert(v, cty.Bool)
	if err != nil {
		b.bad(a, "%s must be true or false (got %s)", name, describeValue(v))
		return false
	}
	*dst = c.True()
	return true
}

// integer decodes a whole number in [lo, hi].
func (b *body) integer(name string, lo, hi int64, dst *int64) bool {
	v, a, ok := b.value(name)
	if !ok {
		return false
	}
	c, err := convert.Convert(v, cty.Number)
	if err != nil {
		b.bad(a, "%s must be a number (got %s)", name, describeValue(v))
		return false
	}
	f := c.AsBigFloat()
	if !f.IsInt() {
		b.bad(a, "%s must be a whole number (got %s)", name, f.Text('g', 10))
		return false
	}
	if i, acc := f.Int64(); acc != big.Exact || i < lo || i > hi {
		b.bad(a, "%s must be between %d and %d (got %s)", name, lo, hi, f.Text('g', 20))
		return false
	}
	*dst, _ = f.Int64()
	return true
}

func (b *body) int(name string, dst *int) bool {
	var i int64
	if !b.integer(name, math.MinInt32, math.MaxInt32, &i) {
		return false
	}
	*dst = int(i)
	return true
}

func (b *body) duration(name string, dst *time.Duration) bool {
	v, a, ok := b.value(name)
	if !ok {
		return false
	}
	if v.Type() != cty.String {
		b.bad(a, "%s must be a duration string such as \"30s\", \"5m\" or \"1h30m\" (got %s)", name, describeValue(v))
		return false
	}
	d, err := time.ParseDuration(v.AsString())
	if err != nil {
		b.bad(a, "invalid duration %q for %s; use a number with a unit, such as \"30s\", \"5m\" or \"1h30m\"", v.AsString(), name)
		return false
	}
	*dst = d
	return true
}

func (b *body) durationPtr(name string, dst **time.Duration) {
	var d time.Duration
	if b.duration(name, &d) {
		*dst = &d
	}
}

func (b *body) strList(name string, dst *[]string) bool {
	v, a, ok := b.value(name)
	if !ok {
		return false
	}
	l, err := toStringList(v)
	if err != nil {
		b.bad(a, "%s must be a list of strings (got %s)", name, describeValue(v))
		return false
	}
	*dst = l
	return true
}

// strMap decodes name written as an attribute (name = { k = "v" }) or as a
// block (name { k = "v" }). Values that are numbers or bools become
// strings, as Nomad's meta and env do.
func (b *body) strMap(name string) map[string]string {
	mp := structs.AttrPath(b.path, name)
	a := b.b.Attributes[name]
	blks := b.blocks(name)
	if a != nil && len(blks) > 0 {
		b.p.fail(blks[0].DefRange(), b.path, mp, "%s is set both as an attribute (line %d) and as a block; keep one", name, a.SrcRange.Start.Line)
		return nil
	}
	out := map[string]string{}
	if a != nil {
		v, ok := b.p.eval(a.Expr, b.path, mp)
		if !ok {
			return nil
		}
		if !v.Type().IsObjectType() && !v.Type().IsMapType() {
			b.bad(a, "%s must be a map of strings such as { key = \"value\" } (got %s)", name, describeValue(v))
			return nil
		}
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			if e.IsNull() {
				continue
			}
			s, err := toString(e)
			if err != nil {
				b.bad(a, "%s: value of %q must be a string (got %s)", name, k.AsString(), describeValue(e))
				continue
			}
			out[k.AsString()] = s
		}
		return out
	}
	for _, blk := range blks {
		if !b.p.labels(blk, b.path, 0) {
			continue
		}
		b.p.record(mp, blk.DefRange())
		for _, nested := range blk.Body.Blocks {
			b.p.fail(nested.DefRange(), mp, structs.AttrPath(mp, nested.Type), "%s may only hold key = \"value\" lines, not blocks", name)
		}
		sub := &body{p: b.p, b: blk.Body, path: mp}
		for _, ea := range sortedAttrs(blk.Body) {
			b.p.record(structs.AttrPath(mp, ea.Name), ea.SrcRange)
			var s string
			if sub.str(ea.Name, &s) {
				out[ea.Name] = s
			}
		}
	}
	if a == nil && len(blks) == 0 {
		return nil
	}
	return out
}

// toString converts a primitive value to a string.
func toString(v cty.Value) (string, error) {
	if !v.Type().IsPrimitiveType() {
		return "", fmt.Errorf("not a primitive")
	}
	c, err := convert.Convert(v, cty.String)
	if err != nil {
		return "", err
	}
	return c.AsString(), nil
}

func toStringList(v cty.Value) ([]string, error) {
	ty := v.Type()
	if !ty.IsListType() && !ty.IsTupleType() && !ty.IsSetType() {
		return nil, fmt.Errorf("not a list")
	}
	out := []string{}
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() {
			return nil, fmt.Errorf("null element")
		}
		s, err := toString(e)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// describeValue names a value's type, with the value if it is short.
func describeValue(v cty.Value) string {
	ty := v.Type()
	switch {
	case v.IsNull():
		return "null"
	case ty == cty.String:
		s := v.AsString()
		if len(s) > 40 {
			s = s[:37] + "..."
		}
		return fmt.Sprintf("string %q", s)
	case ty == cty.Number:
		return "number " + v.AsBigFloat().Text('g', 10)
	case ty == cty.Bool:
		return fmt.Sprintf("bool %t", v.True())
	case ty.IsListType() || ty.IsTupleType():
		return "a list"
	case ty.IsSetType():
		return "a set"
	case ty.IsMapType() || ty.IsObjectType():
		return "an object"
	}
	return ty.FriendlyName()
}

// eval evaluates expr. ctxPath is the block it is in, badPath what to mark
// if it fails. ok is false if the value is null, or is unknown because it
// depends on a variable that is not set (which is reported once, where
// the variable is declared), or failed (reported here).
func (p *parser) eval(expr hclsyntax.Expression, ctxPath, badPath string) (cty.Value, bool) {
	if !p.checkRefs(expr, ctxPath) {
		p.bad[badPath] = true
		return cty.NilVal, false
	}
	v, diags := expr.Value(p.ctx)
	if diags.HasErrors() {
		p.addDiags(diags, ctxPath)
		p.bad[badPath] = true
		return cty.NilVal, false
	}
	if !v.IsWhollyKnown() {
		p.bad[badPath] = true
		return cty.NilVal, false
	}
	v, _ = v.UnmarkDeep()
	if v.IsNull() {
		return cty.NilVal, false
	}
	return v, true
}

// checkRefs reports references the parser cannot resolve: undeclared
// var.x and local.x, node values used outside a string, and unknown roots.
func (p *parser) checkRefs(expr hclsyntax.Expression, ctxPath string) bool {
	ok := true
	for _, t := range expr.Variables() {
		root := t.RootName()
		switch root {
		case "var", "local":
			name, ok2 := stepName(t)
			if !ok2 {
				continue // var["x"] with a computed key, or var alone: HCL reports it
			}
			if root == "var" {
				if _, declared := p.vars[name]; !declared {
					ok = false
					p.problem(t.SourceRange(), withContext(ctxPath, undeclaredVarMsg(name, p.varNames)))
				}
				continue
			}
			if _, declared := p.localDefs[name]; !declared {
				ok = false
				msg := fmt.Sprintf("local.%s is not defined; define it in a locals { %s = ... } block", name, name)
				if s := structs.Suggest(name, keys(p.localDefs)); s != "" {
					msg += fmt.Sprintf(", or did you mean local.%s?", s)
				}
				p.problem(t.SourceRange(), withContext(ctxPath, msg))
			}
		default:
			ok = false
			src := string(t.SourceRange().SliceBytes(p.src))
			var msg string
			if passThroughRoot(root) {
				msg = fmt.Sprintf("%s is resolved on the node when the task is placed, so it can only be used inside a string on its own: \"${%s}\"", src, src)
			} else {
				msg = fmt.Sprintf("unknown variable %q; %s", root, p.rootHint(root))
				msg += fmt.Sprintf(" (write $${%s} for a literal \"${%s}\")", src, src)
			}
			p.problem(t.SourceRange(), withContext(ctxPath, msg))
		}
	}
	return ok
}

// rootHint suggests what an unknown root name was meant to be.
func (p *parser) rootHint(root string) string {
	if _, ok := p.vars[root]; ok {
		return fmt.Sprintf("did you mean var.%s?", root)
	}
	if _, ok := p.localDefs[root]; ok {
		return fmt.Sprintf("did you mean local.%s?", root)
	}
	// A misspelt var or local starts with the same letter: vra, locla.
	if s := structs.Suggest(root, []string{"var", "local"}); s != "" && s[0] == root[0] {
		return fmt.Sprintf("did you mean %s?", s)
	}
	return "job variables are var.NAME and locals are local.NAME"
}

// stepName returns the name after the root: x in var.x or var["x"].
func stepName(t hcl.Traversal) (string, bool) {
	if len(t) < 2 {
		return "", false
	}
	switch s := t[1].(type) {
	case hcl.TraverseAttr:
		return s.Name, true
	case hcl.TraverseIndex:
		if s.Key.Type() == cty.String && s.Key.IsKnown() && !s.Key.IsNull() {
			return s.Key.AsString(), true
		}
	}
	return "", false
}

func undeclaredVarMsg(name string, declared []string) string {
	msg := fmt.Sprintf("var.%s is not declared; declare it with variable %q { default = ... }", name, name)
	if s := structs.Suggest(name, declared); s != "" {
		msg += fmt.Sprintf(", or did you mean var.%s?", s)
	}
	return msg
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
