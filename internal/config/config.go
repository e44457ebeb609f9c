// Package config is berth's one typed configuration tree (STYLE.md rule 9).
// Only internal/app reads it; every other package takes its own Options.
//
// # Sources and precedence
//
// A Config is built from four sources; a later source overrides an earlier
// one field by field:
//
//  1. Default() — "berth serve" with no configuration starts a working
//     registry on :5000 with SQLite and blobs under ./berth-data;
//  2. an optional YAML file (--config FILE, else BERTH_CONFIG); unknown keys
//     are an error, so a typo is not silently ignored;
//  3. BERTH_* environment variables; an empty variable counts as unset, and
//     when a variable appears twice the last one wins (as with exec.Cmd.Env);
//  4. command-line flags, but only those set explicitly on the command line:
//     a flag left at its default never hides the file or the environment.
//
// So the precedence is flag > env > file > default. Load applies 1–3,
// LoadWithFlags all four; both then Validate, which reports every problem at
// once. BindFlags registers the flags; a command passes its parsed FlagSet to
// LoadWithFlags.
//
// # Settings
//
//	YAML key            env                        flag                   default
//	addr                BERTH_ADDR                 --addr                 127.0.0.1:5000
//	data                BERTH_DATA                 --data                 ./berth-data
//	db                  BERTH_DB                   --db                   "" (SQLite <data>/berth.db)
//	sqlite.writer_cache BERTH_SQLITE_WRITER_CACHE  --sqlite-writer-cache  32MiB
//	tls.cert, tls.key   BERTH_TLS_CERT/_KEY        --tls-cert, --tls-key  "" (plain HTTP)
//	log.level           BERTH_LOG_LEVEL            --log-level            info
//	log.format          BERTH_LOG_FORMAT           --log-format           text
//	metrics             BERTH_METRICS              --metrics              true
//	gc.grace            BERTH_GC_GRACE             --gc-grace             1h
//	gc.upload_expiry    BERTH_UPLOAD_EXPIRY        --upload-expiry        24h
//	gc.tag_retention    BERTH_TAG_RETENTION        --tag-retention        2w
//	gc.review_delay     BERTH_GC_REVIEW_DELAY      --gc-review-delay      0s
//	gc.workers          BERTH_GC_WORKERS           --gc-workers           2
//	gc.batch_size       BERTH_GC_BATCH_SIZE        --gc-batch-size        500
//	gc.tx_budget        BERTH_GC_TX_BUDGET         --gc-tx-budget         20ms
//	gc.tx_hold          BERTH_GC_TX_HOLD           --gc-tx-hold           60ms
//	gc.interval         BERTH_GC_INTERVAL          --gc-interval          10s
//	gc.collect_untagged BERTH_GC_COLLECT_UNTAGGED  --gc-collect-untagged  true
//	policy.pull_interval BERTH_POLICY_PULL_INTERVAL --policy-pull-interval 10m
//	webhooks            BERTH_WEBHOOKS             (none)                 none
//
//	gc.attachments_follow_subject  BERTH_GC_ATTACHMENTS_FOLLOW_SUBJECT  --gc-attachments-follow-subject  true
//
//	storage.backend         BERTH_STORAGE            --storage          filesystem
//	storage.s3.bucket       BERTH_S3_BUCKET          --s3-bucket        ""
//	storage.s3.region       BERTH_S3_REGION          --s3-region        "" (SDK default chain)
//	storage.s3.endpoint     BERTH_S3_ENDPOINT        --s3-endpoint      "" (AWS)
//	storage.s3.path_style   BERTH_S3_PATH_STYLE      --s3-path-style    false
//	storage.s3.prefix       BERTH_S3_PREFIX          --s3-prefix        ""
//	storage.s3.access_key   BERTH_S3_ACCESS_KEY      --s3-access-key    "" (SDK default chain)
//	storage.s3.secret_key   BERTH_S3_SECRET_KEY      --s3-secret-key    ""
//	storage.s3.part_size    BERTH_S3_PART_SIZE       --s3-part-size     8MiB
//	storage.s3.redirect     BERTH_S3_REDIRECT        --s3-redirect      false
//	storage.s3.redirect_ttl BERTH_S3_REDIRECT_TTL    --s3-redirect-ttl  20m
//
//	limits.upload_sessions                 BERTH_LIMITS_UPLOAD_SESSIONS                 --limits-upload-sessions                 100000
//	limits.upload_sessions_per_repository  BERTH_LIMITS_UPLOAD_SESSIONS_PER_REPOSITORY  --limits-upload-sessions-per-repository  1000
//	limits.blob_size                       BERTH_LIMITS_BLOB_SIZE                       --limits-blob-size                       10GiB
//	http.body_idle_timeout  BERTH_HTTP_BODY_IDLE_TIMEOUT  --http-body-idle-timeout  1m
//	http.trusted_proxies    BERTH_HTTP_TRUSTED_PROXIES    --http-trusted-proxies    none (X-Forwarded-For ignored)
//
//	auth.enabled               BERTH_AUTH_ENABLED                --auth-enabled                false
//	auth.token.realm           BERTH_AUTH_TOKEN_REALM            --auth-token-realm            "" (<this server>/auth/token)
//	auth.token.issuer          BERTH_AUTH_TOKEN_ISSUER           --auth-token-issuer           "" (berth)
//	auth.token.service         BERTH_AUTH_TOKEN_SERVICE          --auth-token-service          "" (the realm's host, else berth)
//	auth.token.rootcertbundle  BERTH_AUTH_TOKEN_ROOTCERTBUNDLE   --auth-token-rootcertbundle   "" (berth issues its own tokens)
//	auth.token.ttl             BERTH_AUTH_TOKEN_TTL              --auth-token-ttl              5m
//	insecure_open_access       BERTH_INSECURE_OPEN_ACCESS        --insecure-open-access        false
//	metrics_addr               BERTH_METRICS_ADDR                --metrics-addr                "" (the registry's port)
//	metrics_auth               BERTH_METRICS_AUTH                --metrics-auth                false
//	metrics_usage_namespaces   BERTH_METRICS_USAGE_NAMESPACES    --metrics-usage-namespaces    100
//	web.enabled                BERTH_WEB_ENABLED                 --web-enabled                 true
//	web.session_ttl            BERTH_WEB_SESSION_TTL             --web-session-ttl             12h
//	web.session_idle           BERTH_WEB_SESSION_IDLE            --web-session-idle            2h
//
// With access control off, addr must be a loopback address unless
// insecure_open_access is set (docs/design/auth.md, "Secure by default").
//
// The storage flags are shared by every command that opens the stores (gc,
// sweep, purge, tag...); the redirect and limits flags are serve's. A limit
// of 0 is unlimited. Without an access
// key, S3 credentials come from the AWS SDK's default chain (AWS_ACCESS_KEY_ID
// and AWS_SECRET_ACCESS_KEY, the shared credentials file, an instance or
// task role); the same goes for the region (AWS_REGION, then the shared config
// file's profile, and us-east-1 when neither names one). The secret key is
// never logged nor shown in errors.
//
// Durations accept Go syntax plus "d" and "w" units (see package duration).
// webhooks is a list of {url, events, timeout} in the file; BERTH_WEBHOOKS is
// a comma-separated list of URLs that replaces it, each receiving all events
// with the default timeout.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/duration"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/review"
)

// Backend names, as returned by Config.Backend.
const (
	BackendSQLite   = "sqlite"
	BackendPostgres = "postgres"
)

// Blob storage backends, the values of Storage.Backend.
const (
	StorageFilesystem = "filesystem"
	StorageS3         = "s3"
)

// Bounds of S3 settings: a multipart part is 5 MiB to 5 GiB (except the
// last), and a SigV4 presigned URL lives at most 7 days.
const (
	MinS3PartSize    = 5 * MiB
	MaxS3PartSize    = 5 * GiB
	MaxS3RedirectTTL = 7 * duration.Day
)

// DefaultWebhookTimeout is the timeout of a webhook whose timeout is 0.
const DefaultWebhookTimeout = 10 * time.Second

// DefaultPullInterval is how often at most a tag's pull is recorded.
const DefaultPullInterval = 10 * time.Minute

// DefaultMetricsUsageNamespaces is how many of the largest namespaces get a
// usage series of their own; maxMetricsUsageNamespaces bounds the setting
// (each is a series every scrape sends).
const (
	DefaultMetricsUsageNamespaces = 100
	maxMetricsUsageNamespaces     = 10000
)

// Config is the whole configuration of a berth process.
type Config struct {
	// Addr is the listen address of the HTTP server, host:port.
	Addr string `yaml:"addr"`
	// Data is the data directory: blob bytes under <data>/storage and, with
	// the default database, the SQLite file <data>/berth.db.
	Data string `yaml:"data"`
	// DB is "" for SQLite in the data directory, or a postgres:// or
	// postgresql:// URL.
	DB string `yaml:"db"`
	// SQLite tunes the SQLite database (ignored on PostgreSQL).
	SQLite   SQLite    `yaml:"sqlite"`
	TLS      TLS       `yaml:"tls"`
	Log      Log       `yaml:"log"`
	GC       GC        `yaml:"gc"`
	Policy   Policy    `yaml:"policy"`
	Webhooks []Webhook `yaml:"webhooks"`
	Storage  Storage   `yaml:"storage"`
	Limits   Limits    `yaml:"limits"`
	HTTP     HTTP      `yaml:"http"`
	// Metrics serves Prometheus metrics on /metrics.
	Metrics bool `yaml:"metrics"`
	// MetricsAddr, when set, serves /metrics on its own listener instead
	// of the registry's port.
	MetricsAddr string `yaml:"metrics_addr"`
	// MetricsAuth makes /metrics require a registry administrator's
	// Basic credentials (with access control on).
	MetricsAuth bool `yaml:"metrics_auth"`
	// MetricsUsageNamespaces is how many of the largest namespaces get a
	// series of berth_namespace_usage_bytes of their own; the others are
	// summed under namespace="_other" (docs/design/usage.md).
	MetricsUsageNamespaces int  `yaml:"metrics_usage_namespaces"`
	Auth                   Auth `yaml:"auth"`
	Web                    Web  `yaml:"web"`
	// InsecureOpenAccess lets a registry with access control off listen
	// on a non-loopback address (docs/design/auth.md).
	InsecureOpenAccess bool `yaml:"insecure_open_access"`
}

// SQLite tunes the embedded database.
type SQLite struct {
	// WriterCache is the page cache of the one connection every write
	// transaction runs on, the collector's included; 0 leaves SQLite's
	// default (2 MiB). It is filled as the database grows, then stays.
	WriterCache Size `yaml:"writer_cache"`
}

// DefaultSQLiteWriterCache is sqlite.writer_cache's default, the metadata
// store's own (sqlstore.DefaultWriterCache).
const DefaultSQLiteWriterCache = 32 * MiB

// maxSQLiteWriterCache bounds sqlite.writer_cache: a typo of a unit
// should not reserve the machine's memory.
const maxSQLiteWriterCache = 16 * GiB

// TLS enables HTTPS when both files are set.
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.Cert != "" && t.Key != "" }

// Log configures the process logger.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn or error
	Format string `yaml:"format"` // text or json
}

// GC configures the windows of DESIGN.md §3 and the collector of §4.
type GC struct {
	// Grace protects untagged manifests and uploaded blobs (roots 3 and 4).
	Grace Duration `yaml:"grace"`
	// UploadExpiry is how long an idle upload session lives (root 5).
	UploadExpiry Duration `yaml:"upload_expiry"`
	// TagRetention is the default time-machine window of a namespace (root 2).
	TagRetention Duration `yaml:"tag_retention"`
	// ReviewDelay is added to the due time of follow-up reviews.
	ReviewDelay Duration `yaml:"review_delay"`
	// Workers is the number of collector goroutines in serve; 0 disables
	// background collection.
	Workers int `yaml:"workers"`
	// BatchSize bounds the reviews claimed per transaction.
	BatchSize int `yaml:"batch_size"`
	// TxBudget is how long one collector transaction aims to take: the
	// reviews it claims adapt to it (docs/design/gc.md).
	TxBudget Duration `yaml:"tx_budget"`
	// TxHold is how long a SQLite collector transaction may go on
	// deciding sets while no push waits (docs/design/gc.md, "Chained
	// rounds").
	TxHold Duration `yaml:"tx_hold"`
	// PushPreempts: on SQLite, a push rolls back serve's collector
	// transaction in flight instead of waiting for it (docs/design/gc.md,
	// "Preemptible collector transactions").
	PushPreempts bool `yaml:"push_preempts"`
	// Interval is how often an idle worker polls for due work.
	Interval Duration `yaml:"interval"`
	// CollectUntagged collects untagged, unreferenced manifests older than
	// Grace; false keeps them (for operators who pin digests).
	CollectUntagged bool `yaml:"collect_untagged"`
	// AttachmentsFollowSubject ends the live attachment tags of a manifest
	// the collector deletes (cosign's sha256-<hex>.sig, .att, .sbom and
	// the referrers tag schema's sha256-<hex>, in the same repository);
	// they enter the time machine like any ended tag. false leaves them.
	AttachmentsFollowSubject bool `yaml:"attachments_follow_subject"`
}

// Policy configures what retention policies rely on
// (docs/design/policies.md).
type Policy struct {
	// PullInterval is how often at most the pull of a tag (a GET or HEAD
	// of a manifest by tag) is recorded for the pull rules; 0 records
	// every pull.
	PullInterval Duration `yaml:"pull_interval"`
}

// Storage selects where blob bytes live.
type Storage struct {
	// Backend is StorageFilesystem (under <data>/storage) or StorageS3.
	Backend string `yaml:"backend"`
	S3      S3     `yaml:"s3"`
}

// S3 configures the S3 blob store (Storage.Backend "s3"). Every replica of
// a registry uses the same bucket and prefix.
type S3 struct {
	Bucket string `yaml:"bucket"`
	// Region; empty takes the SDK's default (AWS_REGION, shared config),
	// else us-east-1. No default here: a region set here would hide them.
	Region string `yaml:"region"`
	// Endpoint of an S3-compatible server (http:// or https://); empty
	// for AWS.
	Endpoint string `yaml:"endpoint"`
	// PathStyle addresses the bucket in the path (endpoint/bucket/key), as
	// most S3-compatible servers want, instead of a bucket host name.
	PathStyle bool `yaml:"path_style"`
	// Prefix is prepended to every object key, to share a bucket: ""
	// or segments of [A-Za-z0-9._-] ("berth" or "berth/"), none named
	// blobs or uploads (blob.ValidPrefix, the store's own rule).
	Prefix string `yaml:"prefix"`
	// AccessKey and SecretKey are static credentials; both empty takes the
	// SDK's default credential chain.
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	// PartSize of multipart uploads (5 MiB to 5 GiB).
	PartSize Size `yaml:"part_size"`
	// Redirect answers blob GETs with 307 to a presigned URL, so the bytes
	// go from S3 to the client without passing through berth.
	Redirect bool `yaml:"redirect"`
	// RedirectTTL is how long a presigned URL stays valid.
	RedirectTTL Duration `yaml:"redirect_ttl"`
}

// LogValue describes s for logs without its credentials (slog.LogValuer).
func (s S3) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("bucket", s.Bucket),
		slog.String("region", s.Region),
		slog.String("endpoint", s.Endpoint),
		slog.Bool("path_style", s.PathStyle),
		slog.String("prefix", s.Prefix),
		slog.Bool("static_credentials", s.AccessKey != ""),
		slog.String("part_size", s.PartSize.String()),
		slog.Bool("redirect", s.Redirect),
		slog.String("redirect_ttl", s.RedirectTTL.String()),
	)
}

// Webhook receives collector events as HTTP POSTs.
type Webhook struct {
	URL string `yaml:"url"`
	// Events filters the events sent; empty means all.
	Events []string `yaml:"events"`
	// Timeout of one delivery; 0 means DefaultWebhookTimeout.
	Timeout Duration `yaml:"timeout"`
}

// Default returns the configuration used when nothing is configured.
func Default() Config {
	policy := review.DefaultPolicy()
	return Config{
		Addr:                   DefaultAddr,
		Auth:                   Auth{Token: AuthToken{TTL: Duration(DefaultTokenTTL)}},
		Data:                   "./berth-data",
		Log:                    Log{Level: "info", Format: "text"},
		SQLite:                 SQLite{WriterCache: DefaultSQLiteWriterCache},
		Metrics:                true,
		MetricsUsageNamespaces: DefaultMetricsUsageNamespaces,
		GC: GC{
			Grace:                    Duration(policy.Grace),
			UploadExpiry:             Duration(policy.UploadExpiry),
			TagRetention:             Duration(policy.TagRetention),
			ReviewDelay:              0,
			Workers:                  2,
			BatchSize:                gc.DefaultBatchSize,
			TxBudget:                 Duration(gc.DefaultTxBudget),
			TxHold:                   Duration(gc.DefaultTxHold),
			PushPreempts:             true,
			Interval:                 Duration(10 * time.Second),
			CollectUntagged:          policy.CollectUntagged,
			AttachmentsFollowSubject: policy.AttachmentsFollowSubject,
		},
		Policy: Policy{PullInterval: Duration(DefaultPullInterval)},
		HTTP:   HTTP{BodyIdleTimeout: Duration(DefaultBodyIdleTimeout)},
		Storage: Storage{
			Backend: StorageFilesystem,
			S3: S3{
				PartSize:    8 * MiB,
				RedirectTTL: Duration(20 * time.Minute),
			},
		},
		Limits: DefaultLimits(),
		Web:    DefaultWeb(),
	}
}

// Backend returns BackendPostgres when DB is a PostgreSQL URL, else
// BackendSQLite.
func (c Config) Backend() string {
	if isPostgres(c.DB) {
		return BackendPostgres
	}
	return BackendSQLite
}

// DSN returns the effective database: the PostgreSQL URL when DB is one,
// else the path of the SQLite file, <data>/berth.db.
func (c Config) DSN() string {
	if c.DB != "" {
		return c.DB
	}
	return filepath.Join(c.Data, "berth.db")
}

// BlobRoot is the root directory of the filesystem blob store, <data>/storage.
func (c Config) BlobRoot() string { return filepath.Join(c.Data, "storage") }

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Validate checks c and reports every problem at once, joined with
// errors.Join, each prefixed with the YAML key of its field.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}

	if c.Addr == "" {
		bad("addr", "must not be empty")
	} else if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		bad("addr", "want host:port, got %q", c.Addr)
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		bad("addr", "invalid port %q", port)
	}
	if c.Data == "" {
		bad("data", "must not be empty")
	}
	if c.DB != "" && !isPostgres(c.DB) {
		bad("db", "want empty (SQLite in the data directory) or a postgres:// URL, got %q", redact(c.DB))
	} else if c.DB != "" {
		if _, err := url.Parse(c.DB); err != nil {
			bad("db", "invalid PostgreSQL URL %q", redact(c.DB))
		}
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls", "set both cert and key, or neither")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "want text or json, got %q", c.Log.Format)
	}

	nonNegative := func(key string, d Duration) {
		if d < 0 {
			bad(key, "must not be negative, got %s", time.Duration(d))
		}
	}
	positive := func(key string, d Duration) {
		if d <= 0 {
			bad(key, "must be positive, got %s", time.Duration(d))
		}
	}
	nonNegative("gc.grace", c.GC.Grace)
	positive("gc.upload_expiry", c.GC.UploadExpiry)
	nonNegative("gc.tag_retention", c.GC.TagRetention)
	nonNegative("gc.review_delay", c.GC.ReviewDelay)
	positive("gc.interval", c.GC.Interval)
	positive("gc.tx_budget", c.GC.TxBudget)
	positive("gc.tx_hold", c.GC.TxHold)
	if c.MetricsUsageNamespaces < 0 || c.MetricsUsageNamespaces > maxMetricsUsageNamespaces {
		bad("metrics_usage_namespaces", "want 0 to %d, got %d", maxMetricsUsageNamespaces, c.MetricsUsageNamespaces)
	}
	if c.GC.Workers < 0 || c.GC.Workers > 1024 {
		bad("gc.workers", "must be between 0 and 1024, got %d", c.GC.Workers)
	}
	if c.GC.BatchSize < 1 || c.GC.BatchSize > 10000 {
		bad("gc.batch_size", "must be between 1 and 10000, got %d", c.GC.BatchSize)
	}
	nonNegative("policy.pull_interval", c.Policy.PullInterval)
	if c.SQLite.WriterCache < 0 || c.SQLite.WriterCache > maxSQLiteWriterCache {
		bad("sqlite.writer_cache", "want 0 (SQLite's default, 2MiB) to %s, got %s", Size(maxSQLiteWriterCache), c.SQLite.WriterCache)
	}

	errs = append(errs, c.Storage.validate()...)
	errs = append(errs, c.Limits.validate(c.Storage)...)
	errs = append(errs, c.HTTP.validate()...)
	errs = append(errs, c.validateAuth()...)
	errs = append(errs, c.Web.validate()...)

	for i, w := range c.Webhooks {
		key := fmt.Sprintf("webhooks[%d]", i)
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(key+".url", "want an http:// or https:// URL, got %q", w.URL)
		}
		for j, e := range w.Events {
			if strings.TrimSpace(e) == "" {
				bad(fmt.Sprintf("%s.events[%d]", key, j), "must not be empty")
			}
		}
		nonNegative(key+".timeout", w.Timeout)
	}
	return errors.Join(errs...)
}

// validate reports the problems of the storage section, each prefixed with
// its YAML key. It never quotes the secret key.
func (s Storage) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	s3 := s.S3
	switch s.Backend {
	case StorageFilesystem:
		if s3.Redirect {
			bad("storage.s3.redirect", "needs storage.backend s3 (--storage s3): the filesystem store cannot redirect")
		}
		if s3.Bucket != "" {
			bad("storage.s3.bucket", "set, but storage.backend is filesystem; set storage.backend: s3 (--storage s3) to use it")
		}
		return errs
	case StorageS3:
	default:
		bad("storage.backend", "want filesystem or s3, got %q", s.Backend)
		return errs
	}
	if s3.Bucket == "" {
		bad("storage.s3.bucket", "required with storage.backend s3")
	}
	if s3.Endpoint != "" {
		if u, err := url.Parse(s3.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("storage.s3.endpoint", "want an http:// or https:// URL, got %q", s3.Endpoint)
		}
	}
	if err := blob.ValidPrefix(s3.Prefix); err != nil {
		bad("storage.s3.prefix", "%v", err)
	}
	if s3.SecretKey != "" && s3.AccessKey == "" {
		bad("storage.s3.secret_key", "set without storage.s3.access_key; set both, or neither to use the SDK's default credential chain")
	}
	if s3.AccessKey != "" && s3.SecretKey == "" {
		bad("storage.s3.access_key", "set without storage.s3.secret_key; set both, or neither to use the SDK's default credential chain")
	}
	if s3.PartSize < MinS3PartSize || s3.PartSize > MaxS3PartSize {
		bad("storage.s3.part_size", "must be between 5MiB and 5GiB (S3's multipart limits), got %s", s3.PartSize)
	}
	if s3.Redirect && (s3.RedirectTTL <= 0 || s3.RedirectTTL.Duration() > MaxS3RedirectTTL) {
		bad("storage.s3.redirect_ttl", "must be positive and at most 7d (a presigned URL's limit), got %s", s3.RedirectTTL)
	}
	return errs
}

// redact hides the password of a URL-like DSN in error messages.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	return u.Redacted()
}
