package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// EnvConfig names the config file when no path is given to Load.
const EnvConfig = "BERTH_CONFIG"

// EnvWebhooks is a comma-separated list of webhook URLs (all events).
const EnvWebhooks = "BERTH_WEBHOOKS"

// FlagGroup selects which flags BindFlags registers.
type FlagGroup int

const (
	// SharedFlags are the settings every command needs: --data, --db,
	// --log-level, --log-format (persistent flags of the root command).
	SharedFlags FlagGroup = iota + 1
	// ServerFlags are the HTTP server's: --addr, --tls-cert, --tls-key,
	// --metrics, --http-*, --s3-redirect, --s3-redirect-ttl, the --limits-*,
	// the --web-* and --policy-pull-interval.
	ServerFlags
	// GCFlags are the collector's windows and tuning: --gc-*,
	// --upload-expiry, --tag-retention.
	GCFlags
)

// setting is one scalar field of Config with its names in each source.
type setting struct {
	key   string // YAML key, used in error messages
	env   string
	flag  string
	group FlagGroup
	usage string
	value func(c *Config) pflag.Value // a Value writing into c's field
}

var settings = []setting{
	{"addr", "BERTH_ADDR", "addr", ServerFlags, "listen address, host:port",
		func(c *Config) pflag.Value { return (*stringValue)(&c.Addr) }},
	{"tls.cert", "BERTH_TLS_CERT", "tls-cert", ServerFlags, "TLS certificate file (PEM); with --tls-key serves HTTPS",
		func(c *Config) pflag.Value { return (*stringValue)(&c.TLS.Cert) }},
	{"tls.key", "BERTH_TLS_KEY", "tls-key", ServerFlags, "TLS private key file (PEM)",
		func(c *Config) pflag.Value { return (*stringValue)(&c.TLS.Key) }},
	{"metrics", "BERTH_METRICS", "metrics", ServerFlags, "serve Prometheus metrics on /metrics",
		func(c *Config) pflag.Value { return (*boolValue)(&c.Metrics) }},
	{"auth.enabled", "BERTH_AUTH_ENABLED", "auth-enabled", ServerFlags, "turn access control on: accounts, roles and the Docker token protocol",
		func(c *Config) pflag.Value { return (*boolValue)(&c.Auth.Enabled) }},
	{"auth.token.realm", "BERTH_AUTH_TOKEN_REALM", "auth-token-realm", ServerFlags, "token endpoint URL named in challenges (default: this server's /auth/token)",
		func(c *Config) pflag.Value { return (*stringValue)(&c.Auth.Token.Realm) }},
	{"auth.token.issuer", "BERTH_AUTH_TOKEN_ISSUER", "auth-token-issuer", ServerFlags, "issuer (iss) of accepted tokens (default: berth)",
		func(c *Config) pflag.Value { return (*stringValue)(&c.Auth.Token.Issuer) }},
	{"auth.token.service", "BERTH_AUTH_TOKEN_SERVICE", "auth-token-service", ServerFlags, "service (aud) of accepted tokens (default: the realm's host, else berth)",
		func(c *Config) pflag.Value { return (*stringValue)(&c.Auth.Token.Service) }},
	{"auth.token.rootcertbundle", "BERTH_AUTH_TOKEN_ROOTCERTBUNDLE", "auth-token-rootcertbundle", ServerFlags, "PEM certificates or public keys of an external token issuer (berth then issues no token)",
		func(c *Config) pflag.Value { return (*stringValue)(&c.Auth.Token.RootCertBundle) }},
	{"auth.token.ttl", "BERTH_AUTH_TOKEN_TTL", "auth-token-ttl", ServerFlags, "lifetime of berth's tokens: the bound on a revoked grant still working",
		func(c *Config) pflag.Value { return &c.Auth.Token.TTL }},
	{"insecure_open_access", "BERTH_INSECURE_OPEN_ACCESS", "insecure-open-access", ServerFlags, "serve a non-loopback address with access control off: anyone reaching it may push, delete and purge",
		func(c *Config) pflag.Value { return (*boolValue)(&c.InsecureOpenAccess) }},
	{"metrics_addr", "BERTH_METRICS_ADDR", "metrics-addr", ServerFlags, "serve /metrics on this address instead of the registry's port",
		func(c *Config) pflag.Value { return (*stringValue)(&c.MetricsAddr) }},
	{"metrics_auth", "BERTH_METRICS_AUTH", "metrics-auth", ServerFlags, "require a registry administrator's credentials on /metrics",
		func(c *Config) pflag.Value { return (*boolValue)(&c.MetricsAuth) }},
	{"metrics_usage_namespaces", "BERTH_METRICS_USAGE_NAMESPACES", "metrics-usage-namespaces", ServerFlags, "how many of the largest namespaces get their own berth_namespace_usage_bytes series (the others are summed as _other)",
		func(c *Config) pflag.Value { return (*intValue)(&c.MetricsUsageNamespaces) }},
	{"web.enabled", "BERTH_WEB_ENABLED", "web-enabled", ServerFlags, "serve the web interface on / and /-/ (docs/design/web.md)",
		func(c *Config) pflag.Value { return (*boolValue)(&c.Web.Enabled) }},
	{"web.session_ttl", "BERTH_WEB_SESSION_TTL", "web-session-ttl", ServerFlags, "how long a web interface session lasts from sign-in (at most 30d)",
		func(c *Config) pflag.Value { return &c.Web.SessionTTL }},
	{"web.session_idle", "BERTH_WEB_SESSION_IDLE", "web-session-idle", ServerFlags, "end a web interface session after this long without a request",
		func(c *Config) pflag.Value { return &c.Web.SessionIdle }},
	{"policy.pull_interval", "BERTH_POLICY_PULL_INTERVAL", "policy-pull-interval", ServerFlags, "record a tag's pull (a GET or HEAD by tag) at most this often, for the pull rules (0: every pull)",
		func(c *Config) pflag.Value { return &c.Policy.PullInterval }},
	{"http.body_idle_timeout", "BERTH_HTTP_BODY_IDLE_TIMEOUT", "http-body-idle-timeout", ServerFlags, "cut a request body that sends nothing for this long (answered 408; an upload keeps what it had)",
		func(c *Config) pflag.Value { return &c.HTTP.BodyIdleTimeout }},
	{"http.trusted_proxies", "BERTH_HTTP_TRUSTED_PROXIES", "http-trusted-proxies", ServerFlags, "proxies (IP addresses or CIDR prefixes, comma-separated) whose X-Forwarded-For names the client",
		func(c *Config) pflag.Value { return (*listValue)(&c.HTTP.TrustedProxies) }},

	{"data", "BERTH_DATA", "data", SharedFlags, "data directory (blobs in <data>/storage, SQLite in <data>/berth.db)",
		func(c *Config) pflag.Value { return (*stringValue)(&c.Data) }},
	{"db", "BERTH_DB", "db", SharedFlags, "metadata database: empty for SQLite in the data directory, or a postgres:// URL",
		func(c *Config) pflag.Value { return (*stringValue)(&c.DB) }},
	{"sqlite.writer_cache", "BERTH_SQLITE_WRITER_CACHE", "sqlite-writer-cache", SharedFlags, "page cache of SQLite's writer connection, which pushes and the collector share (bytes, or KiB/MiB/GiB; 0: SQLite's 2MiB)",
		func(c *Config) pflag.Value { return &c.SQLite.WriterCache }},
	{"log.level", "BERTH_LOG_LEVEL", "log-level", SharedFlags, "log level: debug, info, warn or error",
		func(c *Config) pflag.Value { return (*stringValue)(&c.Log.Level) }},
	{"log.format", "BERTH_LOG_FORMAT", "log-format", SharedFlags, "log format: text or json",
		func(c *Config) pflag.Value { return (*stringValue)(&c.Log.Format) }},

	{"storage.backend", "BERTH_STORAGE", "storage", SharedFlags, "blob storage: filesystem (under <data>/storage) or s3",
		func(c *Config) pflag.Value { return (*stringValue)(&c.Storage.Backend) }},
	{"storage.s3.bucket", "BERTH_S3_BUCKET", "s3-bucket", SharedFlags, "S3 bucket (with --storage s3)",
		func(c *Config) pflag.Value { return (*stringValue)(&c.Storage.S3.Bucket) }},
	{"storage.s3.region", "BERTH_S3_REGION", "s3-region", SharedFlags, "S3 region (empty: the AWS SDK default, e.g. AWS_REGION)",
		func(c *Config) pflag.Value { return (*stringValue)(&c.Storage.S3.Region) }},
	{"storage.s3.endpoint", "BERTH_S3_ENDPOINT", "s3-endpoint", SharedFlags, "URL of an S3-compatible server (empty: AWS)",
		func(c *Config) pflag.Value { return (*stringValue)(&c.Storage.S3.Endpoint) }},
	{"storage.s3.path_style", "BERTH_S3_PATH_STYLE", "s3-path-style", SharedFlags, "address the bucket in the URL path (most S3-compatible servers)",
		func(c *Config) pflag.Value { return (*boolValue)(&c.Storage.S3.PathStyle) }},
	{"storage.s3.prefix", "BERTH_S3_PREFIX", "s3-prefix", SharedFlags, "prefix of every object key in the bucket",
		func(c *Config) pflag.Value { return (*stringValue)(&c.Storage.S3.Prefix) }},
	{"storage.s3.access_key", "BERTH_S3_ACCESS_KEY", "s3-access-key", SharedFlags, "S3 access key (empty: the AWS SDK default credential chain, e.g. AWS_ACCESS_KEY_ID)",
		func(c *Config) pflag.Value { return (*stringValue)(&c.Storage.S3.AccessKey) }},
	{"storage.s3.secret_key", "BERTH_S3_SECRET_KEY", "s3-secret-key", SharedFlags, "S3 secret key, with --s3-access-key (prefer the environment to a flag)",
		func(c *Config) pflag.Value { return (*secretValue)(&c.Storage.S3.SecretKey) }},
	{"storage.s3.part_size", "BERTH_S3_PART_SIZE", "s3-part-size", SharedFlags, "S3 multipart part size, 5MiB..5GiB",
		func(c *Config) pflag.Value { return &c.Storage.S3.PartSize }},
	{"storage.s3.redirect", "BERTH_S3_REDIRECT", "s3-redirect", ServerFlags, "answer blob GETs with a 307 redirect to a presigned S3 URL",
		func(c *Config) pflag.Value { return (*boolValue)(&c.Storage.S3.Redirect) }},
	{"storage.s3.redirect_ttl", "BERTH_S3_REDIRECT_TTL", "s3-redirect-ttl", ServerFlags, "how long a presigned redirect URL stays valid (at most 7d)",
		func(c *Config) pflag.Value { return &c.Storage.S3.RedirectTTL }},

	{"gc.grace", "BERTH_GC_GRACE", "gc-grace", GCFlags, "how long untagged manifests and uploaded blobs are protected",
		func(c *Config) pflag.Value { return &c.GC.Grace }},
	{"gc.upload_expiry", "BERTH_UPLOAD_EXPIRY", "upload-expiry", GCFlags, "how long an upload session lives",
		func(c *Config) pflag.Value { return &c.GC.UploadExpiry }},
	{"gc.tag_retention", "BERTH_TAG_RETENTION", "tag-retention", GCFlags, "default time-machine window for removed tags (0 disables; accepts d and w units)",
		func(c *Config) pflag.Value { return &c.GC.TagRetention }},
	{"gc.review_delay", "BERTH_GC_REVIEW_DELAY", "gc-review-delay", GCFlags, "extra delay added to follow-up reviews",
		func(c *Config) pflag.Value { return &c.GC.ReviewDelay }},
	{"gc.workers", "BERTH_GC_WORKERS", "gc-workers", GCFlags, "collector workers in serve (0 disables background collection)",
		func(c *Config) pflag.Value { return (*intValue)(&c.GC.Workers) }},
	{"gc.batch_size", "BERTH_GC_BATCH_SIZE", "gc-batch-size", GCFlags, "reviews claimed per transaction (1..10000)",
		func(c *Config) pflag.Value { return (*intValue)(&c.GC.BatchSize) }},
	{"gc.tx_budget", "BERTH_GC_TX_BUDGET", "gc-tx-budget", GCFlags, "how long one collector transaction aims to take; the reviews it claims adapt",
		func(c *Config) pflag.Value { return &c.GC.TxBudget }},
	{"gc.tx_hold", "BERTH_GC_TX_HOLD", "gc-tx-hold", GCFlags, "how long a SQLite collector transaction may go on deciding while no push waits (at most gc.tx_budget: one set per transaction)",
		func(c *Config) pflag.Value { return &c.GC.TxHold }},
	{"gc.push_preempts", "BERTH_GC_PUSH_PREEMPTS", "gc-push-preempts", GCFlags, "SQLite, serve's collector workers: a push rolls back the collector transaction in flight instead of waiting for it, and under pushes each collector transaction decides one stage (lower push latency, slower collection under pushes)",
		func(c *Config) pflag.Value { return (*boolValue)(&c.GC.PushPreempts) }},
	{"gc.interval", "BERTH_GC_INTERVAL", "gc-interval", GCFlags, "how often idle collector workers poll for work",
		func(c *Config) pflag.Value { return &c.GC.Interval }},
	{"gc.collect_untagged", "BERTH_GC_COLLECT_UNTAGGED", "gc-collect-untagged", GCFlags, "collect untagged, unreferenced manifests older than the grace",
		func(c *Config) pflag.Value { return (*boolValue)(&c.GC.CollectUntagged) }},
	{"gc.attachments_follow_subject", "BERTH_GC_ATTACHMENTS_FOLLOW_SUBJECT", "gc-attachments-follow-subject", GCFlags,
		"end a collected manifest's attachment tags (cosign's sha256-<hex>.sig/.att/.sbom, the referrers tag schema's sha256-<hex>) in its repository",
		func(c *Config) pflag.Value { return (*boolValue)(&c.GC.AttachmentsFollowSubject) }},

	{"limits.upload_sessions", "BERTH_LIMITS_UPLOAD_SESSIONS", "limits-upload-sessions", ServerFlags, "most upload sessions open in the registry; more POSTs answer 429 (0: unlimited)",
		func(c *Config) pflag.Value { return (*intValue)(&c.Limits.UploadSessions) }},
	{"limits.upload_sessions_per_repository", "BERTH_LIMITS_UPLOAD_SESSIONS_PER_REPOSITORY", "limits-upload-sessions-per-repository", ServerFlags, "most upload sessions open in one repository; more POSTs answer 429 (0: unlimited)",
		func(c *Config) pflag.Value { return (*intValue)(&c.Limits.UploadSessionsPerRepository) }},
	{"limits.blob_size", "BERTH_LIMITS_BLOB_SIZE", "limits-blob-size", ServerFlags, "largest blob accepted; larger uploads answer 413 (bytes, or KiB/MiB/GiB; 0: unlimited)",
		func(c *Config) pflag.Value { return &c.Limits.BlobSize }},
}

// BindFlags registers on fs the flags of the given groups (all groups when
// none is given). Parsed values are written into c, and c's current values
// are shown as the defaults in help, so pass a Default() config. Only flags
// set explicitly take effect: pass fs to LoadWithFlags after parsing.
func BindFlags(fs *pflag.FlagSet, c *Config, groups ...FlagGroup) {
	for _, s := range settings {
		if len(groups) > 0 && !hasGroup(groups, s.group) {
			continue
		}
		f := fs.VarPF(s.value(c), s.flag, "", s.usage+" (env "+s.env+")")
		if _, ok := f.Value.(*boolValue); ok {
			f.NoOptDefVal = "true"
		}
	}
}

func hasGroup(gs []FlagGroup, g FlagGroup) bool {
	for _, x := range gs {
		if x == g {
			return true
		}
	}
	return false
}

// Load returns Default() overridden by the YAML file at path and then by the
// BERTH_* variables of env ("KEY=value" entries, as os.Environ returns), and
// validates the result. An empty path means the file named by BERTH_CONFIG in
// env, or no file. Every problem found is reported, joined.
func Load(path string, env []string) (Config, error) {
	return LoadWithFlags(path, env, nil)
}

// LoadWithFlags is Load followed by the flags of fs that were set
// explicitly (fs.Changed), then Validate: flag > env > file > default. fs
// may be nil. Flags not registered by BindFlags are ignored.
func LoadWithFlags(path string, env []string, fs *pflag.FlagSet) (Config, error) {
	c := Default()
	vars := environ(env)
	if path == "" {
		path = vars[EnvConfig]
	}
	if path != "" {
		if err := readFile(&c, path); err != nil {
			return Config{}, err
		}
	}
	errs := applyEnv(&c, vars)
	if fs != nil {
		errs = append(errs, applyFlags(&c, fs)...)
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return c, nil
}

// readFile decodes the YAML file at path over c. Keys absent from the file
// keep c's values; unknown keys are an error.
func readFile(c *Config, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config file: %w", err)
	}
	if err := decode(c, b); err != nil {
		return fmt.Errorf("reading config file %s: %w", path, err)
	}
	return nil
}

func decode(c *Config, b []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) { // io.EOF: empty file
		return err
	}
	return nil
}

// environ maps the BERTH_* entries of env, the last of duplicates winning
// and empty values dropped.
func environ(env []string) map[string]string {
	m := make(map[string]string)
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "BERTH_") {
			continue
		}
		if v == "" {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	return m
}

func applyEnv(c *Config, vars map[string]string) []error {
	var errs []error
	for _, s := range settings {
		v, ok := vars[s.env]
		if !ok {
			continue
		}
		if err := s.value(c).Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s (from %s): %w", s.key, s.env, err))
		}
	}
	if v, ok := vars[EnvWebhooks]; ok {
		c.Webhooks = nil
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				c.Webhooks = append(c.Webhooks, Webhook{URL: u})
			}
		}
	}
	return errs
}

// applyFlags copies into c every flag of fs that was set explicitly, by
// re-reading its value through the same parser as the environment.
func applyFlags(c *Config, fs *pflag.FlagSet) []error {
	var errs []error
	for _, s := range settings {
		f := fs.Lookup(s.flag)
		if f == nil || !f.Changed {
			continue
		}
		v := f.Value.String()
		if sv, ok := f.Value.(*secretValue); ok {
			v = string(*sv) // String redacts
		}
		if err := s.value(c).Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s (from --%s): %w", s.key, s.flag, err))
		}
	}
	return errs
}

type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }
func (v *stringValue) Type() string       { return "string" }

// secretValue is a string that help output never shows (the flag's
// default is the value parsed from the environment or file otherwise).
type secretValue string

func (v *secretValue) String() string {
	if *v == "" {
		return ""
	}
	return "<redacted>"
}
func (v *secretValue) Set(s string) error { *v = secretValue(s); return nil }
func (v *secretValue) Type() string       { return "string" }

type boolValue bool

func (v *boolValue) String() string { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) Type() string   { return "bool" }
func (v *boolValue) IsBoolFlag() bool {
	return true
}
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("invalid boolean %q", s)
	}
	*v = boolValue(b)
	return nil
}

// listValue is a comma-separated list; each Set replaces the whole list
// (as the environment and the file do), and blank entries are dropped.
type listValue []string

func (v *listValue) String() string { return strings.Join(*v, ",") }
func (v *listValue) Type() string   { return "strings" }
func (v *listValue) Set(s string) error {
	var l []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			l = append(l, e)
		}
	}
	*v = l
	return nil
}

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Type() string   { return "int" }
func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("invalid integer %q", s)
	}
	*v = intValue(n)
	return nil
}
