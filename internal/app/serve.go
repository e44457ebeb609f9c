package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/config"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
)

const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	shutdownTimeout   = 30 * time.Second
)

// collector is the part of the garbage collector that serve runs: a loop
// that returns when ctx is done (STYLE.md rule 12).
type collector interface {
	Run(ctx context.Context) error
}

// Serve runs the registry until ctx is cancelled (cmd/berth cancels it on
// SIGINT and SIGTERM), then shuts the HTTP server down gracefully, waiting up
// to 30s for requests in flight, stops the collector and closes the stores.
// It returns nil after a clean shutdown.
//
// On start it brings the database schema up to date: an empty database is
// initialised and an older schema is migrated (logged); a schema newer than
// this berth is refused, so an old binary never writes to a newer database.
func Serve(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	return serve(ctx, cfg, logger, nil)
}

// serve is Serve with a hook called with the bound address once the server
// accepts connections (tests listen on port 0).
func serve(ctx context.Context, cfg config.Config, logger *slog.Logger, ready func(net.Addr)) error {
	if logger == nil {
		logger = NewLogger(cfg)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	// Bind first: a taken port fails the start before anything is
	// created or migrated.
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Addr, err)
	}
	defer ln.Close() // Serve closes it too; this covers the returns before
	var mln net.Listener
	if cfg.MetricsAddr != "" && cfg.Metrics {
		if mln, err = lc.Listen(ctx, "tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("listening on %s (metrics_addr): %w", cfg.MetricsAddr, err)
		}
		defer mln.Close()
	}
	stores, err := openStores(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer stores.Close()
	if err := prepareSchema(ctx, stores.Meta, logger); err != nil {
		return err
	}

	var promReg *prometheus.Registry
	var metricsHandler http.Handler
	if cfg.Metrics {
		promReg, metricsHandler = newMetrics()
	}
	var registerer prometheus.Registerer // a nil *prometheus.Registry must stay a nil interface
	if promReg != nil {
		registerer = promReg
	}
	svc, err := newServices(cfg, stores, logger, registerer)
	if err != nil {
		return err
	}
	if promReg != nil {
		promReg.MustRegister(newUsageCollector(svc.Registry, cfg.MetricsUsageNamespaces, logger))
		promReg.MustRegister(stores.Meta.Collectors()...)
	}
	// Runs after the collector has stopped (see the defers below), before
	// the stores close: the registry writes the pulls it has not recorded
	// yet. drain is false when the HTTP server did not shut down cleanly:
	// handlers may still emit events, and the process is about to exit
	// anyway.
	drain := true
	defer func() {
		ctx, stop := context.WithTimeout(context.Background(), shutdownTimeout)
		defer stop()
		if err := svc.Registry.Close(ctx); err != nil {
			logger.Warn("closing the registry", "err", err)
		}
		if drain {
			svc.closeEvents(ctx)
		}
	}()
	authSvc, err := startAuth(ctx, cfg, stores.Meta, logger)
	if err != nil {
		return err
	}
	proxies, err := cfg.HTTP.TrustedProxyPrefixes()
	if err != nil {
		return err // Validate reported it already
	}
	apiOpts := api.Options{
		Logger:          logger,
		Collector:       svc.Collector,
		BlobRedirectTTL: blobRedirectTTL(cfg),
		BodyIdleTimeout: cfg.HTTP.BodyIdleTimeout.Duration(),
		AuthRealm:       cfg.Auth.Token.Realm,
		TrustedProxies:  proxies,
		Registerer:      registerer,
	}
	if authSvc != nil {
		apiOpts.Auth = authSvc
		apiOpts.Accounts = authSvc
		if cfg.MetricsAuth && metricsHandler != nil {
			metricsHandler = adminOnly(authSvc, proxies, metricsHandler)
		}
	}
	apiHandler := api.New(svc.Registry, apiOpts)
	var webHandler http.Handler
	if cfg.Web.Enabled {
		if webHandler, err = newWeb(svc, authSvc, proxies, cfg.GC.Workers, logger); err != nil {
			return err
		}
	}
	readiness := newReadiness(stores.Meta, stores.Blobs, logger)
	var metricsSrv *http.Server
	if cfg.MetricsAddr != "" && metricsHandler != nil {
		// Metrics on their own listener: not on the registry's port.
		metricsSrv = &http.Server{Handler: routes(http.NotFoundHandler(), nil, metricsHandler, readiness), ReadHeaderTimeout: readHeaderTimeout,
			ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
		metricsHandler = nil
	}

	srv := &http.Server{
		Handler:           routes(apiHandler, webHandler, metricsHandler, readiness),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		// No ReadTimeout or WriteTimeout: blob uploads and downloads are
		// large and legitimately slow. A body that stops moving is cut
		// by the API instead (http.body_idle_timeout).
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if cfg.TLS.Enabled() {
		// Load now, so that a bad certificate fails the start rather than
		// every handshake.
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return fmt.Errorf("loading TLS certificate: %w", err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}

	// Deferred in this order so that, on every return path, ctx is
	// cancelled, then the collector is waited for, then webhook delivery
	// is drained (closeEvents, deferred above), then the stores close.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if c := newCollector(cfg, svc); c != nil {
		wg.Go(func() {
			// The collector backs off and retries on its own; if it stops
			// anyway, keep serving: pulls and pushes matter more than
			// reclaiming space, and the error is logged for the operator.
			if err := c.Run(ctx); err != nil && ctx.Err() == nil {
				logger.Error("garbage collector stopped", "err", err)
			}
		})
	}

	if metricsSrv != nil {
		go func() { _ = metricsSrv.Serve(mln) }()
		defer metricsSrv.Close()
		logger.Info("metrics listening", "addr", mln.Addr().String())
	}
	served := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	v := Version()
	if cfg.GC.Grace.Duration() == 0 && cfg.GC.Workers > 0 {
		logger.Warn("gc grace is 0 with background collection on: an uploaded blob is garbage until a manifest references it, " +
			"so concurrent pushes can fail with MANIFEST_BLOB_UNKNOWN; a zero grace is for tests")
	}
	if s3 := cfg.Storage.S3; cfg.Storage.Backend == config.StorageS3 && s3.Redirect && s3.RedirectTTL.Duration() > cfg.GC.Grace.Duration() {
		logger.Warn("storage.s3.redirect_ttl is longer than gc.grace: a presigned URL can outlive the protection a pull gives "+
			"a blob (one grace), and a blob collected meanwhile answers the URL with 404 from S3 instead of its bytes",
			"redirect_ttl", s3.RedirectTTL.String(), "grace", cfg.GC.Grace.String())
	}
	logger.Info("berth listening",
		"addr", ln.Addr().String(),
		"data", cfg.Data,
		"backend", stores.Meta.Dialect(),
		"storage", cfg.Storage.Backend,
		"version", v.Version,
		"tls", cfg.TLS.Enabled(),
		"gc_workers", cfg.GC.Workers,
		"metrics", cfg.Metrics,
		"auth", cfg.Auth.Enabled,
		"webhooks", len(cfg.Webhooks),
		"body_idle_timeout", cfg.HTTP.BodyIdleTimeout.String(),
	)
	if cfg.Storage.Backend == config.StorageS3 {
		// LogValue leaves the credentials out.
		logger.Info("blob storage", "s3", cfg.Storage.S3)
	}
	if ready != nil {
		ready(ln.Addr())
	}

	select {
	case err := <-served:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", shutdownTimeout)
	shutdownCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer stop()
	err = srv.Shutdown(shutdownCtx)
	<-served // http.ErrServerClosed
	if err != nil {
		drain = false
		srv.Close()
		return fmt.Errorf("shutting down HTTP server: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// routes sends GET and HEAD /metrics, spelled exactly so, to metrics (nil
// when metrics are off), /healthz and /readyz to the health endpoints
// (health.go), GET, HEAD and POST of / and /-/… to the web interface (nil
// when web.enabled is off; webPath), and every other request to the API. Not an http.ServeMux:
// it matches the percent-decoded path, so /%6detrics would reach the
// metrics past a proxy rule on /metrics; the API routes on the path as
// sent too (api.ParseRoute, docs/design/hardening.md). The health
// endpoints are outside access control, and outside the request log and
// metrics: a load balancer polls them every second.
func routes(api, web, metrics, ready http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if web != nil && webPath(r) {
			web.ServeHTTP(w, r)
			return
		}
		if r.URL.RawPath == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			switch {
			case r.URL.Path == "/metrics" && metrics != nil:
				metrics.ServeHTTP(w, r)
				return
			case r.URL.Path == "/healthz":
				healthy(w, r)
				return
			case r.URL.Path == "/readyz" && ready != nil:
				ready.ServeHTTP(w, r)
				return
			}
		}
		api.ServeHTTP(w, r)
	})
}

// prepareSchema migrates an empty or older database and refuses a newer one.
func prepareSchema(ctx context.Context, store *sqlstore.Store, logger *slog.Logger) error {
	err := store.CheckSchema(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, meta.ErrSchemaUnknown):
		return fmt.Errorf("refusing to serve: %w; upgrade berth to a version that knows this schema", err)
	case !errors.Is(err, meta.ErrSchemaOutdated):
		return fmt.Errorf("checking database schema: %w", err)
	}
	have, err := store.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if have == 0 {
		logger.Info("initializing empty database", "backend", store.Dialect(), "schema_version", store.LatestVersion())
	} else {
		logger.Warn("migrating database schema", "backend", store.Dialect(), "from", have, "to", store.LatestVersion())
	}
	if _, err := store.Migrate(ctx); err != nil {
		return fmt.Errorf("migrating database schema: %w", err)
	}
	return nil
}

// registryOptions maps the config and its policy (Policy, the collector's
// too) onto registry.Options.
func registryOptions(cfg config.Config, policy review.Policy, logger *slog.Logger) registry.Options {
	return registry.Options{
		Policy:       policy,
		Now:          time.Now,
		Logger:       logger,
		PullInterval: cfg.Policy.PullInterval.Duration(),
		// Events are set by newServices, which forwards them to the
		// collector's webhooks.
		Limits: registry.Limits{
			UploadSessions:              cfg.Limits.UploadSessions,
			UploadSessionsPerRepository: cfg.Limits.UploadSessionsPerRepository,
			BlobSize:                    cfg.Limits.BlobSize.Bytes(),
		},
	}
}

// blobRedirectTTL is the api's BlobRedirectTTL: the configured TTL when
// redirects are on (Validate allows them only on S3), else 0 (stream).
func blobRedirectTTL(cfg config.Config) time.Duration {
	if cfg.Storage.Backend != config.StorageS3 || !cfg.Storage.S3.Redirect {
		return 0
	}
	return cfg.Storage.S3.RedirectTTL.Duration()
}

// newCollector returns the background collector of svc, or nil when
// cfg.GC.Workers is 0 (the collector still exists then, for the management
// API and for webhooks, but collects nothing on its own).
func newCollector(cfg config.Config, svc *Services) collector {
	if cfg.GC.Workers == 0 {
		return nil
	}
	return svc.Collector
}
