package jobspec

import (
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/skiffhq/skiff/structs"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Variables and locals.
//
// A variable's value comes from, lowest precedence first: its default,
// NOMAD_VAR_name and then SKIFF_VAR_name in Options.Environ, each of
// Options.VarFiles in order, Options.VarContent, and each -var in
// Options.Vars in order. A variable with neither a value nor a default is
// an error at its declaration; it evaluates as unknown afterwards, so that
// what uses it is not reported a second time.

// variable is one declared variable.
type variable struct {
	name        string
	block       *hclsyntax.Block
	typ         cty.Type
	defaults    *typeexpr.Defaults
	def         cty.Value // valid if hasDef
	val         cty.Value // valid if hasVal
	hasDef      bool
	hasVal      bool
	validations []*hclsyntax.Block
}

var variableSchema = &schema{
	attrs:  []string{"type", "default", "description"},
	blocks: []string{"validation"},
	unsupported: map[string]string{
		"sensitive": "job variables are not secrets; use Skiff variables and a template block",
		"nullable":  "",
	},
}

var validationSchema = &schema{attrs: []string{"condition", "error_message"}}

// declareVariable decodes a variable "name" { ... } block.
func (p *parser) declareVariable(blk *hclsyntax.Block) {
	if !p.labels(blk, "", 1) {
		return
	}
	name := blk.Labels[0]
	path := structs.BlockPath("", "variable", name)
	if !hclsyntax.ValidIdentifier(name) {
		p.fail(blk.LabelRanges[0], "", path, "invalid variable name %q; use letters, digits, '_' and '-', starting with a letter", name)
		return
	}
	if prev, ok := p.vars[name]; ok {
		p.fail(blk.DefRange(), "", path, "variable %q is declared twice (first at line %d)", name, prev.block.TypeRange.Start.Line)
		return
	}
	v := &variable{name: name, block: blk, typ: cty.DynamicPseudoType}
	p.vars[name] = v
	p.varNames = append(p.varNames, name)
	b := p.open(blk.Body, path, variableSchema)

	if a := blk.Body.Attributes["type"]; a != nil {
		ty, defaults, diags := typeexpr.TypeConstraintWithDefaults(a.Expr)
		if diags.HasErrors() {
			p.addDiags(diags, path)
		} else {
			v.typ, v.defaults = ty, defaults
		}
	}
	if a := blk.Body.Attributes["default"]; a != nil {
		if len(a.Expr.Variables()) > 0 {
			p.fail(a.Expr.Range(), path, path, "a default cannot refer to variables or locals; compute it in a locals block instead")
		} else if val, diags := a.Expr.Value(p.ctx); diags.HasErrors() {
			p.addDiags(diags, path)
		} else if c, err := v.convert(val); err != nil {
			p.fail(a.Expr.Range(), path, path, "default does not match type %s: %s", typeexpr.TypeString(v.typ), err)
		} else {
			v.def, v.hasDef = c, true
		}
	}
	for _, vb := range b.blocks("validation") {
		if p.labels(vb, path, 0) {
			p.open(vb.Body, structs.AttrPath(path, "validation"), validationSchema)
			v.validations = append(v.validations, vb)
		}
	}
}

// convert converts val to the variable's type, applying optional-attribute
// defaults first.
func (v *variable) convert(val cty.Value) (cty.Value, error) {
	if v.defaults != nil {
		val = v.defaults.Apply(val)
	}
	return convert.Convert(val, v.typ)
}

// setVariables gathers the values of every source, reports variables that
// remain unset, runs validation blocks, and puts var into the context.
func (p *parser) setVariables() {
	for _, prefix := range []string{"NOMAD_VAR_", "SKIFF_VAR_"} {
		for _, kv := range p.opts.Environ {
			rest, ok := strings.CutPrefix(kv, prefix)
			if !ok {
				continue
			}
			name, raw, _ := strings.Cut(rest, "=")
			if v := p.vars[name]; v != nil {
				p.setRaw(v, raw, "environment variable "+prefix+name)
			}
		}
	}
	for _, path := range p.opts.VarFiles {
		data, err := os.ReadFile(path)
		if err != nil {
			p.problem(hcl.Range{}, fmt.Sprintf("-var-file: %v", err))
			continue
		}
		p.varFile(data, path)
	}
	if p.opts.VarContent != "" {
		p.varFile([]byte(p.opts.VarContent), "variables.hcl")
	}
	for _, kv := range p.opts.Vars {
		name, raw, ok := strings.Cut(kv, "=")
		name = strings.TrimSpace(name)
		switch v := p.vars[name]; {
		case !ok:
			p.problem(hcl.Range{}, fmt.Sprintf("-var %q: expected name=value", kv))
		case v == nil:
			p.problem(hcl.Range{}, fmt.Sprintf("-var %q: %s declares no variable %q%s",
				kv, p.filename, name, declaredHint(name, p.varNames)))
		default:
			p.setRaw(v, raw, "-var "+name)
		}
	}

	obj := map[string]cty.Value{}
	for _, name := range p.varNames {
		v := p.vars[name]
		switch {
		case v.hasVal:
		case v.hasDef:
			v.val = v.def
		default:
			if _, hasDefault := v.block.Body.Attributes["default"]; !hasDefault {
				p.problem(v.block.DefRange(), fmt.Sprintf(
					"variable %q is not set; give it a value with -var %s=..., a -var-file, or the SKIFF_VAR_%s environment variable, or give it a default",
					name, name, name))
			}
			v.val = cty.UnknownVal(v.typ)
		}
		obj[name] = v.val
	}
	p.ctx.Variables = map[string]cty.Value{"var": cty.ObjectVal(obj), "local": cty.EmptyObjectVal}
	for _, name := range p.varNames {
		p.validateVariable(p.vars[name])
	}
}

func declaredHint(name string, declared []string) string {
	if s := structs.Suggest(name, declared); s != "" {
		return fmt.Sprintf("; did you mean %q?", s)
	}
	if len(declared) == 0 {
		return "; declare it with variable \"" + name + "\" {}"
	}
	return "; declared: " + strings.Join(declared, ", ")
}

// setRaw sets v from a string given on the command line or in the
// environment: taken as is for primitive types, parsed as an HCL
// expression for lists, maps and objects.
func (p *parser) setRaw(v *variable, raw, from string) {
	val := cty.StringVal(raw)
	if !v.typ.IsPrimitiveType() && v.typ != cty.DynamicPseudoType {
		expr, diags := hclsyntax.ParseExpression([]byte(raw), from, hcl.InitialPos)
		if diags.HasErrors() {
			p.problem(hcl.Range{}, fmt.Sprintf("%s: value for type %s is not valid HCL: %s",
				from, typeexpr.TypeString(v.typ), diags[0].Summary))
			return
		}
		var moreDiags hcl.Diagnostics
		if val, moreDiags = expr.Value(&hcl.EvalContext{Functions: p.ctx.Functions}); moreDiags.HasErrors() {
			p.problem(hcl.Range{}, fmt.Sprintf("%s: %s", from, moreDiags[0].Summary))
			return
		}
	}
	c, err := v.convert(val)
	if err != nil {
		p.problem(hcl.Range{}, fmt.Sprintf("%s: variable %q must be %s: %s", from, v.name, typeexpr.TypeString(v.typ), err))
		return
	}
	v.val, v.hasVal = c, true
}

// varFile applies a var file: name = value lines.
func (p *parser) varFile(data []byte, filename string) {
	f, diags := hclsyntax.ParseConfig(data, filename, hcl.InitialPos)
	if diags.HasErrors() {
		p.addDiags(diags, "")
		return
	}
	body := f.Body.(*hclsyntax.Body)
	for _, blk := range body.Blocks {
		p.problem(blk.DefRange(), "a var file holds only name = value lines, not blocks")
	}
	fctx := &hcl.EvalContext{Functions: p.ctx.Functions}
	for _, a := range sortedAttrs(body) {
		v := p.vars[a.Name]
		if v == nil {
			p.problem(a.SrcRange, fmt.Sprintf("%s declares no variable %q%s", p.filename, a.Name, declaredHint(a.Name, p.varNames)))
			continue
		}
		if len(a.Expr.Variables()) > 0 {
			p.problem(a.Expr.Range(), "values in a var file cannot refer to variables")
			continue
		}
		val, diags := a.Expr.Value(fctx)
		if diags.HasErrors() {
			p.addDiags(diags, "")
			continue
		}
		c, err := v.convert(val)
		if err != nil {
			p.problem(a.Expr.Range(), fmt.Sprintf("variable %q must be %s: %s", a.Name, typeexpr.TypeString(v.typ), err))
			continue
		}
		v.val, v.hasVal = c, true
	}
}

// validateVariable runs the validation blocks of v.
func (p *parser) validateVariable(v *variable) {
	path := structs.BlockPath("", "variable", v.name)
	if !v.val.IsWhollyKnown() {
		return
	}
	for _, vb := range v.validations {
		cond := vb.Body.Attributes["condition"]
		if cond == nil {
			p.fail(vb.DefRange(), path, path, "validation needs a condition")
			continue
		}
		ok, good := p.eval(cond.Expr, path, path)
		if !good {
			continue
		}
		if ok.Type() != cty.Bool {
			p.fail(cond.Expr.Range(), path, path, "condition must be true or false (got %s)", describeValue(ok))
			continue
		}
		if ok.True() {
			continue
		}
		msg := "value is not valid"
		if em := vb.Body.Attributes["error_message"]; em != nil {
			if m, good := p.eval(em.Expr, path, path); good {
				if s, err := toString(m); err == nil {
					msg = s
				}
			}
		}
		p.fail(cond.Expr.Range(), path, path, "%s", msg)
	}
}

// evalLocals evaluates every locals block, in dependency order.
func (p *parser) evalLocals(blocks []*hclsyntax.Block) {
	var order []string
	for _, blk := range blocks {
		for _, nested := range blk.Body.Blocks {
			p.fail(nested.DefRange(), "locals", "locals", "locals hold name = value lines, not blocks")
		}
		for _, a := range sortedAttrs(blk.Body) {
			if prev := p.localDefs[a.Name]; prev != nil {
				p.problem(a.SrcRange, fmt.Sprintf("local %q is defined twice (first at line %d)", a.Name, prev.SrcRange.Start.Line))
				continue
			}
			p.localDefs[a.Name] = a
			order = append(order, a.Name)
		}
	}
	pending := order
	for len(pending) > 0 {
		var next []string
		for _, name := range pending {
			if p.waitsOn(name, pending) {
				next = append(next, name)
				continue
			}
			p.locals[name] = p.evalLocal(p.localDefs[name])
			p.ctx.Variables["local"] = cty.ObjectVal(p.locals)
		}
		if len(next) == len(pending) {
			for _, name := range next {
				a := p.localDefs[name]
				p.problem(a.SrcRange, fmt.Sprintf("local %q depends on itself (through %s); break the cycle", name, strings.Join(next, ", ")))
				p.locals[name] = cty.DynamicVal
			}
			p.ctx.Variables["local"] = cty.ObjectVal(p.locals)
			return
		}
		pending = next
	}
}

// waitsOn reports whether local name refers to one of the pending locals.
func (p *parser) waitsOn(name string, pending []string) bool {
	for _, t := range p.localDefs[name].Expr.Variables() {
		if t.RootName() != "local" {
			continue
		}
		if dep, ok := stepName(t); ok {
			for _, q := range pending {
				if q == dep {
					return true
				}
			}
		}
	}
	return false
}

// evalLocal evaluates one local; a failure makes it unknown.
func (p *parser) evalLocal(a *hclsyntax.Attribute) cty.Value {
	path := "locals"
	if !p.checkRefs(a.Expr, path) {
		return cty.DynamicVal
	}
	v, diags := a.Expr.Value(p.ctx)
	if diags.HasErrors() {
		p.addDiags(diags, path)
		return cty.DynamicVal
	}
	return v
}
