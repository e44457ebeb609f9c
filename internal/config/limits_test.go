package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/pflag"

	"github.com/berth/berth/internal/blob/s3"
)

func TestLimitsSources(t *testing.T) {
	if got, want := Default().Limits, (Limits{UploadSessions: 100_000, UploadSessionsPerRepository: 1000, BlobSize: 10 * GiB}); got != want {
		t.Errorf("defaults: got %+v, want %+v", got, want)
	}
	path := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(path, []byte("limits:\n  upload_sessions: 50\n  upload_sessions_per_repository: 5\n  blob_size: 2GiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		args []string
		want Limits
	}{
		{"file", nil, nil, Limits{UploadSessions: 50, UploadSessionsPerRepository: 5, BlobSize: 2 * GiB}},
		{"env over file", []string{"BERTH_LIMITS_UPLOAD_SESSIONS=0", "BERTH_LIMITS_BLOB_SIZE=512MiB"}, nil,
			Limits{UploadSessions: 0, UploadSessionsPerRepository: 5, BlobSize: 512 * MiB}},
		{"flags over env", []string{"BERTH_LIMITS_UPLOAD_SESSIONS_PER_REPOSITORY=9"},
			[]string{"--limits-upload-sessions-per-repository", "0", "--limits-blob-size", "0", "--limits-upload-sessions", "7"},
			Limits{UploadSessions: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			d := Default()
			BindFlags(fs, &d, ServerFlags)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			c, err := LoadWithFlags(path, tt.env, fs)
			if err != nil {
				t.Fatal(err)
			}
			if c.Limits != tt.want {
				t.Errorf("got %+v, want %+v", c.Limits, tt.want)
			}
		})
	}
}

func TestLimitsValidate(t *testing.T) {
	onS3 := func(c *Config) {
		c.Storage.Backend = StorageS3
		c.Storage.S3.Bucket = "b"
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string // substrings; none means valid
	}{
		{"defaults", func(c *Config) {}, nil},
		{"unlimited", func(c *Config) { c.Limits = Limits{} }, nil},
		{"negative", func(c *Config) { c.Limits = Limits{UploadSessions: -1, UploadSessionsPerRepository: -2, BlobSize: -3} },
			[]string{"limits.upload_sessions: must not be negative", "limits.upload_sessions_per_repository: must not be negative", "limits.blob_size: must not be negative"}},
		{"default blob size on S3", onS3, nil},
		{"blob size past S3's parts", func(c *Config) { onS3(c); c.Limits.BlobSize = 100 * GiB },
			[]string{"limits.blob_size: 100GiB is more than S3 can hold with storage.s3.part_size 8MiB (10000 parts: 80000MiB)"}},
		{"larger parts hold it", func(c *Config) { onS3(c); c.Limits.BlobSize = 100 * GiB; c.Storage.S3.PartSize = 16 * MiB }, nil},
		{"unlimited on S3", func(c *Config) { onS3(c); c.Limits.BlobSize = 0 }, nil},
		{"large on the filesystem", func(c *Config) { c.Limits.BlobSize = 1000 * GiB }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkValidate(t, tt.mutate, tt.want) })
	}
}

func TestMaxS3PartsAgrees(t *testing.T) {
	if MaxS3Parts != s3.MaxParts {
		t.Errorf("MaxS3Parts: got %d, want s3.MaxParts %d", MaxS3Parts, s3.MaxParts)
	}
}
