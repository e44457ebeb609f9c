package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/app"
	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/blob/s3"
	"github.com/berth/berth/internal/blob/s3/s3test"
	"github.com/berth/berth/internal/config"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/review"
)

func TestStorageFlags(t *testing.T) {
	out, err := run(t, nil, "serve", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"--storage", "--s3-bucket", "--s3-region", "--s3-endpoint", "--s3-path-style", "--s3-prefix",
		"--s3-access-key", "--s3-secret-key", "--s3-part-size", "--s3-redirect", "--s3-redirect-ttl",
		"--storage s3 --s3-bucket my-registry", // the example
	} {
		if !strings.Contains(out, want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
	out, err = run(t, []string{"BERTH_S3_SECRET_KEY=hunter2"}, "gc", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "--s3-bucket") || strings.Contains(out, "--s3-redirect") {
		t.Errorf("gc --help: want the storage flags and not serve's redirect flags:\n%s", out)
	}

	_, err = run(t, nil, "gc", "--data", t.TempDir(), "--storage", "s3", "--s3-secret-key", "hunter2", "--s3-part-size", "1MiB")
	if err == nil {
		t.Fatal("gc --storage s3 without a bucket: got nil error")
	}
	for _, want := range []string{"storage.s3.bucket", "storage.s3.secret_key", "storage.s3.part_size"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the secret key: %v", err)
	}
}

// TestCommandsOnS3 checks that the CLI commands open the S3 store through
// the same configuration as serve: gc deletes the bytes from the bucket,
// sweep walks it.
func TestCommandsOnS3(t *testing.T) {
	bucket := s3test.New(t)
	data := t.TempDir()
	env := []string{"BERTH_S3_ACCESS_KEY=" + bucket.AccessKey, "BERTH_S3_SECRET_KEY=" + bucket.SecretKey, "BERTH_S3_REGION=" + bucket.Region}
	storage := []string{"--data", data, "--log-level", "error", "--storage", "s3", "--s3-bucket", bucket.Bucket,
		"--s3-endpoint", bucket.Endpoint, "--s3-path-style=" + boolString(bucket.PathStyle), "--s3-prefix", bucket.Prefix}
	if _, err := run(t, env, append([]string{"migrate"}, storage...)...); err != nil {
		t.Fatalf("migrate: %v", err)
	}

	// Push an image and delete its tag through the services the commands use.
	ctx := context.Background()
	cfg := config.Default()
	cfg.Data = data
	cfg.Log.Level = "error"
	cfg.GC.Grace, cfg.GC.TagRetention = 0, 0
	cfg.Storage.Backend = config.StorageS3
	cfg.Storage.S3.Bucket, cfg.Storage.S3.Region, cfg.Storage.S3.Endpoint = bucket.Bucket, bucket.Region, bucket.Endpoint
	cfg.Storage.S3.PathStyle, cfg.Storage.S3.Prefix = bucket.PathStyle, bucket.Prefix
	cfg.Storage.S3.AccessKey, cfg.Storage.S3.SecretKey = bucket.AccessKey, bucket.SecretKey
	svc, err := app.OpenServices(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfgBlob := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := bytes.Repeat([]byte("berth layer on s3 "), 1000)
	for _, b := range [][]byte{cfgBlob, layer} {
		if _, err := svc.Registry.PushBlob(ctx, "acme/app", digest.FromBytes(b).String(), int64(len(b)), bytes.NewReader(b)); err != nil {
			t.Fatalf("pushing blob: %v", err)
		}
	}
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(cfgBlob), "size": len(cfgBlob)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromBytes(layer), "size": len(layer)}},
	})
	if _, err := svc.Registry.PutManifest(ctx, "acme/app", "v1", "application/vnd.oci.image.manifest.v1+json", m); err != nil {
		t.Fatalf("pushing manifest: %v", err)
	}
	if err := svc.Registry.DeleteTag(ctx, "acme/app", "v1"); err != nil {
		t.Fatal(err)
	}
	svc.Close(ctx)

	objects := func() int {
		t.Helper()
		st, err := s3.New(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		if err := st.Walk(ctx, func(blob.Info) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := objects(); got != 2 {
		t.Fatalf("objects in the bucket after the push: got %d, want 2", got)
	}
	out, err := run(t, env, append([]string{"gc", "--json", "--gc-grace", "0", "--tag-retention", "0"}, storage...)...)
	if err != nil {
		t.Fatalf("gc on S3: %v\n%s", err, out)
	}
	var s gc.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("gc --json output: %v\n%s", err, out)
	}
	if s.Deleted[review.KindBlob] != 2 || s.BytesFreed != int64(len(cfgBlob)+len(layer)) {
		t.Errorf("gc on S3: deleted %v, %d bytes; want 2 blobs, %d bytes", s.Deleted, s.BytesFreed, len(cfgBlob)+len(layer))
	}
	if got := objects(); got != 0 {
		t.Errorf("objects in the bucket after gc: got %d, want 0", got)
	}
	if out, err := run(t, env, append([]string{"sweep", "--dry-run"}, storage...)...); err != nil {
		t.Errorf("sweep --dry-run on S3: %v\n%s", err, out)
	}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
