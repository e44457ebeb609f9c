package sqlstore

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// writerGate gives foreground write transactions priority over background
// ones (meta.Background: the collector) for SQLite's single writer
// connection. database/sql hands a freed connection to a random waiter, so
// without it a push could wait behind several collector transactions in a
// row; with it a background transaction starts only while no foreground
// one is waiting or running, and a push waits at most for the background
// transaction already in flight.
type writerGate struct {
	// running counts background transactions in flight; contended is set
	// when a foreground one arrives meanwhile (Store.ForegroundWaited).
	running   atomic.Int64
	contended atomic.Bool
	// last is when the last foreground transaction arrived (Unix ns).
	last atomic.Int64

	mu         sync.Mutex
	foreground int           // foreground transactions waiting or running
	idle       chan struct{} // closed when foreground drops to 0
	// preempt ends the preemptible background transactions in flight
	// (meta.Preemptible), by key; a foreground one arriving calls them.
	preempt map[*int]func()
}

func newWriterGate() *writerGate {
	g := &writerGate{idle: make(chan struct{})}
	close(g.idle)
	return g
}

// background registers a background transaction in flight; the returned
// func ends it.
func (g *writerGate) background() func() {
	g.running.Add(1)
	return func() { g.running.Add(-1) }
}

// preemptible registers a preemptible background transaction in flight,
// which stop ends; the returned func unregisters it.
func (g *writerGate) preemptible(stop func()) func() {
	key := new(int)
	g.mu.Lock()
	if g.preempt == nil {
		g.preempt = map[*int]func(){}
	}
	g.preempt[key] = stop
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		delete(g.preempt, key)
		g.mu.Unlock()
	}
}

// enter registers a foreground transaction, ending the preemptible
// background ones in flight; the returned func ends it.
func (g *writerGate) enter() func() {
	g.last.Store(time.Now().UnixNano())
	if g.running.Load() > 0 {
		g.contended.Store(true)
	}
	g.mu.Lock()
	if g.foreground == 0 {
		g.idle = make(chan struct{})
	}
	g.foreground++
	for key, stop := range g.preempt {
		stop()
		delete(g.preempt, key)
	}
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		g.foreground--
		if g.foreground == 0 {
			close(g.idle)
		}
		g.mu.Unlock()
	}
}

// waiting reports whether a foreground transaction waits or runs.
func (g *writerGate) waiting() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.foreground > 0
}

// wait blocks a background transaction until no foreground one is waiting
// or running.
func (g *writerGate) wait(ctx context.Context) error {
	for {
		g.mu.Lock()
		idle := g.idle
		n := g.foreground
		g.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
