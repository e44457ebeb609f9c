package sqlstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/review"
)

// TestClaimDueWalksTheIndex: on SQLite the collector's claim reads a kind's
// due reviews through review_kind_due_object in the claim's order and
// stops after the claim. With the index on (kind, review_after) alone (before
// migration 12) the reviews due at the same time, a backlog recorded at one
// instant, were read and sorted in a temporary b-tree for every claim. The
// claim still takes them in (review_after, object) order.
func TestClaimDueWalksTheIndex(t *testing.T) {
	s := sqltest.Open(t, filepath.Join(t.TempDir(), "berth.db"))
	ctx := context.Background()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	if err := s.Update(ctx, func(tx meta.Tx) error {
		for i := range 200 {
			at := t0
			if i%2 == 1 {
				at = t0.Add(time.Second) // two groups of equal due times
			}
			if err := tx.AddReview(ctx, meta.Review{Kind: review.KindTag, Object: review.TagObject(1, int64(1000-i)),
				ReviewAfter: at, Cause: review.CauseTagEnded, Reason: "test"}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(explain(t, s, s.ClaimDueStatement(time.Now().UnixMicro(), 8)), "\n")
	if !strings.Contains(plan, "USING INDEX review_kind_due_object") || strings.Contains(plan, "TEMP B-TREE") {
		t.Errorf("the claim does not walk review_kind_due_object in order:\n%s", plan)
	}

	var got []string
	if err := s.Update(ctx, func(tx meta.Tx) error {
		rs, err := tx.ClaimDue(ctx, review.KindTag, time.Now(), "", 4)
		for _, r := range rs {
			got = append(got, fmt.Sprintf("%d %s", r.ReviewAfter.Sub(t0)/time.Second, r.Object))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The first group (due at t0: the even i, objects 1@1000, 1@998, …,
	// 1@802) in the objects' text order.
	want := []string{"0 " + review.TagObject(1, 1000), "0 " + review.TagObject(1, 802), "0 " + review.TagObject(1, 804), "0 " + review.TagObject(1, 806)}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("claimed %v, want %v", got, want)
	}
}
