package state

import (
	"slices"
	"testing"
)

func TestApplyRefOps(t *testing.T) {
	old := []string{"b", "d", "f"}
	tests := []struct {
		name string
		ops  []refOp
		want []string
	}{
		{"add before, between and after", []refOp{{id: "g", present: true}, {id: "a", present: true}, {id: "c", present: true}}, []string{"a", "b", "c", "d", "f", "g"}},
		{"remove first, last", []refOp{{id: "b"}, {id: "f"}}, []string{"d"}},
		{"remove what is not there", []refOp{{id: "c"}}, []string{"b", "d", "f"}},
		{"the last op on an ID counts", []refOp{{id: "c", present: true}, {id: "d"}, {id: "c"}, {id: "d", present: true}}, []string{"b", "d", "f"}},
		{"add what is there", []refOp{{id: "d", present: true}}, []string{"b", "d", "f"}},
		{"remove all", []refOp{{id: "f"}, {id: "d"}, {id: "b"}}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := slices.Clone(old)
			got := applyRefOps(old, slices.Clone(tt.ops))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			if !slices.Equal(old, before) {
				t.Fatalf("old changed to %v", old)
			}
		})
	}
	if got := applyRefOps(nil, []refOp{{id: "x", present: true}}); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("into an empty list: got %v", got)
	}
}
