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
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/blob/fs"
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

// OpenStores opens the blob store and the metadata store of cfg and checks
// that the database schema is the one this berth knows: it does not migrate
// (serve and migrate do), and returns an error wrapping
// meta.ErrSchemaOutdated or meta.ErrSchemaUnknown otherwise. The stores log
// through NewLogger(cfg).
func OpenStores(ctx context.Context, cfg config.Config) (*Stores, error) {
	s, err := openStores(ctx, cfg, NewLogger(cfg))
	if err != nil {
		return nil, err
	}
	if err := s.Meta.CheckSchema(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("checking database schema: %w", err)
	}
	return s, nil
}

// openStores opens both backends without looking at the schema.
func openStores(ctx context.Context, cfg config.Config, logger *slog.Logger) (*Stores, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := prepareData(cfg, logger); err != nil {
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
		s, err := fs.New(cfg.BlobRoot())
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
	store, err := sqlstore.Open(ctx, cfg.DSN(), sqlstore.Options{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("opening %s metadata store: %w", cfg.Backend(), err)
	}
	return store, nil
}

// prepareData creates the data directory private (datadir.DirMode) when
// the configuration keeps anything in it (the SQLite database, the
// filesystem blob store), and tightens what an older berth, or an
// operator, left readable by others: the data directory, the blob store's
// root and the SQLite files lose their group and other permissions, each
// change logged as a warning. What lies under a private directory needs no
// walk: no one else can reach it. A path that cannot be tightened (owned by
// another user) is a warning too, not a reason to refuse to start.
func prepareData(cfg config.Config, logger *slog.Logger) error {
	sqlite := cfg.Backend() == config.BackendSQLite
	fsBlobs := cfg.Storage.Backend == config.StorageFilesystem || cfg.Storage.Backend == ""
	if !sqlite && !fsBlobs {
		return nil
	}
	if err := datadir.MkdirAll(cfg.Data); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	paths := []string{cfg.Data}
	if fsBlobs {
		paths = append(paths, cfg.BlobRoot())
	}
	if sqlite {
		paths = append(paths, cfg.DSN(), cfg.DSN()+"-wal", cfg.DSN()+"-shm")
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
