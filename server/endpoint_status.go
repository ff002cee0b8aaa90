package server

import (
	"github.com/skiffhq/skiff/structs"
)

// Status answers questions about the cluster itself.
type Status struct{ srv *Server }

// Ping answers with nothing; it checks that the server is reachable.
func (st *Status) Ping(args *structs.GenericRequest, reply *struct{}) error { return nil }

// Leader returns the leader's RPC address, "" when there is none. It is
// answered by the server asked, from its own view.
func (st *Status) Leader(args *structs.GenericRequest, reply *string) error {
	*reply = st.srv.Leader()
	return nil
}

// Peers returns the RPC addresses of the raft voters this server knows.
func (st *Status) Peers(args *structs.GenericRequest, reply *[]string) error {
	future := st.srv.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return err
	}
	out := []string{}
	for _, srv := range future.Configuration().Servers {
		out = append(out, string(srv.Address))
	}
	*reply = out
	return nil
}

// Members returns the servers gossip knows.
func (st *Status) Members(args *structs.GenericRequest, reply *structs.ServerMembersResponse) error {
	*reply = *st.srv.Members()
	return nil
}
