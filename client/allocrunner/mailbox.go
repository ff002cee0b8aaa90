package allocrunner

import "sync"

// mailbox is an unbounded queue with a wake-up channel. Posting never
// blocks, so any goroutine may post to a state machine's mailbox while
// holding no lock and without waiting for the owner, and the owner (the
// only reader) never has to answer a sender to make progress.
type mailbox struct {
	mu    sync.Mutex
	items []any // guarded by mu
	wake  chan struct{}
}

func newMailbox() *mailbox { return &mailbox{wake: make(chan struct{}, 1)} }

// post queues ev and wakes the owner.
func (m *mailbox) post(ev any) {
	m.mu.Lock()
	m.items = append(m.items, ev)
	m.mu.Unlock()
	m.poke()
}

// poke wakes the owner without an event (for level-triggered owners that
// re-read what changed).
func (m *mailbox) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// take returns and removes every queued event, oldest first.
func (m *mailbox) take() []any {
	m.mu.Lock()
	defer m.mu.Unlock()
	items := m.items
	m.items = nil
	return items
}
