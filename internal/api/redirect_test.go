package api_test

// Blob GETs redirected to the byte store (S3 presigned URLs), and streamed
// through berth when not, both against a real S3 server (s3test).

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/review"
)

// get sends a GET with optional headers through client and returns the
// response with its body read.
func get(t *testing.T, client *http.Client, u string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", u, err)
	}
	return resp, b
}

// noFollow is a client that returns redirects instead of following them.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func TestBlobGetRedirectsToS3(t *testing.T) {
	const ttl = 10 * time.Minute
	e := newEnvWith(t, "sqlite+s3", api.Options{BlobRedirectTTL: ttl})
	b := randomBytes(300 << 10)
	d := e.pushChunked("acme/app", b, 100<<10)
	path := e.srv.URL + "/v2/acme/app/blobs/" + d.String()

	// The first answer is a redirect to the bucket, not to berth.
	resp, body := get(t, noFollow, path, nil)
	e.expect(resp, body, http.StatusTemporaryRedirect)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !loc.IsAbs() {
		t.Fatalf("Location %q: want an absolute URL (err %v)", resp.Header.Get("Location"), err)
	}
	if srv, _ := url.Parse(e.srv.URL); loc.Host == srv.Host {
		t.Errorf("Location %s points at berth, want the S3 server", loc)
	}
	if !strings.Contains(loc.RawQuery, "X-Amz-Signature=") || !strings.Contains(loc.RawQuery, fmt.Sprintf("X-Amz-Expires=%d", int(ttl/time.Second))) {
		t.Errorf("Location %s: want a presigned URL valid for %s", loc, ttl)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != d.String() {
		t.Errorf("Docker-Content-Digest on the redirect: got %q, want %q", got, d)
	}

	// A client that follows it gets the bytes, whole or by range.
	resp, body = get(t, http.DefaultClient, path, nil)
	e.expect(resp, body, http.StatusOK)
	if !bytes.Equal(body, b) {
		t.Fatalf("GET through the redirect: got %d bytes, want the %d pushed", len(body), len(b))
	}
	resp, body = get(t, http.DefaultClient, path, map[string]string{"Range": "bytes=1000-150999"})
	e.expect(resp, body, http.StatusPartialContent)
	if !bytes.Equal(body, b[1000:151000]) {
		t.Errorf("ranged GET through the redirect: got %d bytes, want bytes 1000-150999", len(body))
	}
	if got, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes 1000-150999/%d", len(b)); got != want {
		t.Errorf("Content-Range: got %q, want %q", got, want)
	}

	// A Range that berth would refuse is refused before the redirect, as
	// S3 would ignore it and send everything.
	resp, _ = get(t, noFollow, path, map[string]string{"Range": "bytes=500-0"})
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(b)) {
		t.Errorf("GET with Range 500-0: got %d, Content-Range %q; want 416, bytes */%d", resp.StatusCode, resp.Header.Get("Content-Range"), len(b))
	}
	resp, body = get(t, http.DefaultClient, path, map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(b)+10)})
	e.expect(resp, body, http.StatusRequestedRangeNotSatisfiable)

	// HEAD is answered by berth.
	resp, body = e.do(http.MethodHead, "/v2/acme/app/blobs/"+d.String(), nil, nil)
	e.expect(resp, body, http.StatusOK)
	if resp.Header.Get("Location") != "" || resp.Header.Get("Content-Length") != fmt.Sprint(len(b)) || resp.Header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("HEAD: got Location %q, Content-Length %q, digest %q; want none, %d, %s",
			resp.Header.Get("Location"), resp.Header.Get("Content-Length"), resp.Header.Get("Docker-Content-Digest"), len(b), d)
	}

	// The checks come before the redirect: no URL for a blob the
	// repository cannot read.
	e.pushBlob("acme/other", []byte("another repository"))
	for _, tt := range []struct{ path, code string }{
		{"/v2/acme/other/blobs/" + d.String(), "BLOB_UNKNOWN"},
		{"/v2/acme/none/blobs/" + d.String(), "NAME_UNKNOWN"},
		{"/v2/acme/app/blobs/sha256:" + strings.Repeat("0", 64), "BLOB_UNKNOWN"},
	} {
		resp, body := get(t, noFollow, e.srv.URL+tt.path, nil)
		if resp.StatusCode != http.StatusNotFound || ociCode(body) != tt.code || resp.Header.Get("Location") != "" {
			t.Errorf("GET %s: got %d %s Location %q, want 404 %s and no Location", tt.path, resp.StatusCode, ociCode(body), resp.Header.Get("Location"), tt.code)
		}
	}
}

// TestBlobGetRedirectRevives checks that a redirected GET is a read like a
// streamed one: it postpones the pending review of the blob's upload marker.
func TestBlobGetRedirectRevives(t *testing.T) {
	e := newEnvWith(t, "sqlite+s3", api.Options{BlobRedirectTTL: time.Minute})
	d := e.pushBlob("acme/app", []byte("revive me"))
	ctx := context.Background()
	var object string
	if err := e.store.DB().QueryRowContext(ctx, "SELECT object FROM review WHERE kind = '"+string(review.KindUploadedBlob)+"'").Scan(&object); err != nil {
		t.Fatalf("finding the upload marker's review: %v", err)
	}
	due := func() time.Time {
		t.Helper()
		var after time.Time
		err := e.store.View(ctx, func(tx meta.Tx) error {
			var pending bool
			var err error
			after, pending, err = tx.PendingReview(ctx, review.KindUploadedBlob, object)
			if err == nil && !pending {
				err = fmt.Errorf("no pending review of %s", object)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return after
	}
	before := due()
	e.clock.Add(10 * time.Minute) // the review is now due within the grace
	resp, body := get(t, noFollow, e.srv.URL+"/v2/acme/app/blobs/"+d.String(), nil)
	e.expect(resp, body, http.StatusTemporaryRedirect)
	if after := due(); !after.After(before) {
		t.Errorf("review due %s after a redirected GET, want it postponed past %s", after, before)
	}
}

// TestBlobGetStreamsFromS3 checks the default: without a redirect TTL the
// bytes come through berth, with Range, from the S3 store.
func TestBlobGetStreamsFromS3(t *testing.T) {
	e := newEnv(t, "sqlite+s3")
	b := randomBytes(64 << 10)
	d := e.pushBlob("acme/app", b)
	resp, body := get(t, noFollow, e.srv.URL+"/v2/acme/app/blobs/"+d.String(), nil)
	e.expect(resp, body, http.StatusOK)
	if !bytes.Equal(body, b) || resp.Header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("streamed GET: got %d bytes, digest %q; want %d bytes, %s", len(body), resp.Header.Get("Docker-Content-Digest"), len(b), d)
	}
	resp, body = get(t, noFollow, e.srv.URL+"/v2/acme/app/blobs/"+d.String(), map[string]string{"Range": "bytes=10-19"})
	e.expect(resp, body, http.StatusPartialContent)
	if !bytes.Equal(body, b[10:20]) {
		t.Errorf("streamed ranged GET: got %x, want %x", body, b[10:20])
	}
}

// TestGGCRPullThroughRedirect pulls images with go-containerregistry from a
// server that redirects blob GETs: the client follows them to S3 and gets
// every byte (validate.Image checks the digests).
func TestGGCRPullThroughRedirect(t *testing.T) {
	e := newEnvWith(t, "sqlite+s3", api.Options{BlobRedirectTTL: 5 * time.Minute})
	c := newClient(t, e)
	img := randomImage(t, 1<<20, 3)
	d := c.write("ggcr/redirect:v1", img)
	c.tr.reset()
	c.samePulled("ggcr/redirect:v1", img)
	c.samePulled("ggcr/redirect@"+d.String(), img)
	redirected := 0
	for _, call := range c.tr.matching(http.MethodGet, "/blobs/") {
		if call.status == http.StatusTemporaryRedirect {
			redirected++
		}
	}
	// Config and three layers, pulled twice (samePulled also reads each
	// layer again).
	if redirected < 4 {
		t.Errorf("blob GETs answered 307: got %d, want at least 4 (config and layers); calls %+v", redirected, c.tr.matching(http.MethodGet, "/blobs/"))
	}
}
