package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/skiffhq/skiff/structs"
)

// Table names. They are also the keys of the index table, whose entry for a
// table is the raft index of the last write to it.
const (
	TableJobs        = "jobs"
	TableJobVersions = "job_version"
	TableJobSummary  = "job_summary"
	TableEvals       = "evals"
	TableAllocs      = "allocs"
	TableNodes       = "nodes"
	TableDeployments = "deployment"
	TableIndex       = "index"
)

// AllNamespaces, passed as the namespace of a prefix lookup, matches every
// namespace.
const AllNamespaces = "*"

// JobTrackedVersions is how many versions of a job the job_version table
// keeps; older ones are dropped as new ones are written.
const JobTrackedVersions = 6

// IndexEntry is a row of the index table: the raft index (Value) of the
// last write to the table named Key.
type IndexEntry struct {
	Key   string
	Value uint64
}

// Index names used in the schema.
const (
	indexID           = "id"
	indexJob          = "job"
	indexNodeTerminal = "node_terminal"
	indexDeployment   = "deployment"
	indexSecretID     = "secret_id"
	indexActive       = "active"
)

func str(field string) memdb.Indexer { return &memdb.StringFieldIndex{Field: field} }

// nsKey indexes a (Namespace, field) pair, such as a job's (Namespace, ID).
func nsKey(field string) memdb.Indexer {
	return &memdb.CompoundIndex{Indexes: []memdb.Indexer{str("Namespace"), str(field)}}
}

func idIndex(ix memdb.Indexer) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: indexID, Unique: true, Indexer: ix}
}

// secondary is a non-unique index; rows without a value are left out of it.
func secondary(name string, ix memdb.Indexer) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: name, AllowMissing: true, Indexer: ix}
}

func table(name string, indexes ...*memdb.IndexSchema) *memdb.TableSchema {
	t := &memdb.TableSchema{Name: name, Indexes: map[string]*memdb.IndexSchema{}}
	for _, ix := range indexes {
		t.Indexes[ix.Name] = ix
	}
	return t
}

// schema returns the tables and indexes of the store. Non-unique indexes
// order rows with equal keys by primary key, which the reads rely on (job
// versions come out oldest first).
func schema() *memdb.DBSchema {
	allocTerminal := &memdb.ConditionalIndex{Conditional: func(obj any) (bool, error) {
		a, ok := obj.(*structs.Allocation)
		if !ok {
			return false, fmt.Errorf("want *structs.Allocation, got %T", obj)
		}
		return a.TerminalStatus(), nil
	}}
	deploymentActive := &memdb.ConditionalIndex{Conditional: func(obj any) (bool, error) {
		d, ok := obj.(*structs.Deployment)
		if !ok {
			return false, fmt.Errorf("want *structs.Deployment, got %T", obj)
		}
		return d.Active(), nil
	}}
	tables := []*memdb.TableSchema{
		table(TableIndex, idIndex(str("Key"))),
		table(TableJobs, idIndex(nsKey("ID"))),
		table(TableJobVersions,
			idIndex(&memdb.CompoundIndex{Indexes: []memdb.Indexer{
				str("Namespace"), str("ID"), &memdb.UintFieldIndex{Field: "Version"},
			}}),
		),
		table(TableJobSummary, idIndex(nsKey("JobID"))),
		table(TableEvals,
			idIndex(str("ID")),
			secondary(indexJob, nsKey("JobID")),
		),
		table(TableAllocs,
			idIndex(str("ID")),
			secondary(indexJob, nsKey("JobID")),
			secondary(indexNodeTerminal, &memdb.CompoundIndex{Indexes: []memdb.Indexer{str("NodeID"), allocTerminal}}),
			secondary(indexDeployment, str("DeploymentID")),
		),
		table(TableNodes,
			idIndex(str("ID")),
			&memdb.IndexSchema{Name: indexSecretID, Unique: true, AllowMissing: true, Indexer: str("SecretID")},
		),
		table(TableNodeUsage, idIndex(str("NodeID"))),
		table(TableDeployments,
			idIndex(str("ID")),
			secondary(indexJob, nsKey("JobID")),
			secondary(indexActive, deploymentActive),
		),
	}
	s := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{}}
	for _, t := range tables {
		s.Tables[t.Name] = t
	}
	return s
}
