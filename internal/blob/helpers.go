package blob

import (
	"context"
	"io"
	"sync"
)

// Helpers the backends share.

// IDLocks serialises operations on one upload id within a process (the
// Store contract: calls on one id are serialised in-process; across
// processes the upload session row excludes). The zero value is ready.
type IDLocks struct {
	mu sync.Mutex
	m  map[string]*idLock
}

type idLock struct {
	mu   sync.Mutex
	refs int
}

// Lock locks id and returns the function that unlocks it. Entries live only
// while someone holds or waits for them.
func (l *IDLocks) Lock(id string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*idLock)
	}
	e := l.m[id]
	if e == nil {
		e = &idLock{}
		l.m[id] = e
	}
	e.refs++
	l.mu.Unlock()

	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		l.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
}

// ContextReader returns a reader that fails with ctx's error once ctx is
// done, so a long copy stops when its request is cancelled.
func ContextReader(ctx context.Context, r io.Reader) io.Reader {
	return &ctxReader{ctx: ctx, r: r}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
