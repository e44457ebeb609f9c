package sqlstore_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
)

// TestForegroundPreemptsBackground: on SQLite a push that arrives while a
// preemptible background transaction (the collector's, meta.Preemptible)
// runs does not wait for it: the statement in flight is interrupted, the
// transaction rolls back — nothing of it is committed — and Update says
// meta.ErrPreempted. The statement here never ends by itself, so without
// preemption the push would wait for the transaction's time bound and the
// background transaction would end with that bound, not ErrPreempted. A
// background transaction not marked preemptible is still waited for.
func TestForegroundPreemptsBackground(t *testing.T) {
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "berth.db"), sqlstore.Options{TxTimeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	mark := func(ctx context.Context, tx meta.Tx, v string) error {
		return sqlstore.Exec(ctx, tx, `INSERT INTO namespace (name) VALUES ('`+v+`')`)
	}
	count := func(name string) string {
		return readString(t, ctx, s, false, `SELECT CAST(COUNT(*) AS TEXT) FROM namespace WHERE name = '`+name+`'`)
	}

	// A preemptible collector transaction, busy in a statement that runs
	// until it is interrupted, after a write of its own.
	bg := meta.Preemptible(meta.Background(ctx))
	running := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Update(bg, func(tx meta.Tx) error {
			if err := mark(bg, tx, "collected"); err != nil {
				return err
			}
			close(running)
			_, err := sqlstore.QueryString(bg, tx, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT CAST(COUNT(*) AS TEXT) FROM c`)
			return err
		})
	}()
	<-running
	if err := s.Update(ctx, func(tx meta.Tx) error { return mark(ctx, tx, "pushed") }); err != nil {
		t.Fatalf("push: %v", err)
	}
	if err := <-done; !errors.Is(err, meta.ErrPreempted) {
		t.Fatalf("collector transaction: %v, want meta.ErrPreempted", err)
	}
	if got := count("collected"); got != "0" {
		t.Errorf("the preempted transaction's write is there (%s rows): it must roll back", got)
	}
	if got := count("pushed"); got != "1" {
		t.Errorf("the push's write: %s rows, want 1", got)
	}
	// The writer connection is usable by the next collector transaction.
	if err := s.Update(bg, func(tx meta.Tx) error { return mark(bg, tx, "collected") }); err != nil {
		t.Fatalf("collector transaction after a preemption: %v", err)
	}

	// Not marked preemptible: the push waits, and the background
	// transaction commits.
	entered, release := make(chan struct{}), make(chan struct{})
	plain := meta.Background(ctx)
	go func() {
		done <- s.Update(plain, func(tx meta.Tx) error {
			if err := mark(plain, tx, "kept"); err != nil {
				return err
			}
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered
	pushed := make(chan error, 1)
	go func() { pushed <- s.Update(ctx, func(tx meta.Tx) error { return mark(ctx, tx, "pushed later") }) }()
	select {
	case err := <-pushed:
		t.Fatalf("the push did not wait for a background transaction that is not preemptible (%v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("background transaction: %v", err)
	}
	if err := <-pushed; err != nil {
		t.Fatalf("push: %v", err)
	}
	if got := count("kept"); got != "1" {
		t.Errorf("background transaction's write: %s rows, want 1 (committed)", got)
	}
}
