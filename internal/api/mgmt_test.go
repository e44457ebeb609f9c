package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/api"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/registry"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv"
	"github.com/berth/berth/internal/testenv/registryenv"
)

// mgmtEnv is the management API over real SQLite and blob/fs, with a
// settable clock shared by the registry and the collector.
type mgmtEnv struct {
	t     *testing.T
	srv   *httptest.Server
	reg   *registry.Registry
	clock *testenv.Clock
}

func (e *mgmtEnv) advance(d time.Duration) { e.clock.Add(d) }

// newMgmtEnv serves the API with a collector whose windows are all 0
// except the removed-tag window of 1h.
func newMgmtEnv(t *testing.T, withCollector bool) *mgmtEnv {
	t.Helper()
	// No grace: what the tests delete is collected at once.
	policy := review.Policy{UploadExpiry: time.Hour, TagRetention: time.Hour, CollectUntagged: true}
	env := registryenv.New(t, registryenv.ByName(t, registryenv.SQLite), func(o *registryenv.Options) {
		o.Start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		o.Registry = registry.Options{Policy: policy}
		o.NoServer = true
	})
	opts := api.Options{}
	if withCollector {
		opts.Collector = gc.New(env.Store, env.Blobs, gc.Options{Now: env.Clock.Now, Policy: policy})
	}
	env.Serve(opts)
	return &mgmtEnv{t: t, srv: env.Server, reg: env.Registry, clock: env.Clock}
}

// push stores repo:tag (a config and a layer) and returns the manifest
// digest and the bytes of its blobs.
func (e *mgmtEnv) push(repo, tag, layerText string) (digest.Digest, int64) {
	e.t.Helper()
	ctx := context.Background()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte(layerText)
	for _, b := range [][]byte{cfg, layer} {
		if _, err := e.reg.PushBlob(ctx, repo, digest.FromBytes(b).String(), int64(len(b)), bytes.NewReader(b)); err != nil {
			e.t.Fatal(err)
		}
	}
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(cfg), "size": len(cfg)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromBytes(layer), "size": len(layer)}},
	})
	if _, err := e.reg.PutManifest(ctx, repo, tag, "application/vnd.oci.image.manifest.v1+json", m); err != nil {
		e.t.Fatal(err)
	}
	return digest.FromBytes(m), int64(len(cfg) + len(layer))
}

// call sends a request; with out it decodes a 2xx JSON body, else it
// returns the OCI error code.
func (e *mgmtEnv) call(method, path, body string, wantStatus int, out any) string {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		e.t.Fatalf("%s %s: got status %d, want %d; body %s", method, path, resp.StatusCode, wantStatus, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("%s %s: Content-Type got %q, want application/json", method, path, ct)
	}
	if resp.StatusCode >= 300 {
		var env struct {
			Errors []struct{ Code, Message string } `json:"errors"`
		}
		if err := json.Unmarshal(b, &env); err != nil || len(env.Errors) != 1 {
			e.t.Fatalf("%s %s: error body is not an OCI envelope: %s", method, path, b)
		}
		return env.Errors[0].Code
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return ""
}

func TestMgmtTagHistoryAndRestore(t *testing.T) {
	e := newMgmtEnv(t, false)
	d1, _ := e.push("acme/team/app", "latest", "one")
	e.advance(time.Minute)
	d2, _ := e.push("acme/team/app", "latest", "two")
	e.advance(time.Minute)
	e.push("acme/team/app", "_stable", "three")

	var h api.TagHistory
	e.call("GET", "/berth/v1/repositories/acme/team/app/_tags/latest/history", "", 200, &h)
	if h.Repository != "acme/team/app" || h.Tag != "latest" || h.Retention != "1h" || len(h.Lifetimes) != 2 {
		t.Fatalf("history of latest: got %+v", h)
	}
	if l := h.Lifetimes[0]; l.Digest != d2 || !l.Live || l.End != nil {
		t.Errorf("newest lifetime: got %+v, want live %s", l, d2)
	}
	if l := h.Lifetimes[1]; l.Digest != d1 || l.Live || !l.Restorable || l.End == nil {
		t.Errorf("older lifetime: got %+v, want ended and restorable %s", l, d1)
	}
	// Who did it: the push of d2 ended d1's lifetime (moved) and started
	// its own, by the request's actor; a live lifetime has no end.
	var raw struct {
		Lifetimes []map[string]any `json:"lifetimes"`
	}
	e.call("GET", "/berth/v1/repositories/acme/team/app/_tags/latest/history", "", 200, &raw)
	if len(raw.Lifetimes) != 2 {
		t.Fatalf("history of latest: got %d lifetimes, want 2", len(raw.Lifetimes))
	}
	live, moved := raw.Lifetimes[0], raw.Lifetimes[1]
	if by, _ := live["started_by"].(string); by == "" || moved["ended_by"] != by || moved["end_cause"] != "moved" || moved["started_by"] != by {
		t.Errorf("actors of latest: got live %v, moved %v; want both started by the request's actor, the older ended by it (moved)", live, moved)
	}
	for _, k := range []string{"ended_by", "end_cause"} {
		if _, ok := live[k]; ok {
			t.Errorf("live lifetime has %q: %v", k, live)
		}
	}
	h = api.TagHistory{}
	e.call("GET", "/berth/v1/repositories/acme/team/app/_tags/history", "", 200, &h)
	if h.Tag != "" || len(h.Lifetimes) != 3 {
		t.Errorf("history of every tag: got %d lifetimes (tag %q), want 3", len(h.Lifetimes), h.Tag)
	}
	// A tag that starts with "_" sits after _tags and parses as a tag.
	e.call("GET", "/berth/v1/repositories/acme/team/app/_tags/_stable/history", "", 200, &h)
	if len(h.Lifetimes) != 1 || h.Lifetimes[0].Tag != "_stable" {
		t.Errorf("history of _stable: got %+v", h.Lifetimes)
	}

	var l api.TagRestore
	e.call("POST", "/berth/v1/repositories/acme/team/app/_tags/latest/restore", `{"digest":"`+d1.String()+`"}`, 200, &l)
	if l.Digest != d1 || !l.Live || !l.Changed {
		t.Errorf("restore to %s: got %+v, want live at %s, changed", d1, l, d1)
	}
	// Again: the tag already points there, and the answer says nothing changed.
	l = api.TagRestore{}
	e.call("POST", "/berth/v1/repositories/acme/team/app/_tags/latest/restore", `{"digest":"`+d1.String()+`"}`, 200, &l)
	if l.Digest != d1 || !l.Live || l.Changed {
		t.Errorf("restore to %s again: got %+v, want live at %s, not changed", d1, l, d1)
	}
	at := e.clock.Now().Add(-30 * time.Second).Format(time.RFC3339)
	e.call("POST", "/berth/v1/repositories/acme/team/app/_tags/latest/restore", `{"at":"`+at+`"}`, 200, &l)
	if l.Digest != d2 || !l.Changed {
		t.Errorf("restore at %s: got %s (changed %t), want %s, changed", at, l.Digest, l.Changed, d2)
	}
	// The second restore moved the tag off the first restore's lifetime.
	var after struct {
		Lifetimes []api.TagLifetime `json:"lifetimes"`
	}
	e.call("GET", "/berth/v1/repositories/acme/team/app/_tags/latest/history", "", 200, &after)
	if len(after.Lifetimes) != 4 || after.Lifetimes[1].Digest != d1 || after.Lifetimes[1].EndCause != meta.CauseMoved || after.Lifetimes[1].EndedBy != after.Lifetimes[0].StartedBy {
		t.Errorf("after two restores: got %+v; want 4 lifetimes, the restore of %s ended (moved) by the one after", after.Lifetimes, d1)
	}

	// Outside the window: refused with the registry's explanation.
	e.advance(2 * time.Hour)
	e.push("acme/team/app", "latest", "four")
	e.advance(2 * time.Hour)
	if code := e.call("POST", "/berth/v1/repositories/acme/team/app/_tags/latest/restore", `{"digest":"`+d1.String()+`"}`, 403, nil); code != "DENIED" {
		t.Errorf("restore outside the window: got code %s, want DENIED", code)
	}

	for _, c := range []struct{ method, path, body, code string }{
		{"POST", "/berth/v1/repositories/acme/team/app/_tags/latest/restore", `{}`, "INVALID_ARGUMENT"},
		{"POST", "/berth/v1/repositories/acme/team/app/_tags/latest/restore", `{"at":"yesterday"}`, "INVALID_ARGUMENT"},
		{"POST", "/berth/v1/repositories/acme/team/app/_tags/latest/restore", `{"digest":"sha256:` + strings.Repeat("0", 64) + `"}`, "MANIFEST_UNKNOWN"},
		{"POST", "/berth/v1/repositories/acme/team/app/_tags/latest/restore", `{"bogus":1}`, "INVALID_ARGUMENT"},
		{"GET", "/berth/v1/repositories/acme/nope/_tags/history", "", "NAME_UNKNOWN"},
		{"GET", "/berth/v1/repositories/Acme/app/_tags/history", "", "NAME_INVALID"},
		{"GET", "/berth/v1/repositories/acme/team/app/_tags/latest/restore", "", "UNSUPPORTED"},
		{"GET", "/berth/v1/repositories/acme/team/app/_blobs/history", "", "NOT_FOUND"},
		{"GET", "/berth/v1/nothing", "", "NOT_FOUND"},
	} {
		status := map[string]int{"INVALID_ARGUMENT": 400, "MANIFEST_UNKNOWN": 404, "NAME_UNKNOWN": 404, "NAME_INVALID": 400, "UNSUPPORTED": 405, "NOT_FOUND": 404}[c.code]
		if got := e.call(c.method, c.path, c.body, status, nil); got != c.code {
			t.Errorf("%s %s %s: got code %s, want %s", c.method, c.path, c.body, got, c.code)
		}
	}
}

func TestMgmtTagExpiry(t *testing.T) {
	e := newMgmtEnv(t, false)
	e.push("acme/app", "pr-1", "one")
	var l api.TagLifetime
	for _, c := range []struct {
		in   string
		want time.Duration
	}{{"2d", 48 * time.Hour}, {"1.5d", 36 * time.Hour}, {"500ms", 500 * time.Millisecond}, {"1w2d", 9 * 24 * time.Hour}} {
		e.call("PUT", "/berth/v1/repositories/acme/app/_tags/pr-1/expiry", `{"in":"`+c.in+`"}`, 200, &l)
		if want := e.clock.Now().Add(c.want); l.ExpiresAt == nil || !l.ExpiresAt.Equal(want) || !l.Live {
			t.Errorf("expiry in %s: got %+v, want expires_at %s", c.in, l, want)
		}
	}
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	e.call("PUT", "/berth/v1/repositories/acme/app/_tags/pr-1/expiry", `{"at":"2026-03-01T00:00:00Z"}`, 200, &l)
	if l.ExpiresAt == nil || !l.ExpiresAt.Equal(at) {
		t.Errorf("expiry at %s: got %+v", at, l.ExpiresAt)
	}
	l = api.TagLifetime{}
	e.call("DELETE", "/berth/v1/repositories/acme/app/_tags/pr-1/expiry", "", 200, &l)
	if l.ExpiresAt != nil {
		t.Errorf("DELETE expiry: got expires_at %s, want none", l.ExpiresAt)
	}
	for _, body := range []string{`{}`, `{"in":"2h","at":"2026-03-01T00:00:00Z"}`, `{"in":"soon"}`, `{"in":"-1h"}`} {
		if code := e.call("PUT", "/berth/v1/repositories/acme/app/_tags/pr-1/expiry", body, 400, nil); code != "INVALID_ARGUMENT" {
			t.Errorf("PUT expiry %s: got code %s, want INVALID_ARGUMENT", body, code)
		}
	}
	if code := e.call("PUT", "/berth/v1/repositories/acme/app/_tags/gone/expiry", `{"in":"1h"}`, 404, nil); code != "MANIFEST_UNKNOWN" {
		t.Errorf("expiry of an unknown tag: got code %s", code)
	}
}

func TestMgmtNamespaceRetention(t *testing.T) {
	e := newMgmtEnv(t, false)
	e.push("acme/app", "v1", "one")
	var r api.NamespaceRetention
	e.call("GET", "/berth/v1/namespaces/acme/retention", "", 200, &r)
	if r.Namespace != "acme" || r.Retention != nil || r.Effective != "1h" || r.EffectiveSeconds != 3600 {
		t.Errorf("default retention: got %+v", r)
	}
	e.call("PUT", "/berth/v1/namespaces/acme/retention", `{"retention":"3d"}`, 200, &r)
	if r.Retention == nil || *r.Retention != "3d" || r.Effective != "3d" {
		t.Errorf("retention 3d: got %+v", r)
	}
	var h api.TagHistory
	e.call("GET", "/berth/v1/repositories/acme/app/_tags/history", "", 200, &h)
	if h.Retention != "3d" {
		t.Errorf("history after retention 3d: got window %s", h.Retention)
	}
	// The grammar of every duration an operator types: fractions of a day
	// (as --tag-retention takes) and sub-second units alike.
	for _, c := range []struct{ in, want string }{{"1.5d", "1d12h"}, {"500ms", "500ms"}, {"2w", "2w"}, {"36h", "1d12h"}} {
		e.call("PUT", "/berth/v1/namespaces/acme/retention", `{"retention":"`+c.in+`"}`, 200, &r)
		if r.Retention == nil || *r.Retention != c.want || r.Effective != c.want {
			t.Errorf("retention %s: got %+v, want %s", c.in, r, c.want)
		}
	}
	e.call("PUT", "/berth/v1/namespaces/acme/retention", `{"retention":"0"}`, 200, &r)
	if r.Effective != "0s" {
		t.Errorf("retention 0: got %+v", r)
	}
	e.call("PUT", "/berth/v1/namespaces/acme/retention", `{"retention":null}`, 200, &r)
	if r.Retention != nil || r.Effective != "1h" {
		t.Errorf("retention null: got %+v", r)
	}
	for _, c := range []struct{ method, path, body, code string }{
		{"PUT", "/berth/v1/namespaces/acme/retention", `{}`, "INVALID_ARGUMENT"},
		{"PUT", "/berth/v1/namespaces/acme/retention", `{"retention":"-1h"}`, "INVALID_ARGUMENT"},
		{"PUT", "/berth/v1/namespaces/acme/retention", `{"retention":"1.5"}`, "INVALID_ARGUMENT"},
		{"PUT", "/berth/v1/namespaces/acme/retention", `{"retention":"3 days"}`, "INVALID_ARGUMENT"},
		{"PUT", "/berth/v1/namespaces/acme/retention", `{"retention":72}`, "INVALID_ARGUMENT"},
		{"GET", "/berth/v1/namespaces/nobody/retention", "", "NAME_UNKNOWN"},
	} {
		status := map[string]int{"INVALID_ARGUMENT": 400, "NAME_UNKNOWN": 404}[c.code]
		if got := e.call(c.method, c.path, c.body, status, nil); got != c.code {
			t.Errorf("%s %s %s: got code %s, want %s", c.method, c.path, c.body, got, c.code)
		}
	}
}

func TestMgmtPurgeAndGCStatus(t *testing.T) {
	e := newMgmtEnv(t, true)
	e.push("acme/app", "v1", "one") // its config blob is shared with acme/other
	e.push("acme/other", "v1", "two")

	var st gc.Status
	e.call("GET", "/berth/v1/gc/status?reclaimable=true", "", 200, &st)
	if !st.ReclaimableDone || st.ReclaimableNow != 0 {
		t.Errorf("status before any garbage: got %+v", st)
	}

	var s gc.Summary
	e.call("POST", "/berth/v1/purge/acme/app", "", 200, &s)
	if s.Deleted[review.KindRepository] != 1 || s.Deleted[review.KindManifest] != 1 || s.Deleted[review.KindTag] != 1 || s.Deleted[review.KindBlob] != 1 || s.BytesFreed != 3 {
		t.Errorf("purge acme/app: got deleted %v, %d bytes; want the repository, its tag and manifest, its own layer (3 bytes)", s.Deleted, s.BytesFreed)
	}
	if code := e.call("GET", "/berth/v1/repositories/acme/app/_tags/history", "", 404, nil); code != "NAME_UNKNOWN" {
		t.Errorf("history after purge: got code %s, want NAME_UNKNOWN", code)
	}
	if code := e.call("POST", "/berth/v1/purge/acme/app", "", 404, nil); code != "NAME_UNKNOWN" {
		t.Errorf("purge of a purged repository: got code %s, want NAME_UNKNOWN", code)
	}
	s = gc.Summary{}
	e.call("POST", "/berth/v1/purge/acme", "", 200, &s)
	if s.Deleted[review.KindRepository] != 1 || s.Deleted[review.KindBlob] != 2 {
		t.Errorf("purge of namespace acme: got deleted %v, want acme/other", s.Deleted)
	}
	if code := e.call("POST", "/berth/v1/purge/Bad_Name", "", 400, nil); code != "NAME_INVALID" {
		t.Errorf("purge of an invalid name: got code %s", code)
	}
	if code := e.call("DELETE", "/berth/v1/purge/acme", "", 405, nil); code != "UNSUPPORTED" {
		t.Errorf("DELETE purge: got code %s", code)
	}
	st = gc.Status{}
	e.call("GET", "/berth/v1/gc/status", "", 200, &st)
	if st.ReclaimableDone || st.Tombstones != 0 {
		t.Errorf("status without reclaimable: got %+v", st)
	}
	if code := e.call("GET", "/berth/v1/gc/status?reclaimable=maybe", "", 400, nil); code != "INVALID_ARGUMENT" {
		t.Errorf("status?reclaimable=maybe: got code %s", code)
	}

	none := newMgmtEnv(t, false)
	if code := none.call("GET", "/berth/v1/gc/status", "", 501, nil); code != "UNSUPPORTED" {
		t.Errorf("status without a collector: got code %s", code)
	}
}

// TestDigestInvalidMessage: DIGEST_INVALID says what is wrong with a
// malformed digest, on the OCI API and the management API alike; the
// mismatch message stays for bytes that do not hash to the digest named.
func TestDigestInvalidMessage(t *testing.T) {
	e := newMgmtEnv(t, false)
	e.push("acme/app", "v1", "one")
	short := `digest "sha256:abc": wrong length for sha256 (3 hex characters, want 64)`
	upper := `digest "sha256:` + strings.Repeat("A", 64) + `": uppercase hex 'A' at offset 0 (must be lowercase)`
	for _, c := range []struct{ method, path, body, want string }{
		{"GET", "/v2/acme/app/blobs/sha256:abc", "", short},
		{"GET", "/v2/acme/app/manifests/sha256:abc", "", short},
		{"GET", "/v2/acme/app/blobs/sha256:" + strings.Repeat("A", 64), "", upper},
		{"GET", "/v2/acme/app/blobs/md5:" + strings.Repeat("a", 32), "", `digest "md5:` + strings.Repeat("a", 32) + `": algorithm "md5" is not supported (only sha256 and sha512 are accepted)`},
		{"POST", "/berth/v1/repositories/acme/app/_tags/v1/restore", `{"digest":"sha256:abc"}`, short},
		{"POST", "/v2/acme/app/blobs/uploads/?digest=" + digest.FromString("other").String(), "bytes", "provided digest did not match uploaded content"},
		{"PUT", "/v2/acme/app/manifests/" + digest.FromString("x").String(), `{"schemaVersion":2}`, "provided digest did not match uploaded content"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, e.srv.URL+c.path, strings.NewReader(c.body))
			if c.method == "PUT" {
				req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var env struct {
				Errors []struct{ Code, Message string } `json:"errors"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || len(env.Errors) != 1 {
				t.Fatalf("got status %d, body not an OCI envelope (%v)", resp.StatusCode, err)
			}
			if got := env.Errors[0]; resp.StatusCode != 400 || got.Code != "DIGEST_INVALID" || got.Message != c.want {
				t.Errorf("got %d %s %q, want 400 DIGEST_INVALID %q", resp.StatusCode, got.Code, got.Message, c.want)
			}
		})
	}
}
