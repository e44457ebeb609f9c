package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// AnalyzeReviews analyzes the review table once a backlog has made its
// statistics stale, and not again while they are fresh (PostgreSQL).
func TestAnalyzeReviews(t *testing.T) {
	s := sqltest.Open(t, sqltest.PostgresDSN(t))
	ctx := context.Background()
	analyzed := func() int64 {
		t.Helper()
		var n int64
		if err := s.DB().QueryRowContext(ctx, `SELECT analyze_count FROM pg_stat_user_tables WHERE relid = 'review'::regclass`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := s.AnalyzeReviews(ctx); err != nil {
		t.Fatal(err)
	}
	if n := analyzed(); n != 0 {
		t.Fatalf("an empty review table was analyzed %d times, want 0", n)
	}

	// A backlog of 2,000 due reviews, written on one connection whose
	// statistics are flushed at once (a backend otherwise reports them
	// up to 10 s later).
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `INSERT INTO review (kind, object, review_after, reason)
		SELECT 'tag', '1/' || i, 0, 'bench' FROM generate_series(1, 2000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var mods int64
		if err := s.DB().QueryRowContext(ctx, `SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relid = 'review'::regclass`).Scan(&mods); err != nil {
			t.Fatal(err)
		}
		if mods >= 2000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server reports %d rows written to review, want 2000", mods)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if err := s.AnalyzeReviews(ctx); err != nil {
		t.Fatal(err)
	}
	if n := analyzed(); n != 1 {
		t.Fatalf("after a backlog: analyzed %d times, want 1", n)
	}
	if err := s.AnalyzeReviews(ctx); err != nil {
		t.Fatal(err)
	}
	if n := analyzed(); n != 1 {
		t.Fatalf("with fresh statistics: analyzed %d times, want still 1", n)
	}
}
