package api_test

// Access control's cost on the hot read paths (issue 11's target: at most
// 1.1× with it on), side by side in one run, and the token endpoint's
// throughput. Results and the command: bench/README.md.

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
)

// newAuthBenchServer is newBenchServer with access control on, a user
// "bench" with write on namespace "bench", and a token for repo.
func newAuthBenchServer(b *testing.B, backend, repo string) (*benchServer, string) {
	b.Helper()
	ctx := context.Background()
	store, blobs := openBackends(b, backend)
	reg := registry.New(store, blobs, registry.Options{Policy: review.DefaultPolicy()})
	svc := auth.New(store, auth.Options{Service: "bench"})
	if err := svc.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if err := svc.AddUser(ctx, "bench", "bench-secret", false, meta.ActorOperator); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api.New(reg, api.Options{Auth: svc}))
	b.Cleanup(srv.Close)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	b.Cleanup(tr.CloseIdleConnections)
	s := &benchServer{url: srv.URL, client: &http.Client{Transport: tr}}
	return s, s.fetchToken(b, "bench", "bench-secret", "repository:"+repo+":pull,push")
}

func (s *benchServer) fetchToken(b *testing.B, user, password, scope string) string {
	req, _ := http.NewRequest("GET", s.url+"/auth/token?service=bench&scope="+url.QueryEscape(scope), nil)
	req.SetBasicAuth(user, password)
	resp, err := s.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	return tr.Token
}

// BenchmarkAuthReads: manifest GET and blob HEAD with access control off,
// then on (a bearer token, as docker and every client send after login).
func BenchmarkAuthReads(b *testing.B) {
	for _, backend := range backends(b) {
		for _, mode := range []string{"off", "on"} {
			b.Run(backend+"/"+mode, func(b *testing.B) {
				var s *benchServer
				hdr := map[string]string{}
				if mode == "on" {
					var tok string
					s, tok = newAuthBenchServer(b, backend, "bench/read")
					hdr["Authorization"] = "Bearer " + tok
				} else {
					s = newBenchServer(b, backend)
				}
				withHdr := func(extra map[string]string) map[string]string {
					out := map[string]string{}
					for k, v := range hdr {
						out[k] = v
					}
					for k, v := range extra {
						out[k] = v
					}
					return out
				}
				// Push through the API with the same credentials.
				p := []byte("a layer to HEAD")
				d := digest.FromBytes(p)
				s.do(b, "POST", "/v2/bench/read/blobs/uploads/?digest="+d.String(), withHdr(map[string]string{"Content-Type": "application/octet-stream"}), bytes.NewReader(p), int64(len(p)), http.StatusCreated)
				cfg := []byte(`{}`)
				cd := digest.FromBytes(cfg)
				s.do(b, "POST", "/v2/bench/read/blobs/uploads/?digest="+cd.String(), withHdr(nil), bytes.NewReader(cfg), int64(len(cfg)), http.StatusCreated)
				m, _ := json.Marshal(manifestDoc{SchemaVersion: 2, MediaType: mtManifest,
					Config: &desc{MediaType: mtConfig, Digest: cd, Size: int64(len(cfg))},
					Layers: []desc{{MediaType: mtLayer, Digest: d, Size: int64(len(p))}}})
				s.do(b, "PUT", "/v2/bench/read/manifests/latest", withHdr(map[string]string{"Content-Type": mtManifest}), bytes.NewReader(m), int64(len(m)), http.StatusCreated)
				getHdr := withHdr(map[string]string{"Accept": mtManifest})
				b.Run("manifest-get", func(b *testing.B) {
					for b.Loop() {
						s.do(b, "GET", "/v2/bench/read/manifests/latest", getHdr, nil, 0, http.StatusOK)
					}
				})
				b.Run("blob-head", func(b *testing.B) {
					for b.Loop() {
						s.do(b, "HEAD", "/v2/bench/read/blobs/"+d.String(), hdr, nil, 0, http.StatusOK)
					}
				})
			})
		}
	}
}

// BenchmarkTokenEndpoint: tokens issued for a logged-in client (its Basic
// credential is verified once, then remembered for a minute; each token
// reads its grants from the database).
func BenchmarkTokenEndpoint(b *testing.B) {
	for _, backend := range backends(b) {
		b.Run(backend, func(b *testing.B) {
			s, _ := newAuthBenchServer(b, backend, "bench/x")
			b.Run("user", func(b *testing.B) {
				for b.Loop() {
					s.fetchToken(b, "bench", "bench-secret", "repository:bench/x:pull,push")
				}
			})
		})
	}
}

// BenchmarkAuthHandler: a blob HEAD through the handler itself, without
// the network (httptest.NewRecorder), with access control off and on: what
// access control adds to a request, less the noise of a loopback round
// trip on a shared machine.
func BenchmarkAuthHandler(b *testing.B) {
	for _, backend := range backends(b) {
		b.Run(backend, func(b *testing.B) {
			ctx := context.Background()
			store, blobs := openBackends(b, backend)
			reg := registry.New(store, blobs, registry.Options{Policy: review.DefaultPolicy()})
			svc := auth.New(store, auth.Options{Service: "bench"})
			if err := svc.Start(ctx); err != nil {
				b.Fatal(err)
			}
			if err := svc.AddUser(ctx, "bench", "bench-secret", false, meta.ActorOperator); err != nil {
				b.Fatal(err)
			}
			sub, err := svc.Authenticate(ctx, "bench", "bench-secret", "127.0.0.1")
			if err != nil {
				b.Fatal(err)
			}
			tok, err := svc.IssueToken(ctx, sub, "bench", []auth.Access{{Type: "repository", Name: "bench/h", Actions: []string{"pull"}}})
			if err != nil {
				b.Fatal(err)
			}
			p := []byte("a blob")
			d := digest.FromBytes(p)
			if _, err := reg.PushBlob(ctx, "bench/h", d.String(), int64(len(p)), bytes.NewReader(p)); err != nil {
				b.Fatal(err)
			}
			for _, mode := range []string{"off", "on"} {
				h := api.New(reg, api.Options{})
				if mode == "on" {
					h = api.New(reg, api.Options{Auth: svc})
				}
				b.Run(mode, func(b *testing.B) {
					req := httptest.NewRequest("HEAD", "/v2/bench/h/blobs/"+d.String(), nil)
					if mode == "on" {
						req.Header.Set("Authorization", "Bearer "+tok.Token)
					}
					for b.Loop() {
						w := httptest.NewRecorder()
						h.ServeHTTP(w, req)
						if w.Code != http.StatusOK {
							b.Fatalf("HEAD: %d", w.Code)
						}
					}
				})
			}
		})
	}
}
