package scheduler

import (
	"fmt"
	"strconv"
	"strings"
)

// version is a parsed "X.Y.Z[-pre][+build]" version.
type version struct {
	segs [3]int64
	n    int // segments given (1..3)
	pre  []string
}

// parseVersion parses a version. strict (semver) wants all three
// segments; otherwise one to three are accepted and a leading "v" is ok.
func parseVersion(s string, strict bool) (version, error) {
	var v version
	s = strings.TrimSpace(s)
	if !strict {
		s = strings.TrimPrefix(s, "v")
	}
	if i := strings.IndexByte(s, '+'); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexByte(s, '-'); i >= 0 {
		if i == len(s)-1 {
			return v, fmt.Errorf("version %q: empty pre-release", s)
		}
		v.pre = strings.Split(s[i+1:], ".")
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) > 3 || (strict && len(parts) != 3) {
		return v, fmt.Errorf("version %q: want X.Y.Z", s)
	}
	for i, p := range parts {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < 0 {
			return v, fmt.Errorf("version %q: segment %q is not a number", s, p)
		}
		v.segs[i] = n
	}
	v.n = len(parts)
	return v, nil
}

// compare orders versions by semver precedence.
func (v version) compare(o version) int {
	for i := range v.segs {
		if v.segs[i] != o.segs[i] {
			if v.segs[i] < o.segs[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(v.pre) == 0 && len(o.pre) == 0:
		return 0
	case len(v.pre) == 0:
		return 1
	case len(o.pre) == 0:
		return -1
	}
	for i := 0; i < len(v.pre) && i < len(o.pre); i++ {
		if c := comparePre(v.pre[i], o.pre[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(v.pre) < len(o.pre):
		return -1
	case len(v.pre) > len(o.pre):
		return 1
	}
	return 0
}

func comparePre(a, b string) int {
	an, aerr := strconv.ParseInt(a, 10, 64)
	bn, berr := strconv.ParseInt(b, 10, 64)
	switch {
	case aerr == nil && berr == nil:
		switch {
		case an < bn:
			return -1
		case an > bn:
			return 1
		}
		return 0
	case aerr == nil:
		return -1 // numeric identifiers sort before alphanumeric ones
	case berr == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// verClause is one "op version" of a constraint such as ">= 1.2, < 2.0".
type verClause struct {
	op string
	v  version
}

func parseVerConstraint(s string, strict bool) ([]verClause, error) {
	var out []verClause
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		op := "="
		for _, o := range []string{">=", "<=", "!=", "~>", "=", ">", "<"} {
			if strings.HasPrefix(part, o) {
				op, part = o, strings.TrimSpace(part[len(o):])
				break
			}
		}
		v, err := parseVersion(part, strict)
		if err != nil {
			return nil, err
		}
		out = append(out, verClause{op, v})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty version constraint")
	}
	return out, nil
}

// satisfies reports whether v meets every clause. As in go-version, a
// pre-release version only meets clauses whose version is a pre-release
// of the same X.Y.Z.
func (v version) satisfies(cs []verClause) bool {
	for _, c := range cs {
		if len(v.pre) > 0 && (len(c.v.pre) == 0 || c.v.segs != v.segs) {
			return false
		}
		cmp := v.compare(c.v)
		ok := false
		switch c.op {
		case "=":
			ok = cmp == 0
		case "!=":
			ok = cmp != 0
		case ">":
			ok = cmp > 0
		case ">=":
			ok = cmp >= 0
		case "<":
			ok = cmp < 0
		case "<=":
			ok = cmp <= 0
		case "~>":
			// Pessimistic: >= c.v and below the next release of the
			// second-to-last segment given.
			ok = cmp >= 0
			if ok {
				upper := c.v
				upper.pre = nil
				k := max(c.v.n-2, 0)
				for i := range upper.segs {
					if i > k {
						upper.segs[i] = 0
					}
				}
				upper.segs[k]++
				ok = v.compare(upper) < 0
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
