package api

import (
	"context"
	"strings"
)

// uuidLen is the length of a full UUID, which needs no lookup.
const uuidLen = 36

// resolve returns the ID of the one object whose ID is id or starts with
// it. An exact match wins over longer IDs sharing the prefix. No match is a
// 404 *StatusError; several are an *AmbiguousError listing them.
//
// hexPrefix marks UUID IDs: a full UUID is returned without a lookup, and
// the prefix sent to the server is cut to an even number of hex digits
// (what a UUID index can search), the rest matched here.
func resolve[T any](ctx context.Context, kind, id string, hexPrefix bool, q *QueryOptions,
	list func(context.Context, *QueryOptions) ([]T, *QueryMeta, error), idOf func(T) string) (string, error) {
	if hexPrefix && len(id) == uuidLen {
		return id, nil
	}
	sent := id
	if hexPrefix {
		sent = evenHexPrefix(id)
	}
	lq := QueryOptions{}
	if q != nil {
		lq = *q
	}
	lq.Prefix, lq.WaitIndex = sent, 0
	items, _, err := list(ctx, &lq)
	if err != nil {
		return "", err
	}
	var matches []string
	for _, it := range items {
		got := idOf(it)
		if got == id {
			return got, nil
		}
		if strings.HasPrefix(got, id) {
			matches = append(matches, got)
		}
	}
	switch len(matches) {
	case 0:
		return "", notFound(kind, id)
	case 1:
		return matches[0], nil
	}
	return "", &AmbiguousError{Kind: kind, Prefix: id, Candidates: matches}
}

// evenHexPrefix cuts p to the longest even-length prefix of hex digits and
// dashes, as a UUID prefix index wants it.
func evenHexPrefix(p string) string {
	digits := 0
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '-':
			continue
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
			digits++
		default:
			return trimOdd(p[:i], digits)
		}
	}
	return trimOdd(p, digits)
}

func trimOdd(p string, digits int) string {
	p = strings.TrimRight(p, "-")
	if digits%2 == 1 {
		p = p[:len(p)-1]
	}
	return strings.TrimRight(p, "-")
}
