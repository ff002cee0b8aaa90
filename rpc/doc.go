// Package rpc is Skiff's server-to-server and client-to-server transport.
//
// One TCP port carries both raft and RPC. The first byte of every
// connection says what follows:
//
//	ConnRaft       raft's own protocol (hashicorp/raft NetworkTransport)
//	ConnMultiplex  a yamux session; every stream is one net/rpc conversation
//	               in msgpack (net-rpc-msgpackrpc with structs.MsgpackHandle)
//	ConnLiveness   a client node's hello, then nothing: the connection's end
//	               is the fast signal that the node may be gone
//
// Pool keeps one yamux session per server and opens a stream per call.
// InmemCodec lets the agent's HTTP handlers call the same net/rpc endpoints
// in process, without encoding.
package rpc
