package state

import (
	"errors"
	"sync"

	"github.com/skiffhq/skiff/structs"
)

// errClosed is returned by a MemDB after Close.
var errClosed = errors.New("client state is closed")

// MemDB is a DB in memory, for tests. Like BoltDB it stores encoded
// copies, so a test that shares it between two runners sees exactly what
// a restarted agent would read back from disk.
type MemDB struct {
	mu     sync.Mutex
	allocs map[string]*memAlloc // guarded by mu
	closed bool                 // guarded by mu
}

type memAlloc struct {
	alloc []byte            // nil until PutAlloc
	tasks map[string][]byte // by task name
}

var _ DB = (*MemDB)(nil)

// NewMemDB returns an empty in-memory DB.
func NewMemDB() *MemDB {
	return &MemDB{allocs: map[string]*memAlloc{}}
}

// entryLocked returns the entry of allocID, creating it.
func (m *MemDB) entryLocked(allocID string) *memAlloc {
	e := m.allocs[allocID]
	if e == nil {
		e = &memAlloc{tasks: map[string][]byte{}}
		m.allocs[allocID] = e
	}
	return e
}

// PutAlloc implements DB.
func (m *MemDB) PutAlloc(alloc *structs.Allocation) error {
	if alloc.ID == "" {
		return errors.New("store alloc: the allocation has no ID")
	}
	buf, err := encode(alloc)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	m.entryLocked(alloc.ID).alloc = buf
	return nil
}

// Allocs implements DB.
func (m *MemDB) Allocs() ([]*structs.Allocation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed
	}
	var out []*structs.Allocation
	for _, e := range m.allocs {
		if e.alloc == nil {
			continue
		}
		a := new(structs.Allocation)
		if err := decode(e.alloc, a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// PutTaskState implements DB.
func (m *MemDB) PutTaskState(allocID, task string, s *LocalTaskState) error {
	buf, err := encode(s)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	m.entryLocked(allocID).tasks[task] = buf
	return nil
}

// TaskStates implements DB.
func (m *MemDB) TaskStates(allocID string) (map[string]*LocalTaskState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed
	}
	out := map[string]*LocalTaskState{}
	e := m.allocs[allocID]
	if e == nil {
		return out, nil
	}
	for name, buf := range e.tasks {
		s := new(LocalTaskState)
		if err := decode(buf, s); err != nil {
			return nil, err
		}
		out[name] = s
	}
	return out, nil
}

// DeleteAlloc implements DB.
func (m *MemDB) DeleteAlloc(allocID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	delete(m.allocs, allocID)
	return nil
}

// Close implements DB.
func (m *MemDB) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
