package state

import (
	"bytes"
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/skiffhq/skiff/structs"
)

// encode writes v in msgpack with the structs codec settings: structs are
// maps keyed by field name, so fields can be added without a migration.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := codec.NewEncoder(&buf, structs.MsgpackHandle).Encode(v); err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return buf.Bytes(), nil
}

// decode reads msgpack written by encode into out.
func decode(buf []byte, out any) error {
	if err := structs.Decode(buf, out); err != nil {
		return fmt.Errorf("decode %T: %w", out, err)
	}
	return nil
}
