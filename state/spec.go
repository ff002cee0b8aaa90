package state

import (
	"reflect"
	"time"

	"github.com/skiffhq/skiff/structs"
)

// specEqual reports whether two jobs have the same spec: they are equal
// once the fields the servers manage are ignored. A nil slice or map equals
// an empty one, since job files, JSON and msgpack do not tell them apart
// reliably.
func specEqual(a, b *structs.Job) bool {
	x, y := *a, *b
	clearServerFields(&x)
	clearServerFields(&y)
	return equalValues(reflect.ValueOf(x), reflect.ValueOf(y))
}

func clearServerFields(j *structs.Job) {
	j.Version = 0
	j.Stable = false
	j.Status = ""
	j.StatusDescription = ""
	j.SubmitTime = 0
	j.CreateIndex = 0
	j.ModifyIndex = 0
	j.JobModifyIndex = 0
}

var timeType = reflect.TypeOf(time.Time{})

// equalValues is reflect.DeepEqual, except that nil and empty slices and
// maps are equal and times compare by instant. Jobs hold no cycles.
func equalValues(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Type() != b.Type() {
		return false
	}
	if a.Type() == timeType && a.CanInterface() {
		return a.Interface().(time.Time).Equal(b.Interface().(time.Time))
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalValues(a.Elem(), b.Elem())
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equalValues(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for it := a.MapRange(); it.Next(); {
			if !equalValues(it.Value(), b.MapIndex(it.Key())) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := range a.NumField() {
			if !equalValues(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.Float32, reflect.Float64:
		return a.Float() == b.Float()
	case reflect.Complex64, reflect.Complex128:
		return a.Complex() == b.Complex()
	case reflect.String:
		return a.String() == b.String()
	default: // funcs, channels: jobs have none
		return false
	}
}

// SpecEqual reports whether two versions of a job have the same spec,
// ignoring the fields the servers manage (version, indexes, status): a
// register of an equal spec makes no new version.
func SpecEqual(a, b *structs.Job) bool { return specEqual(a, b) }
