package server

import (
	"bytes"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/skiffhq/skiff/structs"
)

const noopType = structs.NoopRequestType

// Operator serves raft membership and snapshot operations.
type Operator struct{ srv *Server }

// RaftGetConfiguration returns the raft configuration as the leader sees it.
func (o *Operator) RaftGetConfiguration(args *structs.GenericRequest, reply *structs.RaftConfigurationResponse) (err error) {
	defer o.srv.recoverEndpoint("Operator.RaftGetConfiguration", &err)
	if done, err := o.srv.forward("Operator.RaftGetConfiguration", args, args, reply); done {
		return err
	}
	future := o.srv.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return err
	}
	names := map[string]string{}
	for _, m := range o.srv.serf.Members() {
		if p, ok := parseServer(m); ok {
			names[p.ID] = m.Name
		}
	}
	leaderAddr, leaderID := o.srv.raft.LeaderWithID()
	reply.Index = future.Index()
	reply.Servers = nil
	for _, srv := range future.Configuration().Servers {
		reply.Servers = append(reply.Servers, &structs.RaftServer{
			ID: string(srv.ID), Node: names[string(srv.ID)], Address: string(srv.Address),
			Leader: srv.ID == leaderID && srv.Address == leaderAddr, Voter: srv.Suffrage == raft.Voter,
			RaftProtocol: "3",
		})
	}
	return nil
}

// RaftRemovePeer removes a server from the raft configuration by ID or
// address. The leader refuses to remove itself: transfer leadership first.
func (o *Operator) RaftRemovePeer(args *structs.RaftPeerRequest, reply *structs.GenericResponse) (err error) {
	defer o.srv.recoverEndpoint("Operator.RaftRemovePeer", &err)
	if done, err := o.srv.forward("Operator.RaftRemovePeer", args, args, reply); done {
		return err
	}
	future := o.srv.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return err
	}
	for _, srv := range future.Configuration().Servers {
		if (args.ID != "" && string(srv.ID) == args.ID) || (args.Address != "" && string(srv.Address) == args.Address) {
			if string(srv.ID) == o.srv.nodeID {
				return fmt.Errorf("%w: peer %s is the leader itself; stop it (or transfer leadership) first", ErrBadRequest, srv.ID)
			}
			f := o.srv.raft.RemoveServer(srv.ID, 0, 0)
			if err := f.Error(); err != nil {
				return fmt.Errorf("remove raft peer %s: %w", srv.ID, err)
			}
			reply.Index = f.Index()
			return nil
		}
	}
	which := args.ID
	if which == "" {
		which = args.Address
	}
	return fmt.Errorf("raft peer %q %w; list peers with \"skiff operator raft list-peers\"", which, structs.ErrNotFound)
}

// SnapshotSave returns a snapshot file of the cluster state, taken on
// the leader.
func (o *Operator) SnapshotSave(args *structs.GenericRequest, reply *structs.SnapshotResponse) (err error) {
	defer o.srv.recoverEndpoint("Operator.SnapshotSave", &err)
	if done, err := o.srv.forward("Operator.SnapshotSave", args, args, reply); done {
		return err
	}
	var buf bytes.Buffer
	meta, err := o.srv.SaveSnapshot(&buf)
	if err != nil {
		return err
	}
	reply.Snapshot = buf.Bytes()
	reply.Index = meta.Index
	o.srv.setQueryMeta(&reply.QueryMeta)
	return nil
}

// SnapshotRestore replaces the cluster state with a snapshot file.
func (o *Operator) SnapshotRestore(args *structs.SnapshotRestoreRequest, reply *structs.GenericResponse) (err error) {
	defer o.srv.recoverEndpoint("Operator.SnapshotRestore", &err)
	if done, err := o.srv.forward("Operator.SnapshotRestore", args, args, reply); done {
		return err
	}
	if err := o.srv.RestoreSnapshot(bytes.NewReader(args.Snapshot)); err != nil {
		return err
	}
	reply.Index = o.srv.raft.AppliedIndex()
	return nil
}
