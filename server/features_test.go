package server

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/structs"
)

// A leader writes large entries compressed only while every server
// gossips that it reads them: once one server does not (an older build
// during a rolling upgrade), they are written as they are.
func TestLargeEntriesCompressedOnlyWhileEveryServerReadsThem(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	n := 0
	entryType := func() structs.MessageType {
		n++
		job := testJob(fmt.Sprintf("big-%d", n))
		job.Meta = map[string]string{}
		for i := range 300 {
			job.Meta[fmt.Sprintf("key-%03d", i)] = strings.Repeat("v", 40) // about 15 KB
		}
		reply := register(t, l, job)
		var entry raft.Log
		if err := l.raftStore.GetLog(reply.JobModifyIndex, &entry); err != nil {
			t.Fatalf("read raft entry %d: %v", reply.JobModifyIndex, err)
		}
		return structs.MessageType(entry.Data[0])
	}
	testutil.WaitFor(t, 10*time.Second, "a compressed registration", func() bool {
		return entryType() == structs.CompressedEntryType
	})

	old := c.follower()
	tags := maps.Clone(old.serf.LocalMember().Tags)
	delete(tags, tagLogFeatures)
	if err := old.serf.SetTags(tags); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "a plain registration once a server does not read compressed entries", func() bool {
		return entryType() == structs.JobRegisterRequestType
	})
	if got := entryType(); got != structs.JobRegisterRequestType {
		t.Fatalf("entry type %d after the leader saw the older server, want %d (plain)", got, structs.JobRegisterRequestType)
	}
}

// A server whose build does not read the raft entry and snapshot forms
// this build writes joins gossip but is not made a raft voter: it would
// be sent a log or a snapshot it has to refuse.
func TestServerThatCannotReadTheLogIsNotMadeAVoter(t *testing.T) {
	c := newTestCluster(t, 3)
	old := advertisedLogFeatures
	advertisedLogFeatures = "" // an older build
	s3 := newTestServer(t, "s3", 3, []string{c.servers[0].SerfAddr()}, t.TempDir())
	advertisedLogFeatures = old
	t.Cleanup(s3.Shutdown)
	l := c.leader()
	// About a second normally; the deadline is for a starved CI machine (10 s
	// ran out once while the VM gave the test run under one core).
	testutil.WaitFor(t, 30*time.Second, "the older server alive in the leader's gossip", func() bool {
		for _, m := range l.serf.Members() {
			if m.Tags[tagID] == s3.nodeID && m.Status.String() == "alive" {
				return true
			}
		}
		return false
	})
	l.reconcileMembers()
	f := l.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == s3.nodeID {
			t.Fatalf("the server of an older build was added to raft as %v", srv.Suffrage)
		}
	}
	if len(f.Configuration().Servers) != 3 {
		t.Fatalf("raft has %d servers, want the 3 of this build", len(f.Configuration().Servers))
	}
}
