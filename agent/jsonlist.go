package agent

import (
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/skiffhq/skiff/structs"
)

// rawJSON is a handler's answer already encoded as JSON (with the
// newline json.Encoder ends a value with); wrap writes it as it is.
type rawJSON []byte

// appendJobList appends stubs as encoding/json encodes them, byte for
// byte (TestJobListJSONMatchesEncodingJSON compares the two on random
// stubs). GET /v1/jobs encodes thousands of stubs per request:
// encoding/json spent 2.6 us on each through reflection, which made the
// list of 10,000 jobs cost 28 ms of CPU per request (S9).
func appendJobList(b []byte, stubs []*structs.JobListStub) []byte {
	if stubs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	var keys []string
	for i, s := range stubs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJobStub(b, s, &keys)
	}
	return append(b, ']')
}

// appendJobStub appends one stub; keys is scratch space for sorting map
// keys.
func appendJobStub(b []byte, s *structs.JobListStub, keys *[]string) []byte {
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
	b = appendJobSummary(append(b, `,"JobSummary":`...), s.JobSummary, keys)
	b = strconv.AppendUint(append(b, `,"CreateIndex":`...), s.CreateIndex, 10)
	b = strconv.AppendUint(append(b, `,"ModifyIndex":`...), s.ModifyIndex, 10)
	b = strconv.AppendUint(append(b, `,"JobModifyIndex":`...), s.JobModifyIndex, 10)
	b = strconv.AppendInt(append(b, `,"SubmitTime":`...), s.SubmitTime, 10)
	if len(s.Meta) > 0 { // omitempty
		b = append(b, `,"Meta":{`...)
		for i, k := range sortedKeys(keys, s.Meta) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = appendJSONString(append(b, ':'), s.Meta[k])
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendJobSummary(b []byte, s *structs.JobSummary, keys *[]string) []byte {
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
		for i, k := range sortedKeys(keys, s.Summary) {
			if i > 0 {
				b = append(b, ',')
			}
			g := s.Summary[k]
			b = appendJSONString(b, k)
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

// sortedKeys returns m's keys in the order encoding/json writes them, in
// scratch's array when it is large enough (a list reuses one for all its
// maps).
func sortedKeys[V any](scratch *[]string, m map[string]V) []string {
	keys := (*scratch)[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	*scratch = keys
	return keys
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
