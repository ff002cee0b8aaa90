package structs

import (
	"errors"
	"slices"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// Every placement keeps its AllocMetric, so a server holding a million
// allocations decodes and keeps a million of them; their small maps and
// five scored candidates were a quarter of the objects a plan entry
// decoded into. Counts and ScoreMetas keep the wire form (the msgpack
// maps and arrays the generated codecs wrote before them) and decode
// into fewer objects: counts equal to ones decoded recently are those
// same maps, shared, and the scored candidates of one placement share
// one array for themselves, one for their scores and one string for
// their node IDs. A stored AllocMetric is read-only (Allocation.Copy
// shares it); copy a Counts before changing it.

// Counts counts nodes by name: by datacenter, class, constraint or
// resource dimension.
type Counts map[string]int

// maxSharedCounts bounds the decoded Counts kept for sharing; when full,
// the table starts over.
const maxSharedCounts = 4096

// maxSharedCountsBytes is the largest encoded Counts that is shared.
const maxSharedCountsBytes = 512

var sharedCounts = struct {
	sync.Mutex
	byWire map[string]Counts
}{byWire: map[string]Counts{}}

// CodecEncodeSelf writes the counts as a msgpack map in key order, so
// that equal counts have one wire form.
func (c Counts) CodecEncodeSelf(e *codec.Encoder) {
	_, r := codec.GenHelperEncoder(e)
	if c == nil {
		r.EncodeNil()
		return
	}
	var stack [8]string
	keys := stack[:0]
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	r.WriteMapStart(len(keys))
	for _, k := range keys {
		r.WriteMapElemKey()
		encodeString(e, k)
		r.WriteMapElemValue()
		r.EncodeInt(int64(c[k]))
	}
	r.WriteMapEnd()
}

// CodecDecodeSelf reads a msgpack map of counts; counts equal to ones
// decoded recently come back as the same map.
func (c *Counts) CodecDecodeSelf(d *codec.Decoder) {
	z, r := codec.GenHelperDecoder(d)
	if r.TryDecodeAsNil() {
		*c = nil
		return
	}
	wire := z.DecRaw()
	if len(wire) > maxSharedCountsBytes {
		*c = decodeCounts(d, wire)
		return
	}
	sharedCounts.Lock()
	shared, ok := sharedCounts.byWire[string(wire)]
	sharedCounts.Unlock()
	if ok {
		*c = shared
		return
	}
	m := decodeCounts(d, wire)
	sharedCounts.Lock()
	if len(sharedCounts.byWire) >= maxSharedCounts {
		sharedCounts.byWire = map[string]Counts{}
	}
	sharedCounts.byWire[string(wire)] = m
	sharedCounts.Unlock()
	*c = m
}

// decodeCounts decodes the wire form of a Counts (a map[string]int)
// that d read; a malformed one fails d's decode.
func decodeCounts(d *codec.Decoder, wire []byte) Counts {
	var m map[string]int
	if err := Decode(wire, &m); err != nil {
		panic(err) // the codec turns a panic in a Selfer into d's error
	}
	return m
}

// ScoreMetas is the scores of a placement's best candidates.
type ScoreMetas []*NodeScoreMeta

// CodecEncodeSelf writes the candidates as a msgpack array of arrays
// [NodeID, Scores, NormScore]: positional, like AllocMetric.
func (s ScoreMetas) CodecEncodeSelf(e *codec.Encoder) {
	_, r := codec.GenHelperEncoder(e)
	if s == nil {
		r.EncodeNil()
		return
	}
	r.WriteArrayStart(len(s))
	for _, m := range s {
		r.WriteArrayElem()
		if m == nil {
			r.EncodeNil()
			continue
		}
		r.WriteArrayStart(3)
		r.WriteArrayElem()
		encodeString(e, m.NodeID)
		r.WriteArrayElem()
		m.Scores.CodecEncodeSelf(e)
		r.WriteArrayElem()
		r.EncodeFloat64(m.NormScore)
		r.WriteArrayEnd()
	}
	r.WriteArrayEnd()
}

// candidateFields are the positions of a candidate's array: the fields
// of NodeScoreMeta, and "" for any later one (skipped).
var candidateFields = []string{"NodeID", "Scores", "NormScore", ""}

// The codec's container types, as its generated code compares them.
const (
	valueTypeMap   = 9
	valueTypeArray = 10
)

// maxScoreMetas bounds what a decode allocates up front: the length on
// the wire is not trusted (placements keep five candidates).
const maxScoreMetas = 16

// CodecDecodeSelf reads a msgpack array of candidates into one array of
// NodeScoreMeta, one of Score and one string of node IDs. Unknown fields
// are skipped, as the generated codecs do.
func (s *ScoreMetas) CodecDecodeSelf(d *codec.Decoder) {
	z, r := codec.GenHelperDecoder(d)
	if r.TryDecodeAsNil() {
		*s = nil
		return
	}
	n := r.ReadArrayStart()
	metas := make([]NodeScoreMeta, 0, min(max(n, 0), maxScoreMetas))
	scores := make(ScoreSet, 0, cap(metas)) // one each is the usual: bin packing alone
	// Scratch on the stack for the usual few candidates.
	var presentBuf [maxScoreMetas]bool
	var idBuf [maxScoreMetas * 40]byte
	var idEndBuf, scoreEndBuf [maxScoreMetas]int
	present := presentBuf[:0] // false for a nil candidate
	ids, idEnd, scoreEnd := idBuf[:0], idEndBuf[:0], scoreEndBuf[:0]
	for i := 0; (n >= 0 && i < n) || (n < 0 && !r.CheckBreak()); i++ {
		r.ReadArrayElem()
		metas = append(metas, NodeScoreMeta{})
		present = append(present, !r.TryDecodeAsNil())
		if present[i] {
			m := &metas[i]
			// A candidate is an array (what this version writes) or a
			// map keyed by field name (what earlier versions wrote).
			field := func(name string) {
				switch name {
				case "NodeID":
					ids = append(ids, r.DecodeStringAsBytes()...)
				case "Scores":
					scores = decodeScoresInto(r, scores)
				case "NormScore":
					m.NormScore = r.DecodeFloat64()
				default:
					z.DecSwallow()
				}
			}
			switch r.ContainerType() {
			case valueTypeArray:
				fields := r.ReadArrayStart()
				for j := 0; (fields >= 0 && j < fields) || (fields < 0 && !r.CheckBreak()); j++ {
					r.ReadArrayElem()
					field(candidateFields[min(j, len(candidateFields)-1)])
				}
				r.ReadArrayEnd()
			case valueTypeMap:
				fields := r.ReadMapStart()
				for j := 0; (fields >= 0 && j < fields) || (fields < 0 && !r.CheckBreak()); j++ {
					r.ReadMapElemKey()
					key := r.DecodeStringAsBytes()
					r.ReadMapElemValue()
					field(string(key))
				}
				r.ReadMapEnd()
			default:
				panic(errors.New("a scored candidate must be an array or a map"))
			}
		}
		idEnd = append(idEnd, len(ids))
		scoreEnd = append(scoreEnd, len(scores))
	}
	r.ReadArrayEnd()
	if cap(scores) > len(scores)+len(scores)/4 { // grown by doubling: kept, so trim
		scores = slices.Clone(scores)
	}
	allIDs := string(ids)
	out := make(ScoreMetas, len(metas))
	idStart, scoreStart := 0, 0
	for i := range metas {
		if present[i] {
			m := &metas[i]
			m.NodeID = allIDs[idStart:idEnd[i]]
			if scoreEnd[i] > scoreStart {
				m.Scores = scores[scoreStart:scoreEnd[i]:scoreEnd[i]]
				sortScores(m.Scores)
			}
			out[i] = m
		}
		idStart, scoreStart = idEnd[i], scoreEnd[i]
	}
	*s = out
}

// decodeScoresInto appends a msgpack map of scores (or nothing, for nil)
// to into, with the program's own copy of known score names.
func decodeScoresInto[R mapReader](r R, into ScoreSet) ScoreSet {
	if r.TryDecodeAsNil() {
		return into
	}
	n := r.ReadMapStart()
	for i := 0; (n >= 0 && i < n) || (n < 0 && !r.CheckBreak()); i++ {
		r.ReadMapElemKey()
		name := r.DecodeStringAsBytes()
		canon, ok := canonical[string(name)]
		if !ok {
			canon = string(name)
		}
		r.ReadMapElemValue()
		into = append(into, Score{Name: canon, Value: r.DecodeFloat64()})
	}
	r.ReadMapEnd()
	return into
}

// mapReader is the part of the codec's decode helper that reads maps.
type mapReader interface {
	TryDecodeAsNil() bool
	ReadMapStart() int
	CheckBreak() bool
	ReadMapElemKey()
	ReadMapElemValue()
	ReadMapEnd()
	DecodeStringAsBytes() []byte
	DecodeFloat64() float64
}

// utf8Encoding is the codec's UTF-8 string encoding (the generated code's
// codecSelferCcUTF8102, which this file cannot use: the generator
// removes the generated file before it builds the package).
const utf8Encoding = 1

// encodeString writes s as the generated codecs write strings.
func encodeString(e *codec.Encoder, s string) {
	z, r := codec.GenHelperEncoder(e)
	if z.EncBasicHandle().StringToRaw {
		r.EncodeStringBytesRaw(z.BytesView(s))
	} else {
		r.EncodeStringEnc(utf8Encoding, s)
	}
}
