package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/api"
	blobs3 "github.com/berth/berth/internal/blob/s3"
	"github.com/berth/berth/internal/blob/s3/s3test"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
)

// TestStorageOutageIs503: while S3 cannot be reached, requests that need
// bytes answer 503 UNAVAILABLE with Retry-After (clients retry), without
// the storage's details, and rows-only requests still work; once S3 is
// back, everything does.
func TestStorageOutageIs503(t *testing.T) {
	store, _ := openBackends(t, backendSQLite)
	cfg := s3test.New(t)
	target, err := url.Parse(cfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	rp := httputil.NewSingleHostReverseProxy(target)
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			// Drop the connection, as an unreachable S3 would.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(gate.Close)
	cfg.Endpoint = gate.URL
	blobs, err := blobs3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(store, blobs, registry.Options{Now: time.Now, Policy: review.DefaultPolicy()})
	srv := httptest.NewServer(api.New(reg, api.Options{}))
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv, store: store, blobs: blobs, reg: reg}

	b := []byte("bytes on S3")
	d := e.pushBlob("acme/app", b)
	down.Store(true)
	for _, tt := range []struct {
		method, path string
		body         []byte
	}{
		{"GET", "/v2/acme/app/blobs/" + d.String(), nil},
		{"POST", "/v2/acme/app/blobs/uploads/?digest=" + digest.FromString("new bytes").String(), []byte("new bytes")},
	} {
		resp, body := e.do(tt.method, tt.path, nil, tt.body)
		if resp.StatusCode != http.StatusServiceUnavailable || ociCode(body) != "UNAVAILABLE" || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s with S3 down: got %d %s (Retry-After %q), want 503 UNAVAILABLE with Retry-After; body %s",
				tt.method, tt.path, resp.StatusCode, ociCode(body), resp.Header.Get("Retry-After"), body)
		}
		if strings.Contains(string(body), gate.URL) || strings.Contains(string(body), cfg.Bucket) {
			t.Errorf("%s %s: the error body names the storage: %s", tt.method, tt.path, body)
		}
	}
	// HEAD needs only the row.
	resp, body := e.do("HEAD", "/v2/acme/app/blobs/"+d.String(), nil, nil)
	e.expect(resp, body, http.StatusOK)

	down.Store(false)
	resp, body = e.do("GET", "/v2/acme/app/blobs/"+d.String(), nil, nil)
	e.expect(resp, body, http.StatusOK)
	if string(body) != string(b) {
		t.Errorf("GET after the outage: got %q, want %q", body, b)
	}
}
