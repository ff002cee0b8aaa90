package structs

import (
	"reflect"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

//go:generate go run github.com/hashicorp/go-msgpack/v2/codec/codecgen -d 102 -o structs.generated.go -nr ^(FieldError|ValidationError|validator|configKind|fieldSet)$ job.go node.go alloc.go eval.go deployment.go rpc.go plan.go
//go:generate go run ../internal/codecfix structs.generated.go

// The msgpack encoders and decoders of the types in job.go, node.go,
// alloc.go, eval.go, deployment.go and rpc.go are generated
// (structs.generated.go, "make generate"), about twice as fast as the
// codec's reflection. TestGeneratedCodecIsCurrent fails when a type
// changed and the file was not regenerated.

// MsgpackHandle is the codec configuration of the raft log, snapshots and
// RPC: structs encode as maps keyed by field name, so that fields can be
// added without breaking old entries; AllocMetric alone is an array of
// its fields, which only grows at the end (see its doc).
var MsgpackHandle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.RawToString = true
	h.WriteExt = true
	h.MapType = reflect.TypeOf(map[string]any(nil))
	return h
}()

// encoder is a reusable msgpack encoder and its buffer.
type encoder struct {
	buf []byte
	enc *codec.Encoder
}

// maxPooledBuffer bounds the encode buffers kept for reuse.
const maxPooledBuffer = 1 << 20

// The encoders and decoders of Encode and Decode are reused: making one
// per message, and growing a buffer by doubling up to each message's
// size, was a fifth of the bytes a busy server allocated (plan entries of
// a hundred allocations are over 100 KB).
var (
	encoders = sync.Pool{New: func() any {
		e := &encoder{buf: make([]byte, 0, 4096)}
		e.enc = codec.NewEncoderBytes(&e.buf, MsgpackHandle)
		return e
	}}
	decoders = sync.Pool{New: func() any { return codec.NewDecoderBytes(noBytes, MsgpackHandle) }}
	noBytes  = []byte{}
)

// Encode returns the type byte followed by msg in msgpack, in a slice of
// exactly that size (an uncompressed raft log entry).
func Encode(t MessageType, msg any) ([]byte, error) { return EncodeEntry(t, msg, false) }

// plainEntry returns the type byte followed by body, in a slice of exactly
// that size.
func plainEntry(t MessageType, body []byte) []byte {
	out := make([]byte, 1+len(body))
	out[0] = byte(t)
	copy(out[1:], body)
	return out
}

// encodePooled encodes msg into the buffer of a pooled encoder; release
// it once done with the buffer.
func encodePooled(msg any) (*encoder, error) {
	e := encoders.Get().(*encoder)
	e.buf = e.buf[:0]
	e.enc.ResetBytes(&e.buf)
	return e, e.enc.Encode(msg)
}

func (e *encoder) release() {
	if cap(e.buf) <= maxPooledBuffer {
		encoders.Put(e)
	}
}

// Decode decodes a msgpack body into out.
func Decode(buf []byte, out any) error {
	d := decoders.Get().(*codec.Decoder)
	d.ResetBytes(buf)
	err := d.Decode(out)
	d.ResetBytes(noBytes) // do not keep buf alive from the pool
	decoders.Put(d)
	return err
}
