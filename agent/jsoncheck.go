package agent

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
)

// unknownFields lists the JSON object keys in raw that have no field in
// the Go value v and carry a value (not null, false, 0, "" or empty).
// Such fields are ignored, and the caller warns about them, so a client
// built for a richer API never has a setting silently dropped.
func unknownFields(raw []byte, v any) []string {
	var doc any
	if json.Unmarshal(raw, &doc) != nil {
		return nil
	}
	var out []string
	walkUnknown(doc, reflect.TypeOf(v), "", &out)
	sort.Strings(out)
	return out
}

func walkUnknown(doc any, t reflect.Type, path string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch d := doc.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Struct:
			for k, val := range d {
				f, ok := fieldFold(t, k)
				if !ok {
					if !isZeroJSON(val) {
						*out = append(*out, joinPath(path, k))
					}
					continue
				}
				walkUnknown(val, f.Type, joinPath(path, k), out)
			}
		case reflect.Map:
			if t.Elem().Kind() == reflect.Interface {
				return // free-form, e.g. task config
			}
			for k, val := range d {
				walkUnknown(val, t.Elem(), path+"["+k+"]", out)
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for _, val := range d {
				walkUnknown(val, t.Elem(), path+"[]", out)
			}
		}
	}
}

// fieldFold finds the struct field encoding/json would decode key into.
func fieldFold(t reflect.Type, key string) (reflect.StructField, bool) {
	var found reflect.StructField
	ok := false
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag := f.Tag.Get("json"); tag != "" {
			n, _, _ := strings.Cut(tag, ",")
			if n == "-" {
				continue
			}
			if n != "" {
				name = n
			}
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("json") == "" {
			if ef, eok := fieldFold(f.Type, key); eok {
				return ef, true
			}
			continue
		}
		if name == key {
			return f, true
		}
		if !ok && strings.EqualFold(name, key) {
			found, ok = f, true
		}
	}
	return found, ok
}

func isZeroJSON(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case float64:
		return x == 0
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		for _, e := range x {
			if !isZeroJSON(e) {
				return false
			}
		}
		return true
	}
	return false
}

func joinPath(p, k string) string {
	if p == "" {
		return k
	}
	return p + "." + k
}
