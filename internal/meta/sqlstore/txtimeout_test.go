package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

const testBound = 300 * time.Millisecond

// wantBoundError checks that err is the time bound's: it wraps
// context.DeadlineExceeded and names the bound.
func wantBoundError(t *testing.T, what string, err error, bound time.Duration) {
	t.Helper()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "time bound of "+bound.String()) {
		t.Errorf("%s: got %v, want an error naming the time bound of %v and wrapping context.DeadlineExceeded", what, err, bound)
	}
}

// TestTxTimeout: an Update or a View that outlives Options.TxTimeout is
// rolled back, whether it noticed or not, and nothing it wrote is visible;
// a caller's earlier deadline stays the caller's; meta.WithTxTimeout gives
// the transactions of one context another bound.
func TestTxTimeout(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			s := sqltest.OpenWith(t, b.DSN(t), sqlstore.Options{TxTimeout: testBound})
			ctx := t.Context()
			visible := func(name string) bool {
				t.Helper()
				err := s.View(ctx, func(tx meta.Tx) error {
					_, err := tx.Namespace(ctx, name, meta.LockNone)
					return err
				})
				if err != nil && !errors.Is(err, meta.ErrNotFound) {
					t.Fatalf("reading namespace %s: %v", name, err)
				}
				return err == nil
			}

			// Outlives the bound without a statement in flight: the commit
			// finds the transaction rolled back.
			start := time.Now()
			err := s.Update(ctx, func(tx meta.Tx) error {
				if _, _, err := tx.CreateNamespace(ctx, "quiet", nil); err != nil {
					return err
				}
				time.Sleep(2 * testBound)
				return nil
			})
			wantBoundError(t, "Update sleeping past the bound", err, testBound)
			if visible("quiet") {
				t.Errorf("namespace written by a transaction past its bound is visible")
			}

			// Keeps issuing statements: one fails once the bound passes.
			n := 0
			err = s.Update(ctx, func(tx meta.Tx) error {
				if _, _, err := tx.CreateNamespace(ctx, "busy", nil); err != nil {
					return err
				}
				for {
					n++
					if _, err := tx.Namespace(ctx, "busy", meta.LockNone); err != nil {
						return err
					}
					time.Sleep(time.Millisecond)
				}
			})
			if el := time.Since(start); el > 10*testBound {
				t.Errorf("two transactions bounded by %v took %v", testBound, el)
			}
			wantBoundError(t, "Update reading past the bound", err, testBound)
			if visible("busy") {
				t.Errorf("namespace written by a transaction past its bound is visible")
			}

			// A View is bounded too.
			err = s.View(ctx, func(tx meta.Tx) error {
				time.Sleep(2 * testBound)
				_, err := tx.Namespace(ctx, "busy", meta.LockNone)
				return err
			})
			wantBoundError(t, "View past the bound", err, testBound)

			// The caller's own, earlier deadline: its error, not the bound's.
			short, cancel := context.WithTimeout(ctx, testBound/6)
			err = s.Update(short, func(tx meta.Tx) error {
				time.Sleep(testBound / 3)
				_, _, err := tx.CreateNamespace(short, "short", nil)
				return err
			})
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "time bound") {
				t.Errorf("Update past the caller's deadline: got %v, want the caller's context.DeadlineExceeded", err)
			}

			// meta.WithTxTimeout: a longer bound for one context.
			long := meta.WithTxTimeout(ctx, 4*testBound)
			err = s.Update(long, func(tx meta.Tx) error {
				if _, _, err := tx.CreateNamespace(long, "long", nil); err != nil {
					return err
				}
				time.Sleep(2 * testBound)
				return nil
			})
			if err != nil {
				t.Errorf("Update within meta.WithTxTimeout's longer bound: %v", err)
			}
			if !visible("long") {
				t.Errorf("namespace written within meta.WithTxTimeout's bound is not visible")
			}
		})
	}
}

// TestTxTimeoutLockWait: a writer waiting behind a lock another session
// holds gets the bound's error instead of waiting on: on SQLite another
// connection holds the write lock (the store's busy_timeout is longer);
// on PostgreSQL another session holds the row lock, and the DSN turns the
// server's timeouts off so that the client's bound is what ends the wait,
// whether the statements run under the context given to Update or under
// one derived from it.
func TestTxTimeoutLockWait(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			storeDSN := dsn
			if b.Name == "postgres" {
				sep := "?"
				if strings.Contains(dsn, "?") {
					sep = "&"
				}
				storeDSN += sep + "statement_timeout=0&lock_timeout=0&idle_in_transaction_session_timeout=0"
			}
			s := sqltest.OpenWith(t, storeDSN, sqlstore.Options{TxTimeout: testBound, BusyTimeout: time.Minute})
			ctx := t.Context()
			if err := s.Update(ctx, func(tx meta.Tx) error {
				_, _, err := tx.CreateNamespace(ctx, "locked", nil)
				return err
			}); err != nil {
				t.Fatal(err)
			}

			other := openOther(t, dsn)
			holder, err := other.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Rollback()
			lock := `UPDATE namespace SET name = name WHERE name = 'locked'`
			if b.Name == "postgres" {
				lock = `SELECT 1 FROM namespace WHERE name = 'locked' FOR UPDATE`
			}
			if _, err := holder.ExecContext(ctx, lock); err != nil {
				t.Fatalf("taking the lock: %v", err)
			}

			for _, derived := range []bool{false, true} {
				start := time.Now()
				err = s.Update(ctx, func(tx meta.Tx) error {
					sctx := ctx
					if derived {
						var cancel context.CancelFunc
						sctx, cancel = context.WithCancel(ctx)
						defer cancel()
					}
					_, err := tx.Namespace(sctx, "locked", meta.LockUpdate)
					return err
				})
				el := time.Since(start)
				wantBoundError(t, "Update behind a held lock", err, testBound)
				if el > 5*testBound {
					t.Errorf("Update behind a held lock (derived context %v) returned after %v, want about %v", derived, el, testBound)
				}
			}
		})
	}
}

// openOther opens a connection of its own to dsn, behind the store's back.
func openOther(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	var db *sql.DB
	if strings.HasPrefix(dsn, "postgres://") {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		db = stdlib.OpenDB(*cfg)
	} else {
		c, err := sqlite.NewConnector("file:" + dsn + "?_txlock=immediate")
		if err != nil {
			t.Fatal(err)
		}
		db = sql.OpenDB(c)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// TestTxTimeoutServerSide: PostgreSQL sessions carry the bound as
// statement_timeout, lock_timeout and idle_in_transaction_session_timeout,
// so that the server ends what a vanished client leaves; meta.WithTxTimeout
// sets them for its transactions.
func TestTxTimeoutServerSide(t *testing.T) {
	s := sqltest.OpenWith(t, sqltest.PostgresDSN(t), sqlstore.Options{TxTimeout: testBound})
	ctx := t.Context()
	for _, tt := range []struct {
		ctx  context.Context
		want string
	}{
		{ctx, "300ms"},
		{meta.WithTxTimeout(ctx, 5*time.Second), "5s"},
	} {
		err := s.Update(tt.ctx, func(tx meta.Tx) error {
			for _, p := range []string{"statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"} {
				got, err := sqlstore.QueryString(tt.ctx, tx, "SHOW "+p)
				if err != nil {
					return err
				}
				if got != tt.want {
					t.Errorf("%s: got %s, want %s", p, got, tt.want)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
