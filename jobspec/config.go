package jobspec

import (
	"fmt"
	"math"
	"math/big"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/skiffhq/skiff/structs"
	"github.com/zclconf/go-cty/cty"
)

// freeform decodes a block whose keys belong to someone else (a task
// driver's config, a scaling policy) into plain Go values: strings, bools,
// int for whole numbers and float64 for others, []any for lists, and
// map[string]any for objects. A nested block becomes one element of a
// []any under its type name (mount { } mount { } -> "mount": [{...}, {...}]);
// a labelled one is wrapped in a map keyed by its labels.
func (p *parser) freeform(b *hclsyntax.Body, path string) map[string]any {
	out := map[string]any{}
	for _, a := range sortedAttrs(b) {
		ap := structs.AttrPath(path, a.Name)
		p.record(ap, a.SrcRange)
		v, ok := p.eval(a.Expr, path, ap)
		if !ok {
			continue
		}
		g, err := goValue(v)
		if err != nil {
			p.fail(a.SrcRange, path, ap, "%s: %v", a.Name, err)
			continue
		}
		out[a.Name] = g
	}
	for _, blk := range b.Blocks {
		bp := structs.AttrPath(path, blk.Type)
		if blk.Type == "dynamic" {
			p.fail(blk.DefRange(), path, bp, "Skiff does not support dynamic blocks yet; write the blocks out, one per item")
			continue
		}
		if a := b.Attributes[blk.Type]; a != nil {
			p.fail(blk.DefRange(), path, bp, "%s is set both as an attribute (line %d) and as a block; keep one", blk.Type, a.SrcRange.Start.Line)
			continue
		}
		p.record(bp, blk.DefRange())
		var elem any = p.freeform(blk.Body, bp)
		for i := len(blk.Labels) - 1; i >= 0; i-- {
			elem = map[string]any{blk.Labels[i]: elem}
		}
		list, _ := out[blk.Type].([]any)
		out[blk.Type] = append(list, elem)
	}
	return out
}

// goValue converts a known cty value to plain Go values.
func goValue(v cty.Value) (any, error) {
	if v.IsNull() {
		return nil, nil
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		return v.AsString(), nil
	case ty == cty.Bool:
		return v.True(), nil
	case ty == cty.Number:
		f := v.AsBigFloat()
		if f.IsInt() {
			if i, acc := f.Int64(); acc == big.Exact && i >= math.MinInt && i <= math.MaxInt {
				return int(i), nil
			}
		}
		x, _ := f.Float64()
		if math.IsInf(x, 0) {
			return nil, fmt.Errorf("number %s is too large", f.Text('g', 10))
		}
		return x, nil
	case ty.IsListType() || ty.IsTupleType() || ty.IsSetType():
		out := make([]any, 0, v.LengthInt())
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			g, err := goValue(e)
			if err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		return out, nil
	case ty.IsMapType() || ty.IsObjectType():
		out := make(map[string]any, v.LengthInt())
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			g, err := goValue(e)
			if err != nil {
				return nil, err
			}
			out[k.AsString()] = g
		}
		return out, nil
	}
	return nil, fmt.Errorf("values of type %s cannot be used here", ty.FriendlyName())
}
