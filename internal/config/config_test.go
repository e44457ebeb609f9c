package config

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"

	"github.com/berth/berth/internal/blob/s3"
	"github.com/berth/berth/internal/duration"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v, want nil", err)
	}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadPrecedence(t *testing.T) {
	const file = `
addr: "127.0.0.1:6000"
data: /file/data
log:
  level: warn
gc:
  grace: 2h
  tag_retention: 3d
  workers: 4
  collect_untagged: false
  attachments_follow_subject: false
webhooks:
  - url: https://hooks.example/a
    events: [tag.expired]
    timeout: 5s
`
	tests := []struct {
		name   string
		file   string // "" for no file
		env    []string
		args   []string
		mutate func(c *Config) // applied to Default() to get the want
	}{
		{
			name:   "defaults",
			mutate: func(c *Config) {},
		},
		{
			name: "file over defaults",
			file: file,
			mutate: func(c *Config) {
				c.Addr = "127.0.0.1:6000"
				c.Data = "/file/data"
				c.Log.Level = "warn"
				c.GC.Grace = Duration(2 * time.Hour)
				c.GC.TagRetention = Duration(72 * time.Hour)
				c.GC.Workers = 4
				c.GC.CollectUntagged = false
				c.GC.AttachmentsFollowSubject = false
				c.Webhooks = []Webhook{{URL: "https://hooks.example/a", Events: []string{"tag.expired"}, Timeout: Duration(5 * time.Second)}}
			},
		},
		{
			name: "env over file",
			file: file,
			env: []string{
				"BERTH_ADDR=127.0.0.1:7000", "BERTH_GC_GRACE=30m", "BERTH_TAG_RETENTION=2w",
				"BERTH_GC_COLLECT_UNTAGGED=true", "BERTH_GC_ATTACHMENTS_FOLLOW_SUBJECT=true", "BERTH_WEBHOOKS=http://a.example/x, http://b.example/y",
				"BERTH_LOG_LEVEL=",                                      // empty: unset
				"PATH=/bin", "BERTH_GC_WORKERS=1", "BERTH_GC_WORKERS=0", // last wins
				"BERTH_POLICY_PULL_INTERVAL=0",
			},
			mutate: func(c *Config) {
				c.Addr = "127.0.0.1:7000"
				c.Data = "/file/data"
				c.Log.Level = "warn"
				c.GC.Grace = Duration(30 * time.Minute)
				c.GC.TagRetention = Duration(336 * time.Hour)
				c.GC.Workers = 0
				c.GC.CollectUntagged = true
				c.GC.AttachmentsFollowSubject = true
				c.Policy.PullInterval = 0
				c.Webhooks = []Webhook{{URL: "http://a.example/x"}, {URL: "http://b.example/y"}}
			},
		},
		{
			name: "explicit flags over env, unset flags do not hide env",
			file: file,
			env: []string{"BERTH_ADDR=127.0.0.1:7000", "BERTH_DATA=/env/data", "BERTH_GC_GRACE=30m", "BERTH_METRICS=false",
				"BERTH_GC_ATTACHMENTS_FOLLOW_SUBJECT=true"},
			args: []string{"--addr=127.0.0.1:8000", "--gc-grace=0", "--tag-retention", "1w", "--gc-collect-untagged", "--log-format=json",
				"--gc-attachments-follow-subject=false", "--policy-pull-interval=1h"},
			mutate: func(c *Config) {
				c.Addr = "127.0.0.1:8000"
				c.Policy.PullInterval = Duration(time.Hour)
				c.Data = "/env/data"
				c.Log.Level = "warn"
				c.Log.Format = "json"
				c.Metrics = false
				c.GC.Grace = 0
				c.GC.TagRetention = Duration(7 * 24 * time.Hour)
				c.GC.Workers = 4
				c.GC.CollectUntagged = true
				c.GC.AttachmentsFollowSubject = false
				c.Webhooks = []Webhook{{URL: "https://hooks.example/a", Events: []string{"tag.expired"}, Timeout: Duration(5 * time.Second)}}
			},
		},
		{
			name: "flag set to its default value still wins",
			env:  []string{"BERTH_ADDR=127.0.0.1:7000"},
			args: []string{"--addr=localhost:5000"},
			mutate: func(c *Config) {
				c.Addr = "localhost:5000"
			},
		},
		{
			name: "BERTH_CONFIG names the file",
			env:  []string{"BERTH_CONFIG=FILE"},
			mutate: func(c *Config) {
				c.Addr = "127.0.0.1:6000"
				c.Data = "/file/data"
				c.Log.Level = "warn"
				c.GC.Grace = Duration(2 * time.Hour)
				c.GC.TagRetention = Duration(72 * time.Hour)
				c.GC.Workers = 4
				c.GC.CollectUntagged = false
				c.GC.AttachmentsFollowSubject = false
				c.Webhooks = []Webhook{{URL: "https://hooks.example/a", Events: []string{"tag.expired"}, Timeout: Duration(5 * time.Second)}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			env := append([]string(nil), tt.env...)
			if tt.file != "" {
				path = writeFile(t, tt.file)
			}
			for i, kv := range env {
				if kv == "BERTH_CONFIG=FILE" {
					env[i] = "BERTH_CONFIG=" + writeFile(t, file)
				}
			}
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			flagCfg := Default()
			BindFlags(fs, &flagCfg)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			got, err := LoadWithFlags(path, env, fs)
			if err != nil {
				t.Fatalf("LoadWithFlags: %v", err)
			}
			want := Default()
			tt.mutate(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		path string
		env  []string
		want []string // substrings, all must appear
	}{
		{name: "missing file", path: "/nonexistent/berth.yaml", want: []string{"reading config file"}},
		{name: "unknown key", file: "adr: :5000\n", want: []string{"adr"}},
		{name: "bad duration in file", file: "gc:\n  grace: 1y\n", want: []string{"unknown unit"}},
		{name: "negative duration in file", file: "gc:\n  tag_retention: -1d\n", want: []string{"negative"}},
		{
			name: "every bad env value reported",
			env:  []string{"BERTH_GC_GRACE=soon", "BERTH_GC_WORKERS=many", "BERTH_METRICS=perhaps"},
			want: []string{"gc.grace (from BERTH_GC_GRACE)", "gc.workers (from BERTH_GC_WORKERS)", "metrics (from BERTH_METRICS)"},
		},
		{
			name: "validation after env",
			env:  []string{"BERTH_GC_BATCH_SIZE=0", "BERTH_LOG_LEVEL=loud"},
			want: []string{"gc.batch_size", "log.level"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if tt.file != "" {
				path = writeFile(t, tt.file)
			}
			_, err := Load(path, tt.env)
			if err == nil {
				t.Fatal("Load: got nil error, want one")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.Addr = "5000"
	c.Data = ""
	c.DB = "mysql://root:secret@db/berth"
	c.TLS.Cert = "cert.pem"
	c.Log.Level = "verbose"
	c.Log.Format = "xml"
	c.GC.Grace = Duration(-time.Second)
	c.GC.UploadExpiry = 0
	c.GC.TagRetention = Duration(-time.Hour)
	c.GC.ReviewDelay = Duration(-time.Minute)
	c.GC.Workers = -1
	c.GC.BatchSize = 10001
	c.GC.Interval = 0
	c.Policy.PullInterval = Duration(-time.Minute)
	c.Webhooks = []Webhook{{URL: "ftp://x"}, {URL: "https://ok.example", Events: []string{""}, Timeout: Duration(-1)}}

	err := c.Validate()
	if err == nil {
		t.Fatal("Validate: got nil, want errors")
	}
	msg := err.Error()
	for _, key := range []string{
		"addr:", "data:", "db:", "tls:", "log.level:", "log.format:",
		"gc.grace:", "gc.upload_expiry:", "gc.tag_retention:", "gc.review_delay:",
		"gc.workers:", "gc.batch_size:", "gc.interval:", "policy.pull_interval:",
		"webhooks[0].url:", "webhooks[1].events[0]:", "webhooks[1].timeout:",
	} {
		if !strings.Contains(msg, key) {
			t.Errorf("Validate error lacks %q; got:\n%s", key, msg)
		}
	}
	if strings.Contains(msg, "secret") {
		t.Errorf("Validate error leaks the database password:\n%s", msg)
	}
	if got, want := len(strings.Split(msg, "\n")), 17; got != want {
		t.Errorf("got %d problems, want %d:\n%s", got, want, msg)
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
	}{
		{"zero retention and grace", func(c *Config) { c.GC.TagRetention = 0; c.GC.Grace = 0 }},
		{"no workers", func(c *Config) { c.GC.Workers = 0 }},
		{"postgres", func(c *Config) { c.DB = "postgres://berth@db:5432/berth?sslmode=disable" }},
		{"postgresql socket", func(c *Config) { c.DB = "postgresql:///berth?host=/run/postgresql" }},
		{"tls", func(c *Config) { c.TLS = TLS{Cert: "c.pem", Key: "k.pem"} }},
		{"host and port", func(c *Config) { c.Addr = "127.0.0.1:0" }},
		{"batch bounds", func(c *Config) { c.GC.BatchSize = 10000 }},
		{"every pull recorded", func(c *Config) { c.Policy.PullInterval = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestDSN(t *testing.T) {
	c := Default()
	c.Data = "/var/lib/berth"
	if got, want := c.DSN(), "/var/lib/berth/berth.db"; got != want {
		t.Errorf("DSN() = %q, want %q", got, want)
	}
	if got, want := c.Backend(), BackendSQLite; got != want {
		t.Errorf("Backend() = %q, want %q", got, want)
	}
	if got, want := c.BlobRoot(), "/var/lib/berth/storage"; got != want {
		t.Errorf("BlobRoot() = %q, want %q", got, want)
	}
	c.DB = "postgres://db/berth"
	if got := c.DSN(); got != c.DB {
		t.Errorf("DSN() = %q, want %q", got, c.DB)
	}
	if got, want := c.Backend(), BackendPostgres; got != want {
		t.Errorf("Backend() = %q, want %q", got, want)
	}
}

func TestBindFlagsGroups(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	c := Default()
	BindFlags(fs, &c, SharedFlags)
	if fs.Lookup("data") == nil || fs.Lookup("addr") != nil || fs.Lookup("gc-grace") != nil {
		t.Errorf("BindFlags(SharedFlags) registered the wrong flags")
	}
	if got, want := fs.Lookup("log-level").DefValue, "info"; got != want {
		t.Errorf("--log-level default = %q, want %q", got, want)
	}
	fs = pflag.NewFlagSet("y", pflag.ContinueOnError)
	BindFlags(fs, &c, GCFlags)
	if got, want := fs.Lookup("tag-retention").DefValue, "2w"; got != want {
		t.Errorf("--tag-retention default = %q, want %q", got, want)
	}
}

func TestStorageSources(t *testing.T) {
	const file = `
storage:
  backend: s3
  s3:
    bucket: from-file
    region: eu-west-1
    endpoint: http://minio.internal:9000
    path_style: true
    prefix: berth/
    part_size: 16MiB
    redirect: true
    redirect_ttl: 5m
`
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	flagCfg := Default()
	BindFlags(fs, &flagCfg)
	if err := fs.Parse([]string{"--s3-bucket=from-flag", "--s3-access-key=AKIA", "--s3-secret-key=s3cr3t", "--s3-redirect-ttl=1h"}); err != nil {
		t.Fatal(err)
	}
	env := []string{"BERTH_S3_REGION=us-east-2", "BERTH_S3_PART_SIZE=6291456", "BERTH_S3_SECRET_KEY=from-env"}
	got, err := LoadWithFlags(writeFile(t, file), env, fs)
	if err != nil {
		t.Fatalf("LoadWithFlags: %v", err)
	}
	want := S3{
		Bucket: "from-flag", Region: "us-east-2", Endpoint: "http://minio.internal:9000", PathStyle: true,
		Prefix: "berth/", AccessKey: "AKIA", SecretKey: "s3cr3t", PartSize: 6 * MiB,
		Redirect: true, RedirectTTL: Duration(time.Hour),
	}
	if got.Storage.Backend != StorageS3 {
		t.Errorf("storage.backend = %q, want s3", got.Storage.Backend)
	}
	if diff := cmp.Diff(want, got.Storage.S3); diff != "" {
		t.Errorf("storage.s3 mismatch (-want +got):\n%s", diff)
	}

	got, err = Load("", []string{"BERTH_STORAGE=s3", "BERTH_S3_BUCKET=b", "BERTH_S3_REDIRECT=true", "BERTH_S3_PATH_STYLE=true"})
	if err != nil {
		t.Fatalf("Load from env: %v", err)
	}
	if s := got.Storage; s.Backend != StorageS3 || s.S3.Bucket != "b" || !s.S3.Redirect || !s.S3.PathStyle ||
		s.S3.PartSize != 8*MiB || s.S3.RedirectTTL != Duration(20*time.Minute) {
		t.Errorf("storage from env and defaults: got %+v", s)
	}
}

func TestStorageValidate(t *testing.T) {
	s3 := func(mutate func(s *S3)) func(c *Config) {
		return func(c *Config) {
			c.Storage.Backend = StorageS3
			c.Storage.S3.Bucket = "b"
			mutate(&c.Storage.S3)
		}
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string // substrings; none means valid
	}{
		{"default filesystem", func(c *Config) {}, nil},
		{"s3 minimal", s3(func(s *S3) {}), nil},
		{"s3 everything", s3(func(s *S3) {
			*s = S3{Bucket: "b", Region: "r", Endpoint: "https://s3.example", PathStyle: true, Prefix: "a/b/",
				AccessKey: "k", SecretKey: "s", PartSize: 5 * MiB, Redirect: true, RedirectTTL: Duration(7 * duration.Day)}
		}), nil},
		{"unknown backend", func(c *Config) { c.Storage.Backend = "gcs" }, []string{"storage.backend: want filesystem or s3"}},
		{"s3 without bucket", s3(func(s *S3) { s.Bucket = "" }), []string{"storage.s3.bucket: required"}},
		{"redirect without s3", func(c *Config) { c.Storage.S3.Redirect = true }, []string{"storage.s3.redirect: needs storage.backend s3"}},
		{"bucket without s3", func(c *Config) { c.Storage.S3.Bucket = "b" }, []string{"storage.s3.bucket: set, but storage.backend is filesystem"}},
		{"small part", s3(func(s *S3) { s.PartSize = 5*MiB - 1 }), []string{"storage.s3.part_size: must be between 5MiB and 5GiB"}},
		{"huge part", s3(func(s *S3) { s.PartSize = 6 * GiB }), []string{"storage.s3.part_size"}},
		{"secret without access key", s3(func(s *S3) { s.SecretKey = "hunter2" }), []string{"storage.s3.secret_key: set without storage.s3.access_key"}},
		{"access key without secret", s3(func(s *S3) { s.AccessKey = "k" }), []string{"storage.s3.access_key: set without storage.s3.secret_key"}},
		{"bad endpoint", s3(func(s *S3) { s.Endpoint = "minio:9000" }), []string{"storage.s3.endpoint: want an http:// or https:// URL"}},
		{"bad prefix", s3(func(s *S3) { s.Prefix = "/abs" }), []string{"storage.s3.prefix"}},
		{"dotdot prefix", s3(func(s *S3) { s.Prefix = "a/../b" }), []string{"storage.s3.prefix"}},
		{"prefix without a trailing slash", s3(func(s *S3) { s.Prefix = "berth" }), nil},
		{"prefix with a space", s3(func(s *S3) { s.Prefix = "my registry/" }), []string{"storage.s3.prefix"}},
		{"prefix with a leading dot", s3(func(s *S3) { s.Prefix = ".berth/" }), []string{"storage.s3.prefix"}},
		{"prefix inside another's blobs", s3(func(s *S3) { s.Prefix = "blobs/team/" }), []string{`storage.s3.prefix: prefix "blobs/team/": a segment named "blobs"`}},
		{"prefix with an uploads segment", s3(func(s *S3) { s.Prefix = "x/uploads" }), []string{`segment named "uploads"`}},
		{"ttl too long", s3(func(s *S3) { s.Redirect = true; s.RedirectTTL = Duration(8 * duration.Day) }), []string{"storage.s3.redirect_ttl"}},
		{"ttl zero", s3(func(s *S3) { s.Redirect = true; s.RedirectTTL = 0 }), []string{"storage.s3.redirect_ttl"}},
		{"every s3 problem at once", s3(func(s *S3) {
			s.Bucket, s.SecretKey, s.PartSize, s.Endpoint = "", "hunter2", MiB, "ftp://x"
		}), []string{"storage.s3.bucket", "storage.s3.secret_key", "storage.s3.part_size", "storage.s3.endpoint"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkValidate(t, tt.mutate, tt.want)
			if err == nil {
				return
			}
			if got := len(strings.Split(err.Error(), "\n")); got != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%s", got, len(tt.want), err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Validate error leaks the secret key:\n%s", err)
			}
		})
	}
}

func TestSecretNeverShown(t *testing.T) {
	c := Default()
	c.Storage.Backend = StorageS3
	c.Storage.S3.Bucket = "b"
	c.Storage.S3.AccessKey = "AKIA"
	c.Storage.S3.SecretKey = "hunter2"
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("storage", "s3", c.Storage.S3)
	if strings.Contains(b.String(), "hunter2") || !strings.Contains(b.String(), "s3.bucket=b") {
		t.Errorf("logged S3 settings: %s; want the bucket and no secret", b.String())
	}
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	BindFlags(fs, &c, SharedFlags) // defaults shown in help come from c
	if strings.Contains(fs.FlagUsages(), "hunter2") {
		t.Errorf("help shows the secret key:\n%s", fs.FlagUsages())
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "5242880", want: 5 * MiB},
		{in: "8MiB", want: 8 * MiB},
		{in: "512 KiB", want: 512 * KiB},
		{in: "1GiB", want: GiB},
		{in: "10B", want: 10},
		{in: "", wantErr: "empty"},
		{in: "-1", wantErr: "non-negative integer"},
		{in: "8MB", wantErr: "unknown unit"},
		{in: "99999999999999999999", wantErr: "too large"},
		{in: "9999999999999GiB", wantErr: "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSize(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
	if got, want := Size(8*MiB).String(), "8MiB"; got != want {
		t.Errorf("Size.String() = %q, want %q", got, want)
	}
}

// TestS3DefaultsAgree: the S3 store has its own zero-value defaults and
// bounds; the configuration's must be the same, and the region must stay
// empty by default so the store leaves it to the AWS SDK's chain.
func TestS3DefaultsAgree(t *testing.T) {
	d := Default().Storage.S3
	if d.Region != "" {
		t.Errorf("default region: got %q, want \"\" (the SDK's chain decides)", d.Region)
	}
	if got, want := d.PartSize.Bytes(), int64(s3.DefaultPartSize); got != want {
		t.Errorf("default part size: got %d, want s3.DefaultPartSize %d", got, want)
	}
	if got, want := int64(MinS3PartSize), int64(s3.MinPartSize); got != want {
		t.Errorf("MinS3PartSize: got %d, want s3.MinPartSize %d", got, want)
	}
	if got, want := int64(MaxS3PartSize), int64(s3.MaxPartSize); got != want {
		t.Errorf("MaxS3PartSize: got %d, want s3.MaxPartSize %d", got, want)
	}
}

func TestHTTPSettings(t *testing.T) {
	if got := Default().HTTP.BodyIdleTimeout; got != Duration(time.Minute) {
		t.Errorf("default http.body_idle_timeout: got %s, want 1m", got)
	}
	file := writeFile(t, "http:\n  body_idle_timeout: 30s\n")
	tests := []struct {
		name string
		env  []string
		args []string
		want time.Duration
	}{
		{"file", nil, nil, 30 * time.Second},
		{"env over file", []string{"BERTH_HTTP_BODY_IDLE_TIMEOUT=2m"}, nil, 2 * time.Minute},
		{"flag over env", []string{"BERTH_HTTP_BODY_IDLE_TIMEOUT=2m"}, []string{"--http-body-idle-timeout=5s"}, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := loadServer(t, file, tt.env, tt.args)
			if got.HTTP.BodyIdleTimeout.Duration() != tt.want {
				t.Errorf("http.body_idle_timeout: got %s, want %s", got.HTTP.BodyIdleTimeout, tt.want)
			}
		})
	}
	if _, err := Load("", []string{"BERTH_HTTP_BODY_IDLE_TIMEOUT=0"}); err == nil || !strings.Contains(err.Error(), "http.body_idle_timeout: must be positive") {
		t.Errorf("BERTH_HTTP_BODY_IDLE_TIMEOUT=0: got %v, want http.body_idle_timeout: must be positive", err)
	}
	c := Default()
	c.HTTP.BodyIdleTimeout = Duration(-time.Second)
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "http.body_idle_timeout: must be positive") {
		t.Errorf("negative http.body_idle_timeout: got %v, want http.body_idle_timeout: must be positive", err)
	}
}

func TestValidateAuth(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string // substrings of the error; none: valid
	}{
		{"default is loopback", func(c *Config) {}, nil},
		{"open address refused with access control off", func(c *Config) { c.Addr = ":5000" }, []string{"addr: :5000 serves other machines", "insecure_open_access"}},
		{"every interface refused", func(c *Config) { c.Addr = "0.0.0.0:5000" }, []string{"addr: 0.0.0.0:5000 serves other machines"}},
		{"ipv6 loopback", func(c *Config) { c.Addr = "[::1]:5000" }, nil},
		{"open address with the explicit choice", func(c *Config) { c.Addr = ":5000"; c.InsecureOpenAccess = true }, nil},
		{"open address with access control", func(c *Config) { c.Addr = ":5000"; c.Auth.Enabled = true }, nil},
		{"token ttl", func(c *Config) { c.Auth.Enabled = true; c.Auth.Token.TTL = 0 }, []string{"auth.token.ttl: must be positive"}},
		{"external issuer needs realm, issuer, service", func(c *Config) {
			c.Auth.Enabled = true
			c.Auth.Token.RootCertBundle = "/etc/berth/issuer.pem"
		}, []string{"auth.token.realm:", "auth.token.issuer: required", "auth.token.service: required"}},
		{"token settings without access control", func(c *Config) { c.Auth.Token.Issuer = "x" }, []string{"auth.token: configured, but access control is off"}},
		{"metrics auth without access control", func(c *Config) { c.MetricsAuth = true }, []string{"metrics_auth: needs access control on"}},
		{"negative usage namespaces", func(c *Config) { c.MetricsUsageNamespaces = -1 }, []string{"metrics_usage_namespaces: want 0 to 10000, got -1"}},
		{"metrics addr", func(c *Config) { c.MetricsAddr = "9100" }, []string{"metrics_addr: want host:port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkValidate(t, tt.mutate, tt.want) })
	}
}

// checkValidate validates Default() changed by mutate and checks the
// result: valid when want is empty, else an error containing each of want,
// which it returns.
func checkValidate(t *testing.T, mutate func(c *Config), want []string) error {
	t.Helper()
	c := Default()
	mutate(&c)
	err := c.Validate()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("Validate: got %v, want nil", err)
		}
		return nil
	}
	if err == nil {
		t.Fatalf("Validate: got nil, want errors containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Validate error = %q, want it to contain %q", err, w)
		}
	}
	return err
}

func TestTrustedProxies(t *testing.T) {
	if got := Default().HTTP.TrustedProxies; len(got) != 0 {
		t.Errorf("default http.trusted_proxies: got %q, want none", got)
	}
	file := writeFile(t, "http:\n  trusted_proxies: [10.0.0.0/8, 192.0.2.7]\n")
	tests := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"file", nil, nil, []string{"10.0.0.0/8", "192.0.2.7"}},
		{"env over file, comma-separated", []string{"BERTH_HTTP_TRUSTED_PROXIES=172.16.0.0/12, ::1"}, nil, []string{"172.16.0.0/12", "::1"}},
		{"flag over env", []string{"BERTH_HTTP_TRUSTED_PROXIES=172.16.0.0/12"}, []string{"--http-trusted-proxies=127.0.0.1,fd00::/8"}, []string{"127.0.0.1", "fd00::/8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := loadServer(t, file, tt.env, tt.args)
			if diff := cmp.Diff(tt.want, got.HTTP.TrustedProxies); diff != "" {
				t.Errorf("http.trusted_proxies (-want +got):\n%s", diff)
			}
		})
	}

	c := Default()
	c.HTTP.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.7", "::ffff:10.1.2.3", "2001:db8::/32"}
	prefixes, err := c.HTTP.TrustedProxyPrefixes()
	if err != nil {
		t.Fatalf("TrustedProxyPrefixes: %v", err)
	}
	var got []string
	for _, p := range prefixes {
		got = append(got, p.String())
	}
	if diff := cmp.Diff([]string{"10.0.0.0/8", "192.0.2.7/32", "10.1.2.3/32", "2001:db8::/32"}, got); diff != "" {
		t.Errorf("prefixes (-want +got):\n%s", diff)
	}

	err = checkValidate(t, func(c *Config) {
		c.HTTP.TrustedProxies = []string{"10.0.0.0/8", "10.0.0.0/33", "proxy.example", "fe80::1%eth0"}
	},
		[]string{`http.trusted_proxies[1]: want an IP address or a CIDR prefix (10.0.0.0/8), got "10.0.0.0/33"`,
			`http.trusted_proxies[2]: want an IP address or a CIDR prefix (10.0.0.0/8), got "proxy.example"`,
			`http.trusted_proxies[3]:`})
	if err != nil && strings.Contains(err.Error(), "trusted_proxies[0]") {
		t.Errorf("a valid entry reported: %v", err)
	}
	if _, err := Load("", []string{"BERTH_HTTP_TRUSTED_PROXIES=10.0.0.0/8,nope"}); err == nil || !strings.Contains(err.Error(), "http.trusted_proxies[1]") {
		t.Errorf("BERTH_HTTP_TRUSTED_PROXIES with a bad entry: got %v, want http.trusted_proxies[1] reported", err)
	}
}

// loadServer loads the configuration serve would from file, env and args
// (serve's flags).
func loadServer(t *testing.T, file string, env, args []string) Config {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	c := Default()
	BindFlags(fs, &c, ServerFlags)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	got, err := LoadWithFlags(file, env, fs)
	if err != nil {
		t.Fatalf("LoadWithFlags: %v", err)
	}
	return got
}

func TestWeb(t *testing.T) {
	d := Default().Web
	if !d.Enabled || d.SessionTTL.Duration() != 12*time.Hour || d.SessionIdle.Duration() != 2*time.Hour {
		t.Errorf("default web: got %+v, want enabled, 12h, 2h", d)
	}
	file := writeFile(t, "web:\n  enabled: false\n  session_ttl: 1d\n  session_idle: 30m\n")
	tests := []struct {
		name string
		env  []string
		args []string
		want Web
	}{
		{"file", nil, nil, Web{Enabled: false, SessionTTL: Duration(24 * time.Hour), SessionIdle: Duration(30 * time.Minute)}},
		{"env over file", []string{"BERTH_WEB_ENABLED=true", "BERTH_WEB_SESSION_TTL=8h"}, nil,
			Web{Enabled: true, SessionTTL: Duration(8 * time.Hour), SessionIdle: Duration(30 * time.Minute)}},
		{"flag over env", []string{"BERTH_WEB_ENABLED=true", "BERTH_WEB_SESSION_IDLE=1h"}, []string{"--web-enabled=false", "--web-session-idle=45m"},
			Web{Enabled: false, SessionTTL: Duration(24 * time.Hour), SessionIdle: Duration(45 * time.Minute)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, loadServer(t, file, tt.env, tt.args).Web); diff != "" {
				t.Errorf("web (-want +got):\n%s", diff)
			}
		})
	}
	for _, tt := range []struct {
		name   string
		mutate func(c *Config)
		want   []string
	}{
		{"zero ttl", func(c *Config) { c.Web.SessionTTL = 0 }, []string{"web.session_ttl: must be positive and at most 30d"}},
		{"ttl over 30 days", func(c *Config) { c.Web.SessionTTL = Duration(31 * 24 * time.Hour) }, []string{"web.session_ttl: must be positive and at most 30d"}},
		{"negative idle", func(c *Config) { c.Web.SessionIdle = Duration(-time.Minute) }, []string{"web.session_idle: must be positive"}},
		{"idle longer than ttl", func(c *Config) { c.Web.SessionIdle = Duration(13 * time.Hour) }, []string{"web.session_idle: 13h is longer than web.session_ttl (12h)"}},
	} {
		t.Run(tt.name, func(t *testing.T) { checkValidate(t, tt.mutate, tt.want) })
	}
}
