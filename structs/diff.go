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
	groups := map[string][2]*TaskGroup{}
	var names []string
	add := func(j *Job, i int) {
		if j == nil {
			return
		}
		for _, tg := range j.TaskGroups {
			pair, seen := groups[tg.Name]
			if !seen {
				names = append(names, tg.Name)
			}
			pair[i] = tg
			groups[tg.Name] = pair
		}
	}
	add(old, 0)
	add(new, 1)
	sort.Strings(names)
	for _, name := range names {
		pair := groups[name]
		g := diffGroup(pair[0], pair[1])
		g.Name = name
		d.TaskGroups = append(d.TaskGroups, g)
	}
	if d.Type == DiffTypeNone {
		edited := len(d.Fields) > 0
		for _, g := range d.TaskGroups {
			edited = edited || g.Type != DiffTypeNone
		}
		if edited {
			d.Type = DiffTypeEdited
		}
	}
	return d
}

func diffGroup(old, new *TaskGroup) *TaskGroupDiff {
	g := &TaskGroupDiff{Type: changeType(old == nil, new == nil)}
	g.Fields = diffFields(flatten(old, "Tasks"), flatten(new, "Tasks"))
	tasks := map[string][2]*Task{}
	var names []string
	add := func(tg *TaskGroup, i int) {
		if tg == nil {
			return
		}
		for _, t := range tg.Tasks {
			pair, seen := tasks[t.Name]
			if !seen {
				names = append(names, t.Name)
			}
			pair[i] = t
			tasks[t.Name] = pair
		}
	}
	add(old, 0)
	add(new, 1)
	sort.Strings(names)
	for _, name := range names {
		pair := tasks[name]
		t := &TaskDiff{Type: changeType(pair[0] == nil, pair[1] == nil), Name: name}
		t.Fields = diffFields(flatten(pair[0]), flatten(pair[1]))
		if t.Type == DiffTypeNone && len(t.Fields) > 0 {
			t.Type = DiffTypeEdited
		}
		g.Tasks = append(g.Tasks, t)
	}
	if g.Type == DiffTypeNone {
		edited := len(g.Fields) > 0
		for _, t := range g.Tasks {
			edited = edited || t.Type != DiffTypeNone
		}
		if edited {
			g.Type = DiffTypeEdited
		}
	}
	return g
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
