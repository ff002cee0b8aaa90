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
		{"add before, between and after", []refOp{{"g", true}, {"a", true}, {"c", true}}, []string{"a", "b", "c", "d", "f", "g"}},
		{"remove first, last", []refOp{{"b", false}, {"f", false}}, []string{"d"}},
		{"remove what is not there", []refOp{{"c", false}}, []string{"b", "d", "f"}},
		{"the last op on an ID counts", []refOp{{"c", true}, {"d", false}, {"c", false}, {"d", true}}, []string{"b", "d", "f"}},
		{"add what is there", []refOp{{"d", true}}, []string{"b", "d", "f"}},
		{"remove all", []refOp{{"f", false}, {"d", false}, {"b", false}}, []string{}},
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
	if got := applyRefOps(nil, []refOp{{"x", true}}); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("into an empty list: got %v", got)
	}
}
