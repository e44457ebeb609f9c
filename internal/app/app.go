// Package app wires berth together: it turns a config.Config into backends
// (the metadata store, the blob store), the registry, the HTTP API and the
// collector, and runs them. It is the only package that imports the
// backends and the only one that reads the config (STYLE.md rules 9, 10):
// every other package takes its own Options, filled in here.
//
// The commands in cmd/berth are thin: they load the config and call Serve,
// Migrate or OpenStores.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"

	"github.com/berth/berth/internal/blob"
	blobfs "github.com/berth/berth/internal/blob/fs"
	"github.com/berth/berth/internal/blob/s3"
	"github.com/berth/berth/internal/config"
	"github.com/berth/berth/internal/datadir"
	"github.com/berth/berth/internal/meta/sqlstore"
)

// Stores are the opened backends, for the CLI commands that work on them
// directly (gc, sweep, purge, tag). Close them when done.
type Stores struct {
	// Meta is the metadata store (SQLite or PostgreSQL, per cfg.DB).
	Meta *sqlstore.Store
	// Blobs is the byte store (the filesystem under <data>/storage, or S3,
	// per cfg.Storage).
	Blobs blob.Store
}

// Close closes the backends.
func (s *Stores) Close() error {
	if s == nil || s.Meta == nil {
		return nil
	}
	return s.Meta.Close()
}

// ErrNoRegistry is returned by OpenStores, OpenServices and OpenAccounts
// when the configuration points at no berth registry: a data directory or
// SQLite file that does not exist, or a database without berth's schema.
// Only serve and migrate create a registry; the operations commands run
// from the wrong directory must not create an empty one beside it.
var ErrNoRegistry = errors.New("no berth registry")

// OpenStores opens the blob store and the metadata store of an existing
// registry and checks that the database schema is the one this berth
// knows. It creates nothing: a missing data directory or SQLite file, or a
// database without berth's schema, is an error wrapping ErrNoRegistry that
// says how to point at a registry; an older or newer schema is an error
// wrapping meta.ErrSchemaOutdated or meta.ErrSchemaUnknown (serve and
// migrate migrate). The stores log through NewLogger(cfg).
func OpenStores(ctx context.Context, cfg config.Config) (*Stores, error) {
	return openExisting(ctx, cfg, true)
}

// openExisting is OpenStores; without blobs it opens the metadata store
// only (the account commands touch no blob).
func openExisting(ctx context.Context, cfg config.Config, blobs bool) (*Stores, error) {
	logger := NewLogger(cfg)
	fsBlobs := blobs && (cfg.Storage.Backend == config.StorageFilesystem || cfg.Storage.Backend == "")
	if err := registryExists(cfg, fsBlobs); err != nil {
		return nil, err
	}
	store, err := sqlstore.Open(ctx, cfg.DSN(), storeOptions(cfg, logger, true))
	if err != nil {
		return nil, fmt.Errorf("opening %s metadata store: %w", cfg.Backend(), err)
	}
	s := &Stores{Meta: store}
	if err := checkExistingSchema(ctx, cfg, store); err != nil {
		s.Close()
		return nil, err
	}
	if blobs {
		if err := prepareData(cfg, logger, false); err != nil {
			s.Close()
			return nil, err
		}
		if s.Blobs, err = openBlobs(ctx, cfg); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// registryExists checks, before anything is opened, the paths an existing
// registry has: the data directory when it holds the SQLite database or
// the blobs (fsBlobs), and the SQLite file.
func registryExists(cfg config.Config, fsBlobs bool) error {
	sqlite := cfg.Backend() == config.BackendSQLite
	if sqlite || fsBlobs {
		fi, err := os.Stat(cfg.Data)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return noRegistryAt(cfg.Data, "no such directory")
		case err != nil:
			return fmt.Errorf("opening data directory: %w", err)
		case !fi.IsDir():
			return noRegistryAt(cfg.Data, "not a directory")
		}
	}
	if !sqlite {
		return nil
	}
	_, err := os.Stat(cfg.DSN())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return noRegistryAt(cfg.Data, "no "+filepath.Base(cfg.DSN())+" in it")
	case err != nil:
		return fmt.Errorf("opening sqlite database: %w", err)
	}
	return nil
}

// checkExistingSchema is CheckSchema, except that a database without any
// of berth's schema is no registry (an empty SQLite file left by an older
// berth run from the wrong directory, or a PostgreSQL database never
// migrated).
func checkExistingSchema(ctx context.Context, cfg config.Config, store *sqlstore.Store) error {
	have, err := store.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("checking database schema: %w", err)
	}
	if have == 0 {
		if cfg.Backend() == config.BackendPostgres {
			return fmt.Errorf("%w in %s (the database holds no berth schema); point at another with --db, BERTH_DB or --config, "+
				"or initialise this one with berth migrate", ErrNoRegistry, redactDSN(cfg.DB))
		}
		return noRegistryAt(cfg.Data, filepath.Base(cfg.DSN())+" holds no berth schema")
	}
	if err := store.CheckSchema(ctx); err != nil {
		return fmt.Errorf("checking database schema: %w", err)
	}
	return nil
}

// noRegistryAt says that no registry is at path, why, and how to point at
// one.
func noRegistryAt(path, why string) error {
	return fmt.Errorf("%w at %s (%s); point at one with --data DIR, BERTH_DATA, --db or --config, or create one with berth migrate",
		ErrNoRegistry, path, why)
}

// redactDSN hides the password of a PostgreSQL URL.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "the configured database"
	}
	return u.Redacted()
}

// openStores opens both backends for serve, creating the data directory,
// the SQLite file and the blob store's directories as needed, without
// looking at the schema.
func openStores(ctx context.Context, cfg config.Config, logger *slog.Logger) (*Stores, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := prepareData(cfg, logger, true); err != nil {
		return nil, err
	}
	blobs, err := openBlobs(ctx, cfg)
	if err != nil {
		return nil, err
	}
	store, err := openMeta(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	// A blob backend with resources to release gets a Close here.
	return &Stores{Meta: store, Blobs: blobs}, nil
}

// openBlobs switches on the blob backend: the filesystem under
// <data>/storage, or an S3 bucket. Every command that opens the stores (serve,
// gc, sweep, purge, tag...) comes through here.
func openBlobs(ctx context.Context, cfg config.Config) (blob.Store, error) {
	switch cfg.Storage.Backend {
	case config.StorageS3:
		c := cfg.Storage.S3
		s, err := s3.New(ctx, s3.Config{
			Bucket:    c.Bucket,
			Region:    c.Region,
			Endpoint:  c.Endpoint,
			PathStyle: c.PathStyle,
			Prefix:    c.Prefix,
			AccessKey: c.AccessKey,
			SecretKey: c.SecretKey,
			PartSize:  c.PartSize.Bytes(),
		})
		if err != nil {
			return nil, fmt.Errorf("opening S3 blob store (bucket %q): %w", c.Bucket, err)
		}
		return s, nil
	case config.StorageFilesystem, "":
		s, err := blobfs.New(cfg.BlobRoot())
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("unknown blob storage %q", cfg.Storage.Backend)
}

// openMeta opens the metadata store; sqlstore selects SQLite or PostgreSQL
// from the DSN (config.Config.Backend names the same choice).
func openMeta(ctx context.Context, cfg config.Config, logger *slog.Logger) (*sqlstore.Store, error) {
	store, err := sqlstore.Open(ctx, cfg.DSN(), storeOptions(cfg, logger, false))
	if err != nil {
		return nil, fmt.Errorf("opening %s metadata store: %w", cfg.Backend(), err)
	}
	return store, nil
}

// storeOptions are the metadata store's options of cfg: serve's (and
// migrate's), or an operations command's, which opens an existing
// database beside a serve that may run.
func storeOptions(cfg config.Config, logger *slog.Logger, operations bool) sqlstore.Options {
	cache := cfg.SQLite.WriterCache.Bytes()
	if cache == 0 {
		cache = -1 // SQLite's own default
	}
	return sqlstore.Options{Logger: logger, Existing: operations, BesideServe: operations, WriterCache: cache}
}

// prepareData creates the data directory private (datadir.DirMode), when
// create and the configuration keeps anything in it (the SQLite database,
// the filesystem blob store), and tightens what an older berth, or an
// operator, left readable by others: the data directory, the blob store's
// root and the SQLite files lose their group and other permissions, each
// change logged as a warning. What lies under a private directory needs no
// walk: no one else can reach it. A path that cannot be tightened (owned by
// another user) is a warning too, not a reason to refuse to start.
func prepareData(cfg config.Config, logger *slog.Logger, create bool) error {
	sqlite := cfg.Backend() == config.BackendSQLite
	fsBlobs := cfg.Storage.Backend == config.StorageFilesystem || cfg.Storage.Backend == ""
	if !sqlite && !fsBlobs {
		return nil
	}
	if create {
		if err := datadir.MkdirAll(cfg.Data); err != nil {
			return fmt.Errorf("creating data directory: %w", err)
		}
	}
	paths := []string{cfg.Data}
	if fsBlobs {
		paths = append(paths, cfg.BlobRoot())
	}
	if sqlite {
		paths = append(paths, cfg.DSN(), cfg.DSN()+"-wal", cfg.DSN()+"-shm", cfg.DSN()+"-gate")
	}
	for _, p := range paths {
		before, changed, err := datadir.Tighten(p)
		switch {
		case err != nil:
			logger.Warn("the data directory is readable by other users and could not be made private", "path", p, "err", err)
		case changed:
			logger.Warn("made private a path of the data directory that other users could read (created by an older berth?)",
				"path", p, "from", before.String(), "to", (before &^ 0o077).String())
		}
	}
	return nil
}

// NewLogger returns the process logger on stderr, at cfg.Log.Level in
// cfg.Log.Format.
func NewLogger(cfg config.Config) *slog.Logger {
	return newLogger(os.Stderr, cfg)
}

func newLogger(w io.Writer, cfg config.Config) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		level = slog.LevelInfo // Validate rejects this; keep a usable logger anyway
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
