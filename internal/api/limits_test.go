package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv"
)

// forEachLimitedBackend is forEachBackend with the registry's limits set.
func forEachLimitedBackend(t *testing.T, l registry.Limits, fn func(t *testing.T, e *env)) {
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			store, blobs := openBackends(t, b)
			c := testenv.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			reg := registry.New(store, blobs, registry.Options{Now: c.Now, Policy: review.DefaultPolicy(), Limits: l})
			srv := httptest.NewServer(api.New(reg, api.Options{}))
			t.Cleanup(srv.Close)
			fn(t, &env{t: t, srv: srv, store: store, blobs: blobs, reg: reg, clock: c})
		})
	}
}

// errorEnvelope decodes an OCI error body with one error.
func errorEnvelope(t *testing.T, body []byte) (code, message, detail string) {
	t.Helper()
	var env struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Detail  any    `json:"detail"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &env); err != nil || len(env.Errors) != 1 {
		t.Fatalf("not an OCI error envelope with one error: %s", body)
	}
	return env.Errors[0].Code, env.Errors[0].Message, fmt.Sprint(env.Errors[0].Detail)
}

// startUpload POSTs a new session in repo and returns its status and
// Location.
func (e *env) startUpload(repo string) (*http.Response, []byte) {
	e.t.Helper()
	return e.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
}

// expectTooMany checks a 429 TOOMANYREQUESTS with Retry-After.
func expectTooMany(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("got status %d, want 429; body %s", resp.StatusCode, body)
	}
	if code, _, _ := errorEnvelope(t, body); code != "TOOMANYREQUESTS" {
		t.Errorf("code: got %s, want TOOMANYREQUESTS", code)
	}
	if got := resp.Header.Get("Retry-After"); got != "60" {
		t.Errorf("Retry-After: got %q, want 60", got)
	}
}

func TestUploadSessionCapPerRepository(t *testing.T) {
	forEachLimitedBackend(t, registry.Limits{UploadSessionsPerRepository: 3}, func(t *testing.T, e *env) {
		var locs []string
		for range 3 {
			resp, body := e.startUpload("acme/app")
			e.expect(resp, body, http.StatusAccepted)
			locs = append(locs, resp.Header.Get("Location"))
		}
		resp, body := e.startUpload("acme/app")
		expectTooMany(t, resp, body)
		if got := e.counts()["upload"]; got != 3 {
			t.Errorf("sessions after the refused POST: got %d, want 3", got)
		}
		// Not sessions: a monolithic upload and a mount still go through.
		d := e.pushBlob("acme/app", []byte("monolithic"))
		src := e.pushBlob("acme/src", []byte("to mount"))
		resp, body = e.do("POST", "/v2/acme/app/blobs/uploads/?mount="+src.String()+"&from=acme/src", nil, nil)
		e.expect(resp, body, http.StatusCreated)
		// Another repository has its own cap.
		resp, body = e.startUpload("acme/other")
		e.expect(resp, body, http.StatusAccepted)
		// Completing or cancelling a session frees its slot.
		resp, body = e.do("DELETE", locs[0], nil, nil)
		e.expect(resp, body, http.StatusNoContent)
		resp, body = e.do("PUT", locs[1]+"?digest="+d.String(), map[string]string{"Content-Type": "application/octet-stream"}, []byte("monolithic"))
		e.expect(resp, body, http.StatusCreated)
		for range 2 {
			resp, body = e.startUpload("acme/app")
			e.expect(resp, body, http.StatusAccepted)
		}
		resp, body = e.startUpload("acme/app")
		expectTooMany(t, resp, body)
		// Sessions idle past the upload expiry (24h) no longer count, even
		// before the collector deletes them.
		e.clock.Add(24*time.Hour + time.Second)
		for range 3 {
			resp, body = e.startUpload("acme/app")
			e.expect(resp, body, http.StatusAccepted)
		}
		resp, body = e.startUpload("acme/app")
		expectTooMany(t, resp, body)
	})
}

func TestUploadSessionCapTotal(t *testing.T) {
	forEachLimitedBackend(t, registry.Limits{UploadSessions: 4}, func(t *testing.T, e *env) {
		for _, repo := range []string{"a/x", "a/x", "b/y", "b/y"} {
			resp, body := e.startUpload(repo)
			e.expect(resp, body, http.StatusAccepted)
		}
		before := e.counts()
		resp, body := e.startUpload("c/new")
		expectTooMany(t, resp, body)
		// The refused POST created neither the repository nor its namespace.
		if after := e.counts(); after.String() != before.String() {
			t.Errorf("refused POST left rows behind:\n got %s\nwant %s", after, before)
		}
		var namespaces int
		if err := e.store.DB().QueryRow("SELECT COUNT(*) FROM namespace WHERE name = 'c'").Scan(&namespaces); err != nil || namespaces != 0 {
			t.Errorf("namespace c after a refused POST: got %d rows (%v), want 0", namespaces, err)
		}
		e.pushBlob("c/new", []byte("monolithic is not a session"))
	})
}

// Concurrent POSTs to one repository never open more sessions than its cap:
// the count and the insert are atomic per repository on every backend.
func TestUploadSessionCapConcurrent(t *testing.T) {
	const capacity, clients = 5, 24
	forEachLimitedBackend(t, registry.Limits{UploadSessionsPerRepository: capacity}, func(t *testing.T, e *env) {
		var wg sync.WaitGroup
		var accepted, refused, other atomic.Int32
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Post(e.srv.URL+"/v2/acme/hot/blobs/uploads/", "", nil)
				if err != nil {
					other.Add(1)
					return
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusAccepted:
					accepted.Add(1)
				case http.StatusTooManyRequests:
					refused.Add(1)
				default:
					other.Add(1)
				}
			}()
		}
		wg.Wait()
		if accepted.Load() != capacity || refused.Load() != clients-capacity || other.Load() != 0 {
			t.Errorf("%d concurrent POSTs: got %d accepted, %d refused, %d other; want %d, %d, 0",
				clients, accepted.Load(), refused.Load(), other.Load(), capacity, clients-capacity)
		}
		if got := e.counts()["upload"]; got != capacity {
			t.Errorf("sessions: got %d, want %d", got, capacity)
		}
	})
}

// endless is a body of unknown length that counts what the server read.
type endless struct {
	left int64
	read atomic.Int64
}

func (r *endless) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := int64(len(p))
	if n > r.left {
		n = r.left
	}
	for i := range p[:n] {
		p[i] = 'x'
	}
	r.left -= n
	r.read.Add(n)
	return int(n), nil
}

// streamed sends body with no Content-Length (chunked transfer encoding).
// A server that answers before reading everything may close the connection
// under the client: the response is returned when it arrived.
func (e *env) streamed(method, path string, body io.Reader) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b, nil
}

func expectTooLarge(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("got status %d, want 413; body %s", resp.StatusCode, body)
	}
	if code, _, detail := errorEnvelope(t, body); code != "SIZE_INVALID" || !strings.Contains(detail, "largest this registry accepts") {
		t.Errorf("got %s %q, want SIZE_INVALID saying the largest size", code, detail)
	}
}

// uploadSize is the size a session reports (GET, Range 0-<size-1>; 0-0 is
// empty or one byte: callers avoid the ambiguity).
func (e *env) uploadSize(loc string) string {
	e.t.Helper()
	resp, body := e.do("GET", loc, nil, nil)
	e.expect(resp, body, http.StatusNoContent)
	return resp.Header.Get("Range")
}

func TestBlobSizeCap(t *testing.T) {
	const limit = 1000
	forEachLimitedBackend(t, registry.Limits{BlobSize: limit}, func(t *testing.T, e *env) {
		octet := map[string]string{"Content-Type": "application/octet-stream"}
		exact := bytes.Repeat([]byte("b"), limit)
		over := append(bytes.Repeat([]byte("o"), limit), 'o')
		base := e.counts()

		// Monolithic, announced too large: refused before reading.
		resp, body := e.do("POST", "/v2/acme/app/blobs/uploads/?digest="+digest.FromBytes(over).String(), octet, over)
		expectTooLarge(t, resp, body)
		// Monolithic, streamed too large: cut, nothing kept.
		resp, body, err := e.streamed("POST", "/v2/acme/app/blobs/uploads/?digest="+digest.FromBytes(over).String(), bytes.NewReader(over))
		if err != nil {
			t.Fatalf("streamed monolithic POST: %v", err)
		}
		expectTooLarge(t, resp, body)
		if got := e.counts(); got.String() != base.String() {
			t.Errorf("refused monolithic uploads left something:\n got %s\nwant %s", got, base)
		}
		e.pushBlob("acme/app", exact) // the limit itself is allowed

		// Chunked: a PATCH announced to pass the limit is refused and the
		// session keeps its size; the upload can go on within the limit.
		resp, body = e.startUpload("acme/app")
		e.expect(resp, body, http.StatusAccepted)
		loc := resp.Header.Get("Location")
		resp, body = e.do("PATCH", loc, map[string]string{"Content-Range": "0-599"}, exact[:600])
		e.expect(resp, body, http.StatusAccepted)
		resp, body = e.do("PATCH", loc, map[string]string{"Content-Range": "600-1000"}, over[:401])
		expectTooLarge(t, resp, body)
		if got := e.uploadSize(loc); got != "0-599" {
			t.Errorf("session after a refused PATCH: got Range %s, want 0-599", got)
		}
		// The same chunk streamed without a length: cut at the limit.
		resp, body, err = e.streamed("PATCH", loc, bytes.NewReader(over[:401]))
		if err != nil {
			t.Fatalf("streamed PATCH: %v", err)
		}
		expectTooLarge(t, resp, body)
		if got := e.uploadSize(loc); got != "0-599" {
			t.Errorf("session after a cut PATCH: got Range %s, want 0-599", got)
		}
		// A closing PUT whose last chunk passes the limit: refused, kept.
		resp, body = e.do("PUT", loc+"?digest="+digest.FromBytes(over).String(), octet, over[600:])
		expectTooLarge(t, resp, body)
		if got := e.uploadSize(loc); got != "0-599" {
			t.Errorf("session after a refused PUT: got Range %s, want 0-599", got)
		}
		resp, body = e.do("PUT", loc+"?digest="+digest.FromBytes(exact).String(), octet, exact[600:])
		e.expect(resp, body, http.StatusCreated)
	})
}

// A chunk streamed with no length is cut as soon as it passes the limit,
// even past S3's part size: the server stops reading, and the session keeps
// its size (the parts already sent to S3 are dropped).
func TestBlobSizeCapCutsStream(t *testing.T) {
	const limit = 9 << 20 // past one 8 MiB S3 part
	forEachLimitedBackend(t, registry.Limits{BlobSize: limit}, func(t *testing.T, e *env) {
		resp, body := e.startUpload("acme/big")
		e.expect(resp, body, http.StatusAccepted)
		loc := resp.Header.Get("Location")
		first := []byte("first chunk, kept")
		resp, body = e.do("PATCH", loc, map[string]string{"Content-Range": fmt.Sprintf("0-%d", len(first)-1)}, first)
		e.expect(resp, body, http.StatusAccepted)
		src := &endless{left: 1 << 30}
		resp, body, err := e.streamed("PATCH", loc, src)
		if err != nil {
			t.Fatalf("streamed PATCH: %v", err) // Go's client returns a response that came before the body was written
		}
		expectTooLarge(t, resp, body)
		// What the client wrote includes what the sockets buffer (several
		// MiB on loopback); a server reading on would take the whole GiB.
		if read := src.read.Load(); read > limit+(16<<20) {
			t.Errorf("client wrote %d bytes of a 1 GiB chunk, want the limit (%d) plus socket buffers", read, limit)
		}
		if got, want := e.uploadSize(loc), fmt.Sprintf("0-%d", len(first)-1); got != want {
			t.Errorf("session after the cut: got Range %s, want %s", got, want)
		}
		rest := []byte(" and the rest")
		d := digest.FromBytes(append(append([]byte{}, first...), rest...))
		resp, body = e.do("PUT", loc+"?digest="+d.String(), map[string]string{"Content-Type": "application/octet-stream"}, rest)
		e.expect(resp, body, http.StatusCreated)
		resp, body = e.do("GET", "/v2/acme/big/blobs/"+d.String(), nil, nil)
		e.expect(resp, body, http.StatusOK)
		if got := string(body); got != "first chunk, kept and the rest" {
			t.Errorf("blob: got %q", got)
		}
		c := e.counts()
		if c["blob"] != 1 || c["bytes:objects"] != 1 || c["upload"] != 0 || c["bytes:uploads"] != 0 {
			t.Errorf("after the commit: got %s, want one blob, its bytes, no session, no staging", c)
		}
	})
}

// The catalog lists repositories holding a manifest: not one created by a
// bare POST, nor one holding only blobs; n and last page through exactly
// the listed ones.
func TestCatalogListsRepositoriesWithContent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		resp, body := e.startUpload("a/bare")
		e.expect(resp, body, http.StatusAccepted)
		e.pushBlob("b/blobs-only", []byte("a blob"))
		for _, repo := range []string{"c/one", "d/two", "e/three"} {
			e.mustPutManifest(repo, "v1", mtManifest, e.image(repo, nil, 1))
		}
		resp, body = e.do("GET", "/v2/_catalog", nil, nil)
		e.expect(resp, body, http.StatusOK)
		if got, want := string(body), `{"repositories":["c/one","d/two","e/three"]}`; got != want {
			t.Errorf("catalog: got %s, want %s", got, want)
		}
		var pages []string
		next := "/v2/_catalog?n=1"
		for next != "" && len(pages) < 5 {
			resp, body = e.do("GET", next, nil, nil)
			e.expect(resp, body, http.StatusOK)
			pages = append(pages, string(body))
			next = ""
			if link := resp.Header.Get("Link"); link != "" {
				next = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
			}
		}
		want := []string{`{"repositories":["c/one"]}`, `{"repositories":["d/two"]}`, `{"repositories":["e/three"]}`}
		if strings.Join(pages, " ") != strings.Join(want, " ") {
			t.Errorf("pages of 1: got %v, want %v", pages, want)
		}
	})
}

// A namespace exists only once something is pushed to it or an operator
// creates it: its retention cannot be read or set before, and trying
// creates nothing.
func TestNamespaceMustExist(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		namespaces := func() int {
			var n int
			if err := e.store.DB().QueryRowContext(context.Background(), "SELECT COUNT(*) FROM namespace").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		for _, c := range []struct{ method, path, body string }{
			{"PUT", "/berth/v1/namespaces/ghost/retention", `{"retention":"3d"}`},
			{"GET", "/berth/v1/namespaces/ghost/retention", ""},
			{"GET", "/berth/v1/namespaces/ghost", ""},
		} {
			resp, body := e.do(c.method, c.path, nil, []byte(c.body))
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("%s %s: got status %d, want 404; body %s", c.method, c.path, resp.StatusCode, body)
			}
			code, msg, detail := errorEnvelope(t, body)
			if code != "NAME_UNKNOWN" || msg != "namespace not known to registry" || !strings.Contains(detail, `namespace "ghost" does not exist`) {
				t.Errorf("%s %s: got %s %q %q, want NAME_UNKNOWN saying the namespace does not exist", c.method, c.path, code, msg, detail)
			}
		}
		if n := namespaces(); n != 0 {
			t.Fatalf("namespaces after the refused requests: got %d, want 0", n)
		}

		// An operator creates it: 201, then 200 (PUT is idempotent).
		var doc api.NamespaceRetention
		resp, body := e.do("PUT", "/berth/v1/namespaces/ghost", nil, nil)
		e.expect(resp, body, http.StatusCreated)
		if err := json.Unmarshal(body, &doc); err != nil || doc.Namespace != "ghost" || doc.Retention != nil {
			t.Errorf("created namespace: got %s (%v), want ghost with the default window", body, err)
		}
		resp, body = e.do("PUT", "/berth/v1/namespaces/ghost", nil, []byte(`{"retention":"3d"}`))
		e.expect(resp, body, http.StatusOK)
		if err := json.Unmarshal(body, &doc); err != nil || doc.Retention == nil || *doc.Retention != "3d" {
			t.Errorf("PUT namespace with a retention: got %s (%v), want 72h", body, err)
		}
		resp, body = e.do("PUT", "/berth/v1/namespaces/ghost/retention", nil, []byte(`{"retention":"1h"}`))
		e.expect(resp, body, http.StatusOK)
		resp, body = e.do("GET", "/berth/v1/namespaces/ghost", nil, nil)
		e.expect(resp, body, http.StatusOK)
		if err := json.Unmarshal(body, &doc); err != nil || doc.Effective != "1h" {
			t.Errorf("GET namespace: got %s (%v), want a 1h window", body, err)
		}
		resp, body = e.do("PUT", "/berth/v1/namespaces/with-window", nil, []byte(`{"retention":"2w"}`))
		e.expect(resp, body, http.StatusCreated)
		if err := json.Unmarshal(body, &doc); err != nil || doc.Effective != "2w" {
			t.Errorf("namespace created with a window: got %s (%v), want 336h", body, err)
		}
		for _, c := range []struct{ path, body, code string }{
			{"/berth/v1/namespaces/Ghost", "", "NAME_INVALID"},
			{"/berth/v1/namespaces/ghost", `{"retention":"-1h"}`, "INVALID_ARGUMENT"},
			{"/berth/v1/namespaces/ghost", `{"window":"1h"}`, "INVALID_ARGUMENT"},
		} {
			resp, body := e.do("PUT", c.path, nil, []byte(c.body))
			if resp.StatusCode != http.StatusBadRequest || ociCode(body) != c.code {
				t.Errorf("PUT %s %s: got %d %s, want 400 %s", c.path, c.body, resp.StatusCode, ociCode(body), c.code)
			}
		}
		if n := namespaces(); n != 2 {
			t.Errorf("namespaces: got %d, want 2 (ghost, with-window)", n)
		}
		// A push still creates its namespace.
		e.pushBlob("pushed/app", []byte("x"))
		resp, body = e.do("GET", "/berth/v1/namespaces/pushed/retention", nil, nil)
		e.expect(resp, body, http.StatusOK)
	})
}
