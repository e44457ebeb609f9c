package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth/berth/internal/meta"
)

// Migrations are embedded SQL files, numbered and append-only, one directory
// per dialect: migrations/<dialect>/NNNN_name.sql.
//
//go:embed migrations
var migrationsFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

func (s *Store) migrations() ([]migration, error) {
	dir := "migrations/" + s.d.name()
	entries, err := fs.ReadDir(migrationsFS, dir)
	if err != nil {
		return nil, fmt.Errorf("reading migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		if !ok || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", name)
		}
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		body, err := fs.ReadFile(migrationsFS, dir+"/"+name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migrations must be numbered 1..n without gaps; found %s at position %d", m.name, i+1)
		}
	}
	return ms, nil
}

// LatestVersion is the schema version this berth knows.
func (s *Store) LatestVersion() int {
	ms, _ := s.migrations()
	return len(ms)
}

// SchemaVersion is the version applied to the database (0 if empty). It
// only reads: an empty database stays empty.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var n int
	if err := s.writer.QueryRowContext(ctx, s.d.rebind(s.d.tableExists()), "schema_migration").Scan(&n); err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	var v int
	if err := s.writer.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migration`).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	return v, nil
}

// CheckSchema returns nil when the database has exactly the schema this berth
// knows, meta.ErrSchemaOutdated when migrations are pending and
// meta.ErrSchemaUnknown when the database is newer than this berth.
func (s *Store) CheckSchema(ctx context.Context) error {
	have, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	return s.compareSchema(have)
}

// compareSchema is CheckSchema's verdict on the applied version have.
func (s *Store) compareSchema(have int) error {
	want := s.LatestVersion()
	switch {
	case have > want:
		return fmt.Errorf("database schema version %d, this berth knows up to %d: %w", have, want, meta.ErrSchemaUnknown)
	case have < want:
		return fmt.Errorf("database schema version %d, this berth needs %d: %w", have, want, meta.ErrSchemaOutdated)
	}
	return nil
}

// Ready is CheckSchema for a readiness probe, asked every second or so
// while the server runs: it only reads, from the reader pool, so that
// neither a write transaction holding SQLite's one writer connection (a
// purge, a large commit) nor anything else delays it, and it creates
// nothing. A database without berth's schema table is an error.
func (s *Store) Ready(ctx context.Context) error {
	var have int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migration`).Scan(&have); err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	return s.compareSchema(have)
}

// Migrate applies every pending migration, each in its own transaction, and
// returns how many it applied. It refuses a database newer than this berth.
func (s *Store) Migrate(ctx context.Context) (int, error) {
	return s.migrateTo(ctx, s.LatestVersion())
}

// migrateTo applies the pending migrations up to version (tests stop at an
// older schema to check a migration on the rows it finds).
func (s *Store) migrateTo(ctx context.Context, version int) (int, error) {
	all, err := s.migrations()
	if err != nil {
		return 0, err
	}
	ms := all[:min(version, len(all))]
	if _, err := s.writer.ExecContext(ctx,
		`CREATE TABLE IF NOT EXISTS schema_migration (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return 0, fmt.Errorf("creating schema_migration table: %w", err)
	}
	have, err := s.SchemaVersion(ctx)
	if err != nil {
		return 0, err
	}
	if have > len(all) {
		return 0, fmt.Errorf("database schema version %d, this berth knows up to %d: %w", have, len(all), meta.ErrSchemaUnknown)
	}
	if have > len(ms) {
		return 0, fmt.Errorf("database schema version %d is past the %d asked for", have, len(ms))
	}
	applied := 0
	for _, m := range ms[have:] {
		if err := s.apply(ctx, m); err != nil {
			return applied, err
		}
		s.log.Info("applied migration", "version", m.version, "name", m.name, "backend", s.d.name())
		applied++
	}
	return applied, nil
}

// fkOffMarker is the line a SQLite migration carries to run with foreign
// keys off: one that rebuilds a table other tables reference (SQLite's
// procedure for a change ALTER TABLE cannot make). apply then checks every
// foreign key before it commits.
const fkOffMarker = "-- berth: foreign_keys off"

func (s *Store) apply(ctx context.Context, m migration) error {
	conn, err := s.writer.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	defer conn.Close()
	fkOff := s.d.name() == "sqlite" && slices.Contains(strings.Split(m.sql, "\n"), fkOffMarker)
	if fkOff {
		// Outside a transaction: SQLite ignores the pragma inside one.
		if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		defer func() {
			if _, err := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA foreign_keys = ON`); err != nil {
				// Never hand on the writer connection without them.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}()
	}
	sqlTx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	defer sqlTx.Rollback()
	if s.d.name() == "postgres" {
		// A migration may take longer than a transaction's bound
		// (Options.TxTimeout), and so may the wait for another process's.
		if err := setLocalTimeouts(ctx, sqlTx, 0); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		// Two berth processes starting on an empty database: one migrates,
		// the other waits here and then finds nothing to do.
		if _, err := sqlTx.ExecContext(ctx, `LOCK TABLE schema_migration IN EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("migration %s: locking: %w", m.name, err)
		}
		var done bool
		if err := sqlTx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migration WHERE version = $1)`, m.version).Scan(&done); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if done {
			return nil
		}
	}
	for _, stmt := range splitStatements(m.sql) {
		if _, err := sqlTx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("migration %s: %w\n%s", m.name, err, stmt)
		}
	}
	if fkOff {
		if err := foreignKeysHold(ctx, sqlTx); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	if _, err := sqlTx.ExecContext(ctx, s.d.rebind(`INSERT INTO schema_migration (version, name, applied_at) VALUES (?, ?, ?)`),
		m.version, m.name, time.Now().UnixMicro()); err != nil {
		return fmt.Errorf("migration %s: recording: %w", m.name, err)
	}
	return sqlTx.Commit()
}

// foreignKeysHold runs SQLite's foreign key check over the whole database
// and reports the first violation it finds.
func foreignKeysHold(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return fmt.Errorf("checking foreign keys: %w", err)
	}
	defer rows.Close()
	if rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fk int
		if err := rows.Scan(&table, &rowid, &parent, &fk); err != nil {
			return fmt.Errorf("checking foreign keys: %w", err)
		}
		return fmt.Errorf("a row of %s (rowid %v) names no row of %s (foreign key %d)", table, rowid, parent, fk)
	}
	return rows.Err()
}

// splitStatements splits a migration on ';' at line ends, dropping comments.
func splitStatements(src string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") || trimmed == "" {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, strings.TrimSpace(cur.String()))
	}
	return out
}
