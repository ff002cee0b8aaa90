package server

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/serf/serf"
)

// Servers gossip the forms of raft log entry and snapshot their build
// reads (tag "log", comma-separated). A server writes in a newer form
// only once every server of the raft configuration reads it, so that
// during a rolling upgrade no older server is handed an entry or a
// snapshot it would have to refuse.
const (
	tagLogFeatures = "log"
	// featureCompressed: entries compressed with S2
	// (structs.CompressedEntryType).
	featureCompressed = "s2"
	// featureJobRefs: snapshots whose allocations refer to their job
	// version (fsm.FSM.JobRefs).
	featureJobRefs = "jobref"
	// featureBatch: several writes in one entry (structs.BatchEntryType).
	featureBatch = "batch"
	logFeatures  = featureCompressed + "," + featureJobRefs + "," + featureBatch
)

// advertisedLogFeatures is what this server gossips; tests set it to
// play a server of an older build.
var advertisedLogFeatures = logFeatures

// featureCheckInterval is how long the answer of commonFeatures is reused.
const featureCheckInterval = time.Second

// featureGate remembers which features all servers read.
type featureGate struct {
	// ready is set once s.raft and s.serf are: raft's goroutines (a
	// snapshot) may ask before New has returned.
	ready   atomic.Bool
	mu      sync.Mutex
	checked time.Time
	forms   readForms // guarded by mu
}

// readForms are the raft entry and snapshot forms every server reads.
type readForms struct {
	compressed, jobRefs, batches bool
}

// readable returns which features every server reads, asking gossip
// again when the last answer is older than featureCheckInterval.
func (s *Server) readable() readForms {
	g := &s.features
	g.mu.Lock()
	defer g.mu.Unlock()
	if now := time.Now(); now.Sub(g.checked) >= featureCheckInterval {
		g.checked = now
		common := s.commonFeatures()
		forms := readForms{
			compressed: slices.Contains(common, featureCompressed),
			jobRefs:    slices.Contains(common, featureJobRefs),
			batches:    slices.Contains(common, featureBatch),
		}
		if forms != g.forms {
			s.logger.Info("raft entry and snapshot forms every server reads changed",
				"compressed_entries", forms.compressed, "snapshot_job_refs", forms.jobRefs, "batch_entries", forms.batches)
		}
		g.forms = forms
	}
	return g.forms
}

// compressEntries reports whether this server may write compressed raft
// entries: every server of the raft configuration reads them.
func (s *Server) compressEntries() bool { return s.readable().compressed }

// snapshotJobRefs reports whether this server's snapshots may refer to
// job versions: every server reads such snapshots.
func (s *Server) snapshotJobRefs() bool { return s.readable().jobRefs }

// commonFeatures returns the features of this build that every server of
// the raft configuration gossips it reads. A server gossip does not know
// (yet, or any more) reads none.
func (s *Server) commonFeatures() []string {
	if !s.features.ready.Load() {
		return nil
	}
	f := s.raft.GetConfiguration()
	if f.Error() != nil || len(f.Configuration().Servers) == 0 {
		return nil
	}
	gossiped := map[string]string{}
	for _, m := range s.serf.Members() {
		if m.Tags[tagRole] != tagRoleValue || m.Status == serf.StatusLeft {
			continue
		}
		// A live member's tags win over an older failed one's of the
		// same ID.
		if _, seen := gossiped[m.Tags[tagID]]; !seen || m.Status == serf.StatusAlive {
			gossiped[m.Tags[tagID]] = m.Tags[tagLogFeatures]
		}
	}
	common := strings.Split(logFeatures, ",")
	for _, srv := range f.Configuration().Servers {
		list, known := gossiped[string(srv.ID)]
		if !known {
			return nil
		}
		common = slices.DeleteFunc(common, func(f string) bool { return !reads(list, f) })
	}
	return common
}

// reads reports whether a gossiped feature list holds feature.
func reads(list, feature string) bool {
	return slices.Contains(strings.Split(list, ","), feature)
}

// missingFeatures returns the features this build may write that a
// server gossiping list does not read. Such a server is not made a raft
// voter: the log and snapshots it would be sent may already use them.
func missingFeatures(list string) []string {
	var missing []string
	for _, f := range strings.Split(logFeatures, ",") {
		if !reads(list, f) {
			missing = append(missing, f)
		}
	}
	return missing
}
