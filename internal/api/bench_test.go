package api_test

// Benchmarks of the hot paths through the real HTTP handler, over httptest
// (client and server share the process and its CPUs), on each metadata
// backend with blob/fs. Results and the commands: bench/README.md.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
)

// benchServer is the handler over real backends, with a client that keeps
// connections alive.
type benchServer struct {
	url    string
	client *http.Client
	store  meta.Store
}

func newBenchServer(b *testing.B, backend string) *benchServer {
	b.Helper()
	store, blobs := openBackends(b, backend)
	// Pulls by tag recorded at most every 10 minutes, as serve's default
	// does: the zero interval would write on every GET.
	reg := registry.New(store, blobs, registry.Options{Policy: review.DefaultPolicy(), PullInterval: 10 * time.Minute})
	b.Cleanup(func() { _ = reg.Close(context.Background()) })
	srv := httptest.NewServer(api.New(reg, api.Options{}))
	b.Cleanup(srv.Close)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	b.Cleanup(tr.CloseIdleConnections)
	return &benchServer{url: srv.URL, client: &http.Client{Transport: tr}, store: store}
}

// withQuota gives every namespace the registry default quota, far above
// what the benchmark pushes: each manifest PUT then reads it and checks the
// namespace's usage against it.
func (s *benchServer) withQuota(b *testing.B) {
	b.Helper()
	warn := 80
	q := meta.Quota{Namespace: "", Limit: 1 << 50, WarnPercent: &warn, CreatedAt: time.Now()}
	if err := s.store.Update(context.Background(), func(tx meta.Tx) error { return tx.PutQuota(context.Background(), q) }); err != nil {
		b.Fatal(err)
	}
}

// do sends one request and drains the answer, failing unless it has status.
func (s *benchServer) do(b *testing.B, method, path string, hdr map[string]string, body io.Reader, size int64, status int) *http.Response {
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		b.Fatal(err)
	}
	if body != nil {
		req.ContentLength = size
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		b.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != status {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		b.Fatalf("%s %s: got status %d, want %d: %s", method, path, resp.StatusCode, status, msg)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		b.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp
}

// pushBlob uploads p as a client library does: POST a session, PATCH the
// body in one streamed chunk, PUT the digest.
func (s *benchServer) pushBlob(b *testing.B, repo string, p []byte, d digest.Digest) {
	resp := s.do(b, "POST", "/v2/"+repo+"/blobs/uploads/", nil, nil, 0, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	resp = s.do(b, "PATCH", loc, map[string]string{"Content-Type": "application/octet-stream"}, bytes.NewReader(p), int64(len(p)), http.StatusAccepted)
	loc = resp.Header.Get("Location")
	s.do(b, "PUT", loc+"?digest="+d.String(), nil, nil, 0, http.StatusCreated)
}

// benchManifest pushes a config and a layer to repo and returns a function
// giving the i-th distinct manifest over them (an annotation varies).
func (s *benchServer) benchManifest(b *testing.B, repo string) func(i int) []byte {
	b.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := make([]byte, 4096)
	_, _ = rand.Read(layer)
	cfgD, layerD := digest.FromBytes(cfg), digest.FromBytes(layer)
	s.pushBlob(b, repo, cfg, cfgD)
	s.pushBlob(b, repo, layer, layerD)
	return func(i int) []byte {
		m, _ := json.Marshal(manifestDoc{SchemaVersion: 2, MediaType: mtManifest,
			Config:      &desc{MediaType: mtConfig, Digest: cfgD, Size: int64(len(cfg))},
			Layers:      []desc{{MediaType: mtLayer, Digest: layerD, Size: int64(len(layer))}},
			Annotations: map[string]string{"org.example.n": fmt.Sprint(i)}})
		return m
	}
}

func BenchmarkManifestPut(b *testing.B) {
	for _, backend := range backends(b) {
		b.Run(backend, func(b *testing.B) {
			s := newBenchServer(b, backend)
			s.withQuota(b)
			manifest := s.benchManifest(b, "bench/put")
			hdr := map[string]string{"Content-Type": mtManifest}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				// A new manifest under a new tag each time: a manifest row, its
				// blob links, a tag row and the reviews.
				m := manifest(i)
				s.do(b, "PUT", fmt.Sprintf("/v2/bench/put/manifests/t%d", i), hdr, bytes.NewReader(m), int64(len(m)), http.StatusCreated)
			}
		})
	}
}

// BenchmarkImagePush pushes a whole new image each time, as a client does:
// a config and a 64 KiB layer that no other image holds (each a POST, a
// PATCH and a PUT), then the manifest under a new tag. Every usage counter
// level crosses zero on every push (a blob new to the repository, the
// namespace and the registry), the dearest case of the counters; the
// default quota is set, so the PUT also checks it. Issue 15's push
// throughput with usage on against off: bench/usage-ab.sh.
func BenchmarkImagePush(b *testing.B) {
	for _, backend := range backends(b) {
		b.Run(backend, func(b *testing.B) {
			s := newBenchServer(b, backend)
			s.withQuota(b)
			layer := make([]byte, 64<<10)
			_, _ = rand.Read(layer)
			hdr := map[string]string{"Content-Type": mtManifest}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","created":"%d","rootfs":{"type":"layers","diff_ids":[]}}`, i))
				binary.LittleEndian.PutUint64(layer, uint64(i))
				cfgD, layerD := digest.FromBytes(cfg), digest.FromBytes(layer)
				s.pushBlob(b, "bench/image", cfg, cfgD)
				s.pushBlob(b, "bench/image", layer, layerD)
				m, _ := json.Marshal(manifestDoc{SchemaVersion: 2, MediaType: mtManifest,
					Config: &desc{MediaType: mtConfig, Digest: cfgD, Size: int64(len(cfg))},
					Layers: []desc{{MediaType: mtLayer, Digest: layerD, Size: int64(len(layer))}}})
				s.do(b, "PUT", fmt.Sprintf("/v2/bench/image/manifests/t%d", i), hdr, bytes.NewReader(m), int64(len(m)), http.StatusCreated)
			}
		})
	}
}

func BenchmarkManifestGet(b *testing.B) {
	for _, backend := range backends(b) {
		b.Run(backend, func(b *testing.B) {
			s := newBenchServer(b, backend)
			m := s.benchManifest(b, "bench/get")(0)
			s.do(b, "PUT", "/v2/bench/get/manifests/latest", map[string]string{"Content-Type": mtManifest}, bytes.NewReader(m), int64(len(m)), http.StatusCreated)
			hdr := map[string]string{"Accept": mtManifest}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				// No collector runs here, so the manifest's review from its
				// push stays pending and each GET also postpones it (a write
				// transaction): this is the "read that revives" path, what a
				// pull costs within the grace after a push.
				s.do(b, "GET", "/v2/bench/get/manifests/latest", hdr, nil, 0, http.StatusOK)
			}
		})
	}
}

var blobSizes = []struct {
	name string
	size int
}{{"1MiB", 1 << 20}, {"64MiB", 64 << 20}}

func BenchmarkBlobUpload(b *testing.B) {
	for _, backend := range backends(b) {
		for _, sz := range blobSizes {
			b.Run(backend+"/"+sz.name, func(b *testing.B) {
				s := newBenchServer(b, backend)
				p := make([]byte, sz.size)
				_, _ = rand.Read(p)
				b.ReportAllocs()
				b.SetBytes(int64(sz.size))
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					// Distinct content each time, so that nothing deduplicates;
					// hashing it for the digest is not the server's time.
					b.StopTimer()
					binary.LittleEndian.PutUint64(p, uint64(i))
					d := digest.FromBytes(p)
					b.StartTimer()
					s.pushBlob(b, "bench/upload", p, d)
				}
			})
		}
	}
}

func BenchmarkBlobDownload(b *testing.B) {
	for _, backend := range backends(b) {
		for _, sz := range blobSizes {
			b.Run(backend+"/"+sz.name, func(b *testing.B) {
				s := newBenchServer(b, backend)
				p := make([]byte, sz.size)
				_, _ = rand.Read(p)
				d := digest.FromBytes(p)
				s.pushBlob(b, "bench/download", p, d)
				b.ReportAllocs()
				b.SetBytes(int64(sz.size))
				b.ResetTimer()
				for b.Loop() {
					resp := s.do(b, "GET", "/v2/bench/download/blobs/"+d.String(), nil, nil, 0, http.StatusOK)
					if resp.ContentLength != int64(sz.size) {
						b.Fatalf("Content-Length: got %d, want %d", resp.ContentLength, sz.size)
					}
				}
			})
		}
	}
}
