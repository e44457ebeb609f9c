package sqlstore_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
)

// TestBackgroundYieldsToForeground: on SQLite's single writer, a
// background transaction (the collector) that is waiting starts only after
// every foreground transaction waiting with it — a push never queues
// behind a collection.
func TestBackgroundYieldsToForeground(t *testing.T) {
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "berth.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	record := func(name string) func(meta.Tx) error {
		return func(meta.Tx) error {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			return nil
		}
	}
	release := make(chan struct{})
	holding := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a push holding the writer
		defer wg.Done()
		_ = s.Update(ctx, func(tx meta.Tx) error {
			close(holding)
			<-release
			return record("push 1")(tx)
		})
	}()
	<-holding
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := s.Update(meta.Background(ctx), record("collector")); err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(50 * time.Millisecond) // the collector is waiting
	go func() {
		defer wg.Done()
		if err := s.Update(ctx, record("push 2")); err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(50 * time.Millisecond) // so is the second push
	close(release)
	wg.Wait()
	want := []string{"push 1", "push 2", "collector"}
	if len(order) != 3 || order[0] != want[0] || order[1] != want[1] || order[2] != want[2] {
		t.Fatalf("transactions ran in order %v, want %v", order, want)
	}

	// A background transaction waiting for the writer gives up with its
	// context.
	hold := make(chan struct{})
	held := make(chan struct{})
	go func() {
		_ = s.Update(ctx, func(meta.Tx) error { close(held); <-hold; return nil })
	}()
	<-held
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := s.Update(meta.Background(cctx), record("late")); err == nil {
		t.Fatal("a background transaction ran while a push held the writer")
	}
	close(hold)

	// A push that arrives while a collector transaction runs is reported
	// once, so the collector makes its next transaction smaller.
	if s.ForegroundWaited() {
		t.Fatal("ForegroundWaited before any contention")
	}
	bgHeld, bgRelease := make(chan struct{}), make(chan struct{})
	bgDone := make(chan error, 1)
	go func() {
		bgDone <- s.Update(meta.Background(ctx), func(meta.Tx) error { close(bgHeld); <-bgRelease; return nil })
	}()
	<-bgHeld
	pushDone := make(chan error, 1)
	go func() { pushDone <- s.Update(ctx, record("push 3")) }()
	time.Sleep(30 * time.Millisecond) // the push is waiting
	close(bgRelease)
	if err := <-bgDone; err != nil {
		t.Fatal(err)
	}
	if err := <-pushDone; err != nil {
		t.Fatal(err)
	}
	if !s.ForegroundWaited() {
		t.Fatal("a push waited for a collector transaction and ForegroundWaited said no")
	}
	if s.ForegroundWaited() {
		t.Fatal("ForegroundWaited reported the same wait twice")
	}
}

// TestGateAcrossStores: two stores on one SQLite file, as `serve` and a
// `berth gc` process (docs/design/gc.md, "Pushes first across processes").
// A push that arrives while the collector's transaction runs is seen
// waiting by the collector, and the collector's next transaction, begun
// the moment the last one commits, starts only after the push: without
// the gate the push sleeps in SQLite's busy handler and the collector
// wins the writer again. A push whose time bound ends while it waits gives
// its place back.
func TestGateAcrossStores(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "berth.db")
	gc, err := sqlstore.Open(ctx, path, sqlstore.Options{BesideServe: true})
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	if _, err := gc.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	serve, err := sqlstore.Open(ctx, path, sqlstore.Options{Existing: true, TxTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer serve.Close()

	var mu sync.Mutex
	var order []string
	record := func(name string) {
		mu.Lock()
		order = append(order, name)
		mu.Unlock()
	}
	bg := meta.Background(ctx)
	held, release := make(chan struct{}), make(chan struct{})
	collected := make(chan error, 1)
	go func() {
		err := gc.Update(bg, func(meta.Tx) error { close(held); <-release; record("collector 1"); return nil })
		if err == nil {
			err = gc.Update(bg, func(meta.Tx) error { record("collector 2"); return nil })
		}
		collected <- err
	}()
	<-held
	if gc.ForegroundWaiting() {
		t.Fatal("ForegroundWaiting with no push")
	}
	pushed := make(chan error, 1)
	go func() {
		pushed <- serve.Update(ctx, func(meta.Tx) error { record("push"); time.Sleep(20 * time.Millisecond); return nil })
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !gc.ForegroundWaiting() {
		if time.Now().After(deadline) {
			t.Fatal("the collector's store never saw the other store's push waiting")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	if err := <-collected; err != nil {
		t.Fatal(err)
	}
	want := []string{"collector 1", "push", "collector 2"}
	if len(order) != 3 || order[0] != want[0] || order[1] != want[1] || order[2] != want[2] {
		t.Fatalf("transactions ran in order %v, want %v", order, want)
	}
	if gc.ForegroundWaiting() || serve.ForegroundWaiting() {
		t.Fatal("ForegroundWaiting after every push ended")
	}

	// A push that gives up waiting (its time bound) leaves the gate free.
	short, err := sqlstore.Open(ctx, path, sqlstore.Options{Existing: true, TxTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	held, release = make(chan struct{}), make(chan struct{})
	go func() {
		collected <- gc.Update(bg, func(meta.Tx) error { close(held); <-release; return nil })
	}()
	<-held
	if err := short.Update(ctx, func(meta.Tx) error { return nil }); err == nil {
		t.Fatal("a push ran while the collector's transaction held the writer")
	}
	close(release)
	if err := <-collected; err != nil {
		t.Fatal(err)
	}
	next, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	if err := gc.Update(next, func(meta.Tx) error { return nil }); err != nil {
		t.Fatalf("the collector after an abandoned push: %v", err)
	}
}
