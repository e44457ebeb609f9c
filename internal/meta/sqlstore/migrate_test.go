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

// TestMigrationUsageBackfill: migration 9 computes every usage counter
// from the rows a version-9 database holds — a blob shared by two
// repositories of a namespace and by a second namespace, counted once per
// scope — so an upgraded registry starts exact.
func TestMigrationUsageBackfill(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) { testMigrationUsageBackfill(t, b.DSN(t)) })
	}
}

func testMigrationUsageBackfill(t *testing.T, dsn string) {
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.MigrateTo(ctx, 8); err != nil {
		t.Fatalf("migrating to 8: %v", err)
	}
	d := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	sqltest.Exec(t, dsn, `INSERT INTO namespace (id, name) VALUES (1, 'a'), (2, 'b')`)
	sqltest.Exec(t, dsn, `INSERT INTO repository (id, namespace_id, name, created_at) VALUES (1, 1, 'a/x', 0), (2, 1, 'a/y', 0), (3, 2, 'b/z', 0)`)
	sqltest.Exec(t, dsn, `INSERT INTO blob (digest, size, storage_key, created_at) VALUES ('`+d("1")+`', 1000, 'k1', 0), ('`+d("2")+`', 20, 'k2', 0)`)
	sqltest.Exec(t, dsn, `INSERT INTO repository_blob (repository_id, blob_digest, created_at) VALUES
		(1, '`+d("1")+`', 0), (1, '`+d("2")+`', 0), (2, '`+d("1")+`', 0), (3, '`+d("1")+`', 0)`)
	sqltest.Exec(t, dsn, `INSERT INTO manifest (repository_id, digest, media_type, size, body, pushed_at) VALUES
		(1, '`+d("a")+`', 'x', 3, 'abc', 0), (1, '`+d("b")+`', 'x', 4, 'abcd', 0), (2, '`+d("c")+`', 'x', 5, 'abcde', 0), (3, '`+d("d")+`', 'x', 6, 'abcdef', 0)`)
	sqltest.Exec(t, dsn, `INSERT INTO manifest_blob (repository_id, manifest_digest, blob_digest) VALUES
		(1, '`+d("a")+`', '`+d("1")+`'), (1, '`+d("a")+`', '`+d("2")+`'), (1, '`+d("b")+`', '`+d("1")+`'),
		(2, '`+d("c")+`', '`+d("1")+`'), (3, '`+d("d")+`', '`+d("1")+`')`)
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrating from 9: %v", err)
	}
	var got []meta.Usage
	var diffs []meta.UsageDiff
	err = s.View(ctx, func(tx meta.Tx) error {
		for _, f := range []func() (meta.Usage, error){
			func() (meta.Usage, error) { return tx.RepositoryUsage(ctx, 1) },
			func() (meta.Usage, error) { return tx.RepositoryUsage(ctx, 2) },
			func() (meta.Usage, error) { return tx.NamespaceUsage(ctx, 1) },
			func() (meta.Usage, error) { return tx.NamespaceUsage(ctx, 2) },
			func() (meta.Usage, error) { return tx.RegistryUsage(ctx) },
		} {
			u, err := f()
			if err != nil {
				return err
			}
			got = append(got, u)
		}
		var err error
		diffs, err = tx.VerifyUsage(ctx, false)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []meta.Usage{
		{Bytes: 3 + 4 + 1000 + 20, Manifests: 2, Blobs: 2},
		{Bytes: 5 + 1000, Manifests: 1, Blobs: 1},
		{Bytes: 3 + 4 + 5 + 1000 + 20, Manifests: 3, Blobs: 2},
		{Bytes: 6 + 1000, Manifests: 1, Blobs: 1},
		{Bytes: 3 + 4 + 5 + 6 + 1000 + 20, Manifests: 4, Blobs: 2},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("usage after migration 9 (-want +got):\n%s", diff)
	}
	if len(diffs) != 0 {
		t.Errorf("VerifyUsage after migration 9: %+v, want none", diffs)
	}
}
