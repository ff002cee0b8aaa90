package agent

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/skiffhq/skiff/structs"
)

// rawJSON is a handler's answer already encoded as JSON (with the
// newline json.Encoder ends a value with); wrap writes it as it is.
type rawJSON []byte

// pooledJSON is rawJSON in a borrowed buffer: release gives it back once
// the answer is written.
type pooledJSON struct {
	json    []byte
	release func()
}

// appendJobList appends stubs as encoding/json encodes them, byte for
// byte (TestJobListJSONMatchesEncodingJSON compares the two on random
// stubs). GET /v1/jobs encodes thousands of stubs per request:
// encoding/json spent 2.6 us on each through reflection, which made the
// list of 10,000 jobs cost 28 ms of CPU per request (S9). Each stub's
// JSON is kept with it (JobListStub.SetMemo): the server hands the same
// stub to every list while its job and summary stay the same, so a list
// mostly copies the JSON of earlier lists.
func appendJobList(b []byte, stubs []*structs.JobListStub) []byte {
	if stubs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	var sc listScratch
	for i, s := range stubs {
		if i > 0 {
			b = append(b, ',')
		}
		if s == nil {
			b = append(b, "null"...)
			continue
		}
		if memo := s.Memo(); memo != nil {
			b = append(b, memo...)
			continue
		}
		start := len(b)
		b = appendJobStub(b, s, &sc)
		s.SetMemo(b[start:]) // a copy: b's array would keep the whole list alive
	}
	return append(b, ']')
}

// listScratch is space for sorting a stub's map entries, reused for
// every stub of a list.
type listScratch struct {
	meta   []mapEntry[string]
	groups []mapEntry[structs.TaskGroupSummary]
}

// appendJobStub appends one stub.
func appendJobStub(b []byte, s *structs.JobListStub, sc *listScratch) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	b = appendStringField(b, `{"ID":`, s.ID)
	b = appendStringField(b, `,"ParentID":`, s.ParentID)
	b = appendStringField(b, `,"Name":`, s.Name)
	b = appendStringField(b, `,"Namespace":`, s.Namespace)
	b = append(b, `,"Datacenters":`...)
	b = appendStrings(b, s.Datacenters)
	b = appendStringField(b, `,"NodePool":`, s.NodePool)
	b = appendStringField(b, `,"Type":`, s.Type)
	b = strconv.AppendInt(append(b, `,"Priority":`...), int64(s.Priority), 10)
	b = strconv.AppendBool(append(b, `,"Periodic":`...), s.Periodic)
	b = strconv.AppendBool(append(b, `,"ParameterizedJob":`...), s.ParameterizedJob)
	b = strconv.AppendBool(append(b, `,"Stop":`...), s.Stop)
	b = appendStringField(b, `,"Status":`, s.Status)
	b = appendStringField(b, `,"StatusDescription":`, s.StatusDescription)
	b = appendJobSummary(append(b, `,"JobSummary":`...), s.JobSummary, sc)
	b = strconv.AppendUint(append(b, `,"CreateIndex":`...), s.CreateIndex, 10)
	b = strconv.AppendUint(append(b, `,"ModifyIndex":`...), s.ModifyIndex, 10)
	b = strconv.AppendUint(append(b, `,"JobModifyIndex":`...), s.JobModifyIndex, 10)
	b = strconv.AppendInt(append(b, `,"SubmitTime":`...), s.SubmitTime, 10)
	if len(s.Meta) > 0 { // omitempty
		b = append(b, `,"Meta":{`...)
		for i, e := range sortedEntries(&sc.meta, s.Meta) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, e.key)
			b = appendJSONString(append(b, ':'), e.value)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendJobSummary(b []byte, s *structs.JobSummary, sc *listScratch) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	b = appendStringField(b, `{"JobID":`, s.JobID)
	b = appendStringField(b, `,"Namespace":`, s.Namespace)
	b = append(b, `,"Summary":`...)
	if s.Summary == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '{')
		for i, e := range sortedEntries(&sc.groups, s.Summary) {
			if i > 0 {
				b = append(b, ',')
			}
			g := &e.value
			b = appendJSONString(b, e.key)
			b = strconv.AppendInt(append(b, `:{"Queued":`...), int64(g.Queued), 10)
			b = strconv.AppendInt(append(b, `,"Complete":`...), int64(g.Complete), 10)
			b = strconv.AppendInt(append(b, `,"Failed":`...), int64(g.Failed), 10)
			b = strconv.AppendInt(append(b, `,"Running":`...), int64(g.Running), 10)
			b = strconv.AppendInt(append(b, `,"Starting":`...), int64(g.Starting), 10)
			b = strconv.AppendInt(append(b, `,"Lost":`...), int64(g.Lost), 10)
			b = strconv.AppendInt(append(b, `,"Unknown":`...), int64(g.Unknown), 10)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	b = strconv.AppendUint(append(b, `,"CreateIndex":`...), s.CreateIndex, 10)
	b = strconv.AppendUint(append(b, `,"ModifyIndex":`...), s.ModifyIndex, 10)
	return append(b, '}')
}

func appendStringField(b []byte, name, v string) []byte {
	return appendJSONString(append(b, name...), v)
}

func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// mapEntry is a key and its value.
type mapEntry[V any] struct {
	key   string
	value V
}

// sortedEntries returns m's entries in the order encoding/json writes
// them (by key), in scratch's array when it is large enough. One pass
// over the map: a lookup per key after sorting the keys cost as much
// again on a list's cold maps.
func sortedEntries[V any](scratch *[]mapEntry[V], m map[string]V) []mapEntry[V] {
	entries := (*scratch)[:0]
	for k, v := range m {
		entries = append(entries, mapEntry[V]{k, v})
	}
	if len(entries) > 1 {
		slices.SortFunc(entries, func(a, b mapEntry[V]) int { return strings.Compare(a.key, b.key) })
	}
	*scratch = entries
	return entries
}

// appendJSONString appends s as a JSON string the way encoding/json
// writes one with HTML escaping (its default): ", \ and control
// characters escaped, <, > and & as \u003c, \u003e and \u0026, U+2028 and
// U+2029 escaped, and each byte of invalid UTF-8 as \ufffd.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
