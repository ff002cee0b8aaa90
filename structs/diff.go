package structs

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"
)

// Diff types, as in Nomad's job diff.
const (
	DiffTypeNone    = "None"
	DiffTypeAdded   = "Added"
	DiffTypeDeleted = "Deleted"
	DiffTypeEdited  = "Edited"
)

// JobDiff is what changes between two versions of a job, in the shape of
// Nomad's plan diff: fields of the job, then per task group and task.
type JobDiff struct {
	Type       string
	ID         string
	Fields     []*FieldDiff
	TaskGroups []*TaskGroupDiff
}

// TaskGroupDiff is what changes in one task group.
type TaskGroupDiff struct {
	Type   string
	Name   string
	Fields []*FieldDiff
	Tasks  []*TaskDiff
	// Updates counts what the scheduler would do to the group's
	// allocations ("create", "destroy", "in-place update", ...).
	Updates map[string]uint64
}

// TaskDiff is what changes in one task.
type TaskDiff struct {
	Type   string
	Name   string
	Fields []*FieldDiff
}

// FieldDiff is one changed value, by its path ("Resources.MemoryMB",
// "Config[args][1]").
type FieldDiff struct {
	Type string
	Name string
	Old  string
	New  string
}

// serverFields are job fields the servers manage: never part of a diff.
var serverFields = map[string]bool{
	"Version": true, "Stable": true, "Status": true, "StatusDescription": true, "SubmitTime": true,
	"CreateIndex": true, "ModifyIndex": true, "JobModifyIndex": true, "Stop": true,
}

// DiffJobs compares two versions of a job (either may be nil).
func DiffJobs(old, new *Job) *JobDiff {
	d := &JobDiff{Type: DiffTypeNone}
	switch {
	case old == nil && new == nil:
		return d
	case old == nil:
		d.Type, d.ID = DiffTypeAdded, new.ID
	case new == nil:
		d.Type, d.ID = DiffTypeDeleted, old.ID
	default:
		d.ID = new.ID
	}
	d.Fields = diffFields(flatten(old, "TaskGroups"), flatten(new, "TaskGroups"))
	var oldGroups, newGroups []*TaskGroup
	if old != nil {
		oldGroups = old.TaskGroups
	}
	if new != nil {
		newGroups = new.TaskGroups
	}
	edited := len(d.Fields) > 0
	for _, p := range pairByName(oldGroups, newGroups, func(g *TaskGroup) string { return g.Name }) {
		g := diffGroup(p.old, p.new)
		g.Name = p.name
		d.TaskGroups = append(d.TaskGroups, g)
		edited = edited || g.Type != DiffTypeNone
	}
	if d.Type == DiffTypeNone && edited {
		d.Type = DiffTypeEdited
	}
	return d
}

func diffGroup(old, new *TaskGroup) *TaskGroupDiff {
	g := &TaskGroupDiff{Type: changeType(old == nil, new == nil)}
	g.Fields = diffFields(flatten(old, "Tasks"), flatten(new, "Tasks"))
	var oldTasks, newTasks []*Task
	if old != nil {
		oldTasks = old.Tasks
	}
	if new != nil {
		newTasks = new.Tasks
	}
	edited := len(g.Fields) > 0
	for _, p := range pairByName(oldTasks, newTasks, func(t *Task) string { return t.Name }) {
		t := &TaskDiff{Type: changeType(p.old == nil, p.new == nil), Name: p.name}
		t.Fields = diffFields(flatten(p.old), flatten(p.new))
		if t.Type == DiffTypeNone && len(t.Fields) > 0 {
			t.Type = DiffTypeEdited
		}
		g.Tasks = append(g.Tasks, t)
		edited = edited || t.Type != DiffTypeNone
	}
	if g.Type == DiffTypeNone && edited {
		g.Type = DiffTypeEdited
	}
	return g
}

// named is an element of two versions of a list, matched by name; old or
// new is nil when the element is only in one.
type named[T any] struct {
	name     string
	old, new T
}

// pairByName matches the elements of two versions of a list by name,
// sorted by name.
func pairByName[T any](old, new []T, name func(T) string) []named[T] {
	byName := map[string]*named[T]{}
	var out []*named[T]
	get := func(n string) *named[T] {
		p := byName[n]
		if p == nil {
			p = &named[T]{name: n}
			byName[n] = p
			out = append(out, p)
		}
		return p
	}
	for _, x := range old {
		get(name(x)).old = x
	}
	for _, x := range new {
		get(name(x)).new = x
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	pairs := make([]named[T], len(out))
	for i, p := range out {
		pairs[i] = *p
	}
	return pairs
}

// changeType is Added, Deleted or None (to be refined to Edited).
func changeType(oldMissing, newMissing bool) string {
	switch {
	case oldMissing && !newMissing:
		return DiffTypeAdded
	case newMissing && !oldMissing:
		return DiffTypeDeleted
	}
	return DiffTypeNone
}

func diffFields(old, new map[string]string) []*FieldDiff {
	var out []*FieldDiff
	for k, nv := range new {
		ov, had := old[k]
		switch {
		case !had:
			out = append(out, &FieldDiff{Type: DiffTypeAdded, Name: k, New: nv})
		case ov != nv:
			out = append(out, &FieldDiff{Type: DiffTypeEdited, Name: k, Old: ov, New: nv})
		}
	}
	for k, ov := range old {
		if _, has := new[k]; !has {
			out = append(out, &FieldDiff{Type: DiffTypeDeleted, Name: k, Old: ov})
		}
	}
	slices.SortFunc(out, func(a, b *FieldDiff) int { return strings.Compare(a.Name, b.Name) })
	return out
}

var durationType = reflect.TypeOf(time.Duration(0))

// flatten turns a struct into path -> value for every set leaf, leaving
// out the named top-level fields and the server-managed ones.
func flatten(v any, skip ...string) map[string]string {
	out := map[string]string{}
	rv := reflect.ValueOf(v)
	if !rv.IsValid() || (rv.Kind() == reflect.Pointer && rv.IsNil()) {
		return out
	}
	rv = reflect.Indirect(rv)
	t := rv.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || slices.Contains(skip, f.Name) || serverFields[f.Name] {
			continue
		}
		walk(out, f.Name, rv.Field(i))
	}
	return out
}

func walk(out map[string]string, path string, v reflect.Value) {
	switch v.Kind() {
	case reflect.Invalid:
		return
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return
		}
		walk(out, path, v.Elem())
	case reflect.Struct:
		if tm, ok := v.Interface().(time.Time); ok {
			if !tm.IsZero() {
				out[path] = tm.UTC().Format(time.RFC3339)
			}
			return
		}
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				walk(out, path+"."+f.Name, v.Field(i))
			}
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			walk(out, fmt.Sprintf("%s[%v]", path, k), v.MapIndex(k))
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walk(out, fmt.Sprintf("%s[%d]", path, i), v.Index(i))
		}
	default:
		if v.IsZero() {
			return
		}
		if v.Type() == durationType {
			out[path] = time.Duration(v.Int()).String()
			return
		}
		out[path] = fmt.Sprint(v.Interface())
	}
}
