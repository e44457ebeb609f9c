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

Blob bytes live under <data>/storage unless --storage s3 names a bucket;
with --s3-redirect, blob GETs answer 307 with a presigned S3 URL (valid for
--s3-redirect-ttl) instead of streaming the bytes through berth.

On start it brings the database schema up to date: an empty database is
initialised and an older one migrated; a schema newer than this berth is
refused. SIGINT or SIGTERM shuts down gracefully, waiting up to 30 seconds for
requests in flight. Prometheus metrics are served on /metrics unless
--metrics=false, and the management API (tag history and restore, tag expiry,
namespace retention, purge, collector status, accounts) under /berth/v1.
Registry and collector events are POSTed to the configured webhooks.

With access control off (the default) berth listens on loopback only: serving
another address needs --auth-enabled (accounts, roles, the Docker token
protocol at /auth/token) or, for an open registry, --insecure-open-access.`,
		Example: `  # Everything under ./berth-data, plain HTTP on 127.0.0.1:5000, no access control
  berth serve

  # For a team: access control on (create the first administrator before:
  # berth migrate && berth user add admin --admin), HTTPS on every interface,
  # a 7-day time-machine window and no background GC
  berth serve --auth-enabled --addr :443 --tls-cert cert.pem --tls-key key.pem \
    --tag-retention 7d --gc-workers 0

  # Metadata in PostgreSQL, blobs in S3 (credentials from the AWS SDK chain:
  # AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws, or an instance role),
  # pulls redirected to presigned S3 URLs
  berth serve --db postgres://berth@db/berth \
    --storage s3 --s3-bucket my-registry --s3-region eu-west-1 --s3-redirect

  # The same on an S3-compatible server (MinIO, versitygw, Ceph...)
  BERTH_S3_ACCESS_KEY=berth BERTH_S3_SECRET_KEY=... berth serve \
    --db postgres://berth@db/berth --storage s3 --s3-bucket registry \
    --s3-endpoint http://minio:9000 --s3-path-style

  # Several replicas: each runs this, on the same database and bucket, behind
  # a load balancer (run "berth migrate" once before upgrading them); tokens
  # issued by one are accepted by all
  BERTH_DB=postgres://berth@db/berth BERTH_STORAGE=s3 BERTH_S3_BUCKET=my-registry \
    berth serve --auth-enabled --addr :5000 --gc-workers 4`,
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
