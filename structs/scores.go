package structs

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// The names of the scores a placement records for its best candidates.
const (
	ScoreBinPack      = "binpack"
	ScoreAntiAffinity = "job-anti-affinity"
	ScoreAffinity     = "node-affinity"
	ScoreSpread       = "allocation-spread"
	ScoreReschedule   = "node-reschedule-penalty"
)

// canonical holds one copy of the constant strings that stored objects
// repeat (statuses, score names), for CanonicalString.
var canonical = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{
		AllocDesiredStatusRun, AllocDesiredStatusStop, AllocDesiredStatusEvict,
		AllocClientStatusPending, AllocClientStatusRunning, AllocClientStatusComplete,
		AllocClientStatusFailed, AllocClientStatusLost, AllocClientStatusUnknown,
		ScoreBinPack, ScoreAntiAffinity, ScoreAffinity, ScoreSpread, ScoreReschedule,
	} {
		m[s] = s
	}
	return m
}()

// CanonicalString returns the program's own copy of s when s is one of
// the statuses or score names that stored objects repeat, else s: a
// string decoded from the wire is a fresh copy, which the store need not
// keep once per object.
func CanonicalString(s string) string {
	if c, ok := canonical[s]; ok {
		return c
	}
	return s
}

// Score is one named score of a candidate node.
type Score struct {
	Name  string
	Value float64
}

// ScoreSet is a candidate node's scores, by name. It is a short list
// rather than a map: each allocation keeps the scores of its five best
// candidates, and a map for each was a quarter of the server's heap at a
// million allocations. On the wire (msgpack) and in JSON it is a map of
// name to score, as in Nomad's API and in earlier raft log entries.
type ScoreSet []Score

// Get returns the score called name.
func (s ScoreSet) Get(name string) (float64, bool) {
	for _, sc := range s {
		if sc.Name == name {
			return sc.Value, true
		}
	}
	return 0, false
}

// Map returns the scores as a map (nil for none).
func (s ScoreSet) Map() map[string]float64 {
	if s == nil {
		return nil
	}
	m := make(map[string]float64, len(s))
	for _, sc := range s {
		m[sc.Name] = sc.Value
	}
	return m
}

// scoreSetOf returns the scores of m sorted by name.
func scoreSetOf(m map[string]float64) ScoreSet {
	if m == nil {
		return nil
	}
	s := make(ScoreSet, 0, len(m))
	for k, v := range m {
		s = append(s, Score{Name: k, Value: v})
	}
	sortScores(s)
	return s
}

// sortScores orders scores by name, so that every server keeps a decoded
// set in the same order whatever order it came in.
func sortScores(s ScoreSet) {
	slices.SortFunc(s, func(a, b Score) int { return strings.Compare(a.Name, b.Name) })
}

// MarshalJSON writes the scores as a JSON object.
func (s ScoreSet) MarshalJSON() ([]byte, error) { return json.Marshal(s.Map()) }

// UnmarshalJSON reads a JSON object of scores.
func (s *ScoreSet) UnmarshalJSON(b []byte) error {
	var m map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*s = scoreSetOf(m)
	return nil
}

// CodecEncodeSelf writes the scores as a msgpack map, in list order,
// through the helpers the generated codecs use (no map in between).
func (s ScoreSet) CodecEncodeSelf(e *codec.Encoder) {
	_, r := codec.GenHelperEncoder(e)
	if s == nil {
		r.EncodeNil()
		return
	}
	r.WriteMapStart(len(s))
	for _, sc := range s {
		r.WriteMapElemKey()
		encodeString(e, sc.Name)
		r.WriteMapElemValue()
		r.EncodeFloat64(sc.Value)
	}
	r.WriteMapEnd()
}

// CodecDecodeSelf reads a msgpack map of scores, sorted by name.
func (s *ScoreSet) CodecDecodeSelf(d *codec.Decoder) {
	_, r := codec.GenHelperDecoder(d)
	if r.TryDecodeAsNil() {
		*s = nil
		return
	}
	// Grown as entries come, not sized by the length on the wire: a
	// message could claim billions of entries.
	out := decodeScoresInto(r, make(ScoreSet, 0, 2))
	sortScores(out)
	*s = out
}
