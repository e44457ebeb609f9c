package main

import (
	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/app"
)

func newMigrateCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database schema migrations",
		Long: `migrate brings the metadata database (SQLite in the data directory, or the
PostgreSQL database of --db) up to the schema this berth knows, applying each
pending migration in its own transaction. It is safe to run again; it refuses
a database whose schema is newer than this berth.

serve migrates on start too; run migrate explicitly to upgrade the schema
before rolling out new replicas.`,
		Example: `  # Migrate the SQLite database under /var/lib/berth
  berth migrate --data /var/lib/berth

  # Migrate a PostgreSQL database
  berth migrate --db postgres://berth@db:5432/berth`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load(cmd)
			if err != nil {
				return err
			}
			return app.Migrate(cmd.Context(), cfg, app.NewLogger(cfg))
		},
	}
}
