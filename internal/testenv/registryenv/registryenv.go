// Package registryenv is the one test environment of a registry (STYLE.md
// rule 19): for each backend — SQLite and PostgreSQL on the filesystem,
// PostgreSQL on S3 — a fresh migrated metadata store (its own PostgreSQL
// database, dropped after the test), a fresh byte store (a temp directory,
// or a fresh bucket on the test's versitygw), a settable clock, a
// registry.Registry on them served over httptest, and helpers to push
// blobs, manifests, indexes, referrers and tags over HTTP. PostgreSQL and
// S3 are skipped when not configured and required when CI=true (sqltest's
// and s3test's guard). Only tests import it.
package registryenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
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
	"github.com/berth/berth/internal/gc/gcoracle"
	"github.com/berth/berth/internal/meta/sqlstore"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv"
)

// Names of the backends.
const (
	SQLite     = "sqlite"
	Postgres   = "postgres"
	PostgresS3 = "postgres-s3"
)

// Backend is one combination of metadata and byte store.
type Backend struct {
	Name string
	DSN  func(t testing.TB) string // a fresh database owned by the test
	S3   bool                      // bytes in a fresh S3 bucket, else a temp directory
}

// Backends lists SQLite and PostgreSQL on the filesystem, and PostgreSQL
// on S3.
func Backends() []Backend {
	var out []Backend
	for _, b := range sqltest.Backends() {
		out = append(out, Backend{Name: b.Name, DSN: b.DSN})
	}
	return append(out, Backend{Name: PostgresS3, DSN: sqltest.PostgresDSN, S3: true})
}

// ByName returns the backend called name.
func ByName(t testing.TB, name string) Backend {
	t.Helper()
	for _, b := range Backends() {
		if b.Name == name {
			return b
		}
	}
	t.Fatalf("unknown backend %q", name)
	return Backend{}
}

// Options shape an Env. New starts from a registry with the default
// policy (review.DefaultPolicy) on a clock reading Start; an Option that
// replaces Registry sets its Policy (zero is zero: no windows).
type Options struct {
	Start    time.Time            // the clock's first reading; zero: now, to the millisecond
	Store    sqlstore.Options     // options of the metadata store
	Registry registry.Options     // Now is the env's clock unless set
	API      api.Options          // options of the served handler
	S3       func(*blobs3.Config) // adjusts the S3 store's config (prefix, part size)
	// WrapBlobs, when set, is what the registry writes through (a fake
	// that injects failures); Env.Blobs stays the real store.
	WrapBlobs func(blob.Store) blob.Store
	NoServer  bool // no httptest server yet (see Env.Serve)
}

// Option changes Options.
type Option func(*Options)

// Env is a registry over one backend.
type Env struct {
	T        *testing.T
	Ctx      context.Context
	Backend  string
	DSN      string // of the metadata database
	Clock    *testenv.Clock
	Store    *sqlstore.Store
	Blobs    blob.Store // the real byte store
	BlobRoot string     // its directory, on the filesystem
	Bucket   *Bucket    // its bucket, on S3
	Registry *registry.Registry
	Server   *httptest.Server // nil with Options.NoServer
	Host     string           // the server's host:port
}

// ForEachBackend runs fn in a subtest per backend, each on a fresh Env.
func ForEachBackend(t *testing.T, fn func(t *testing.T, e *Env), opts ...Option) {
	t.Helper()
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, New(t, b, opts...)) })
	}
}

// New opens a fresh Env on b.
func New(t *testing.T, b Backend, opts ...Option) *Env {
	t.Helper()
	o := Options{Registry: registry.Options{Policy: review.DefaultPolicy()}}
	for _, f := range opts {
		f(&o)
	}
	ctx := context.Background()
	dsn := b.DSN(t)
	store, err := sqlstore.Open(ctx, dsn, o.Store)
	if err != nil {
		t.Fatalf("opening %s store: %v", b.Name, err)
	}
	t.Cleanup(func() { store.Close() })
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	start := o.Start
	if start.IsZero() {
		start = time.Now().UTC().Truncate(time.Millisecond)
	}
	e := &Env{T: t, Ctx: ctx, Backend: b.Name, DSN: dsn, Clock: testenv.NewClock(start), Store: store}
	if b.S3 {
		e.Blobs, e.Bucket = NewS3(t, o.S3)
	} else {
		e.BlobRoot = filepath.Join(t.TempDir(), "blobs")
		fs, err := blobfs.New(e.BlobRoot)
		if err != nil {
			t.Fatalf("opening blob store: %v", err)
		}
		e.Blobs = fs
	}
	regBlobs := e.Blobs
	if o.WrapBlobs != nil {
		regBlobs = o.WrapBlobs(e.Blobs)
	}
	ro := o.Registry
	if ro.Now == nil {
		ro.Now = e.Clock.Now
	}
	e.Registry = registry.New(store, regBlobs, ro)
	t.Cleanup(func() { // after the server closes, before the store does
		if err := e.Registry.Close(ctx); err != nil {
			t.Errorf("closing the registry: %v", err)
		}
	})
	if !o.NoServer {
		e.Serve(o.API)
	}
	return e
}

// Serve serves the registry over httptest with the handler's options
// (with Options.NoServer, for options that need the env's stores, such as
// a collector), closed when the test ends.
func (e *Env) Serve(o api.Options) {
	e.T.Helper()
	e.Server = httptest.NewServer(api.New(e.Registry, o))
	e.T.Cleanup(e.Server.Close)
	e.Host = strings.TrimPrefix(e.Server.URL, "http://")
}

// Exec runs a statement on the metadata database behind the store's back
// (its own connection): to set up what berth would never write.
func (e *Env) Exec(query string) {
	e.T.Helper()
	sqltest.Exec(e.T, e.DSN, query)
}

// ---- HTTP --------------------------------------------------------------------

// Do sends a request to the server and returns the response with its body
// read.
func (e *Env) Do(method, path string, hdr map[string]string, body []byte) (*http.Response, []byte) {
	e.T.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	return e.Send(method, path, hdr, rd)
}

// Send is Do with a body reader (nil: none).
func (e *Env) Send(method, path string, hdr map[string]string, rd io.Reader) (*http.Response, []byte) {
	e.T.Helper()
	req, err := http.NewRequestWithContext(e.Ctx, method, e.Server.URL+path, rd)
	if err != nil {
		e.T.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.T.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, b
}

// Expect fails the test unless resp has status.
func (e *Env) Expect(resp *http.Response, body []byte, status int) {
	e.T.Helper()
	if resp.StatusCode != status {
		e.T.Fatalf("%s %s: got status %d, want %d; body %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, body)
	}
}

// ---- pushing -------------------------------------------------------------------

// PushBlob uploads b to repo monolithically and returns its digest.
func (e *Env) PushBlob(repo string, b []byte) digest.Digest {
	e.T.Helper()
	d := digest.FromBytes(b)
	resp, body := e.Do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), map[string]string{"Content-Type": "application/octet-stream"}, b)
	e.Expect(resp, body, http.StatusCreated)
	return d
}

// PutManifest PUTs a raw manifest under ref (a tag or a digest) and
// returns the status and the body.
func (e *Env) PutManifest(repo, ref, mediaType string, body []byte) (int, []byte) {
	e.T.Helper()
	resp, b := e.Do("PUT", "/v2/"+repo+"/manifests/"+ref, map[string]string{"Content-Type": mediaType}, body)
	return resp.StatusCode, b
}

// Media types of the manifests the push helpers write.
const (
	MediaImage  = "application/vnd.oci.image.manifest.v1+json"
	MediaIndex  = "application/vnd.oci.image.index.v1+json"
	mediaConfig = "application/vnd.oci.image.config.v1+json"
	mediaLayer  = "application/vnd.oci.image.layer.v1.tar"
)

// Descriptor is an OCI descriptor.
type Descriptor struct {
	MediaType    string        `json:"mediaType"`
	Digest       digest.Digest `json:"digest"`
	Size         int64         `json:"size"`
	ArtifactType string        `json:"artifactType,omitempty"`
}

// Manifest is a pushed manifest: its descriptor and its bytes.
type Manifest struct {
	Descriptor
	Body []byte
}

// ImageManifest builds a raw OCI image manifest over config and layers
// (digest → size), layers in digest order.
func ImageManifest(config digest.Digest, configSize int64, layers map[digest.Digest]int64) []byte {
	keys := make([]digest.Digest, 0, len(layers))
	for d := range layers {
		keys = append(keys, d)
	}
	slices.Sort(keys)
	var ls []string
	for _, d := range keys {
		ls = append(ls, fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, mediaLayer, d, layers[d]))
	}
	return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[%s]}`,
		MediaImage, mediaConfig, config, configSize, strings.Join(ls, ",")))
}

// PushImage pushes a config and one layer per element of layers, then an
// image manifest over them under tag ("" to push by digest).
func (e *Env) PushImage(repo, tag string, layers ...[]byte) Manifest {
	e.T.Helper()
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"created":%q}`, e.Clock.Now().Format(time.RFC3339Nano)+repo+tag))
	cd := e.PushBlob(repo, cfg)
	ls := map[digest.Digest]int64{}
	for _, l := range layers {
		ls[e.PushBlob(repo, l)] = int64(len(l))
	}
	return e.put(repo, tag, MediaImage, ImageManifest(cd, int64(len(cfg)), ls))
}

// PushIndex pushes an image index over children (already pushed) under tag
// ("" to push by digest).
func (e *Env) PushIndex(repo, tag string, children ...Manifest) Manifest {
	e.T.Helper()
	ds := make([]Descriptor, len(children))
	for i, c := range children {
		ds[i] = c.Descriptor
	}
	body, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": MediaIndex, "manifests": ds})
	if err != nil {
		e.T.Fatal(err)
	}
	return e.put(repo, tag, MediaIndex, body)
}

// PushReferrer pushes an artifact of artifactType (one layer, content)
// whose subject is subject, by digest.
func (e *Env) PushReferrer(repo string, subject Manifest, artifactType string, content []byte) Manifest {
	e.T.Helper()
	empty := []byte("{}")
	ed := e.PushBlob(repo, empty)
	ld := e.PushBlob(repo, content)
	body, err := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": MediaImage, "artifactType": artifactType,
		"config":  Descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: ed, Size: int64(len(empty))},
		"layers":  []Descriptor{{MediaType: mediaLayer, Digest: ld, Size: int64(len(content))}},
		"subject": subject.Descriptor,
	})
	if err != nil {
		e.T.Fatal(err)
	}
	m := e.put(repo, "", MediaImage, body)
	m.ArtifactType = artifactType
	return m
}

// Tag points tag at m (a PUT of its bytes under the tag).
func (e *Env) Tag(repo, tag string, m Manifest) {
	e.T.Helper()
	e.put(repo, tag, m.MediaType, m.Body)
}

func (e *Env) put(repo, tag, mediaType string, body []byte) Manifest {
	e.T.Helper()
	d := digest.FromBytes(body)
	ref := tag
	if ref == "" {
		ref = d.String()
	}
	if st, b := e.PutManifest(repo, ref, mediaType, body); st != http.StatusCreated {
		e.T.Fatalf("PUT %s manifest %s:%s: got status %d, want 201; body %s", mediaType, repo, ref, st, b)
	}
	return Manifest{Descriptor: Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(body))}, Body: body}
}

// ---- the fixed point -------------------------------------------------------------

// Check runs the fixed-point oracle, with the windows of w (the policy
// the registry and the collector were given), at the clock's time over the store and
// what the byte store holds (on S3, the bucket itself: objects, staging
// and multipart uploads).
func (e *Env) Check(w review.Policy, pinned ...string) *gcoracle.Report {
	e.T.Helper()
	var b gcoracle.Bytes
	var err error
	if e.Bucket != nil {
		b = e.Bucket.Bytes(e.T)
		b.Open = func(ctx context.Context, key string) (io.ReadCloser, error) { return e.Blobs.Open(ctx, key) }
	} else if b, err = gcoracle.FromStore(e.Ctx, e.Blobs); err != nil {
		e.T.Fatal(err)
	}
	rep, err := gcoracle.Check(e.Ctx, gcoracle.Input{DB: e.Store.DB(), Store: e.Store, Bytes: b, Now: e.Clock.Now(), Windows: w, Pinned: pinned})
	if err != nil {
		e.T.Fatalf("fixed-point oracle: %v", err)
	}
	return rep
}

// AssertFixedPoint fails the test with every finding of the oracle.
func (e *Env) AssertFixedPoint(w review.Policy, pinned ...string) {
	e.T.Helper()
	for _, f := range e.Check(w, pinned...).Findings {
		e.T.Errorf("fixed point: %s", f)
	}
}

// ---- S3 ------------------------------------------------------------------------

// NewS3 opens a blob/s3 store on a fresh bucket of the test's S3 server
// (s3test: skipped without one, required when CI=true), its config first
// changed by adjust unless nil, and returns it with its bucket.
func NewS3(t testing.TB, adjust func(*blobs3.Config)) (*blobs3.Store, *Bucket) {
	t.Helper()
	cfg := s3test.New(t)
	if adjust != nil {
		adjust(&cfg)
	}
	st, err := blobs3.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("opening S3 blob store: %v", err)
	}
	return st, &Bucket{Config: cfg, Client: s3test.Client(cfg)}
}

// Bucket is the bucket under an S3 store, seen with a plain S3 client: what
// is really there, whatever the store reports.
type Bucket struct {
	Config blobs3.Config
	Client *awss3.Client
}

// Objects lists the names of every object in the bucket.
func (b *Bucket) Objects(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, o := range b.list(t) {
		out = append(out, aws.ToString(o.Key))
	}
	return out
}

func (b *Bucket) list(t testing.TB) []s3Object {
	t.Helper()
	var out []s3Object
	p := awss3.NewListObjectsV2Paginator(b.Client, &awss3.ListObjectsV2Input{Bucket: aws.String(b.Config.Bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("listing objects: %v", err)
		}
		for _, o := range page.Contents {
			out = append(out, s3Object{Key: o.Key, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
	}
	return out
}

type s3Object struct {
	Key     *string
	Size    int64
	ModTime time.Time
}

// Multipart lists the object names of the multipart uploads in progress.
func (b *Bucket) Multipart(t testing.TB) []string {
	t.Helper()
	var out []string
	in := &awss3.ListMultipartUploadsInput{Bucket: aws.String(b.Config.Bucket)}
	for {
		page, err := b.Client.ListMultipartUploads(context.Background(), in)
		if err != nil {
			t.Fatalf("listing multipart uploads: %v", err)
		}
		for _, u := range page.Uploads {
			out = append(out, aws.ToString(u.Key))
		}
		if !aws.ToBool(page.IsTruncated) {
			return out
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}

// Get reads the object name.
func (b *Bucket) Get(t testing.TB, name string) []byte {
	t.Helper()
	out, err := b.Client.GetObject(context.Background(), &awss3.GetObjectInput{Bucket: aws.String(b.Config.Bucket), Key: aws.String(name)})
	if err != nil {
		t.Fatalf("getting %s: %v", name, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	return body
}

// Put writes the object name.
func (b *Bucket) Put(t testing.TB, name string, body []byte) {
	t.Helper()
	_, err := b.Client.PutObject(context.Background(), &awss3.PutObjectInput{Bucket: aws.String(b.Config.Bucket), Key: aws.String(name),
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))})
	if err != nil {
		t.Fatalf("putting %s: %v", name, err)
	}
}

// Staging lists the objects under the store's uploads/ (states and tails).
func (b *Bucket) Staging(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, o := range b.Objects(t) {
		if strings.HasPrefix(o, b.Config.Prefix+"uploads/") {
			out = append(out, o)
		}
	}
	return out
}

// Bytes maps the bucket onto blob/s3's layout (P = the prefix) for the
// oracle: P/blobs/<storage key> are committed bytes, P/uploads/<id>/… an
// upload's staging, a multipart upload of P/blobs/<id>/… belongs to upload
// id; anything else is foreign.
func (b *Bucket) Bytes(t testing.TB) gcoracle.Bytes {
	t.Helper()
	p := b.Config.Prefix
	var out gcoracle.Bytes
	for _, o := range b.list(t) {
		name := aws.ToString(o.Key)
		obj := gcoracle.Object{Name: name, Size: o.Size, ModTime: o.ModTime}
		switch {
		case strings.HasPrefix(name, p+"blobs/"):
			obj.Key = strings.TrimPrefix(name, p+"blobs/")
			out.Blobs = append(out.Blobs, obj)
		case strings.HasPrefix(name, p+"uploads/"):
			obj.Key, _, _ = strings.Cut(strings.TrimPrefix(name, p+"uploads/"), "/")
			out.Staging = append(out.Staging, obj)
		default:
			out.Foreign = append(out.Foreign, obj)
		}
	}
	for _, k := range b.Multipart(t) {
		id, _, _ := strings.Cut(strings.TrimPrefix(k, p+"blobs/"), "/")
		out.Multipart = append(out.Multipart, gcoracle.Object{Key: id, Name: k})
	}
	return out
}
