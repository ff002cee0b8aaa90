package server

import (
	"reflect"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// TestRPCTypesEncodeThemselves guards the wire: a request or reply type
// declared outside structs that embeds a structs type (QueryOptions,
// QueryMeta, ...) inherits that type's generated msgpack encoder and
// silently loses its own fields when the call crosses the network (in
// process nothing is encoded, so only multi-server and client calls
// break). Every RPC argument and reply type must either be declared in
// structs, where codecgen generates its codec, or not encode itself.
func TestRPCTypesEncodeThemselves(t *testing.T) {
	selfer := reflect.TypeOf((*codec.Selfer)(nil)).Elem()
	s := &Server{}
	for name, rcvr := range s.endpoints() {
		rt := reflect.TypeOf(rcvr)
		for i := range rt.NumMethod() {
			m := rt.Method(i)
			if m.Type.NumIn() != 3 || m.Type.NumOut() != 1 {
				continue
			}
			for _, arg := range []reflect.Type{m.Type.In(1), m.Type.In(2)} {
				elem := arg
				if elem.Kind() == reflect.Pointer {
					elem = elem.Elem()
				}
				if elem.Kind() != reflect.Struct || !arg.Implements(selfer) {
					continue
				}
				if pkg := elem.PkgPath(); pkg != "github.com/skiffhq/skiff/structs" {
					t.Errorf("%s.%s: %s (package %s) encodes itself only through an embedded generated type; declare it in structs and run make generate",
						name, m.Name, elem.Name(), pkg)
				}
			}
		}
	}
}
