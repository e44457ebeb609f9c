package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/berth/berth/internal/config"
)

// Migrate applies every pending migration to the database of cfg. It
// refuses a database whose schema is newer than this berth.
func Migrate(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	if logger == nil {
		logger = NewLogger(cfg)
	}
	store, err := openMeta(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	from, err := store.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	n, err := store.Migrate(ctx)
	if err != nil {
		return fmt.Errorf("migrating database schema: %w", err)
	}
	logger.Info("database schema up to date",
		"backend", store.Dialect(), "from", from, "to", from+n, "applied", n)
	return nil
}
