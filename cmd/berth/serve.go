package main

import (
	"github.com/spf13/cobra"

	"github.com/berth/berth/internal/app"
	"github.com/berth/berth/internal/config"
)

func newServeCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the registry and its background garbage collector",
		Long: `serve runs the OCI Distribution API and, unless --gc-workers is 0, the
garbage collector in the same process.

On start it brings the database schema up to date: an empty database is
initialised and an older one migrated; a schema newer than this berth is
refused. SIGINT or SIGTERM shuts down gracefully, waiting up to 30 seconds for
requests in flight. Prometheus metrics are served on /metrics unless
--metrics=false, and the management API (tag history and restore, tag expiry,
namespace retention, purge, collector status) under /berth/v1. Registry and
collector events are POSTed to the configured webhooks.`,
		Example: `  # Everything under ./berth-data, plain HTTP on :5000
  berth serve

  # HTTPS on 443 with a 7-day time-machine window and no background GC
  berth serve --addr :443 --tls-cert cert.pem --tls-key key.pem \
    --tag-retention 7d --gc-workers 0

  # Several replicas sharing PostgreSQL (blob storage must be shared too)
  BERTH_DB=postgres://berth@db/berth berth serve --gc-workers 4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load(cmd)
			if err != nil {
				return err
			}
			return app.Serve(cmd.Context(), cfg, app.NewLogger(cfg))
		},
	}
	config.BindFlags(cmd.Flags(), &g.flags, config.ServerFlags, config.GCFlags)
	return cmd
}
