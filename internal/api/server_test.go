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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/blob"
	blobfs "github.com/berth/berth/internal/blob/fs"
	"github.com/berth/berth/internal/gc/gcoracle"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/testenv"
	"github.com/berth/berth/internal/testenv/registryenv"
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
	if os.Getenv(sqltest.EnvPostgres) != "" {
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
	e := registryenv.New(t, envBackend(t, backend), func(o *registryenv.Options) {
		o.Start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		o.API = opts
		o.WrapBlobs = wrap
	})
	return &env{t: t, srv: e.Server, store: e.Store, blobs: e.Blobs, reg: e.Registry, clock: e.Clock, stored: storedOf(t, e.BlobRoot, e.Bucket)}
}

// envBackend is registryenv's backend of a name of this package: the
// metadata store, and after a "+" the blob store when it is not the
// filesystem ("sqlite+s3" too, for tests that need S3 without PostgreSQL).
func envBackend(tb testing.TB, backend string) registryenv.Backend {
	tb.Helper()
	metaBackend, blobBackend, _ := strings.Cut(backend, "+")
	var b registryenv.Backend
	switch metaBackend {
	case backendSQLite:
		b = registryenv.ByName(tb, registryenv.SQLite)
	case backendPostgres:
		b = registryenv.ByName(tb, registryenv.Postgres)
	default:
		tb.Fatalf("unknown backend %q", backend)
	}
	switch blobBackend {
	case "":
	case "s3":
		b.S3 = true
	default:
		tb.Fatalf("unknown blob backend in %q", backend)
	}
	b.Name = backend
	return b
}

// openBackends opens a migrated metadata store of the given backend (a
// fresh SQLite file, or a fresh PostgreSQL database) and its blob store (a
// filesystem directory, or a fresh S3 bucket), all removed when tb ends.
func openBackends(tb testing.TB, backend string) (*sqlstore.Store, blob.Store) {
	tb.Helper()
	b := envBackend(tb, backend)
	store := sqltest.Open(tb, b.DSN(tb))
	if b.S3 {
		blobs, _ := registryenv.NewS3(tb, nil)
		return store, blobs
	}
	blobs, err := blobfs.New(filepath.Join(tb.TempDir(), "blobs"))
	if err != nil {
		tb.Fatalf("opening blob store: %v", err)
	}
	return store, blobs
}

// storedOf lists what a blob store holds, behind its back: every regular
// file under root, or every object of bucket and every multipart upload in
// progress, as "multipart:<key>", each with its size.
func storedOf(tb testing.TB, root string, bucket *registryenv.Bucket) func() map[string]int64 {
	if bucket != nil {
		return func() map[string]int64 {
			out := map[string]int64{}
			b := bucket.Bytes(tb)
			for _, list := range [][]gcoracle.Object{b.Blobs, b.Staging, b.Foreign} {
				for _, o := range list {
					out[o.Name] = o.Size
				}
			}
			for _, o := range b.Multipart {
				out["multipart:"+o.Name] = 0
			}
			return out
		}
	}
	return func() map[string]int64 { return storedFiles(tb, root) }
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
