package rpc

import (
	"errors"
	"net/rpc"
	"reflect"
)

// InmemCodec is a net/rpc server codec for one in-process call: the
// arguments and reply are passed by pointer, never encoded.
type InmemCodec struct {
	Method string
	Args   any
	Reply  any
	Err    error
}

var _ rpc.ServerCodec = (*InmemCodec)(nil)

// ReadRequestHeader fills in the method.
func (c *InmemCodec) ReadRequestHeader(req *rpc.Request) error {
	req.ServiceMethod = c.Method
	return nil
}

// ReadRequestBody copies the arguments into the endpoint's value.
func (c *InmemCodec) ReadRequestBody(args any) error {
	if args == nil {
		return nil
	}
	src := reflect.Indirect(reflect.ValueOf(c.Args))
	dst := reflect.Indirect(reflect.ValueOf(args))
	dst.Set(src)
	return nil
}

// WriteResponse copies the endpoint's reply out, or records its error.
func (c *InmemCodec) WriteResponse(resp *rpc.Response, reply any) error {
	if resp.Error != "" {
		c.Err = errors.New(resp.Error)
		return nil
	}
	src := reflect.Indirect(reflect.ValueOf(reply))
	dst := reflect.Indirect(reflect.ValueOf(c.Reply))
	dst.Set(src)
	return nil
}

// Close does nothing.
func (c *InmemCodec) Close() error { return nil }

// CallInmem calls method on srv in process.
func CallInmem(srv *rpc.Server, method string, args, reply any) error {
	codec := &InmemCodec{Method: method, Args: args, Reply: reply}
	if err := srv.ServeRequest(codec); err != nil {
		return err
	}
	return codec.Err
}
