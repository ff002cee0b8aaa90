package structs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// Every placement keeps its AllocMetric, so a server holding a million
// allocations decodes and keeps a million of them; their small maps and
// five scored candidates were a quarter of the objects a plan entry
// decoded into. Counts and ScoreMetas decode into fewer objects: counts
// equal to ones decoded recently are those same maps, shared, and the
// scored candidates of one placement share one array for themselves, one
// for their scores and one string for their node IDs (a server's store
// then points the IDs at its nodes' own: state.share). A stored
// AllocMetric is read-only (Allocation.Copy shares it); copy a Counts
// before changing it.

// Counts counts nodes by name: by datacenter, class, constraint or
// resource dimension.
type Counts map[string]int

// Decoded Counts are shared through a table keyed by their content
// (sorted, so that maps written in any order share). It holds at most
// maxSharedCounts; when full it starts over. Counts of more than
// maxSharedNames names, or of longer names, are not shared.
const (
	maxSharedCounts    = 4096
	maxSharedNames     = 8
	maxSharedNameBytes = 512
)

var sharedCounts = struct {
	sync.Mutex
	byContent map[string]Counts // guarded by the mutex
}{byContent: map[string]Counts{}}

// CodecEncodeSelf writes the counts as a msgpack map in key order, so
// that equal counts have one wire form.
func (c Counts) CodecEncodeSelf(e *codec.Encoder) {
	_, r := codec.GenHelperEncoder(e)
	if c == nil {
		r.EncodeNil()
		return
	}
	var stack [maxSharedNames]string
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

// countEntry is one name and count of a Counts being decoded: the name
// is names[start:end] of the decode's buffer.
type countEntry struct {
	start, end int
	n          int
}

// CodecDecodeSelf reads a msgpack map of counts; counts equal to ones
// decoded recently come back as the same map.
func (c *Counts) CodecDecodeSelf(d *codec.Decoder) {
	z, r := codec.GenHelperDecoder(d)
	if r.TryDecodeAsNil() {
		*c = nil
		return
	}
	// Read into buffers on the stack; the map is made only for counts
	// not seen recently.
	var namesBuf [maxSharedNameBytes]byte
	var entriesBuf [maxSharedNames]countEntry
	names, entries := namesBuf[:0], entriesBuf[:0]
	n := r.ReadMapStart()
	for i := 0; more(r, n, i); i++ {
		r.ReadMapElemKey()
		start := len(names)
		names = append(names, r.DecodeStringAsBytes()...)
		r.ReadMapElemValue()
		entries = append(entries, countEntry{start, len(names), int(z.C.IntV(r.DecodeInt64(), strconv.IntSize))})
	}
	r.ReadMapEnd()
	build := func() Counts {
		m := make(Counts, len(entries))
		for _, e := range entries {
			m[string(names[e.start:e.end])] = e.n
		}
		return m
	}
	if len(entries) > maxSharedNames || len(names) > maxSharedNameBytes {
		*c = build()
		return
	}
	slices.SortStableFunc(entries, func(a, b countEntry) int {
		return bytes.Compare(names[a.start:a.end], names[b.start:b.end])
	})
	var contentBuf [maxSharedNameBytes + maxSharedNames*2*binary.MaxVarintLen64]byte
	content := contentBuf[:0]
	for _, e := range entries {
		content = binary.AppendUvarint(content, uint64(e.end-e.start))
		content = append(content, names[e.start:e.end]...)
		content = binary.AppendVarint(content, int64(e.n))
	}
	sharedCounts.Lock()
	shared, ok := sharedCounts.byContent[string(content)]
	sharedCounts.Unlock()
	if ok {
		*c = shared
		return
	}
	m := build()
	sharedCounts.Lock()
	if len(sharedCounts.byContent) >= maxSharedCounts {
		sharedCounts.byContent = map[string]Counts{}
	}
	sharedCounts.byContent[string(content)] = m
	sharedCounts.Unlock()
	*c = m
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

// candidateField is a field of NodeScoreMeta, numbered by its position
// in a candidate's array; candidateUnknown is any later one (skipped).
type candidateField int

const (
	candidateNodeID candidateField = iota
	candidateScores
	candidateNormScore
	candidateUnknown
)

// candidateFieldNamed returns the field a candidate's map key names.
func candidateFieldNamed(key []byte) candidateField {
	switch string(key) {
	case "NodeID":
		return candidateNodeID
	case "Scores":
		return candidateScores
	case "NormScore":
		return candidateNormScore
	}
	return candidateUnknown
}

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
	var presentBuf, hasScoresBuf [maxScoreMetas]bool
	var idBuf [maxScoreMetas * 40]byte
	var idEndBuf, scoreEndBuf [maxScoreMetas]int
	present := presentBuf[:0] // false for a nil candidate
	hasScores := hasScoresBuf[:0]
	ids, idEnd, scoreEnd := idBuf[:0], idEndBuf[:0], scoreEndBuf[:0]
	for i := 0; more(r, n, i); i++ {
		r.ReadArrayElem()
		metas = append(metas, NodeScoreMeta{})
		present = append(present, !r.TryDecodeAsNil())
		hasScores = append(hasScores, false)
		if present[i] {
			m := &metas[i]
			// A candidate is an array (what this version writes) or a
			// map keyed by field name (what earlier versions wrote).
			field := func(f candidateField) {
				switch f {
				case candidateNodeID:
					if !r.TryDecodeAsNil() {
						ids = append(ids, r.DecodeStringAsBytes()...)
					}
				case candidateScores:
					if !r.TryDecodeAsNil() {
						hasScores[i] = true
						scores = decodeScoresInto(r, scores)
					}
				case candidateNormScore:
					if !r.TryDecodeAsNil() {
						m.NormScore = r.DecodeFloat64()
					}
				default:
					z.DecSwallow()
				}
			}
			switch ct := r.ContainerType(); ct {
			case valueTypeArray:
				fields := r.ReadArrayStart()
				for j := 0; more(r, fields, j); j++ {
					r.ReadArrayElem()
					field(candidateField(min(j, int(candidateUnknown))))
				}
				r.ReadArrayEnd()
			case valueTypeMap:
				fields := r.ReadMapStart()
				for j := 0; more(r, fields, j); j++ {
					r.ReadMapElemKey()
					f := candidateFieldNamed(r.DecodeStringAsBytes())
					r.ReadMapElemValue()
					field(f)
				}
				r.ReadMapEnd()
			default:
				panic(fmt.Errorf("decode ScoreMetaData[%d]: want an array or a map, got %v", i, ct))
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
			if hasScores[i] { // an empty map stays empty, not nil
				m.Scores = scores[scoreStart:scoreEnd[i]:scoreEnd[i]]
				sortScores(m.Scores)
			}
			out[i] = m
		}
		idStart, scoreStart = idEnd[i], scoreEnd[i]
	}
	*s = out
}

// decodeScoresInto appends a msgpack map of scores to into, with the
// program's own copy of known score names. It is generic rather than
// taking a mapReader: the codec's helper is a struct, and boxing it in an
// interface would allocate on every call.
func decodeScoresInto[R mapReader](r R, into ScoreSet) ScoreSet {
	n := r.ReadMapStart()
	for i := 0; more(r, n, i); i++ {
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

// more reports whether a container of n entries (-1: of a length not
// given, ended by a break) has an entry at i.
func more[R interface{ CheckBreak() bool }](r R, n, i int) bool {
	if n >= 0 {
		return i < n
	}
	return !r.CheckBreak()
}

// mapReader is the part of the codec's decode helper that reads maps.
type mapReader interface {
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
