package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/berth/berth/internal/datadir"
)

// fileGate is writerGate across processes: a `berth gc` process and
// `serve` on one SQLite file (docs/design/gc.md, "Pushes first across
// processes"). It holds open file description locks on two bytes of
// <db>-gate, always taken in this order:
//
//   - waiting (byte 0): shared by every foreground write transaction, from
//     before it waits for the writer until it ends; taken exclusively by a
//     background one only to begin, so that it begins only while no
//     foreground transaction of any process waits or runs;
//   - turn (byte 1): shared by foreground transactions, exclusive for a
//     background one from before its BEGIN until it ends, so that a push
//     that arrived meanwhile is woken the moment it commits (no busy-handler
//     sleep).
//
// Each transaction locks through a file description of its own (files):
// open file description locks conflict between descriptions, never within
// one.
type fileGate struct {
	path string

	mu    sync.Mutex
	files []*os.File // free descriptions
	probe *os.File   // Waiting's own, for its non-blocking test
}

const (
	gateWaiting int64 = 0
	gateTurn    int64 = 1
)

func openFileGate(dbPath string) (*fileGate, error) {
	g := &fileGate{path: dbPath + "-gate"}
	f, err := g.open()
	if err != nil {
		return nil, err
	}
	g.probe = f
	return g, nil
}

func (g *fileGate) open() (*os.File, error) {
	f, err := os.OpenFile(g.path, os.O_RDWR|os.O_CREATE, datadir.FileMode)
	if err != nil {
		return nil, fmt.Errorf("opening the writers' gate: %w", err)
	}
	return f, nil
}

func (g *fileGate) close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	errs := []error{g.probe.Close()}
	for _, f := range g.files {
		errs = append(errs, f.Close())
	}
	g.files = nil
	return errors.Join(errs...)
}

// gateHold is one transaction's hold on the gate; release ends it.
type gateHold struct {
	g *fileGate
	f *os.File
}

func (h gateHold) release() {
	if err := setLock(h.f, unix.F_UNLCK, gateWaiting, 2, false); err != nil {
		// The locks go with the description.
		h.f.Close()
		return
	}
	h.g.mu.Lock()
	h.g.files = append(h.g.files, h.f)
	h.g.mu.Unlock()
}

// foreground waits until no background transaction runs, and holds
// waiting and turn shared until release. ctx bounds the wait.
func (g *fileGate) foreground(ctx context.Context) (gateHold, error) {
	h, err := g.take()
	if err != nil {
		return h, err
	}
	for _, b := range []int64{gateWaiting, gateTurn} {
		if err := h.lock(ctx, unix.F_RDLCK, b); err != nil {
			return gateHold{}, err
		}
	}
	return h, nil
}

// background waits until no foreground transaction waits or runs and no
// other background one runs, and holds turn exclusively until release.
//
// It holds waiting only to test turn, never while it waits for turn:
// a push arriving while it waits behind another background transaction
// must not wait for two. Woken with turn, it gives it back if a push
// arrived meanwhile, and starts over.
func (g *fileGate) background(ctx context.Context) (gateHold, error) {
	h, err := g.take()
	if err != nil {
		return h, err
	}
	for {
		if err := h.lock(ctx, unix.F_WRLCK, gateWaiting); err != nil {
			return gateHold{}, err
		}
		free := setLock(h.f, unix.F_WRLCK, gateTurn, 1, false) == nil
		if err := setLock(h.f, unix.F_UNLCK, gateWaiting, 1, false); err != nil {
			h.release()
			return gateHold{}, fmt.Errorf("releasing the writers' gate: %w", err)
		}
		if free {
			return h, nil
		}
		if err := h.lock(ctx, unix.F_WRLCK, gateTurn); err != nil {
			return gateHold{}, err
		}
		if !g.waiting() {
			return h, nil
		}
		if err := setLock(h.f, unix.F_UNLCK, gateTurn, 1, false); err != nil {
			h.release()
			return gateHold{}, fmt.Errorf("releasing the writers' gate: %w", err)
		}
	}
}

// take returns a free file description of the gate.
func (g *fileGate) take() (gateHold, error) {
	g.mu.Lock()
	var f *os.File
	if n := len(g.files); n > 0 {
		f, g.files = g.files[n-1], g.files[:n-1]
	}
	g.mu.Unlock()
	if f == nil {
		var err error
		if f, err = g.open(); err != nil {
			return gateHold{}, err
		}
	}
	return gateHold{g: g, f: f}, nil
}

// lock locks byte b as typ, waiting at most until ctx ends; on an error the
// hold is over (released, or its description left to the wait's goroutine).
func (h gateHold) lock(ctx context.Context, typ int16, b int64) error {
	abandoned, err := lockContext(ctx, h.f, typ, b)
	if err == nil {
		return nil
	}
	if !abandoned {
		h.release()
	}
	return fmt.Errorf("waiting for the writers' gate: %w", err)
}

// waiting reports whether a foreground transaction of any process waits
// for the writer or runs, without waiting.
func (g *fileGate) waiting() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	err := setLock(g.probe, unix.F_WRLCK, gateWaiting, 1, false)
	if err != nil {
		return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES)
	}
	_ = setLock(g.probe, unix.F_UNLCK, gateWaiting, 1, false)
	return false
}

// lockContext locks byte b of f as typ, waiting at most until ctx ends. A
// wait that ctx ended goes on in a goroutine, which closes f once it has
// the lock (the close releases every lock of the description): abandoned
// then says f is no longer the caller's.
func lockContext(ctx context.Context, f *os.File, typ int16, b int64) (abandoned bool, err error) {
	err = setLock(f, typ, b, 1, false)
	if err == nil || !(errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES)) {
		return false, err
	}
	done := make(chan error, 1)
	go func() { done <- setLock(f, typ, b, 1, true) }()
	select {
	case err := <-done:
		return false, err
	case <-ctx.Done():
		go func() {
			<-done
			f.Close()
		}()
		return true, context.Cause(ctx)
	}
}

// setLock sets (typ F_RDLCK or F_WRLCK) or clears (F_UNLCK) an open file
// description lock on n bytes from b; wait blocks until it is granted.
func setLock(f *os.File, typ int16, b, n int64, wait bool) error {
	cmd := unix.F_OFD_SETLK
	if wait {
		cmd = unix.F_OFD_SETLKW
	}
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: b, Len: n}
	for {
		err := unix.FcntlFlock(f.Fd(), cmd, &lk)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
