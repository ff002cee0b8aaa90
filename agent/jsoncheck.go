package agent

import (
	"reflect"
	"sort"
	"strings"
	"sync"
)

// unknownFields lists the JSON object keys in raw that have no field in
// the Go value v and carry a value (not null, false, 0, "" or empty).
// Such fields are ignored, and the caller warns about them, so a client
// built for a richer API never has a setting silently dropped.
func unknownFields(doc any, v any) []string {
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

// fieldFold finds the struct field encoding/json would decode key into:
// an exact name match first, else a case-insensitive one.
func fieldFold(t reflect.Type, key string) (reflect.StructField, bool) {
	fs := fieldsOf(t)
	if f, ok := fs.exact[key]; ok {
		return f, true
	}
	f, ok := fs.folded[strings.ToLower(key)]
	return f, ok
}

type fieldSet struct {
	exact, folded map[string]reflect.StructField
}

// fieldCache holds the JSON field names of each struct type seen.
var fieldCache sync.Map // reflect.Type -> *fieldSet

func fieldsOf(t reflect.Type) *fieldSet {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.(*fieldSet)
	}
	fs := &fieldSet{exact: map[string]reflect.StructField{}, folded: map[string]reflect.StructField{}}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if f.Anonymous && f.Type.Kind() == reflect.Struct && tag == "" {
				add(f.Type) // embedded: its fields are promoted
				continue
			}
			if !f.IsExported() {
				continue
			}
			name := f.Name
			if n, _, _ := strings.Cut(tag, ","); n == "-" {
				continue
			} else if n != "" {
				name = n
			}
			if _, dup := fs.exact[name]; !dup {
				fs.exact[name] = f
			}
			if _, dup := fs.folded[strings.ToLower(name)]; !dup {
				fs.folded[strings.ToLower(name)] = f
			}
		}
	}
	add(t)
	fieldCache.Store(t, fs)
	return fs
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
