package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/skiffhq/skiff/structs"
)

func TestEvenHexPrefix(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a", ""},
		{"ab", "ab"},
		{"abc", "ab"},
		{"5f2c1a3b", "5f2c1a3b"},
		{"5f2c1a3b-", "5f2c1a3b"},
		{"5f2c1a3b-1", "5f2c1a3b"},
		{"5f2c1a3b-12", "5f2c1a3b-12"},
		{"5fz", "5f"},
	}
	for _, tt := range tests {
		if got := evenHexPrefix(tt.in); got != tt.want {
			t.Errorf("evenHexPrefix(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestResolveEvaluation(t *testing.T) {
	evals := []*structs.Evaluation{
		{ID: "5f2c1a3b-0000-4000-8000-000000000001"},
		{ID: "5f2c1a3c-0000-4000-8000-000000000002"},
		{ID: "7a000000-0000-4000-8000-000000000003"},
	}
	var sent []string
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/evaluations" {
			http.Error(w, "unexpected "+r.URL.Path, http.StatusNotFound)
			return
		}
		p := r.URL.Query().Get("prefix")
		sent = append(sent, p)
		var out []*structs.Evaluation
		for _, e := range evals {
			if strings.HasPrefix(e.ID, p) {
				out = append(out, e)
			}
		}
		writeJSON(w, out)
	}, nil)
	ctx := context.Background()

	tests := []struct {
		in        string
		want      string
		ambiguous int
		notFound  bool
		sent      string
	}{
		{in: "5f2c1a3b", want: evals[0].ID, sent: "5f2c1a3b"},
		{in: "7a0", want: evals[2].ID, sent: "7a"},
		{in: "5f2c1a3", ambiguous: 2, sent: "5f2c1a"},
		{in: "deadbeef", notFound: true, sent: "deadbeef"},
		{in: evals[1].ID, want: evals[1].ID, sent: ""}, // full UUID: no lookup
	}
	for _, tt := range tests {
		sent = nil
		got, err := c.Evaluations().Resolve(ctx, tt.in, nil)
		var amb *AmbiguousError
		switch {
		case tt.ambiguous > 0:
			if !errors.As(err, &amb) || len(amb.Candidates) != tt.ambiguous {
				t.Errorf("%s: got %q, %v; want ambiguous between %d", tt.in, got, err, tt.ambiguous)
			} else if !strings.Contains(err.Error(), evals[0].ID) || !strings.Contains(err.Error(), evals[1].ID) {
				t.Errorf("%s: error does not list the candidates: %v", tt.in, err)
			}
		case tt.notFound:
			if !IsNotFound(err) {
				t.Errorf("%s: got %q, %v; want not found", tt.in, got, err)
			}
		default:
			if err != nil || got != tt.want {
				t.Errorf("%s: got %q, %v; want %q", tt.in, got, err, tt.want)
			}
		}
		wantSent := []string{tt.sent}
		if tt.sent == "" {
			wantSent = nil
		}
		if strings.Join(sent, ",") != strings.Join(wantSent, ",") {
			t.Errorf("%s: prefixes sent %q, want %q", tt.in, sent, wantSent)
		}
	}
}

func TestResolveJobExactWins(t *testing.T) {
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, []*structs.JobListStub{{ID: "web"}, {ID: "web-canary"}, {ID: "webhooks"}})
	}, nil)
	ctx := context.Background()
	if got, err := c.Jobs().Resolve(ctx, "web", nil); err != nil || got != "web" {
		t.Errorf("exact: got %q, %v; want web", got, err)
	}
	if got, err := c.Jobs().Resolve(ctx, "webh", nil); err != nil || got != "webhooks" {
		t.Errorf("unique prefix: got %q, %v; want webhooks", got, err)
	}
	var amb *AmbiguousError
	if _, err := c.Jobs().Resolve(ctx, "we", nil); !errors.As(err, &amb) || len(amb.Candidates) != 3 {
		t.Errorf("ambiguous: got %v", err)
	}
}
