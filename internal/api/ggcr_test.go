package api_test

// End-to-end tests through a real OCI client, go-containerregistry, against
// the real handler over httptest on each metadata backend.

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/stream"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/opencontainers/go-digest"
)

// call is one request a client made, as the tracer saw it.
type call struct {
	method string
	path   string
	query  url.Values
	status int
	sent   int64 // request body bytes actually sent
}

// tracer is an http.RoundTripper that records every request and counts the
// body bytes sent, so a test can tell a mount from a re-upload.
type tracer struct {
	mu    sync.Mutex
	calls []call
}

func (tr *tracer) RoundTrip(req *http.Request) (*http.Response, error) {
	cb := &countingBody{}
	if req.Body != nil {
		req = req.Clone(req.Context())
		cb.rc = req.Body
		req.Body = cb
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	c := call{method: req.Method, path: req.URL.Path, query: req.URL.Query(), sent: cb.n}
	if resp != nil {
		c.status = resp.StatusCode
	}
	tr.mu.Lock()
	tr.calls = append(tr.calls, c)
	tr.mu.Unlock()
	return resp, err
}

// reset forgets the calls recorded so far.
func (tr *tracer) reset() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.calls = nil
}

// blobWrites returns the calls that carried blob bytes: PATCH and PUT on an
// upload session, and POST of a monolithic upload.
func (tr *tracer) blobWrites() []call {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []call
	for _, c := range tr.calls {
		isUpload := strings.Contains(c.path, "/blobs/uploads/")
		if isUpload && (c.method == http.MethodPatch || c.method == http.MethodPut || (c.method == http.MethodPost && c.query.Has("digest"))) {
			out = append(out, c)
		}
	}
	return out
}

// matching returns the calls with method whose path contains part.
func (tr *tracer) matching(method, part string) []call {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []call
	for _, c := range tr.calls {
		if c.method == method && strings.Contains(c.path, part) {
			out = append(out, c)
		}
	}
	return out
}

type countingBody struct {
	rc io.ReadCloser
	n  int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingBody) Close() error { return c.rc.Close() }

// client is go-containerregistry pointed at an env's server.
type client struct {
	t    *testing.T
	e    *env
	host string
	tr   *tracer
}

func newClient(t *testing.T, e *env) *client {
	return &client{t: t, e: e, host: strings.TrimPrefix(e.srv.URL, "http://"), tr: &tracer{}}
}

func (c *client) opts() []remote.Option {
	return []remote.Option{remote.WithTransport(c.tr), remote.WithContext(context.Background())}
}

// ref parses "repo:tag" or "repo@digest" on the test server.
func (c *client) ref(s string) name.Reference {
	c.t.Helper()
	r, err := name.ParseReference(c.host+"/"+s, name.Insecure, name.StrictValidation)
	if err != nil {
		c.t.Fatalf("parsing reference %q: %v", s, err)
	}
	return r
}

func (c *client) digestRef(repo string, h v1.Hash) name.Digest {
	c.t.Helper()
	return c.ref(repo + "@" + h.String()).(name.Digest)
}

func (c *client) write(s string, img v1.Image) v1.Hash {
	c.t.Helper()
	if err := remote.Write(c.ref(s), img, c.opts()...); err != nil {
		c.t.Fatalf("remote.Write %s: %v", s, err)
	}
	return mustDigest(c.t, img)
}

type digester interface{ Digest() (v1.Hash, error) }

func mustDigest(t *testing.T, x digester) v1.Hash {
	t.Helper()
	h, err := x.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func randomImage(t *testing.T, size, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(size, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// samePulled pulls ref and checks it is img: same digest, same manifest
// bytes, and every layer's bytes matching its digest (validate.Image reads
// each blob through the registry and checks digests, diff IDs and sizes).
func (c *client) samePulled(s string, img v1.Image) {
	c.t.Helper()
	got, err := remote.Image(c.ref(s), c.opts()...)
	if err != nil {
		c.t.Fatalf("remote.Image %s: %v", s, err)
	}
	if g, w := mustDigest(c.t, got), mustDigest(c.t, img); g != w {
		c.t.Fatalf("pulled %s: got digest %s, want %s", s, g, w)
	}
	gotRaw, _ := got.RawManifest()
	wantRaw, _ := img.RawManifest()
	if !bytes.Equal(gotRaw, wantRaw) {
		c.t.Errorf("pulled %s: manifest bytes differ from those pushed", s)
	}
	if err := validate.Image(got); err != nil {
		c.t.Errorf("validate.Image %s: %v", s, err)
	}
	gotLayers, err := got.Layers()
	if err != nil {
		c.t.Fatal(err)
	}
	wantLayers, _ := img.Layers()
	if len(gotLayers) != len(wantLayers) {
		c.t.Fatalf("pulled %s: got %d layers, want %d", s, len(gotLayers), len(wantLayers))
	}
	for i, l := range gotLayers {
		rc, err := l.Compressed()
		if err != nil {
			c.t.Fatalf("layer %d: %v", i, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			c.t.Fatalf("reading layer %d: %v", i, err)
		}
		want := mustDigest(c.t, wantLayers[i])
		if got := digest.FromBytes(b).String(); got != want.String() {
			c.t.Errorf("layer %d bytes: got %s, want %s", i, got, want)
		}
	}
}

// wantStatus checks that err is a transport error with status and code.
func wantStatus(t *testing.T, what string, err error, status int, code transport.ErrorCode) {
	t.Helper()
	var te *transport.Error
	if !errors.As(err, &te) {
		t.Errorf("%s: got %v, want a transport error %d %s", what, err, status, code)
		return
	}
	if te.StatusCode != status {
		t.Errorf("%s: got status %d, want %d (%v)", what, te.StatusCode, status, err)
	}
	if code != "" && (len(te.Errors) == 0 || te.Errors[0].Code != code) {
		t.Errorf("%s: got codes %v, want %s", what, te.Errors, code)
	}
}

func TestGGCRImage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newClient(t, e)
		img := randomImage(t, 4096, 3)
		d := c.write("ggcr/single:v1", img)

		c.samePulled("ggcr/single:v1", img)
		c.samePulled("ggcr/single@"+d.String(), img)

		desc, err := remote.Head(c.ref("ggcr/single:v1"), c.opts()...)
		if err != nil {
			t.Fatalf("remote.Head: %v", err)
		}
		raw, _ := img.RawManifest()
		if desc.Digest != d || desc.Size != int64(len(raw)) || desc.MediaType != types.DockerManifestSchema2 {
			t.Errorf("HEAD: got %s %d %s, want %s %d %s", desc.Digest, desc.Size, desc.MediaType, d, len(raw), types.DockerManifestSchema2)
		}
		tags, err := remote.List(c.ref("ggcr/single:v1").Context(), c.opts()...)
		if err != nil || len(tags) != 1 || tags[0] != "v1" {
			t.Errorf("remote.List: got %v, %v; want [v1]", tags, err)
		}
		// A second push of the same image uploads nothing: every blob exists.
		c.tr.reset()
		c.write("ggcr/single:v2", img)
		if w := c.tr.blobWrites(); len(w) != 0 {
			t.Errorf("re-push: got %d blob writes %+v, want none", len(w), w)
		}
		// An OCI image (not Docker media types) round-trips too.
		oci := mutate.MediaType(mutate.ConfigMediaType(randomImage(t, 1000, 2), types.OCIConfigJSON), types.OCIManifestSchema1)
		c.write("ggcr/single:oci", oci)
		c.samePulled("ggcr/single:oci", oci)

		_, err = remote.Image(c.ref("ggcr/single:nope"), c.opts()...)
		wantStatus(t, "pull an unknown tag", err, http.StatusNotFound, transport.ManifestUnknownErrorCode)
		_, err = remote.Image(c.ref("ggcr/none:v1"), c.opts()...)
		wantStatus(t, "pull from an unknown repository", err, http.StatusNotFound, transport.NameUnknownErrorCode)
	})
}

// platformIndex builds an OCI index of one random image per platform.
func platformIndex(t *testing.T, platforms []v1.Platform) (v1.ImageIndex, []v1.Image) {
	t.Helper()
	var adds []mutate.IndexAddendum
	var imgs []v1.Image
	for _, p := range platforms {
		img := mutate.MediaType(mutate.ConfigMediaType(randomImage(t, 2048, 2), types.OCIConfigJSON), types.OCIManifestSchema1)
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
		img, err = mutate.ConfigFile(img, cf)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	return idx, imgs
}

func TestGGCRIndex(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newClient(t, e)
		platforms := []v1.Platform{
			{OS: "linux", Architecture: "amd64"},
			{OS: "linux", Architecture: "arm64", Variant: "v8"},
			{OS: "linux", Architecture: "s390x"},
		}
		idx, imgs := platformIndex(t, platforms)
		if err := remote.WriteIndex(c.ref("ggcr/multi:latest"), idx, c.opts()...); err != nil {
			t.Fatalf("remote.WriteIndex: %v", err)
		}
		idxD := mustDigest(t, idx)

		got, err := remote.Index(c.ref("ggcr/multi:latest"), c.opts()...)
		if err != nil {
			t.Fatalf("remote.Index: %v", err)
		}
		if g := mustDigest(t, got); g != idxD {
			t.Errorf("index digest: got %s, want %s", g, idxD)
		}
		if err := validate.Index(got); err != nil {
			t.Errorf("validate.Index: %v", err)
		}
		for i, p := range platforms {
			img, err := remote.Image(c.ref("ggcr/multi:latest"), append(c.opts(), remote.WithPlatform(p))...)
			if err != nil {
				t.Fatalf("pull %s: %v", p, err)
			}
			if g, w := mustDigest(t, img), mustDigest(t, imgs[i]); g != w {
				t.Errorf("pull %s: got %s, want %s", p, g, w)
			}
			cf, err := img.ConfigFile()
			if err != nil || cf.Architecture != p.Architecture || cf.Variant != p.Variant {
				t.Errorf("pull %s: got config %s/%s (%v)", p, cf.Architecture, cf.Variant, err)
			}
			c.samePulled("ggcr/multi@"+mustDigest(t, imgs[i]).String(), imgs[i])
		}
		_, err = remote.Image(c.ref("ggcr/multi:latest"), append(c.opts(), remote.WithPlatform(v1.Platform{OS: "windows", Architecture: "amd64"}))...)
		if err == nil {
			t.Error("pull windows/amd64: got an image, want an error (no such platform)")
		}

		// The children are rows of the index in the database.
		var n int
		if err := e.store.DB().QueryRow("SELECT COUNT(*) FROM manifest_child").Scan(&n); err != nil || n != len(platforms) {
			t.Errorf("manifest_child rows: got %d (%v), want %d", n, err, len(platforms))
		}
		// A child cannot be deleted while the index lists it.
		err = remote.Delete(c.digestRef("ggcr/multi", mustDigest(t, imgs[0])), c.opts()...)
		wantStatus(t, "delete a listed child", err, http.StatusForbidden, transport.DeniedErrorCode)
	})
}

// artifact is a manifest written as raw JSON, for what ggcr's mutate cannot
// set (the artifactType field).
type artifact struct {
	raw []byte
	mt  types.MediaType
}

func (a artifact) RawManifest() ([]byte, error)        { return a.raw, nil }
func (a artifact) MediaType() (types.MediaType, error) { return a.mt, nil }

func TestGGCRReferrers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newClient(t, e)
		const repo = "ggcr/refs"
		subjImg := randomImage(t, 1024, 1)
		subjD := c.write(repo+":v1", subjImg)
		raw, _ := subjImg.RawManifest()
		mt, _ := subjImg.MediaType()
		subject := v1.Descriptor{MediaType: mt, Digest: subjD, Size: int64(len(raw))}

		// An SBOM whose type is its config media type (no artifactType field).
		sbom := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		sbom = mutate.ConfigMediaType(sbom, "application/vnd.example.sbom.v1+json")
		sbom, err := mutate.AppendLayers(sbom, static.NewLayer([]byte(`{"packages":[]}`), "application/spdx+json"))
		if err != nil {
			t.Fatal(err)
		}
		// Annotations before Subject: ggcr's mutate.Annotations drops a subject
		// set earlier.
		sbom = mutate.Annotations(sbom, map[string]string{"org.example.kind": "sbom"}).(v1.Image)
		sbom = mutate.Subject(sbom, subject).(v1.Image)
		sbomD := mustDigest(t, sbom)
		c.tr.reset()
		if err := remote.Write(c.digestRef(repo, sbomD), sbom, c.opts()...); err != nil {
			t.Fatalf("writing the sbom: %v", err)
		}
		for _, put := range c.tr.matching(http.MethodPut, "/manifests/") {
			if put.status != http.StatusCreated {
				t.Errorf("manifest PUT %s: got %d, want 201", put.path, put.status)
			}
		}

		// A signature with an explicit artifactType and the empty config.
		emptyCfg := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
		if err := remote.WriteLayer(c.ref(repo+":x").Context(), emptyCfg, c.opts()...); err != nil {
			t.Fatalf("writing the empty config: %v", err)
		}
		sigLayer := static.NewLayer([]byte("signature"), "application/vnd.example.sig")
		if err := remote.WriteLayer(c.ref(repo+":x").Context(), sigLayer, c.opts()...); err != nil {
			t.Fatalf("writing the signature layer: %v", err)
		}
		sigManifest := v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.OCIManifestSchema1,
			ArtifactType:  "application/vnd.example.signature",
			Config:        v1.Descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: mustDigest(t, emptyCfg), Size: 2},
			Layers:        []v1.Descriptor{{MediaType: "application/vnd.example.sig", Digest: mustDigest(t, sigLayer), Size: 9}},
			Subject:       &subject,
		}
		sigRaw, _ := json.Marshal(sigManifest)
		sig := artifact{raw: sigRaw, mt: types.OCIManifestSchema1}
		sigD := v1.Hash{Algorithm: "sha256", Hex: digest.FromBytes(sigRaw).Encoded()}
		if err := remote.Put(c.digestRef(repo, sigD), sig, c.opts()...); err != nil {
			t.Fatalf("putting the signature: %v", err)
		}

		idx, err := remote.Referrers(c.digestRef(repo, subjD), c.opts()...)
		if err != nil {
			t.Fatalf("remote.Referrers: %v", err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		byDigest := map[v1.Hash]v1.Descriptor{}
		for _, d := range im.Manifests {
			byDigest[d.Digest] = d
		}
		if len(im.Manifests) != 2 {
			t.Fatalf("referrers: got %d, want 2: %+v", len(im.Manifests), im.Manifests)
		}
		if got := byDigest[sbomD]; got.ArtifactType != "application/vnd.example.sbom.v1+json" || got.Annotations["org.example.kind"] != "sbom" {
			t.Errorf("sbom referrer: got artifactType %q annotations %v", got.ArtifactType, got.Annotations)
		}
		if got := byDigest[sigD]; got.ArtifactType != "application/vnd.example.signature" || got.Size != int64(len(sigRaw)) {
			t.Errorf("signature referrer: got artifactType %q size %d, want application/vnd.example.signature %d", got.ArtifactType, got.Size, len(sigRaw))
		}

		for _, tt := range []struct {
			artifactType string
			want         []v1.Hash
		}{
			{"application/vnd.example.signature", []v1.Hash{sigD}},
			{"application/vnd.example.sbom.v1+json", []v1.Hash{sbomD}},
			{"application/vnd.example.none", nil},
		} {
			idx, err := remote.Referrers(c.digestRef(repo, subjD), append(c.opts(), remote.WithFilter("artifactType", tt.artifactType))...)
			if err != nil {
				t.Fatalf("remote.Referrers filtered on %s: %v", tt.artifactType, err)
			}
			im, _ := idx.IndexManifest()
			var got []v1.Hash
			for _, d := range im.Manifests {
				got = append(got, d.Digest)
			}
			if len(got) != len(tt.want) || (len(got) == 1 && got[0] != tt.want[0]) {
				t.Errorf("referrers of type %s: got %v, want %v", tt.artifactType, got, tt.want)
			}
			// ggcr v0.22 filters on the client and sends no query; the server
			// filters too, and says so.
			resp, body := e.do("GET", "/v2/"+repo+"/referrers/"+subjD.String()+"?artifactType="+url.QueryEscape(tt.artifactType), nil, nil)
			e.expect(resp, body, http.StatusOK)
			sim, err := v1.ParseIndexManifest(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("server-filtered referrers: %v", err)
			}
			var server []v1.Hash
			for _, d := range sim.Manifests {
				server = append(server, d.Digest)
			}
			if len(server) != len(tt.want) || (len(server) == 1 && server[0] != tt.want[0]) || resp.Header.Get("OCI-Filters-Applied") != "artifactType" {
				t.Errorf("server-filtered referrers of type %s: got %v (OCI-Filters-Applied %q), want %v (artifactType)", tt.artifactType, server, resp.Header.Get("OCI-Filters-Applied"), tt.want)
			}
		}

		// The artifacts pull like images.
		c.samePulled(repo+"@"+sbomD.String(), sbom)
		// The referrers of an unknown subject: an empty list, not an error.
		idx, err = remote.Referrers(c.digestRef(repo, v1.Hash{Algorithm: "sha256", Hex: digest.FromString("none").Encoded()}), c.opts()...)
		if err != nil {
			t.Fatalf("referrers of an unknown subject: %v", err)
		}
		if im, _ := idx.IndexManifest(); len(im.Manifests) != 0 {
			t.Errorf("referrers of an unknown subject: got %d, want 0", len(im.Manifests))
		}
	})
}

func TestGGCRMount(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newClient(t, e)
		img := randomImage(t, 64<<10, 3)
		d := c.write("team/a:v1", img)
		before := e.counts()

		// Pull from A and push to B: ggcr mounts each blob from A.
		pulled, err := remote.Image(c.ref("team/a:v1"), c.opts()...)
		if err != nil {
			t.Fatal(err)
		}
		c.tr.reset()
		if err := remote.Write(c.ref("team/b:v1"), pulled, c.opts()...); err != nil {
			t.Fatalf("writing to B: %v", err)
		}
		if w := c.tr.blobWrites(); len(w) != 0 {
			t.Errorf("push to B: got %d blob writes %+v, want none (all mounted)", len(w), w)
		}
		mounts := 0
		for _, call := range c.tr.matching(http.MethodPost, "/team/b/blobs/uploads/") {
			if call.query.Get("from") != "team/a" || call.status != http.StatusCreated {
				t.Errorf("mount POST: got from=%q status %d, want from=team/a 201", call.query.Get("from"), call.status)
			}
			mounts++
		}
		if mounts != 4 { // 3 layers and the config
			t.Errorf("mounts: got %d, want 4", mounts)
		}
		c.samePulled("team/b:v1", img)

		// In the store: no new blob row, no new bytes; four new links and
		// one new repository, manifest, tag and its four manifest_blob rows.
		after := e.counts()
		for k, delta := range map[string]int{"blob": 0, "bytes:objects": 0, "bytes:uploads": 0, "repository_blob": 4, "repository": 1, "manifest": 1, "tag": 1, "manifest_blob": 4} {
			if got := after[k] - before[k]; got != delta {
				t.Errorf("%s: got %+d rows, want %+d", k, got, delta)
			}
		}

		// Deleting B's manifest leaves A whole.
		if err := remote.Delete(c.ref("team/b@"+d.String()), c.opts()...); err != nil {
			t.Fatalf("deleting B's manifest: %v", err)
		}
		c.samePulled("team/a:v1", img)

		// A mount from a repository that lacks the blob falls back to an
		// upload: ggcr then sends the bytes.
		other := randomImage(t, 1000, 1)
		layers, _ := other.Layers()
		c.tr.reset()
		if err := remote.WriteLayer(c.ref("team/c:x").Context(), &remote.MountableLayer{Layer: layers[0], Reference: c.ref("team/a:v1")}, c.opts()...); err != nil {
			t.Fatalf("WriteLayer with a failing mount: %v", err)
		}
		size, _ := layers[0].Size()
		var sent int64
		for _, w := range c.tr.blobWrites() {
			sent += w.sent
		}
		if sent != size {
			t.Errorf("fallback upload: got %d bytes sent, want %d", sent, size)
		}
	})
}

func TestGGCRChunkedAndStreamed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newClient(t, e)
		const repo = "ggcr/chunked"
		// ggcr sends a known layer in one PATCH; push the blobs of an image
		// in 1000-byte chunks by hand, then let ggcr push the manifest.
		img := randomImage(t, 10_000, 2)
		layers, _ := img.Layers()
		for i, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			if got, want := e.pushChunked(repo, b, 1000).String(), mustDigest(t, l).String(); got != want {
				t.Fatalf("chunked layer %d: got %s, want %s", i, got, want)
			}
		}
		cfg, _ := img.RawConfigFile()
		e.pushChunked(repo, cfg, 100)
		c.tr.reset()
		c.write(repo+":v1", img)
		if w := c.tr.blobWrites(); len(w) != 0 {
			t.Errorf("ggcr push after chunked uploads: got %d blob writes, want none", len(w))
		}
		c.samePulled(repo+":v1", img)

		// A streamed layer: ggcr PATCHes a body of unknown length
		// (chunked transfer encoding, no Content-Range), then PUTs the digest.
		payload := tarOf(t, "greeting.txt", bytes.Repeat([]byte("berth streams "), 50_000))
		sl := stream.NewLayer(io.NopCloser(bytes.NewReader(payload)))
		simg, err := mutate.AppendLayers(empty.Image, sl)
		if err != nil {
			t.Fatal(err)
		}
		c.tr.reset()
		if err := remote.Write(c.ref(repo+":streamed"), simg, c.opts()...); err != nil {
			t.Fatalf("writing a streamed layer: %v", err)
		}
		if len(c.tr.matching(http.MethodPatch, "/blobs/uploads/")) == 0 {
			t.Error("streamed layer: got no PATCH, want the layer streamed in a PATCH")
		}
		c.samePulled(repo+":streamed", simg)
		pulled, _ := remote.Image(c.ref(repo+":streamed"), c.opts()...)
		pl, _ := pulled.Layers()
		rc, err := pl[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, payload) {
			t.Errorf("streamed layer: got %d uncompressed bytes back, want the %d pushed", len(got), len(payload))
		}
		// No session is left open.
		if n := e.counts()["upload"]; n != 0 {
			t.Errorf("upload rows after the pushes: got %d, want 0", n)
		}
	})
}

func TestGGCRTagMoveAndDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newClient(t, e)
		const repo = "ns/moving"
		t0 := e.clock.Now()
		img1, img2 := randomImage(t, 1000, 1), randomImage(t, 1000, 1)
		d1 := c.write(repo+":prod", img1)
		e.clock.Add(time.Minute)
		d2 := c.write(repo+":prod", img2)
		c.samePulled(repo+":prod", img2)
		e.clock.Add(time.Minute)
		// Re-pushing the tag to the manifest it already names changes nothing.
		c.write(repo+":prod", img2)
		e.clock.Add(time.Minute)
		if err := remote.Delete(c.ref(repo+":prod"), c.opts()...); err != nil {
			t.Fatalf("deleting the tag: %v", err)
		}
		_, err := remote.Head(c.ref(repo+":prod"), c.opts()...)
		wantStatus(t, "HEAD the deleted tag", err, http.StatusNotFound, "")
		err = remote.Delete(c.ref(repo+":prod"), c.opts()...)
		wantStatus(t, "delete the deleted tag", err, http.StatusNotFound, transport.ManifestUnknownErrorCode)
		if tags, err := remote.List(c.ref(repo+":x").Context(), c.opts()...); err != nil || len(tags) != 0 {
			t.Errorf("tags after the delete: got %v (%v), want none", tags, err)
		}
		// Both manifests are still pullable by digest (time machine).
		c.samePulled(repo+"@"+d1.String(), img1)
		c.samePulled(repo+"@"+d2.String(), img2)

		h, err := e.reg.TagHistory(context.Background(), repo, "prod")
		if err != nil {
			t.Fatal(err)
		}
		hist := h.Lifetimes
		if len(hist) != 2 {
			t.Fatalf("history: got %d rows %+v, want 2", len(hist), hist)
		}
		type row struct {
			manifest   string
			start, end time.Time
		}
		want := []row{
			{d2.String(), t0.Add(time.Minute), t0.Add(3 * time.Minute)},
			{d1.String(), t0, t0.Add(time.Minute)},
		}
		for i, h := range hist {
			var end time.Time
			if h.End != nil {
				end = *h.End
			}
			got := row{h.Manifest.String(), h.Start, end}
			if got.manifest != want[i].manifest || !got.start.Equal(want[i].start) || !got.end.Equal(want[i].end) {
				t.Errorf("history row %d: got %+v, want %+v", i, got, want[i])
			}
		}
		// The same in SQL: no live row, two ended ones.
		var live, ended int
		err = e.store.DB().QueryRow(`SELECT
			COUNT(CASE WHEN t.lifetime_end IS NULL THEN 1 END),
			COUNT(CASE WHEN t.lifetime_end IS NOT NULL THEN 1 END)
			FROM tag t JOIN repository r ON r.id = t.repository_id
			WHERE r.name = '`+repo+`' AND t.name = 'prod'`).Scan(&live, &ended)
		if err != nil || live != 0 || ended != 2 {
			t.Errorf("tag rows: got %d live, %d ended (%v); want 0, 2", live, ended, err)
		}

		// Delete a manifest by digest; the tag's history keeps its row but the
		// manifest is gone.
		if err := remote.Delete(c.ref(repo+"@"+d1.String()), c.opts()...); err != nil {
			t.Fatalf("deleting manifest %s: %v", d1, err)
		}
		_, err = remote.Image(c.ref(repo+"@"+d1.String()), c.opts()...)
		wantStatus(t, "pull the deleted manifest", err, http.StatusNotFound, transport.ManifestUnknownErrorCode)
		c.samePulled(repo+"@"+d2.String(), img2)
	})
}

// tarOf returns a tar archive holding one file.
func tarOf(t *testing.T, name string, content []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
