package sqlstore_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/review"
)

// A transaction whose caller's context ends in the middle (a collector
// stopping, a client going away) is rolled back then and there: the rows
// it locked are free for the next transaction at once. Found by
// TestScenario03ReuploadDuringDelete on PostgreSQL: a collector cancelled
// between its claim and its next statement left its session idle in
// transaction, the claimed reviews locked, and every later collector
// skipped them.
func TestCancelledTransactionReleasesItsLocks(t *testing.T) {
	sqltest.ForEach(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		t0 := time.Now().UTC().Truncate(time.Millisecond)
		r := meta.Review{Kind: review.KindBlob, Object: "sha256:ab00000000000000000000000000000000000000000000000000000000000000", ReviewAfter: t0, Reason: "test"}
		if err := s.Update(ctx, func(tx meta.Tx) error { return tx.AddReview(ctx, r) }); err != nil {
			t.Fatal(err)
		}
		for i := range 300 {
			cctx, cancel := context.WithCancel(ctx)
			// Cancelled at any point: between statements, during one,
			// while reading its rows, during the commit.
			timer := time.AfterFunc(time.Duration(rand.Int64N(int64(3*time.Millisecond))), cancel)
			err := s.Update(cctx, func(tx meta.Tx) error {
				for {
					if _, err := tx.ClaimDue(cctx, review.KindBlob, t0, "", 10); err != nil {
						return err
					}
					if _, err := tx.StoredReviews(cctx, review.KindBlob, []string{r.Object}); err != nil {
						return err
					}
				}
			})
			timer.Stop()
			cancel()
			if err == nil {
				t.Fatalf("round %d: a cancelled transaction succeeded", i)
			}
		}
		// The next claim finds the review: nothing holds it.
		var n int
		if err := s.Update(ctx, func(tx meta.Tx) error {
			rs, err := tx.ClaimDue(ctx, review.KindBlob, t0, "", 10)
			n = len(rs)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatal("the review stays locked by a cancelled transaction")
		}
	})
}
