package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/blob"
	blobfs "github.com/berth/berth/internal/blob/fs"
	"github.com/berth/berth/internal/meta/sqlstore"
)

// The physical limits of this machine for what a collection does: delete
// rows, unlink files, delete S3 objects. A collector's throughput (objects
// deleted per second) is read against them.

// limitResult is one measured limit.
type limitResult struct {
	Backend string  `json:"backend"` // sqlite, postgres, fs, s3
	What    string  `json:"what"`
	Batch   int     `json:"batch"`
	N       int     `json:"n"`
	Seconds float64 `json:"seconds"`
}

func (l limitResult) perSecond() float64 { return float64(l.N) / l.Seconds }

type limitOptions struct {
	backends  []string // sqlite, postgres, fs, s3
	n         int      // rows and files
	s3n       int      // S3 keys
	pgDSN     string   // admin DSN: a database is created and dropped
	versitygw string
	dir       string
}

// limitsCmd is "berth-bench limits": measure and print the table.
func limitsCmd(args []string) error {
	fl := flag.NewFlagSet("limits", flag.ContinueOnError)
	var o limitOptions
	backends := fl.String("backends", "sqlite,postgres,fs,s3", "what to measure, comma-separated: sqlite, postgres, fs, s3")
	fl.IntVar(&o.n, "n", 20000, "rows and files deleted per measurement")
	fl.IntVar(&o.s3n, "s3-n", 5000, "S3 keys deleted per measurement")
	fl.StringVar(&o.pgDSN, "pg-dsn", "", "PostgreSQL admin DSN (default $BERTH_TEST_POSTGRES_DSN, else postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)")
	fl.StringVar(&o.versitygw, "versitygw", "", "versitygw binary (default $BERTH_VERSITYGW, else scripts/lib.sh's pinned build)")
	fl.StringVar(&o.dir, "dir", "", "scratch directory (default a temporary one, removed); put it on the disk berth's data would use")
	if err := fl.Parse(args); err != nil {
		return err
	}
	o.backends = strings.Split(*backends, ",")
	o.pgDSN = cmpOrEnv(o.pgDSN, "BERTH_TEST_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	if o.dir == "" {
		d, err := os.MkdirTemp("", "berth-bench-limits-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	res, err := measureLimits(context.Background(), o)
	fmt.Print(limitsTable(res))
	return err
}

func cmpOrEnv(v, env, def string) string {
	if v != "" {
		return v
	}
	if e := os.Getenv(env); e != "" {
		return e
	}
	return def
}

// measureLimits runs every measurement of o.backends; it returns what it
// measured and the errors of what it could not.
func measureLimits(ctx context.Context, o limitOptions) ([]limitResult, error) {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, err
	}
	var out []limitResult
	var errs []error
	for _, b := range o.backends {
		var r []limitResult
		var err error
		switch strings.TrimSpace(b) {
		case dbSQLite:
			r, err = sqlLimits(ctx, filepath.Join(o.dir, "limits.db"), dbSQLite, o.n)
		case dbPostgres:
			dsn, drop, cerr := createDatabase(ctx, o.pgDSN)
			if cerr != nil {
				err = cerr
				break
			}
			r, err = sqlLimits(ctx, dsn, dbPostgres, o.n)
			drop()
		case "fs":
			r, err = fsLimits(ctx, filepath.Join(o.dir, "fs"), o.n)
		case "s3":
			r, err = s3Limits(ctx, o.versitygw, filepath.Join(o.dir, "s3"), o.s3n)
		default:
			err = fmt.Errorf("unknown backend %q", b)
		}
		out = append(out, r...)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b, err))
		}
	}
	return out, errors.Join(errs...)
}

// limitsTable renders the limits as Markdown.
func limitsTable(res []limitResult) string {
	var b strings.Builder
	b.WriteString("| backend | operation | batch | n | seconds | per second |\n|---|---|---:|---:|---:|---:|\n")
	for _, l := range res {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %.3f | %.0f |\n", l.Backend, l.What, l.Batch, l.N, l.Seconds, l.perSecond())
	}
	return b.String()
}

// bestLimit is the fastest measurement of backend; false if there is none.
func bestLimit(res []limitResult, backend string) (limitResult, bool) {
	var best limitResult
	found := false
	for _, l := range res {
		if l.Backend == backend && l.Seconds > 0 && (!found || l.perSecond() > best.perSecond()) {
			best, found = l, true
		}
	}
	return best, found
}

// sqlLimits deletes n rows of a table shaped like berth's review and link
// tables (a text primary key, an integer column with a secondary index)
// with DELETE … WHERE k IN (…), in batches of 100 and 1000: all batches in
// one transaction, and one transaction per batch (each commit pays the
// backend's durability: an fsync of SQLite's WAL, PostgreSQL's WAL flush).
// The database is opened by sqlstore.Open, so SQLite runs with berth's
// pragmas (WAL, synchronous FULL, busy timeout).
func sqlLimits(ctx context.Context, dsn, backend string, n int) ([]limitResult, error) {
	store, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	// One connection for everything. On SQLite, sqlstore's pool (DB) is its
	// readers, opened query_only; this connection is switched back to
	// writing, keeping the other pragmas of the DSN berth opens.
	conn, err := store.DB().Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if backend == dbSQLite {
		if _, err := conn.ExecContext(ctx, "PRAGMA query_only(0)"); err != nil {
			return nil, err
		}
	}
	ph := func(i int) string {
		if backend == dbPostgres {
			return fmt.Sprintf("$%d", i+1)
		}
		return "?"
	}
	for _, q := range []string{
		"DROP TABLE IF EXISTS limit_rows",
		"CREATE TABLE limit_rows (object TEXT PRIMARY KEY, repo_id BIGINT NOT NULL, review_after BIGINT NOT NULL, reason TEXT NOT NULL)",
		"CREATE INDEX limit_rows_due ON limit_rows (review_after)",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	key := func(i int) string {
		return fmt.Sprintf("%d@sha256:%064x", i%97, i) // like a link's "<repo id>@<digest>"
	}
	fill := func() error {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		stmt, err := tx.PrepareContext(ctx, fmt.Sprintf("INSERT INTO limit_rows VALUES (%s, %s, %s, %s)", ph(0), ph(1), ph(2), ph(3)))
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if _, err := stmt.ExecContext(ctx, key(i), i%97, int64(i), "deleted"); err != nil {
				return err
			}
		}
		return tx.Commit()
	}
	del := func(tx *sql.Tx, from, to int) error {
		var q strings.Builder
		q.WriteString("DELETE FROM limit_rows WHERE object IN (")
		args := make([]any, 0, to-from)
		for i := from; i < to; i++ {
			if i > from {
				q.WriteString(", ")
			}
			q.WriteString(ph(i - from))
			args = append(args, key(i))
		}
		q.WriteString(")")
		res, err := tx.ExecContext(ctx, q.String(), args...)
		if err != nil {
			return err
		}
		if got, _ := res.RowsAffected(); got != int64(to-from) {
			return fmt.Errorf("deleted %d rows, want %d", got, to-from)
		}
		return nil
	}
	var out []limitResult
	for _, batch := range []int{100, 1000} {
		for _, perBatch := range []bool{false, true} {
			if err := fill(); err != nil {
				return out, fmt.Errorf("filling: %w", err)
			}
			what := "DELETE … IN (batch), one transaction"
			if perBatch {
				what = "DELETE … IN (batch), one transaction per batch"
			}
			start := time.Now()
			err := func() error {
				var tx *sql.Tx
				for from := 0; from < n; from += batch {
					if tx == nil {
						var err error
						if tx, err = conn.BeginTx(ctx, nil); err != nil {
							return err
						}
					}
					if err := del(tx, from, min(from+batch, n)); err != nil {
						tx.Rollback()
						return err
					}
					if perBatch {
						if err := tx.Commit(); err != nil {
							return err
						}
						tx = nil
					}
				}
				if tx != nil {
					return tx.Commit()
				}
				return nil
			}()
			if err != nil {
				return out, fmt.Errorf("%s, batch %d: %w", what, batch, err)
			}
			out = append(out, limitResult{Backend: backend, What: what, Batch: batch, N: n, Seconds: time.Since(start).Seconds()})
		}
	}
	return out, nil
}

// fsLimits unlinks n small files laid out as berth's filesystem store lays
// out blobs, in both layouts side by side: one file per blob in 256 fan-out
// directories (blobs/sha256/ab/<hex>-<random>, blob.NewKey) and the older
// directory per blob (blobs/sha256/ab/<hex>/<random>). For each: plain
// unlinks on one thread, and berth's fs.Store.DeleteBatch, 1000 keys per
// call, as the collector calls it (unlinks on 4 threads, one syncfs, the
// pruning of emptied directories).
func fsLimits(ctx context.Context, root string, n int) ([]limitResult, error) {
	store, err := blobfs.New(root)
	if err != nil {
		return nil, err
	}
	body := bytes.Repeat([]byte("b"), 2048)
	dirPerBlob := func(dg digest.Digest) string {
		k := blob.NewKey(dg)
		return strings.Replace(k, "-", "/", 1)
	}
	fill := func(newKey func(digest.Digest) string) ([]string, error) {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = newKey(digest.FromString(fmt.Sprintf("limits %d %d", i, time.Now().UnixNano())))
			p := filepath.Join(store.Root(), "blobs", filepath.FromSlash(keys[i]))
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return nil, err
			}
			if err := os.WriteFile(p, body, 0o600); err != nil {
				return nil, err
			}
		}
		syscall.Sync() // the unlinks do not race the files' writeback
		return keys, nil
	}
	path := func(k string) string { return filepath.Join(store.Root(), "blobs", filepath.FromSlash(k)) }
	var out []limitResult
	for _, layout := range []struct {
		name   string
		newKey func(digest.Digest) string
	}{{"one file per blob", blob.NewKey}, {"a directory per blob", dirPerBlob}} {
		keys, err := fill(layout.newKey)
		if err != nil {
			return out, err
		}
		start := time.Now()
		for _, k := range keys {
			if err := os.Remove(path(k)); err != nil {
				return out, err
			}
			if strings.Count(k, "/") == 3 { // its own directory
				if err := os.Remove(filepath.Dir(path(k))); err != nil {
					return out, err
				}
			}
		}
		out = append(out, limitResult{Backend: "fs", What: "unlink (and rmdir), 1 thread, " + layout.name, Batch: 1, N: n, Seconds: time.Since(start).Seconds()})
		os.RemoveAll(filepath.Join(store.Root(), "blobs"))
		if keys, err = fill(layout.newKey); err != nil {
			return out, err
		}
		start = time.Now()
		for from := 0; from < n; from += 1000 {
			for i, err := range store.DeleteBatch(ctx, keys[from:min(from+1000, n)]) {
				if err != nil {
					return out, fmt.Errorf("DeleteBatch, key %d: %w", from+i, err)
				}
			}
		}
		out = append(out, limitResult{Backend: "fs", What: "fs.Store.DeleteBatch (4 threads, syncfs, prune), " + layout.name, Batch: 1000, N: n, Seconds: time.Since(start).Seconds()})
		os.RemoveAll(filepath.Join(store.Root(), "blobs"))
	}
	return out, nil
}

// s3Limits deletes n small objects from a bucket of a versitygw of its own
// with DeleteObjects, 1000 keys per request, one request at a time.
func s3Limits(ctx context.Context, bin, root string, n int) ([]limitResult, error) {
	gw, err := startVersitygw(ctx, bin, root, "limits")
	if err != nil {
		return nil, err
	}
	defer gw.stop()
	cl := awss3.New(awss3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(gw.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s3AccessKey, s3SecretKey, ""),
	})
	body := bytes.Repeat([]byte("b"), 2048)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = blob.NewKey(digest.FromString(fmt.Sprintf("limits %d", i)))
	}
	if _, err := parallel(16, n, func(i int) error {
		_, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(gw.bucket), Key: aws.String(keys[i]), Body: bytes.NewReader(body)})
		return err
	}); err != nil {
		return nil, fmt.Errorf("putting %d objects: %w", n, err)
	}
	start := time.Now()
	for from := 0; from < n; from += 1000 {
		var ids []types.ObjectIdentifier
		for _, k := range keys[from:min(from+1000, n)] {
			ids = append(ids, types.ObjectIdentifier{Key: aws.String(k)})
		}
		resp, err := cl.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: aws.String(gw.bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return nil, err
		}
		if len(resp.Errors) > 0 {
			return nil, fmt.Errorf("DeleteObjects: %d errors, first %s", len(resp.Errors), aws.ToString(resp.Errors[0].Message))
		}
	}
	return []limitResult{{Backend: "s3", What: "DeleteObjects (versitygw, posix backend)", Batch: 1000, N: n, Seconds: time.Since(start).Seconds()}}, nil
}
