package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/meta"
)

// MigrateTo applies the pending migrations up to version.
func (s *Store) MigrateTo(ctx context.Context, version int) (int, error) {
	return s.migrateTo(ctx, version)
}

// QueryString runs q, which returns one text value, in mtx: tests read the
// session's state (its settings, its prepared statements) through it.
func QueryString(ctx context.Context, mtx meta.Tx, q string) (string, error) {
	var v string
	err := mtx.(*tx).queryRow(ctx, q).Scan(&v)
	return v, err
}

// Exec runs q in mtx.
func Exec(ctx context.Context, mtx meta.Tx, q string) error {
	_, err := mtx.(*tx).exec(ctx, q)
	return err
}

// StatementStats is what the SQLite statement cache did so far.
func (s *Store) StatementStats() (prepares, hits int64) {
	return s.stmts.prepares.Load(), s.stmts.hits.Load()
}

// Statement is a statement of the store, placeholders in the dialect's
// form, with its arguments.
type Statement struct {
	Name  string
	Query string
	Args  []any
}

// BrowseStatements are the statements of the web listings (browse.go) as
// the store runs them: pages of namespaces (each filter), of the
// repositories of ns, of tags of repository repoID (each form), the
// summaries of ds, and the history of one tag (the tag page).
func (s *Store) BrowseStatements(ns meta.Namespace, repoID int64, ds []digest.Digest, now time.Time) []Statement {
	var out []Statement
	add := func(name, q string, args ...any) {
		out = append(out, Statement{Name: name, Query: s.d.rebind(q), Args: args})
	}
	for _, f := range []struct {
		name string
		f    meta.NamespaceFilter
	}{
		{"namespaces", meta.NamespaceFilter{Limit: 50}},
		{"namespaces public", meta.NamespaceFilter{Limit: 50, PublicOnly: true}},
		{"namespaces named", meta.NamespaceFilter{Limit: 50, Names: []string{ns.Name, "x"}}},
		{"namespaces public or named", meta.NamespaceFilter{Limit: 50, Names: []string{ns.Name}, PublicOnly: true}},
	} {
		q, args := namespacePageStmt(s.d, f.f)
		add(f.name, q, args...)
	}
	q, args := repositoryPageStmt(ns, now, "", 50, 1000)
	add("repositories first", q, args...)
	q, args = repositoryPageStmt(ns, now, ns.Name+"/m", 50, 1000)
	add("repositories after", q, args...)
	for _, c := range []struct{ name, after, prefix string }{
		{"tags first", "", ""}, {"tags after", "v5000", ""}, {"tags prefix", "", "v5"}, {"tags prefix after", "v5010", "v5"},
	} {
		q, args := liveTagPageStmt(repoID, now, c.after, c.prefix, 101)
		add(c.name, q, args...)
	}
	set := jsonKeys(ds)
	add("manifest summaries", fmt.Sprintf(manifestSummarySQL, s.d.keyList()), repoID, set)
	add("children summaries", fmt.Sprintf(childSummarySQL, s.d.keyList()), repoID, set)
	add("blob summaries", fmt.Sprintf(blobSummarySQL, s.d.keyList()), repoID, set, repoID, set)
	add("referrer counts", fmt.Sprintf(referrerCountSQL, s.d.keyList()), repoID, set)
	var names []string
	for _, d := range ds {
		for _, suffix := range []string{".sig", ".att", ".sbom"} {
			names = append(names, "sha256-"+d.Encoded()+suffix)
		}
	}
	add("attachment tags", fmt.Sprintf(liveTagNamesSQL, s.d.keyList()), repoID, jsonKeys(names), us(now), false)
	q, args = tagHistoryStmt(repoID, "v15000", 10000)
	add("tag history", q, args...)
	return out
}

// TopNamespacesStatement is TopNamespaces' statement as the store runs it.
func (s *Store) TopNamespacesStatement(limit int) Statement {
	return Statement{Name: "top namespaces", Query: s.d.rebind(topNamespacesQuery), Args: []any{limit}}
}

// CounterStatements are applyCountersSQLite's read, delete and update of
// each per-blob counter table, with a set of one key.
func CounterStatements() []Statement {
	var out []Statement
	steps := []*counterStep{{id: 1, d: "sha256:a", n: -1, after: 2}}
	for _, c := range []struct{ table, idCol, countCol string }{
		{"usage_repository_blob", "repository_id", "refs"},
		{"usage_namespace_blob", "namespace_id", "repos"},
		{"usage_blob", "", "holders"},
	} {
		st := counterStatementsSQLite(c.table, c.idCol, c.countCol)
		set, err := counterSet(c.idCol, steps, func(s *counterStep) int64 { return s.n })
		if err != nil {
			panic(err)
		}
		update, err := updateSet(c.idCol, steps)
		if err != nil {
			panic(err)
		}
		for _, q := range []struct{ name, query, set string }{{"read", st.read, set}, {"delete", st.del, set}, {"update", st.update, update}} {
			out = append(out, Statement{Name: c.table + " " + q.name, Query: q.query, Args: []any{q.set}})
		}
	}
	return out
}

// ClaimDueStatement is ClaimDue's read as the store runs it on SQLite (no
// lock clause), claiming limit tag reviews due at now.
func (s *Store) ClaimDueStatement(now int64, limit int) Statement {
	return Statement{Name: "claim due", Query: s.d.rebind(claimDueQuery), Args: []any{"tag", now, "", 0, "", limit}}
}
