package torture

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestTorture is the go test entry point of the torture run (make torture
// runs the berth-torture command instead). It is long, so it runs only
// with BERTH_TORTURE=1: on SQLite, and with BERTH_TEST_POSTGRES_DSN also on
// PostgreSQL with one and with two replicas. BERTH_TORTURE_DURATION (default
// 30s) and BERTH_TORTURE_SEED (default 1) tune it. With a versitygw too
// (BERTH_VERSITYGW, PATH or $(go env GOPATH)/bin), the two replicas also run
// with their blobs on S3. BERTH_TORTURE_BIN, in
// every test here, tests a prebuilt berth instead of building ./cmd/berth.
func TestTorture(t *testing.T) {
	if os.Getenv("BERTH_TORTURE") == "" {
		t.Skip("set BERTH_TORTURE=1 to run the torture test (minutes)")
	}
	dur := 30 * time.Second
	if v := os.Getenv("BERTH_TORTURE_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("BERTH_TORTURE_DURATION: %v", err)
		}
		dur = d
	}
	seed := uint64(1)
	if v := os.Getenv("BERTH_TORTURE_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("BERTH_TORTURE_SEED: %v", err)
		}
		seed = s
	}
	runs := []Config{{Backend: "sqlite", Replicas: 1}}
	if os.Getenv("BERTH_TEST_POSTGRES_DSN") != "" {
		runs = append(runs, Config{Backend: "postgres", Replicas: 1}, Config{Backend: "postgres", Replicas: 2})
		if _, err := findVersitygw(""); err == nil {
			runs = append(runs, Config{Backend: "postgres", Blob: "s3", Replicas: 2, S3OutageEvery: 10 * time.Second})
		}
	}
	for _, cfg := range runs {
		name := cfg.Backend + "-" + strconv.Itoa(cfg.Replicas)
		if cfg.Blob != "" {
			name += "-" + cfg.Blob
		}
		t.Run(name, func(t *testing.T) {
			cfg.Duration, cfg.Seed, cfg.KillEvery, cfg.GCEvery = dur, seed, 8*time.Second, 5*time.Second
			cfg.WorkDir = t.TempDir()
			cfg.BerthBin = os.Getenv("BERTH_TORTURE_BIN")
			cfg.Out = testWriter{t}
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Violations > 0 {
				t.Fatalf("%d violations (seed %d); see the report above", rep.Violations, seed)
			}
		})
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// TestRegressionHeadSkipAfterUploadGrace is the history the torture run
// found on 240d096 (seed 2, op head-skip-edge), reduced to one client:
//
//  1. upload the config and the layer of an image (201, 201) and push no
//     manifest;
//  2. at 90% of the grace, HEAD both: 200, so a client skips uploading them;
//  3. 0.8 grace later, PUT the manifest by digest (a read protects for a
//     full grace, gc.md scenario 29).
//
// Before da6a3c7 step 3 answered 404 MANIFEST_BLOB_UNKNOWN: the HEAD did
// not postpone the uploaded-blob marker's review, the marker expired at the
// end of the upload grace and the collector unlinked the blobs at once,
// although gc.md promises a client that saw a blob alive a full grace.
func TestRegressionHeadSkipAfterUploadGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts berth")
	}
	ctx := context.Background()
	cfg := Config{Grace: 2 * time.Second, Retention: 2 * time.Second, UploadExpiry: 4 * time.Second, GCInterval: 100 * time.Millisecond, Seed: 1,
		BerthBin: os.Getenv("BERTH_TORTURE_BIN")}
	cfg.Defaults()
	cl, err := newCluster(ctx, cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.startAll(ctx); err != nil {
		t.Fatal(err)
	}
	defer cl.stopAll()
	c := &client{http: newHTTPClient()}
	base := cl.nodes[0].base()
	const repo = "regress/headskip"
	layer := newBlob([]byte("a layer nobody references yet"), mediaLayer)
	b := buildImage(imageConfig("regression", nil), []blobData{layer}, nil)
	var uploaded time.Time
	for _, x := range b.blobs {
		u := c.pushMonolithic(ctx, base, repo, x.digest, x.data)
		if u.status != http.StatusCreated {
			t.Fatalf("upload %s: %s", x.digest, u)
		}
		if uploaded.IsZero() {
			uploaded = u.sent
		}
	}
	sleepUntil(ctx, uploaded.Add(cfg.Grace*9/10))
	var seen time.Time
	for _, x := range b.blobs {
		h := c.headBlob(ctx, base, repo, x.digest)
		if h.status != http.StatusOK {
			t.Fatalf("HEAD %s inside the upload grace: %s", x.digest, h)
		}
		if seen.IsZero() {
			seen = h.sent
		}
	}
	sleepUntil(ctx, seen.Add(cfg.Grace*4/10))
	p := c.putManifest(ctx, base, repo, b.rec.digest, b.rec.mediaType, b.rec.body)
	if p.status != http.StatusCreated {
		t.Fatalf("PUT manifest %.0fms after HEAD 200 of its blobs (grace %s): %s, want 201", float64(p.got.Sub(seen).Milliseconds()), cfg.Grace, p)
	}
}
