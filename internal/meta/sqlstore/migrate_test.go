package sqlstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/review"
)

// TestMigrationReviewCause: migration 6 adds review.cause; of the reviews
// a version-5 database holds, the one whose reason is exactly "pushed" (a
// manifest PUT's) gets cause pushed, so collect_untagged=false keeps the
// manifests it kept before; the others get "" (unknown).
func TestMigrationReviewCause(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) { testMigrationReviewCause(t, b.DSN(t)) })
	}
}

func testMigrationReviewCause(t *testing.T, dsn string) {
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.MigrateTo(ctx, 5); err != nil {
		t.Fatalf("migrating to 5: %v", err)
	}
	d := "sha256:" + strings.Repeat("ab", 32)
	sqltest.Exec(t, dsn, `INSERT INTO review (kind, object, review_after, attempts, reason) VALUES
		('manifest', '1@`+d+`', 0, 0, 'pushed'),
		('manifest', '2@`+d+`', 0, 0, 'parent `+d+` deleted'),
		('manifest', '3@`+d+`', 0, 0, 'pushed again')`)
	if n, err := s.Migrate(ctx); err != nil || n != s.LatestVersion()-5 {
		t.Fatalf("migrating from 5: applied %d, %v; want %d, nil", n, err, s.LatestVersion()-5)
	}
	var got []meta.Review
	err = s.Update(ctx, func(tx meta.Tx) (err error) {
		got, err = tx.ClaimReviews(ctx, time.UnixMicro(0), meta.ReviewFilter{}, 10)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	causes := map[string]review.Cause{}
	for _, r := range got {
		causes[r.Object] = r.Cause
	}
	want := map[string]review.Cause{"1@" + d: review.CausePushed, "2@" + d: "", "3@" + d: ""}
	if diff := cmp.Diff(want, causes); diff != "" {
		t.Errorf("causes after migration 6 (-want +got):\n%s", diff)
	}
}
