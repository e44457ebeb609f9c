package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/blob"
	blobfs "github.com/berth/berth/internal/blob/fs"
	blobs3 "github.com/berth/berth/internal/blob/s3"
	"github.com/berth/berth/internal/blob/s3/s3test"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv"
)

// env is a registry served over httptest with real backends.
type env struct {
	t     *testing.T
	srv   *httptest.Server
	store *sqlstore.Store
	blobs blob.Store
	reg   *registry.Registry
	clock *testenv.Clock
	// stored lists every file or object the blob store holds, staging
	// and S3 multipart uploads included, behind the store's back.
	stored func() map[string]int64
}

// Backends: the metadata store, and after a "+" the blob store when it is
// not the filesystem.
const (
	backendSQLite     = "sqlite"
	backendPostgres   = "postgres"
	backendPostgresS3 = "postgres+s3" // PostgreSQL and a fresh S3 bucket (s3test)
)

// backends lists the backends to run against: SQLite always; PostgreSQL
// when BERTH_TEST_POSTGRES_DSN names an admin DSN, and then PostgreSQL with
// blobs on S3 (s3test's versitygw; the subtest skips when there is no
// server, and fails on CI).
func backends(testing.TB) []string {
	b := []string{backendSQLite}
	if os.Getenv("BERTH_TEST_POSTGRES_DSN") != "" {
		b = append(b, backendPostgres, backendPostgresS3)
	}
	return b
}

// forEachBackend runs fn in a subtest per backend, each with a fresh env.
func forEachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) { fn(t, newEnv(t, b)) })
	}
}

func newEnv(t *testing.T, backend string) *env {
	t.Helper()
	return newEnvWith(t, backend, api.Options{})
}

// newEnvWith is newEnv with the handler's options.
func newEnvWith(t *testing.T, backend string, opts api.Options) *env {
	t.Helper()
	return newEnvWrapped(t, backend, opts, nil)
}

// newEnvWrapped is newEnvWith whose registry uses wrap(blob store), unless
// wrap is nil: a fake that injects failures. env.blobs is the real store.
func newEnvWrapped(t *testing.T, backend string, opts api.Options, wrap func(blob.Store) blob.Store) *env {
	t.Helper()
	store, blobs, stored := openBackendsStored(t, backend)
	regBlobs := blobs
	if wrap != nil {
		regBlobs = wrap(blobs)
	}
	c := testenv.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	reg := registry.New(store, regBlobs, registry.Options{Now: c.Now, Policy: review.DefaultPolicy()})
	srv := httptest.NewServer(api.New(reg, opts))
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, store: store, blobs: blobs, reg: reg, clock: c, stored: stored}
}

// openBackends opens a migrated metadata store of the given backend (a
// fresh SQLite file, or a fresh PostgreSQL database) and its blob store (a
// filesystem directory, or a fresh S3 bucket), all removed when tb ends.
// "sqlite+s3" is accepted too, for tests that need S3 without PostgreSQL.
func openBackends(tb testing.TB, backend string) (*sqlstore.Store, blob.Store) {
	tb.Helper()
	store, blobs, _ := openBackendsStored(tb, backend)
	return store, blobs
}

// openBackendsStored is openBackends with a function that lists what the
// blob store holds, as env.stored.
func openBackendsStored(tb testing.TB, backend string) (*sqlstore.Store, blob.Store, func() map[string]int64) {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	metaBackend, blobBackend, _ := strings.Cut(backend, "+")
	var dsn string
	switch metaBackend {
	case backendSQLite:
		dsn = filepath.Join(dir, "meta.db")
	case backendPostgres:
		dsn = freshPostgres(tb)
	default:
		tb.Fatalf("unknown backend %q", backend)
	}
	store, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		tb.Fatalf("opening %s store: %v", backend, err)
	}
	tb.Cleanup(func() { store.Close() })
	if _, err := store.Migrate(ctx); err != nil {
		tb.Fatalf("migrating: %v", err)
	}
	switch blobBackend {
	case "":
		root := filepath.Join(dir, "blobs")
		blobs, err := blobfs.New(root)
		if err != nil {
			tb.Fatalf("opening blob store: %v", err)
		}
		return store, blobs, func() map[string]int64 { return storedFiles(tb, root) }
	case "s3":
		cfg := s3test.New(tb)
		blobs, err := blobs3.New(ctx, cfg)
		if err != nil {
			tb.Fatalf("opening S3 blob store: %v", err)
		}
		return store, blobs, func() map[string]int64 { return storedObjects(tb, cfg) }
	}
	tb.Fatalf("unknown blob backend in %q", backend)
	return nil, nil, nil
}

// storedFiles maps every regular file under root to its size.
func storedFiles(tb testing.TB, root string) map[string]int64 {
	tb.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[p] = fi.Size()
		return nil
	})
	if err != nil {
		tb.Fatalf("walking %s: %v", root, err)
	}
	return out
}

// storedObjects maps every object of cfg's bucket to its size, and every
// multipart upload in progress, as "multipart:<key>", to 0.
func storedObjects(tb testing.TB, cfg blobs3.Config) map[string]int64 {
	tb.Helper()
	ctx := context.Background()
	client := s3test.Client(cfg)
	out := map[string]int64{}
	objects := awss3.NewListObjectsV2Paginator(client, &awss3.ListObjectsV2Input{Bucket: aws.String(cfg.Bucket)})
	for objects.HasMorePages() {
		page, err := objects.NextPage(ctx)
		if err != nil {
			tb.Fatalf("listing bucket: %v", err)
		}
		for _, o := range page.Contents {
			out[aws.ToString(o.Key)] = aws.ToInt64(o.Size)
		}
	}
	mp, err := client.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String(cfg.Bucket)})
	if err != nil {
		tb.Fatalf("listing multipart uploads: %v", err)
	}
	for _, u := range mp.Uploads {
		out["multipart:"+aws.ToString(u.Key)] = 0
	}
	return out
}

// freshPostgres creates a database for one test from the admin DSN and
// drops it when the test ends.
func freshPostgres(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("BERTH_TEST_POSTGRES_DSN")
	ctx := context.Background()
	a, err := sqlstore.Open(ctx, admin, sqlstore.Options{})
	if err != nil {
		t.Fatalf("connecting to PostgreSQL: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "berth_t_" + hex.EncodeToString(b[:])
	if _, err := a.DB().ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		a.Close()
		t.Fatalf("creating database: %v", err)
	}
	t.Cleanup(func() {
		defer a.Close()
		if _, err := a.DB().ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parsing BERTH_TEST_POSTGRES_DSN: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// do sends a request and returns the response with its body read.
func (e *env) do(method, path string, hdr map[string]string, body []byte) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	return e.send(method, path, hdr, rd)
}

// send sends a request with the body rd (nil: none) and returns the
// response with its body read.
func (e *env) send(method, path string, hdr map[string]string, rd io.Reader) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, b
}

// expect checks a response's status.
func (e *env) expect(resp *http.Response, body []byte, status int) {
	e.t.Helper()
	if resp.StatusCode != status {
		e.t.Fatalf("%s %s: got status %d, want %d; body %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, body)
	}
}

// pushBlob uploads b to repo monolithically and returns its digest.
func (e *env) pushBlob(repo string, b []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(b)
	resp, body := e.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), map[string]string{"Content-Type": "application/octet-stream"}, b)
	e.expect(resp, body, http.StatusCreated)
	if got, want := resp.Header.Get("Location"), "/v2/"+repo+"/blobs/"+d.String(); got != want {
		e.t.Errorf("Location: got %q, want %q", got, want)
	}
	return d
}

// pushChunked uploads b to repo in chunks of size n (POST, PATCH…, PUT).
func (e *env) pushChunked(repo string, b []byte, n int) digest.Digest {
	e.t.Helper()
	resp, body := e.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
	e.expect(resp, body, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	for off := 0; off < len(b); off += n {
		end := min(off+n, len(b))
		resp, body = e.do("PATCH", loc, map[string]string{
			"Content-Type":  "application/octet-stream",
			"Content-Range": fmt.Sprintf("%d-%d", off, end-1),
		}, b[off:end])
		e.expect(resp, body, http.StatusAccepted)
		if got, want := resp.Header.Get("Range"), fmt.Sprintf("0-%d", end-1); got != want {
			e.t.Errorf("Range after PATCH: got %q, want %q", got, want)
		}
		loc = resp.Header.Get("Location")
	}
	d := digest.FromBytes(b)
	resp, body = e.do("PUT", loc+"?digest="+d.String(), nil, nil)
	e.expect(resp, body, http.StatusCreated)
	return d
}

type desc struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type manifestDoc struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        *desc             `json:"config,omitempty"`
	Layers        []desc            `json:"layers,omitempty"`
	Manifests     []desc            `json:"manifests,omitempty"`
	Subject       *desc             `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

const (
	mtManifest = "application/vnd.oci.image.manifest.v1+json"
	mtIndex    = "application/vnd.oci.image.index.v1+json"
	mtConfig   = "application/vnd.oci.image.config.v1+json"
	mtLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// image pushes a config with labels and n random layers, and returns the
// manifest body (not pushed).
func (e *env) image(repo string, labels map[string]string, layers int) []byte {
	e.t.Helper()
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "config": map[string]any{"Labels": labels}, "rootfs": map[string]any{"type": "layers"}, "nonce": hex.EncodeToString(randomBytes(8))})
	m := manifestDoc{SchemaVersion: 2, MediaType: mtManifest,
		Config: &desc{MediaType: mtConfig, Digest: e.pushBlob(repo, cfg), Size: int64(len(cfg))}, Layers: []desc{}}
	for range layers {
		l := randomBytes(3000)
		m.Layers = append(m.Layers, desc{MediaType: mtLayer, Digest: e.pushChunked(repo, l, 1024), Size: int64(len(l))})
	}
	b, _ := json.Marshal(m)
	return b
}

// putManifest PUTs body as repo:ref and returns the response.
func (e *env) putManifest(repo, ref, mediaType string, body []byte) (*http.Response, []byte) {
	e.t.Helper()
	return e.do("PUT", "/v2/"+repo+"/manifests/"+ref, map[string]string{"Content-Type": mediaType}, body)
}

func (e *env) mustPutManifest(repo, ref, mediaType string, body []byte) digest.Digest {
	e.t.Helper()
	resp, b := e.putManifest(repo, ref, mediaType, body)
	e.expect(resp, b, http.StatusCreated)
	d := digest.FromBytes(body)
	if got := resp.Header.Get("Docker-Content-Digest"); got != d.String() {
		e.t.Errorf("Docker-Content-Digest: got %q, want %q", got, d)
	}
	return d
}

// ociCode returns the first error code of an OCI error envelope.
func ociCode(body []byte) string {
	var env struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &env) != nil || len(env.Errors) == 0 {
		return ""
	}
	return env.Errors[0].Code
}

// counts is the number of rows per table and of objects in the blob store.
type counts map[string]int

func (e *env) counts() counts {
	e.t.Helper()
	ctx := context.Background()
	c := counts{}
	for _, table := range []string{"repository", "manifest", "tag", "repository_blob", "blob", "upload", "uploaded_blob", "label", "manifest_blob", "manifest_child"} {
		var n int
		if err := e.store.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
			e.t.Fatalf("counting %s: %v", table, err)
		}
		c[table] = n
	}
	if err := e.blobs.Walk(ctx, func(blob.Info) error { c["bytes:objects"]++; return nil }); err != nil {
		e.t.Fatal(err)
	}
	if err := e.blobs.WalkUploads(ctx, func(string, blob.Info) error { c["bytes:uploads"]++; return nil }); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (c counts) String() string {
	var parts []string
	for _, k := range []string{"repository", "manifest", "tag", "repository_blob", "blob", "upload", "uploaded_blob", "label", "manifest_blob", "manifest_child", "bytes:objects", "bytes:uploads"} {
		parts = append(parts, fmt.Sprintf("%s=%d", k, c[k]))
	}
	return strings.Join(parts, " ")
}
