package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth/berth/internal/blob"
	"github.com/berth/berth/internal/blob/s3"
	"github.com/berth/berth/internal/blob/s3/s3test"
	"github.com/berth/berth/internal/config"
	"github.com/berth/berth/internal/event"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/review"
)

// s3Config points cfg's blob storage at the bucket of sc.
func s3Config(cfg *config.Config, sc s3.Config) {
	cfg.Storage.Backend = config.StorageS3
	cfg.Storage.S3.Bucket = sc.Bucket
	cfg.Storage.S3.Region = sc.Region
	cfg.Storage.S3.Endpoint = sc.Endpoint
	cfg.Storage.S3.PathStyle = sc.PathStyle
	cfg.Storage.S3.Prefix = sc.Prefix
	cfg.Storage.S3.AccessKey = sc.AccessKey
	cfg.Storage.S3.SecretKey = sc.SecretKey
	cfg.Storage.S3.PartSize = config.MinS3PartSize
}

// resolve makes an upload Location absolute against base, with extra
// query parameters.
func resolve(t *testing.T, base, loc string, query url.Values) string {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	l, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("bad Location %q: %v", loc, err)
	}
	u := b.ResolveReference(l)
	q := u.Query()
	for k, vs := range query {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// request sends a request with headers and returns the response with its
// body read.
func request(t *testing.T, client *http.Client, method, u string, hdr map[string]string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, u, err)
	}
	return resp, b
}

func expectStatus(t *testing.T, resp *http.Response, body []byte, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: got status %d, want %d; body: %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, want, body)
	}
}

var deletionsRe = regexp.MustCompile(`(?m)^berth_gc_deletions_total\{kind="([a-z_]+)"\} (\d+)$`)

// metrics returns the replica's berth_gc_deletions_total by kind and its
// berth_gc_runs_total.
func gcMetrics(t *testing.T, base string) (deletions map[string]int, runs int) {
	t.Helper()
	resp, body := request(t, http.DefaultClient, http.MethodGet, base+"/metrics", nil, nil)
	expectStatus(t, resp, body, http.StatusOK)
	deletions = map[string]int{}
	for _, m := range deletionsRe.FindAllSubmatch(body, -1) {
		n, _ := strconv.Atoi(string(m[2]))
		deletions[string(m[1])] = n
	}
	if m := regexp.MustCompile(`(?m)^berth_gc_runs_total (\d+)$`).FindSubmatch(body); m != nil {
		runs, _ = strconv.Atoi(string(m[1]))
	}
	return deletions, runs
}

// TestReplicasShareOneRegistry runs two berth servers on one PostgreSQL
// database and one S3 bucket, each with collector workers, and checks that
// they behave as one registry: an upload session moves between them chunk
// by chunk (chunks crossing the S3 part size), what one commits the other
// serves (streamed by A, redirected to S3 by B), and garbage is collected
// exactly once between them.
func TestReplicasShareOneRegistry(t *testing.T) {
	dsn := sqltest.PostgresDSN(t)
	bucket := s3test.New(t)

	var mu sync.Mutex
	var events []gc.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env struct {
			Event gc.Event `json:"event"`
		}
		if err := json.NewDecoder(r.Body).Decode(&env); err == nil {
			mu.Lock()
			events = append(events, env.Event)
			mu.Unlock()
		}
	}))
	defer hook.Close()
	blobDeletions := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		m := map[string]int{}
		for _, e := range events {
			if e.Kind == event.BlobDeleted {
				m[e.Digest.String()]++
			}
		}
		return m
	}

	replica := func(redirect bool) config.Config {
		cfg := testConfig(t, t.TempDir())
		cfg.DB = dsn
		s3Config(&cfg, bucket)
		cfg.Storage.S3.Redirect = redirect
		cfg.Metrics = true
		cfg.Log.Level = "info"
		cfg.GC.Workers = 2
		// Long enough for the pushes below, short enough for the test.
		cfg.GC.Grace = config.Duration(3 * time.Second)
		cfg.GC.TagRetention = 0
		cfg.GC.Interval = config.Duration(cfgInterval)
		cfg.Webhooks = []config.Webhook{{URL: hook.URL}}
		return cfg
	}
	var logsA, logsB syncBuffer
	// A migrates the empty database; B starts on the migrated schema (as
	// replicas do after "berth migrate").
	a, stopA := start(t, replica(false), &logsA)
	b, stopB := start(t, replica(true), &logsB)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replica A log:\n%s\nreplica B log:\n%s", logsA.String(), logsB.String())
		}
	})

	// One upload, three replicas' worth of hops: POST on A, two PATCHes on
	// B, a PATCH on A, the closing PUT (with a last chunk) on A. 12.5 MiB
	// in chunks that do not align with the 5 MiB parts.
	layer := make([]byte, 12<<20+512<<10)
	_, _ = rand.Read(layer)
	chunks := []struct {
		base string
		size int
	}{{b, 3 << 20}, {b, 4<<20 + 1}, {a, 3<<20 - 1}}
	resp, body := request(t, http.DefaultClient, http.MethodPost, a+"/v2/acme/app/blobs/uploads/", nil, nil)
	expectStatus(t, resp, body, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	off := 0
	for _, c := range chunks {
		resp, body = request(t, http.DefaultClient, http.MethodPatch, resolve(t, c.base, loc, nil), map[string]string{
			"Content-Type":  "application/octet-stream",
			"Content-Range": fmt.Sprintf("%d-%d", off, off+c.size-1),
		}, layer[off:off+c.size])
		expectStatus(t, resp, body, http.StatusAccepted)
		off += c.size
		if got, want := resp.Header.Get("Range"), fmt.Sprintf("0-%d", off-1); got != want {
			t.Fatalf("Range after PATCH to %s: got %q, want %q", c.base, got, want)
		}
		loc = resp.Header.Get("Location")
	}
	resp, body = request(t, http.DefaultClient, http.MethodPut, resolve(t, a, loc, url.Values{"digest": {sha(layer)}}),
		map[string]string{"Content-Type": "application/octet-stream"}, layer[off:])
	expectStatus(t, resp, body, http.StatusCreated)

	// Pulled from B through its redirect (whole and by range), and from A
	// streamed.
	layerURL := "/v2/acme/app/blobs/" + sha(layer)
	resp, body = request(t, http.DefaultClient, http.MethodGet, b+layerURL, nil, nil)
	expectStatus(t, resp, body, http.StatusOK)
	if !bytes.Equal(body, layer) {
		t.Fatalf("layer from B: got %d bytes, want the %d pushed through A and B", len(body), len(layer))
	}
	if resp.Request.URL.Host == mustHost(t, b) {
		t.Errorf("layer from B was not redirected (final URL %s)", resp.Request.URL)
	}
	resp, body = request(t, http.DefaultClient, http.MethodGet, b+layerURL, map[string]string{"Range": "bytes=5242000-5243999"}, nil)
	expectStatus(t, resp, body, http.StatusPartialContent)
	if !bytes.Equal(body, layer[5242000:5244000]) {
		t.Errorf("ranged layer from B across a part boundary: got %d bytes that differ", len(body))
	}
	resp, body = request(t, http.DefaultClient, http.MethodGet, a+layerURL, nil, nil)
	expectStatus(t, resp, body, http.StatusOK)
	if !bytes.Equal(body, layer) || resp.Request.URL.Host != mustHost(t, a) {
		t.Fatalf("layer from A: got %d bytes from %s, want %d streamed by A", len(body), resp.Request.URL.Host, len(layer))
	}

	// A manifest pushed on A (its config pushed on B) is served by B.
	cfgBlob := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"replica":"b"}`)
	pushBlob(t, b, "acme/app", cfgBlob)
	manifest := imageManifest(t, cfgBlob, layer)
	wantStatus(t, do(t, http.MethodPut, a+"/v2/acme/app/manifests/v1", "application/vnd.oci.image.manifest.v1+json", manifest), http.StatusCreated)
	resp, body = request(t, http.DefaultClient, http.MethodGet, b+"/v2/acme/app/manifests/v1", map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"}, nil)
	expectStatus(t, resp, body, http.StatusOK)
	if !bytes.Equal(body, manifest) {
		t.Errorf("manifest from B: got %s, want %s", body, manifest)
	}

	// Garbage made through both replicas is collected exactly once by the
	// four workers between them.
	gone := pushImage(t, b, "acme/gone", "v1")
	var goneDoc struct {
		Config struct{ Digest string } `json:"config"`
		Layers []struct{ Digest string }
	}
	if err := json.Unmarshal(gone, &goneDoc); err != nil {
		t.Fatal(err)
	}
	goneBlobs := []string{goneDoc.Config.Digest, goneDoc.Layers[0].Digest}
	wantStatus(t, do(t, http.MethodDelete, a+"/v2/acme/gone/manifests/v1", "", nil), http.StatusAccepted)

	deadline := time.Now().Add(30 * time.Second)
	for {
		d := blobDeletions()
		if d[goneBlobs[0]] > 0 && d[goneBlobs[1]] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("blobs of acme/gone not collected within 30s; blob deletions seen: %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Let both replicas' workers run many more passes over the same queue:
	// a double decision would show up now.
	time.Sleep(20 * cfgInterval)

	got := blobDeletions()
	for _, d := range goneBlobs {
		if got[d] != 1 {
			t.Errorf("blob %s: got %d blob.deleted events, want exactly 1", d, got[d])
		}
	}
	for _, d := range []string{sha(layer), sha(cfgBlob)} {
		if got[d] != 0 {
			t.Errorf("blob %s of the tagged acme/app:v1 was deleted", d)
		}
	}
	if len(got) != len(goneBlobs) {
		t.Errorf("blob deletions: got %v, want exactly %v once each", got, goneBlobs)
	}
	delA, runsA := gcMetrics(t, a)
	delB, runsB := gcMetrics(t, b)
	if runsA == 0 || runsB == 0 {
		t.Errorf("collector runs: A %d, B %d; want workers running on both replicas", runsA, runsB)
	}
	if n := delA[string(review.KindBlob)] + delB[string(review.KindBlob)]; n != len(goneBlobs) {
		t.Errorf("berth_gc_deletions_total{kind=blob}: A %d + B %d = %d, want %d", delA[string(review.KindBlob)], delB[string(review.KindBlob)], n, len(goneBlobs))
	}

	// The bucket holds exactly the bytes of the live blobs: acme/app's two.
	store, err := s3.New(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	var keys int
	if err := store.Walk(context.Background(), func(blob.Info) error { keys++; return nil }); err != nil {
		t.Fatal(err)
	}
	if keys != 2 {
		t.Errorf("objects in the bucket: got %d, want 2 (acme/app's layer and config)", keys)
	}
	resp, body = request(t, http.DefaultClient, http.MethodGet, b+layerURL, nil, nil)
	expectStatus(t, resp, body, http.StatusOK)
	if !bytes.Equal(body, layer) {
		t.Errorf("layer from B after collection: got %d bytes that differ", len(body))
	}

	if err := stopB(); err != nil {
		t.Errorf("replica B: %v", err)
	}
	if err := stopA(); err != nil {
		t.Errorf("replica A: %v", err)
	}
	// B redirects with the default 20m URLs over a 3 s grace: it warns; A
	// streams and does not.
	const ttlWarning = "storage.s3.redirect_ttl is longer than gc.grace"
	if !strings.Contains(logsB.String(), ttlWarning) || strings.Contains(logsA.String(), ttlWarning) {
		t.Errorf("redirect TTL warning: in B's log %v (want true), in A's %v (want false)",
			strings.Contains(logsB.String(), ttlWarning), strings.Contains(logsA.String(), ttlWarning))
	}
}

// cfgInterval is the replicas' gc.interval.
const cfgInterval = 50 * time.Millisecond

func mustHost(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
