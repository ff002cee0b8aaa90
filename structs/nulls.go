package structs

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// NullEntries returns the paths (as "TaskGroups[0].Tasks[1]") of the nil
// pointers that v holds in its slices and maps: a JSON or msgpack null
// where a block was expected. The rest of this package reads every
// element of such a list, so a request holding one is refused before it
// is canonicalized. A nil pointer field (an optional block left out) is
// not one.
func NullEntries(v any) []string {
	w := nullWalk{path: make([]string, 0, 16)}
	w.walk(reflect.ValueOf(v))
	return w.found
}

// nullWalk keeps the path to the value it visits as pieces, joined only
// for a path it reports.
type nullWalk struct {
	path  []string
	found []string
}

func (w *nullWalk) walk(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			w.walk(v.Elem())
		}
	case reflect.Struct:
		for _, f := range pointerFields(v.Type()) {
			sep := "."
			if len(w.path) == 0 {
				sep = ""
			}
			w.path = append(w.path, sep, f.name)
			w.walk(v.Field(f.index))
			w.path = w.path[:len(w.path)-2]
		}
	case reflect.Slice, reflect.Array:
		if !mayHoldPointers(v.Type().Elem()) {
			return
		}
		for i := range v.Len() {
			w.entry(v.Index(i), strconv.Itoa(i))
		}
	case reflect.Map:
		if !mayHoldPointers(v.Type().Elem()) {
			return
		}
		type keyed struct {
			key string // as the path shows it
			v   reflect.Value
		}
		entries := make([]keyed, 0, v.Len())
		for it := v.MapRange(); it.Next(); {
			entries = append(entries, keyed{keyString(it.Key()), it.Value()})
		}
		slices.SortFunc(entries, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
		for _, e := range entries {
			w.entry(e.v, e.key)
		}
	}
}

// entry visits an element of a list or map, reporting it when it is a
// nil pointer.
func (w *nullWalk) entry(e reflect.Value, key string) {
	w.path = append(w.path, "[", key, "]")
	if e.Kind() == reflect.Pointer && e.IsNil() {
		w.found = append(w.found, strings.Join(w.path, ""))
	} else {
		w.walk(e)
	}
	w.path = w.path[:len(w.path)-3]
}

// structField is an exported field of a struct that may hold a nil
// pointer entry.
type structField struct {
	index int
	name  string
}

// fieldCache holds pointerFields' answer for each struct type.
var fieldCache sync.Map // reflect.Type -> []structField

// pointerFields returns the exported fields of struct type t that may
// hold a nil pointer entry (the rest need no visit).
func pointerFields(t reflect.Type) []structField {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]structField)
	}
	var fs []structField
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && mayHoldPointers(f.Type) {
			fs = append(fs, structField{i, f.Name})
		}
	}
	fieldCache.Store(t, fs)
	return fs
}

// mayHoldPointers reports whether a value of type t can hold a nil
// pointer entry: strings, numbers and lists of them cannot, nor free-form
// values (a driver's config), which hold no blocks of this package.
func mayHoldPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Struct:
		return true
	case reflect.Slice, reflect.Array, reflect.Map:
		return mayHoldPointers(t.Elem())
	}
	return false
}

func keyString(k reflect.Value) string {
	if k.Kind() == reflect.String {
		return strconv.Quote(k.String())
	}
	return k.String()
}
