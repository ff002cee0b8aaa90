package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/skiffhq/skiff/fsm"
	bolt "go.etcd.io/bbolt"
)

const (
	raftDir           = "raft"
	raftDBFile        = "raft.db"
	snapshotsRetained = 2
	raftLogCacheSize  = 512
)

// setupRaft opens the raft log and snapshots under DataDir and starts
// raft. A damaged raft.db or unreadable snapshots are refused with advice
// on how to recover, never served.
func (s *Server) setupRaft() error {
	dir := filepath.Join(s.config.DataDir, raftDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create raft dir: %w", err)
	}
	dbPath := filepath.Join(dir, raftDBFile)
	store, err := openBolt(dbPath)
	if err != nil {
		return err
	}
	s.raftStore = store
	cache, err := raft.NewLogCache(raftLogCacheSize, store)
	if err != nil {
		return fmt.Errorf("raft log cache: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, snapshotsRetained, s.logger.Named("raft"))
	if err != nil {
		return fmt.Errorf("raft snapshot store in %s: %w", dir, err)
	}
	s.snapshots = snaps

	s.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:                  s.listener.RaftLayer(),
		MaxPool:                 3,
		Timeout:                 10 * time.Second,
		Logger:                  s.logger.Named("raft-net"),
		MsgpackUseNewTimeFormat: true,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.nodeID)
	rc.Logger = s.logger.Named("raft")
	rc.HeartbeatTimeout = s.config.RaftHeartbeatTimeout
	rc.ElectionTimeout = s.config.RaftElectionTimeout
	rc.LeaderLeaseTimeout = s.config.RaftLeaderLeaseTimeout
	rc.SnapshotThreshold = s.config.RaftSnapshotThreshold
	rc.SnapshotInterval = s.config.RaftSnapshotInterval
	rc.TrailingLogs = s.config.RaftTrailingLogs
	rc.MaxAppendEntries = s.config.RaftMaxAppendEntries
	rc.BatchApplyCh = true
	rc.NotifyCh = s.leaderCh
	if err := raft.ValidateConfig(rc); err != nil {
		return fmt.Errorf("raft config: %w", err)
	}

	hasState, err := raft.HasExistingState(cache, store, snaps)
	if err != nil {
		return fmt.Errorf("inspect raft state in %s: %w", dir, err)
	}
	if !hasState && s.config.BootstrapExpect == 1 {
		conf := raft.Configuration{Servers: []raft.Server{{
			ID: rc.LocalID, Address: s.transport.LocalAddr(), Suffrage: raft.Voter,
		}}}
		if err := raft.BootstrapCluster(rc, cache, store, snaps, s.transport, conf); err != nil {
			return fmt.Errorf("bootstrap single-server raft: %w", err)
		}
	}

	if err := s.recoverFromPeersJSON(dir, rc, cache, store, snaps, hasState); err != nil {
		return err
	}
	if err := checkLogCovered(dir, store, snaps); err != nil {
		return err
	}

	r, err := raft.NewRaft(rc, s.fsm, cache, store, snaps, s.transport)
	if err != nil {
		return fmt.Errorf("start raft from %s: %w; if the snapshots there are damaged, move %s aside "+
			"and restart this server so that it copies the state from the leader (in a multi-server cluster), "+
			"or restore a saved snapshot with \"skiff operator snapshot restore\"", dir, err, dir)
	}
	s.raft = r
	return nil
}

// checkLogCovered refuses a raft log whose first entries were compacted
// into snapshots that are no longer there: raft would stop on the missing
// entries (a panic) or, worse, apply only the rest.
func checkLogCovered(dir string, logs raft.LogStore, snaps raft.SnapshotStore) error {
	first, err := logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("read raft log in %s: %w", dir, err)
	}
	if first <= 1 {
		return nil
	}
	list, err := snaps.List()
	if err != nil {
		return fmt.Errorf("list raft snapshots in %s: %w", dir, err)
	}
	for _, meta := range list {
		if meta.Index+1 >= first {
			return nil
		}
	}
	return fmt.Errorf("the raft log in %s starts at entry %d, but no snapshot there holds the entries before it "+
		"(were snapshots removed?): this server cannot rebuild its state; move %s aside "+
		"and restart this server so that it copies the state from the leader (in a multi-server cluster), "+
		"or restore a saved snapshot with \"skiff operator snapshot restore\"", dir, first, dir)
}

// openBolt opens raft.db, checking its pages first, so that a damaged
// file is refused with a message instead of a panic later.
func openBolt(path string) (st *raftboltdb.BoltStore, err error) {
	advice := fmt.Sprintf("raft log %s is damaged", path)
	howto := "; stop this server, move its data_dir/raft aside and restart it so it copies the state from the other servers, " +
		"or (single server) restore your last \"skiff operator snapshot save\" file into a fresh data_dir"
	defer func() {
		if r := recover(); r != nil {
			st, err = nil, fmt.Errorf("%s (%v)%s", advice, r, howto)
		}
	}()
	if fi, statErr := os.Stat(path); statErr == nil && fi.Size() > 0 {
		if err := checkBolt(path); err != nil {
			return nil, fmt.Errorf("%s (%v)%s", advice, err, howto)
		}
	}
	st, err = raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bolt.Options{Timeout: 2 * time.Second}})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("raft log %s is locked by another process: is another skiff agent using this data_dir?", path)
		}
		return nil, fmt.Errorf("%s (%v)%s", advice, err, howto)
	}
	return st, nil
}

func checkBolt(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, ReadOnly: true})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return fmt.Errorf("locked by another process: is another skiff agent using this data_dir?")
		}
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var first error
		for err := range tx.Check() { // drain: Check's goroutine holds the tx
			if first == nil {
				first = err
			}
		}
		return first
	})
}

// peersFile is the manual recovery file: when quorum is lost for good, an
// operator stops every surviving server, writes the servers that should
// form the cluster into data_dir/raft/peers.json on each of them, and
// starts them again (see the README's "Data and recovery").
const peersFile = "peers.json"

// recoverFromPeersJSON replaces the raft configuration with the one in
// peers.json, if that file exists, keeping the log and snapshots, and
// renames the file so that it is applied once.
func (s *Server) recoverFromPeersJSON(dir string, rc *raft.Config, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore, hasState bool) error {
	path := filepath.Join(dir, peersFile)
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	conf, err := raft.ReadConfigJSON(path)
	if err != nil {
		return fmt.Errorf("recover from %s: %w; it must be a JSON list of {\"id\": \"<server node ID>\", \"address\": \"ip:rpc-port\", \"non_voter\": false}", path, err)
	}
	if !hasState {
		return fmt.Errorf("recover from %s: this server has no raft state to recover; remove the file", path)
	}
	found := false
	for _, srv := range conf.Servers {
		found = found || srv.ID == rc.LocalID
	}
	if !found {
		return fmt.Errorf("recover from %s: this server's ID %s is not in it; add it (its ID is in %s)", path, rc.LocalID, filepath.Join(s.config.DataDir, "node-id"))
	}
	s.logger.Warn("recovering the raft configuration from peers.json", "path", path, "servers", len(conf.Servers))
	if err := raft.RecoverCluster(rc, fsm.New(s.logger), logs, stable, snaps, s.transport, conf); err != nil {
		return fmt.Errorf("recover from %s: %w", path, err)
	}
	done := path + ".applied"
	if err := os.Rename(path, done); err != nil {
		return fmt.Errorf("recovered, but could not rename %s (remove it before the next start): %w", path, err)
	}
	return nil
}
