package sqlstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/review"
)

// openAt opens a store on dsn migrated to version, closed at cleanup.
func openAt(t *testing.T, dsn string, version int) *sqlstore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.MigrateTo(ctx, version); err != nil {
		t.Fatalf("migrating to %d: %v", version, err)
	}
	return s
}

// fakeDigest is a sha256 digest of 64 times c.
func fakeDigest(c string) string { return "sha256:" + strings.Repeat(c, 64) }

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
	s := openAt(t, dsn, 5)
	d := "sha256:" + strings.Repeat("ab", 32)
	sqltest.Exec(t, dsn, `INSERT INTO review (kind, object, review_after, attempts, reason) VALUES
		('manifest', '1@`+d+`', 0, 0, 'pushed'),
		('manifest', '2@`+d+`', 0, 0, 'parent `+d+` deleted'),
		('manifest', '3@`+d+`', 0, 0, 'pushed again')`)
	if n, err := s.Migrate(ctx); err != nil || n != s.LatestVersion()-5 {
		t.Fatalf("migrating from 5: applied %d, %v; want %d, nil", n, err, s.LatestVersion()-5)
	}
	var got []meta.Review
	err := s.Update(ctx, func(tx meta.Tx) (err error) {
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
	s := openAt(t, dsn, 8)
	sqltest.Exec(t, dsn, `INSERT INTO namespace (id, name) VALUES (1, 'a'), (2, 'b')`)
	sqltest.Exec(t, dsn, `INSERT INTO repository (id, namespace_id, name, created_at) VALUES (1, 1, 'a/x', 0), (2, 1, 'a/y', 0), (3, 2, 'b/z', 0)`)
	sqltest.Exec(t, dsn, `INSERT INTO blob (digest, size, storage_key, created_at) VALUES ('`+fakeDigest("1")+`', 1000, 'k1', 0), ('`+fakeDigest("2")+`', 20, 'k2', 0)`)
	sqltest.Exec(t, dsn, `INSERT INTO repository_blob (repository_id, blob_digest, created_at) VALUES
		(1, '`+fakeDigest("1")+`', 0), (1, '`+fakeDigest("2")+`', 0), (2, '`+fakeDigest("1")+`', 0), (3, '`+fakeDigest("1")+`', 0)`)
	sqltest.Exec(t, dsn, `INSERT INTO manifest (repository_id, digest, media_type, size, body, pushed_at) VALUES
		(1, '`+fakeDigest("a")+`', 'x', 3, 'abc', 0), (1, '`+fakeDigest("b")+`', 'x', 4, 'abcd', 0), (2, '`+fakeDigest("c")+`', 'x', 5, 'abcde', 0), (3, '`+fakeDigest("d")+`', 'x', 6, 'abcdef', 0)`)
	sqltest.Exec(t, dsn, `INSERT INTO manifest_blob (repository_id, manifest_digest, blob_digest) VALUES
		(1, '`+fakeDigest("a")+`', '`+fakeDigest("1")+`'), (1, '`+fakeDigest("a")+`', '`+fakeDigest("2")+`'), (1, '`+fakeDigest("b")+`', '`+fakeDigest("1")+`'),
		(2, '`+fakeDigest("c")+`', '`+fakeDigest("1")+`'), (3, '`+fakeDigest("d")+`', '`+fakeDigest("1")+`')`)
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrating from 9: %v", err)
	}
	var got []meta.Usage
	var diffs []meta.UsageDiff
	err := s.View(ctx, func(tx meta.Tx) error {
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

// TestMigrationWithoutRowid: SQLite's migration 13 rebuilds the six tables
// keyed by a blob digest as WITHOUT ROWID tables, with foreign keys off
// while it runs. Every row is kept, the foreign keys of the rebuilt tables
// and of the tables naming them still hold and are enforced afterwards,
// and the writer connection has its foreign keys back on.
func TestMigrationWithoutRowid(t *testing.T) {
	b := sqltest.Backends()[0]
	if b.Name != "sqlite" {
		t.Fatalf("first backend %s, want sqlite", b.Name)
	}
	dsn := b.DSN(t)
	ctx := context.Background()
	s := openAt(t, dsn, 12)
	sqltest.Exec(t, dsn, `INSERT INTO namespace (id, name) VALUES (1, 'a')`)
	sqltest.Exec(t, dsn, `INSERT INTO repository (id, namespace_id, name, created_at) VALUES (1, 1, 'a/x', 0), (2, 1, 'a/y', 0)`)
	sqltest.Exec(t, dsn, `INSERT INTO blob (digest, size, storage_key, created_at) VALUES ('`+fakeDigest("1")+`', 1000, 'k1', 7), ('`+fakeDigest("2")+`', 20, 'k2', 8)`)
	sqltest.Exec(t, dsn, `INSERT INTO repository_blob (repository_id, blob_digest, created_at, deleted_at) VALUES
		(1, '`+fakeDigest("1")+`', 1, NULL), (1, '`+fakeDigest("2")+`', 2, 5), (2, '`+fakeDigest("1")+`', 3, NULL)`)
	sqltest.Exec(t, dsn, `INSERT INTO manifest (repository_id, digest, media_type, size, body, pushed_at) VALUES
		(1, '`+fakeDigest("a")+`', 'x', 3, 'abc', 0), (2, '`+fakeDigest("b")+`', 'x', 4, 'abcd', 0)`)
	sqltest.Exec(t, dsn, `INSERT INTO manifest_blob (repository_id, manifest_digest, blob_digest) VALUES
		(1, '`+fakeDigest("a")+`', '`+fakeDigest("1")+`'), (1, '`+fakeDigest("a")+`', '`+fakeDigest("2")+`'), (2, '`+fakeDigest("b")+`', '`+fakeDigest("1")+`')`)
	// The counters the code keeps (raw inserts above bypass it).
	sqltest.Exec(t, dsn, `INSERT INTO usage_blob (blob_digest, holders) VALUES ('`+fakeDigest("1")+`', 1), ('`+fakeDigest("2")+`', 1)`)
	sqltest.Exec(t, dsn, `INSERT INTO usage_namespace_blob (namespace_id, blob_digest, repos) VALUES (1, '`+fakeDigest("1")+`', 2), (1, '`+fakeDigest("2")+`', 1)`)
	sqltest.Exec(t, dsn, `INSERT INTO usage_repository_blob (repository_id, blob_digest, refs) VALUES
		(1, '`+fakeDigest("1")+`', 1), (1, '`+fakeDigest("2")+`', 1), (2, '`+fakeDigest("1")+`', 1)`)
	tables := []string{"blob", "repository_blob", "manifest_blob", "usage_blob", "usage_namespace_blob", "usage_repository_blob"}
	dump := func() map[string][]string {
		out := map[string][]string{}
		for _, table := range tables {
			rows, err := s.DB().QueryContext(ctx, `SELECT * FROM `+table+` ORDER BY 1, 2`)
			if err != nil {
				t.Fatal(err)
			}
			for _, vals := range rowValues(t, rows) {
				out[table] = append(out[table], fmt.Sprint(vals))
			}
		}
		return out
	}
	before := dump()
	if len(before["usage_blob"]) != 2 || len(before["manifest_blob"]) != 3 {
		t.Fatalf("rows before migration 13: %v", before)
	}
	if n, err := s.Migrate(ctx); err != nil || n != s.LatestVersion()-12 {
		t.Fatalf("migrating from 12: applied %d, %v; want %d, nil", n, err, s.LatestVersion()-12)
	}
	if diff := cmp.Diff(before, dump()); diff != "" {
		t.Errorf("rows after migration 13 (-before +after):\n%s", diff)
	}
	for _, table := range tables {
		var ddl string
		if err := s.DB().QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&ddl); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		if !strings.HasSuffix(ddl, "WITHOUT ROWID") {
			t.Errorf("%s after migration 13: %s", table, ddl)
		}
	}
	err := s.Update(ctx, func(mtx meta.Tx) error {
		if on, err := sqlstore.QueryString(ctx, mtx, `PRAGMA foreign_keys`); err != nil || on != "1" {
			t.Errorf("writer's foreign_keys after migration 13: %q, %v; want 1", on, err)
		}
		if v, err := sqlstore.QueryString(ctx, mtx, `SELECT count(*) FROM pragma_foreign_key_check`); err != nil || v != "0" {
			t.Errorf("foreign key violations after migration 13: %s, %v", v, err)
		}
		for _, q := range []string{
			`INSERT INTO repository_blob (repository_id, blob_digest, created_at) VALUES (2, '` + fakeDigest("9") + `', 0)`,
			`INSERT INTO manifest_blob (repository_id, manifest_digest, blob_digest) VALUES (2, '` + fakeDigest("b") + `', '` + fakeDigest("2") + `')`,
			`DELETE FROM blob WHERE digest = '` + fakeDigest("2") + `'`,
		} {
			if err := sqlstore.Exec(ctx, mtx, q); err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
				t.Errorf("%s after migration 13: %v, want a foreign key failure", q, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
