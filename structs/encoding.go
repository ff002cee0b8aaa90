package structs

import (
	"bytes"
	"reflect"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

//go:generate go run github.com/hashicorp/go-msgpack/v2/codec/codecgen -d 102 -o structs.generated.go -nr ^(FieldError|ValidationError|validator|configKind|fieldSet)$ job.go node.go alloc.go eval.go deployment.go rpc.go plan.go

// The msgpack encoders and decoders of the types in job.go, node.go,
// alloc.go, eval.go, deployment.go and rpc.go are generated
// (structs.generated.go, "make generate"), about twice as fast as the
// codec's reflection. TestGeneratedCodecIsCurrent fails when a type
// changed and the file was not regenerated.

// MsgpackHandle is the codec configuration of the raft log, snapshots and
// RPC: structs encode as maps keyed by field name, so that fields can be
// added without breaking old entries.
var MsgpackHandle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.RawToString = true
	h.WriteExt = true
	h.MapType = reflect.TypeOf(map[string]any(nil))
	return h
}()

// Encode returns the type byte followed by msg in msgpack.
func Encode(t MessageType, msg any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(uint8(t))
	err := codec.NewEncoder(&buf, MsgpackHandle).Encode(msg)
	return buf.Bytes(), err
}

// Decode decodes a msgpack body into out.
func Decode(buf []byte, out any) error {
	return codec.NewDecoder(bytes.NewReader(buf), MsgpackHandle).Decode(out)
}
