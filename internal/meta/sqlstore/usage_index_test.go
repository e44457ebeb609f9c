package sqlstore_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// The index usage_bytes holds the namespaces' usage rows only (migration 11
// on SQLite, 12 on PostgreSQL): the repository and registry rows, which
// every PUT and every collector transaction changes, keep no entry in it,
// and TopNamespaces, its one reader, still reads the largest namespaces
// through it rather than sorting every usage row.
func TestUsageBytesIndexHoldsNamespaces(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			s := sqltest.Open(t, dsn)
			seedBrowse(t, dsn)
			ctx := context.Background()
			var def string
			q := `SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'usage_bytes'`
			if s.Dialect() == "postgres" {
				q = `SELECT indexdef FROM pg_indexes WHERE indexname = 'usage_bytes' AND schemaname = current_schema()`
			}
			if err := s.DB().QueryRowContext(ctx, q).Scan(&def); err != nil {
				t.Fatalf("reading the definition of usage_bytes: %v", err)
			}
			if !strings.Contains(strings.ReplaceAll(def, "(", ""), "WHERE scope = 'n'") {
				t.Errorf("usage_bytes is not limited to the namespaces' rows: %s", def)
			}
			if s.Dialect() != "sqlite" {
				return // PostgreSQL's plan follows its statistics
			}
			plan := strings.Join(explain(t, s, s.TopNamespacesStatement(100)), "\n")
			if !strings.Contains(plan, "USING INDEX usage_bytes") || strings.Contains(plan, "TEMP B-TREE FOR ORDER BY") && !strings.Contains(plan, "LAST TERM") {
				t.Errorf("TopNamespaces does not walk usage_bytes:\n%s", plan)
			}
		})
	}
}

// TestCounterPlans: on SQLite, the read, delete and update of each per-blob
// counter level search the table by its whole key, once per member of the
// set; the planner's own order searched it by the id alone (every counter
// row of the repository or namespace, the set rescanned for each: eight
// times the collector's instructions).
func TestCounterPlans(t *testing.T) {
	s := sqltest.Open(t, filepath.Join(t.TempDir(), "berth.db"))
	for _, st := range sqlstore.CounterStatements() {
		plan := explain(t, s, st)
		var searched bool
		for _, line := range plan {
			if strings.HasPrefix(line, "SEARCH t ") {
				searched = strings.HasSuffix(line, "blob_digest=?)")
			}
		}
		if !searched {
			t.Errorf("%s: the statement does not search the table by its whole key:\n%s", st.Name, strings.Join(plan, "\n"))
		}
	}
}
