package sqlstore_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
)

// scratchStore opens a SQLite store on a fresh file with a scratch table
// t(b BLOB) for writes of the test's own.
func scratchStore(t *testing.T) (*sqlstore.Store, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "berth.db")
	s, err := sqlstore.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Update(ctx, func(tx meta.Tx) error {
		return sqlstore.ExecString(ctx, tx, `CREATE TABLE t (b BLOB)`)
	}); err != nil {
		t.Fatal(err)
	}
	return s, path
}

// writeRows commits one transaction inserting n rows of 4 KiB: about n
// WAL frames.
func writeRows(t *testing.T, s *sqlstore.Store, n int) {
	t.Helper()
	ctx := context.Background()
	row := bytes.Repeat([]byte{'x'}, 4000)
	if err := s.Update(ctx, func(tx meta.Tx) error {
		for range n {
			if err := sqlstore.ExecString(ctx, tx, `INSERT INTO t (b) VALUES (?)`, row); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestBackgroundCheckpoint: commits are followed by a checkpoint on the
// checkpointer's own connection, so the WAL is copied back without a
// commit of the writer paying for it; the writer's own automatic
// checkpoint is raised to the bound.
func TestBackgroundCheckpoint(t *testing.T) {
	ctx := context.Background()
	s, _ := scratchStore(t)
	var auto string
	if err := s.Update(ctx, func(tx meta.Tx) error {
		var err error
		auto, err = sqlstore.QueryString(ctx, tx, `PRAGMA wal_autocheckpoint`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if auto != "8000" {
		t.Errorf("writer's wal_autocheckpoint = %s, want the bound 8000", auto)
	}
	before, _, _, ok := s.BackgroundCheckpoints()
	if !ok {
		t.Fatal("a SQLite file store has no background checkpointer")
	}
	for range 5 {
		writeRows(t, s, 100) // 500 frames: below SQLite's 1,000 and the bound
	}
	// The last commit's kick runs a checkpoint after checkpointDelay that
	// finds every frame committed so far, and copies them all: nothing
	// reads an old snapshot.
	deadline := time.Now().Add(10 * time.Second)
	for {
		runs, frames, copied, _ := s.BackgroundCheckpoints()
		if runs > before && frames >= 500 && copied == frames {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("within 10 s of 500 frames of commits: %d background checkpoints, the last saw %d frames and copied %d; want one that copied at least 500", runs-before, frames, copied)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWALBoundUnderBackToBackWrites: with writes committing back to back
// a background checkpoint never finds the WAL fully copied when a
// transaction begins, so SQLite never starts it over; the writer's own
// checkpoint at the bound does, and the WAL file stays near the bound
// instead of growing with every commit. (With wal_autocheckpoint(0) on
// the writer this WAL grew past 40 MB.)
func TestWALBoundUnderBackToBackWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("writes ~50 MB")
	}
	defer sqlstore.SetWALBound(1000)()
	s, path := scratchStore(t)
	const perTx, txs = 250, 48 // 12,000 frames, 12x the bound
	maxWAL := int64(0)
	for range txs {
		writeRows(t, s, perTx)
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		maxWAL = max(maxWAL, fi.Size())
	}
	// The bound plus the transaction that crosses it, plus the one that
	// begins before its checkpoint is done, at 4 KiB pages and 24-byte
	// frame headers; the index pages of each insert add a few frames.
	limit := int64(1000+3*perTx) * (4096 + 24) * 5 / 4
	if maxWAL > limit {
		t.Errorf("the WAL grew to %d bytes under %d back-to-back transactions of ~%d frames, want at most %d (the bound 1000 frames)", maxWAL, txs, perTx, limit)
	}
	t.Logf("largest WAL %d bytes (limit %d)", maxWAL, limit)
}

// TestCheckpointInWriterSwitch: the benchmark switch puts SQLite's own
// automatic checkpoint back in the writer, with no background one.
func TestCheckpointInWriterSwitch(t *testing.T) {
	t.Setenv("BERTH_SQLITE_CHECKPOINT_IN_WRITER", "1")
	ctx := context.Background()
	s, _ := scratchStore(t)
	if _, _, _, ok := s.BackgroundCheckpoints(); ok {
		t.Error("the switch is set, and the store still has a background checkpointer")
	}
	var auto string
	if err := s.Update(ctx, func(tx meta.Tx) error {
		var err error
		auto, err = sqlstore.QueryString(ctx, tx, `PRAGMA wal_autocheckpoint`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if auto != "1000" {
		t.Errorf("writer's wal_autocheckpoint = %s, want SQLite's 1000", auto)
	}
}

// TestCloseTwice: closing a store twice (tests' cleanups do) stops the
// checkpointer once and does not panic.
func TestCloseTwice(t *testing.T) {
	s, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "berth.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
}
