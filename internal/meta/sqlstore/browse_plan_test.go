package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// seedBrowse fills a database behind the store's back, in a few statements:
// namespace ns (public) with 200 repositories of 10 tags each, and 4,000
// other namespaces of one repository each, with usage counters and a few
// quotas; ns/app holds 10,000 image manifests of two blobs each (one of
// them shared by a hundred), 3,000 indexes of two of them, 2,000 referrers,
// and 10,000 live tags "v10001"… with 10,000 ended lifetimes beside them;
// the registry holds 20,000 blobs.
func seedBrowse(t *testing.T, dsn string) {
	t.Helper()
	const g = `WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < %d) `
	app := `(SELECT id FROM repository WHERE name = 'ns/app')`
	ns := `(SELECT id FROM namespace WHERE name = 'ns')`
	manifest := `INSERT INTO manifest (repository_id, digest, media_type, artifact_type, subject_digest, size, body, pushed_at) `
	for _, q := range []string{
		`INSERT INTO namespace (name, state, public) VALUES ('ns', 'active', true)`,
		`INSERT INTO namespace (name, state) ` + fmt.Sprintf(g, 4000) + `SELECT 'n' || i, 'active' FROM g`,
		`INSERT INTO repository (namespace_id, name, state, created_at) SELECT id, 'ns/app', 'active', 0 FROM namespace WHERE name = 'ns'`,
		`INSERT INTO repository (namespace_id, name, state, created_at) ` + fmt.Sprintf(g, 200) + `SELECT ` + ns + `, 'ns/r' || i, 'active', 0 FROM g`,
		`INSERT INTO repository (namespace_id, name, state, created_at) SELECT id, name || '/app', 'active', 0 FROM namespace WHERE name <> 'ns'`,
		`INSERT INTO usage (scope, id, shard, bytes, manifests, blobs) SELECT 'r', id, 0, id, id % 3, 1 FROM repository`,
		`INSERT INTO usage (scope, id, shard, bytes, manifests, blobs) SELECT 'n', id, 0, id, id % 3 + 1, 1 FROM namespace`,
		`INSERT INTO quota (namespace, limit_bytes, created_at, created_by) SELECT name, 1000, 0, '' FROM namespace WHERE id % 10 = 0`,
		`INSERT INTO blob (digest, size, storage_key, created_at) ` + fmt.Sprintf(g, 20000) + `SELECT 'b' || i, i, 'k' || i, 0 FROM g`,
		`INSERT INTO repository_blob (repository_id, blob_digest, created_at) ` + fmt.Sprintf(g, 10100) + `SELECT ` + app + `, 'b' || i, 0 FROM g`,
		manifest + fmt.Sprintf(g, 10000) + `SELECT ` + app + `, 'sha256:m' || i, 'application/vnd.oci.image.manifest.v1+json', '', '', 500, 'x', 0 FROM g`,
		manifest + fmt.Sprintf(g, 3000) + `SELECT ` + app + `, 'sha256:i' || i, 'application/vnd.oci.image.index.v1+json', '', '', 300, 'x', 0 FROM g`,
		manifest + fmt.Sprintf(g, 2000) + `SELECT ` + app + `, 'sha256:r' || i, 'application/vnd.oci.image.manifest.v1+json', 'application/sig', 'sha256:m' || i, 200, 'x', 0 FROM g`,
		`INSERT INTO manifest_blob (repository_id, manifest_digest, blob_digest) ` + fmt.Sprintf(g, 10000) +
			`SELECT ` + app + `, 'sha256:m' || i, 'b' || i FROM g UNION ALL SELECT ` + app + `, 'sha256:m' || i, 'b' || (10001 + i % 100) FROM g`,
		`INSERT INTO manifest_child (repository_id, parent_digest, child_digest) ` + fmt.Sprintf(g, 3000) +
			`SELECT ` + app + `, 'sha256:i' || i, 'sha256:m' || (2 * i) FROM g UNION ALL SELECT ` + app + `, 'sha256:i' || i, 'sha256:m' || (2 * i - 1) FROM g`,
		`INSERT INTO tag (repository_id, name, manifest_digest, lifetime_start) ` + fmt.Sprintf(g, 10000) + `SELECT ` + app + `, 'v' || (10000 + i), 'sha256:m' || i, i FROM g`,
		`INSERT INTO tag (repository_id, name, manifest_digest, lifetime_start, lifetime_end) ` + fmt.Sprintf(g, 10000) +
			`SELECT ` + app + `, 'v' || (10000 + i), 'sha256:m' || i, 0, i FROM g`,
		`INSERT INTO tag (repository_id, name, manifest_digest, lifetime_start) ` + fmt.Sprintf(g, 10) +
			`SELECT r.id, 't' || g.i, 'sha256:x', g.i FROM repository r, g WHERE r.name LIKE 'ns/r%'`,
	} {
		sqltest.Exec(t, dsn, q)
	}
}

// scans are the plan lines that read a whole table (or a whole index of
// it): SQLite's "SCAN <table or alias>", a search by scope or repository
// alone (every counter of the scope, every row of the repository: only the
// capped tag count, t, and the last tag start, h, may), a search of live
// tags in tag_history (every lifetime; the tag page's history of one name
// reads every lifetime of that name, as it must), and PostgreSQL's
// sequential scans.
var scans = regexp.MustCompile(`^SCAN (\w+)|Seq Scan on (\w+)|^SEARCH (\w+) USING .*\((?:scope|repository_id)=\?\)$|^SEARCH (tag|t) USING INDEX tag_history`)

// subquery names a subquery SQLite runs as a co-routine or materializes:
// scanning it scans what it produced.
var subquery = regexp.MustCompile(`^(?:CO-ROUTINE|MATERIALIZE) (\w+)`)

// grows are the tables that grow with what the registry stores, which
// PostgreSQL must not scan whole even at this size. Its plans depend on
// statistics: it may read the namespace, repository, usage and quota tables
// whole when a scan of a few thousand rows costs less than a few dozen index
// probes, as it rightly does here.
var grows = map[string]bool{"tag": true, "t": true, "h": true, "manifest": true, "m": true, "manifest_child": true, "c": true,
	"manifest_blob": true, "mb": true, "blob": true, "b": true, "repository_blob": true}

// The statements of the web listings read by index: on SQLite, which plans
// without statistics, no plan scans a table whole (the namespace table
// aside where a page admits the public namespaces: there is no index on the
// flag, and the page walks the name index filtering it); on PostgreSQL, over
// a repository of 10,000 tags and analyzed statistics, none scans a table
// that grows with the registry's content.
func TestBrowsePlans(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			s := sqltest.Open(t, dsn)
			seedBrowse(t, dsn)
			ctx := context.Background()
			if s.Dialect() == "postgres" {
				if _, err := s.DB().ExecContext(ctx, `ANALYZE`); err != nil {
					t.Fatal(err)
				}
			}
			var ns meta.Namespace
			var repoID int64
			if err := s.View(ctx, func(tx meta.Tx) (err error) {
				if ns, err = tx.Namespace(ctx, "ns", meta.LockNone); err != nil {
					return err
				}
				r, err := tx.Repository(ctx, "ns/app", meta.LockNone)
				repoID = r.ID
				return err
			}); err != nil {
				t.Fatal(err)
			}
			var ds []digest.Digest
			for i := 2001; i <= 2100; i++ {
				ds = append(ds, digest.Digest(fmt.Sprint("sha256:m", i)))
			}
			for _, st := range s.BrowseStatements(ns, repoID, ds, time.Unix(1, 0)) {
				plan := explain(t, s, st)
				subqueries := map[string]bool{"json_each": true, "g": true}
				for _, line := range plan {
					if m := subquery.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
						subqueries[m[1]] = true
					}
				}
				for _, line := range plan {
					m := scans.FindStringSubmatch(strings.TrimSpace(line))
					if m == nil {
						continue
					}
					table := m[1] + m[2] + m[3] + m[4]
					if subqueries[table] || m[3] == "t" || m[3] == "h" ||
						st.Name == "tag history" && m[4] != "" && strings.HasSuffix(line, "(repository_id=? AND name=?)") ||
						s.Dialect() == "sqlite" && strings.HasPrefix(st.Name, "namespaces public") && table == "n" ||
						s.Dialect() == "postgres" && !grows[table] {
						continue
					}
					t.Errorf("%s: the plan scans %s:\n%s\n%s", st.Name, table, st.Query, strings.Join(plan, "\n"))
				}
				if testing.Verbose() {
					t.Logf("%s:\n%s", st.Name, strings.Join(plan, "\n"))
				}
			}
		})
	}
}

// explain returns the plan of st, one line per step.
func explain(t *testing.T, s *sqlstore.Store, st sqlstore.Statement) []string {
	t.Helper()
	q := "EXPLAIN " + st.Query
	if s.Dialect() == "sqlite" {
		q = "EXPLAIN QUERY PLAN " + st.Query
	}
	rows, err := s.DB().QueryContext(context.Background(), q, st.Args...)
	if err != nil {
		t.Fatalf("%s: %v", st.Name, err)
	}
	var out []string
	for _, vals := range rowValues(t, rows) {
		out = append(out, fmt.Sprint(vals[len(vals)-1]))
	}
	return out
}

// rowValues reads every row of rows, whatever its columns, and closes it.
func rowValues(t *testing.T, rows *sql.Rows) [][]any {
	t.Helper()
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
