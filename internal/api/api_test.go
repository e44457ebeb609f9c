package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth/berth/internal/registry"
)

func TestBase(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		resp, body := e.do("GET", "/v2/", nil, nil)
		e.expect(resp, body, http.StatusOK)
		if got := resp.Header.Get("Docker-Distribution-API-Version"); got != "registry/2.0" {
			t.Errorf("Docker-Distribution-API-Version: got %q, want registry/2.0", got)
		}
	})
}

func TestPushPull(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		const repo = "team/app/web"
		m := e.image(repo, map[string]string{"x": "y"}, 2)
		d := e.mustPutManifest(repo, "v1", mtManifest, m)

		for _, ref := range []string{"v1", d.String()} {
			resp, body := e.do("GET", "/v2/"+repo+"/manifests/"+ref, map[string]string{"Accept": mtManifest}, nil)
			e.expect(resp, body, http.StatusOK)
			if !bytes.Equal(body, m) {
				t.Errorf("GET manifest %s: got %d bytes, want the pushed %d", ref, len(body), len(m))
			}
			if got := resp.Header.Get("Content-Type"); got != mtManifest {
				t.Errorf("Content-Type: got %q, want %q", got, mtManifest)
			}
			resp, body = e.do("HEAD", "/v2/"+repo+"/manifests/"+ref, nil, nil)
			e.expect(resp, body, http.StatusOK)
			if got := resp.Header.Get("Docker-Content-Digest"); got != d.String() {
				t.Errorf("HEAD Docker-Content-Digest: got %q, want %s", got, d)
			}
			if got := resp.ContentLength; got != int64(len(m)) {
				t.Errorf("HEAD Content-Length: got %d, want %d", got, len(m))
			}
		}

		var doc manifestDoc
		_ = json.Unmarshal(m, &doc)
		layer := doc.Layers[0]
		resp, body := e.do("GET", "/v2/"+repo+"/blobs/"+layer.Digest.String(), nil, nil)
		e.expect(resp, body, http.StatusOK)
		if got := digest.FromBytes(body); got != layer.Digest {
			t.Errorf("GET blob: got content %s, want %s", got, layer.Digest)
		}
		resp, part := e.do("GET", "/v2/"+repo+"/blobs/"+layer.Digest.String(), map[string]string{"Range": "bytes=10-19"}, nil)
		e.expect(resp, part, http.StatusPartialContent)
		if !bytes.Equal(part, body[10:20]) {
			t.Errorf("Range GET: got %x, want %x", part, body[10:20])
		}
		resp, _ = e.do("HEAD", "/v2/"+repo+"/blobs/"+layer.Digest.String(), nil, nil)
		if resp.StatusCode != http.StatusOK || resp.ContentLength != layer.Size || resp.Header.Get("Docker-Content-Digest") != layer.Digest.String() {
			t.Errorf("HEAD blob: got %d, length %d, digest %q; want 200, %d, %s", resp.StatusCode, resp.ContentLength, resp.Header.Get("Docker-Content-Digest"), layer.Size, layer.Digest)
		}

		// Tags, with pagination.
		for _, tag := range []string{"a", "b", "c"} {
			e.mustPutManifest(repo, tag, mtManifest, m)
		}
		resp, body = e.do("GET", "/v2/"+repo+"/tags/list?n=2", nil, nil)
		e.expect(resp, body, http.StatusOK)
		if got, want := string(body), `{"name":"`+repo+`","tags":["a","b"]}`; got != want {
			t.Errorf("tags page 1: got %s, want %s", got, want)
		}
		if got, want := resp.Header.Get("Link"), `</v2/`+repo+`/tags/list?last=b&n=2>; rel="next"`; got != want {
			t.Errorf("Link: got %q, want %q", got, want)
		}
		resp, body = e.do("GET", "/v2/"+repo+"/tags/list?n=2&last=b", nil, nil)
		e.expect(resp, body, http.StatusOK)
		if got, want := string(body), `{"name":"`+repo+`","tags":["c","v1"]}`; got != want {
			t.Errorf("tags page 2: got %s, want %s", got, want)
		}
		if got := resp.Header.Get("Link"); got != "" {
			t.Errorf("Link on the last page: got %q, want none", got)
		}
		resp, body = e.do("GET", "/v2/_catalog", nil, nil)
		e.expect(resp, body, http.StatusOK)
		if got, want := string(body), `{"repositories":["`+repo+`"]}`; got != want {
			t.Errorf("catalog: got %s, want %s", got, want)
		}
		// Unknown things.
		for path, code := range map[string]string{
			"/v2/" + repo + "/manifests/nope":                                     "MANIFEST_UNKNOWN",
			"/v2/other/manifests/v1":                                              "NAME_UNKNOWN",
			"/v2/" + repo + "/blobs/" + digest.FromString("nothing").String():     "BLOB_UNKNOWN",
			"/v2/nope/tags/list":                                                  "NAME_UNKNOWN",
			"/v2/" + repo + "/manifests/" + digest.FromString("nothing").String(): "MANIFEST_UNKNOWN",
		} {
			resp, body := e.do("GET", path, nil, nil)
			if resp.StatusCode != http.StatusNotFound || ociCode(body) != code {
				t.Errorf("GET %s: got %d %s, want 404 %s", path, resp.StatusCode, ociCode(body), code)
			}
		}
	})
}

func TestIndexAndReferrers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		const repo = "multi"
		amd := e.mustPutManifest(repo, "amd64", mtManifest, e.image(repo, nil, 1))
		arm := e.mustPutManifest(repo, "arm64", mtManifest, e.image(repo, nil, 1))
		idx, _ := json.Marshal(manifestDoc{SchemaVersion: 2, MediaType: mtIndex, Manifests: []desc{
			{MediaType: mtManifest, Digest: amd, Size: 1}, {MediaType: mtManifest, Digest: arm, Size: 1}}})
		idxD := e.mustPutManifest(repo, "latest", mtIndex, idx)

		// A child listed by an index cannot be deleted.
		resp, body := e.do("DELETE", "/v2/"+repo+"/manifests/"+amd.String(), nil, nil)
		if resp.StatusCode != http.StatusForbidden || ociCode(body) != "DENIED" {
			t.Errorf("DELETE child: got %d %s, want 403 DENIED", resp.StatusCode, ociCode(body))
		}

		// Two artifacts referring to the index.
		empty := []byte("{}")
		emptyD := e.pushBlob(repo, empty)
		var refs []digest.Digest
		for i, at := range []string{"application/vnd.example.sbom", "application/vnd.example.sig"} {
			a, _ := json.Marshal(manifestDoc{SchemaVersion: 2, MediaType: mtManifest, ArtifactType: at,
				Config:      &desc{MediaType: "application/vnd.oci.empty.v1+json", Digest: emptyD, Size: 2},
				Layers:      []desc{{MediaType: "application/vnd.oci.empty.v1+json", Digest: emptyD, Size: 2}},
				Subject:     &desc{MediaType: mtIndex, Digest: idxD, Size: int64(len(idx))},
				Annotations: map[string]string{"n": fmt.Sprint(i)}})
			d := digest.FromBytes(a)
			resp, body := e.putManifest(repo, d.String(), mtManifest, a)
			e.expect(resp, body, http.StatusCreated)
			if got := resp.Header.Get("OCI-Subject"); got != idxD.String() {
				t.Errorf("OCI-Subject: got %q, want %s", got, idxD)
			}
			refs = append(refs, d)
		}
		resp, body = e.do("GET", "/v2/"+repo+"/referrers/"+idxD.String(), nil, nil)
		e.expect(resp, body, http.StatusOK)
		var got manifestDoc
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("referrers body: %v", err)
		}
		if len(got.Manifests) != 2 || got.MediaType != mtIndex {
			t.Fatalf("referrers: got %s, want an index of 2", body)
		}
		for _, m := range got.Manifests {
			if m.ArtifactType == "" || m.Annotations["n"] == "" {
				t.Errorf("referrer %s: got artifactType %q annotations %v, want both set", m.Digest, m.ArtifactType, m.Annotations)
			}
		}
		resp, body = e.do("GET", "/v2/"+repo+"/referrers/"+idxD.String()+"?artifactType=application/vnd.example.sig", nil, nil)
		e.expect(resp, body, http.StatusOK)
		_ = json.Unmarshal(body, &got)
		if len(got.Manifests) != 1 || got.Manifests[0].Digest != refs[1] || resp.Header.Get("OCI-Filters-Applied") != "artifactType" {
			t.Errorf("filtered referrers: got %s (filters %q), want only %s", body, resp.Header.Get("OCI-Filters-Applied"), refs[1])
		}
		resp, body = e.do("GET", "/v2/"+repo+"/referrers/"+digest.FromString("x").String(), nil, nil)
		e.expect(resp, body, http.StatusOK)
		if !strings.Contains(string(body), `"manifests":[]`) {
			t.Errorf("referrers of an unknown subject: got %s, want an empty manifests list", body)
		}
		resp, body = e.do("GET", "/v2/"+repo+"/referrers/sha256:nope", nil, nil)
		if resp.StatusCode != http.StatusBadRequest || ociCode(body) != "DIGEST_INVALID" {
			t.Errorf("referrers of a bad digest: got %d %s, want 400 DIGEST_INVALID", resp.StatusCode, ociCode(body))
		}
	})
}

func TestMount(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.pushBlob("src", randomBytes(100))
		resp, body := e.do("POST", "/v2/dst/blobs/uploads/?mount="+d.String()+"&from=src", nil, nil)
		e.expect(resp, body, http.StatusCreated)
		if got, want := resp.Header.Get("Location"), "/v2/dst/blobs/"+d.String(); got != want {
			t.Errorf("mount Location: got %q, want %q", got, want)
		}
		resp, body = e.do("HEAD", "/v2/dst/blobs/"+d.String(), nil, nil)
		e.expect(resp, body, http.StatusOK)
		// Not mountable: an upload session instead.
		resp, body = e.do("POST", "/v2/dst/blobs/uploads/?mount="+digest.FromString("none").String()+"&from=src", nil, nil)
		e.expect(resp, body, http.StatusAccepted)
		if !strings.HasPrefix(resp.Header.Get("Location"), "/v2/dst/blobs/uploads/") {
			t.Errorf("fallback Location: got %q", resp.Header.Get("Location"))
		}
		// Without from: only if already linked.
		resp, body = e.do("POST", "/v2/dst/blobs/uploads/?mount="+d.String(), nil, nil)
		e.expect(resp, body, http.StatusCreated)
	})
}

func TestUploadStatusAndCancel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		before := e.counts()
		resp, body := e.do("POST", "/v2/r/blobs/uploads/", nil, nil)
		e.expect(resp, body, http.StatusAccepted)
		loc := resp.Header.Get("Location")
		resp, body = e.do("PATCH", loc, nil, []byte("hello"))
		e.expect(resp, body, http.StatusAccepted)
		resp, body = e.do("GET", loc, nil, nil)
		e.expect(resp, body, http.StatusNoContent)
		if got := resp.Header.Get("Range"); got != "0-4" {
			t.Errorf("status Range: got %q, want 0-4", got)
		}
		resp, body = e.do("DELETE", loc, nil, nil)
		e.expect(resp, body, http.StatusNoContent)
		resp, body = e.do("GET", loc, nil, nil)
		if resp.StatusCode != http.StatusNotFound || ociCode(body) != "BLOB_UPLOAD_UNKNOWN" {
			t.Errorf("status after cancel: got %d %s, want 404 BLOB_UPLOAD_UNKNOWN", resp.StatusCode, ociCode(body))
		}
		after := e.counts()
		after["repository"] = before["repository"] // the repository stays
		if after.String() != before.String() {
			t.Errorf("after cancel: got %s, want %s", after, before)
		}
	})
}

// TestEmptyBlob: a zero-byte blob arrives by every upload shape — a PUT
// with no body closing a session that never got a byte (the PUT must then
// create the empty staging itself), an empty PATCH before it, and a
// monolithic POST — and is served back with Content-Length 0.
func TestEmptyBlob(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := digest.FromBytes(nil)
		pull := func(how string) {
			t.Helper()
			resp, body := e.do("GET", "/v2/empty/blobs/"+d.String(), nil, nil)
			e.expect(resp, body, http.StatusOK)
			if len(body) != 0 || resp.ContentLength != 0 {
				t.Errorf("%s: GET got %d bytes (Content-Length %d), want 0", how, len(body), resp.ContentLength)
			}
		}
		resp, body := e.do("POST", "/v2/empty/blobs/uploads/", nil, nil)
		e.expect(resp, body, http.StatusAccepted)
		resp, body = e.do("PUT", resp.Header.Get("Location")+"?digest="+d.String(), nil, nil)
		e.expect(resp, body, http.StatusCreated)
		pull("POST, PUT")

		resp, body = e.do("POST", "/v2/empty/blobs/uploads/", nil, nil)
		e.expect(resp, body, http.StatusAccepted)
		resp, body = e.do("PATCH", resp.Header.Get("Location"), nil, []byte{})
		e.expect(resp, body, http.StatusAccepted)
		resp, body = e.do("PUT", resp.Header.Get("Location")+"?digest="+d.String(), nil, nil)
		e.expect(resp, body, http.StatusCreated)
		pull("POST, empty PATCH, PUT")

		e.pushBlob("empty", nil)
		pull("monolithic POST")

		// A PUT with no body after a PATCH commits exactly the PATCHed bytes.
		b := []byte("patched, then closed by an empty PUT")
		if got := e.pushChunked("empty", b, 7); got != digest.FromBytes(b) {
			t.Fatalf("pushChunked: got %s", got)
		}
		resp, body = e.do("GET", "/v2/empty/blobs/"+digest.FromBytes(b).String(), nil, nil)
		e.expect(resp, body, http.StatusOK)
		if string(body) != string(b) {
			t.Errorf("chunked blob: got %q, want %q", body, b)
		}
	})
}

func TestTagMoveAndDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		const repo = "ns/app"
		m1 := e.mustPutManifest(repo, "prod", mtManifest, e.image(repo, nil, 1))
		e.clock.Add(time.Minute)
		m2 := e.mustPutManifest(repo, "prod", mtManifest, e.image(repo, map[string]string{"berth.expires-after": "2h"}, 1))
		e.clock.Add(time.Minute)
		resp, body := e.do("DELETE", "/v2/"+repo+"/manifests/prod", nil, nil)
		e.expect(resp, body, http.StatusAccepted)
		resp, body = e.do("GET", "/v2/"+repo+"/manifests/prod", nil, nil)
		if resp.StatusCode != http.StatusNotFound || ociCode(body) != "MANIFEST_UNKNOWN" {
			t.Errorf("GET deleted tag: got %d %s, want 404 MANIFEST_UNKNOWN", resp.StatusCode, ociCode(body))
		}
		resp, body = e.do("DELETE", "/v2/"+repo+"/manifests/prod", nil, nil)
		if resp.StatusCode != http.StatusNotFound || ociCode(body) != "MANIFEST_UNKNOWN" {
			t.Errorf("DELETE deleted tag: got %d %s, want 404 MANIFEST_UNKNOWN", resp.StatusCode, ociCode(body))
		}
		h, err := e.reg.TagHistory(context.Background(), repo, "prod")
		hist := h.Lifetimes
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 2 || hist[0].Manifest != m2 || hist[1].Manifest != m1 {
			t.Fatalf("history: got %+v, want rows for %s then %s", hist, m2, m1)
		}
		t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		if hist[1].End == nil || !hist[1].End.Equal(t0.Add(time.Minute)) {
			t.Errorf("first row end: got %v, want %v", hist[1].End, t0.Add(time.Minute))
		}
		if hist[0].End == nil || !hist[0].End.Equal(t0.Add(2*time.Minute)) {
			t.Errorf("second row end: got %v, want %v", hist[0].End, t0.Add(2*time.Minute))
		}
		if hist[0].ExpiresAt == nil || !hist[0].ExpiresAt.Equal(t0.Add(time.Minute+2*time.Hour)) {
			t.Errorf("expiry from label: got %v, want %v", hist[0].ExpiresAt, t0.Add(time.Minute+2*time.Hour))
		}
		// Restore the first lifetime.
		tag, err := e.reg.RestoreTag(context.Background(), repo, "prod", registryTarget(m1))
		if err != nil {
			t.Fatalf("restore: %v", err)
		}
		if tag.Manifest != m1 {
			t.Errorf("restored tag: got %s, want %s", tag.Manifest, m1)
		}
		resp, body = e.do("GET", "/v2/"+repo+"/manifests/prod", nil, nil)
		e.expect(resp, body, http.StatusOK)
		if got := resp.Header.Get("Docker-Content-Digest"); got != m1.String() {
			t.Errorf("GET restored tag: got %s, want %s", got, m1)
		}
		// Out of the window.
		e.clock.Add(15 * 24 * time.Hour)
		if _, err := e.reg.RestoreTag(context.Background(), repo, "prod", registryTarget(m2)); err == nil || !strings.Contains(err.Error(), "time-machine window") {
			t.Errorf("restore outside the window: got %v, want a window error", err)
		}
	})
}

// TestMalformed sends requests that must be refused and checks that they
// leave metadata and storage exactly as they were.
func TestMalformed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		const repo = "base"
		good := e.image(repo, nil, 1)
		e.mustPutManifest(repo, "v1", mtManifest, good)
		var doc manifestDoc
		_ = json.Unmarshal(good, &doc)
		unknownBlob := doc
		unknownBlob.Layers = []desc{{MediaType: mtLayer, Digest: digest.FromString("missing"), Size: 7}}
		unknownBlobBody, _ := json.Marshal(unknownBlob)
		unknownChild, _ := json.Marshal(manifestDoc{SchemaVersion: 2, MediaType: mtIndex, Manifests: []desc{{MediaType: mtManifest, Digest: digest.FromString("child"), Size: 3}}})
		unknownConfig := doc
		unknownConfig.Config = &desc{MediaType: mtConfig, Digest: digest.FromString("no config"), Size: 9}
		unknownConfigBody, _ := json.Marshal(unknownConfig)
		wrongSize := doc
		wrongSize.Layers = append([]desc(nil), doc.Layers...)
		wrongSize.Layers[0].Size++
		wrongSizeBody, _ := json.Marshal(wrongSize)
		// A manifest of another repository is not a child this one may list.
		otherM := e.mustPutManifest("other", "v1", mtManifest, e.image("other", nil, 1))
		foreignChild, _ := json.Marshal(manifestDoc{SchemaVersion: 2, MediaType: mtIndex, Manifests: []desc{{MediaType: mtManifest, Digest: otherM, Size: 3}}})
		schema1 := bytes.Replace(good, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":1`), 1)
		longName := strings.Repeat("abcdefgh/", 28) + "abcd" // 256 characters, every component valid
		big := append([]byte(`{"schemaVersion":2,"x":"`), bytes.Repeat([]byte("a"), 4<<20)...)
		big = append(big, `"}`...)

		// An upload session with 5 bytes, for the out-of-order chunk.
		resp, body := e.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
		e.expect(resp, body, http.StatusAccepted)
		loc := resp.Header.Get("Location")
		resp, body = e.do("PATCH", loc, map[string]string{"Content-Range": "0-4"}, []byte("12345"))
		e.expect(resp, body, http.StatusAccepted)

		blobD := digest.FromString("payload").String()
		tests := []struct {
			name   string
			method string
			path   string
			hdr    map[string]string
			body   []byte
			status int
			code   string
		}{
			{"uppercase name", "GET", "/v2/Base/manifests/v1", nil, nil, 400, "NAME_INVALID"},
			{"dotdot name", "GET", "/v2/a/../b/manifests/v1", nil, nil, 400, "NAME_INVALID"},
			{"empty component", "PUT", "/v2/a//b/manifests/v1", map[string]string{"Content-Type": mtManifest}, good, 400, "NAME_INVALID"},
			{"256 characters", "POST", "/v2/" + strings.Repeat("a", 256) + "/blobs/uploads/", nil, nil, 400, "NAME_INVALID"},
			{"256 characters across components", "GET", "/v2/" + longName + "/manifests/v1", nil, nil, 400, "NAME_INVALID"},
			{"double dot inside a component", "DELETE", "/v2/a..b/manifests/v1", nil, nil, 400, "NAME_INVALID"},
			{"dot component", "GET", "/v2/a/./b/tags/list", nil, nil, 400, "NAME_INVALID"},
			{"component starting with a separator", "GET", "/v2/-a/manifests/v1", nil, nil, 400, "NAME_INVALID"},
			{"component ending with a separator", "GET", "/v2/a_/manifests/v1", nil, nil, 400, "NAME_INVALID"},
			{"bad name push", "POST", "/v2/UP/blobs/uploads/?digest=" + blobD, nil, []byte("payload"), 400, "NAME_INVALID"},
			{"bad name chunk", "PATCH", "/v2/Base/blobs/uploads/0123abcd", nil, []byte("x"), 400, "NAME_INVALID"},
			{"bad name referrers", "GET", "/v2/A/referrers/" + otherM.String(), nil, nil, 400, "NAME_INVALID"},
			{"bad mount source name", "POST", "/v2/" + repo + "/blobs/uploads/?mount=" + doc.Layers[0].Digest.String() + "&from=Other", nil, nil, 400, "NAME_INVALID"},
			{"unsupported digest algorithm", "GET", "/v2/" + repo + "/blobs/md5:" + strings.Repeat("a", 32), nil, nil, 400, "DIGEST_INVALID"},
			{"uppercase hex digest", "GET", "/v2/" + repo + "/blobs/sha256:" + strings.Repeat("A", 64), nil, nil, 400, "DIGEST_INVALID"},
			{"sha512 digest of sha256 length", "HEAD", "/v2/" + repo + "/blobs/sha512:" + strings.Repeat("a", 64), nil, nil, 400, ""},
			{"digest without algorithm", "DELETE", "/v2/" + repo + "/blobs/" + strings.Repeat("a", 64), nil, nil, 400, "DIGEST_INVALID"},
			{"malformed mount digest", "POST", "/v2/" + repo + "/blobs/uploads/?mount=sha256:zz&from=other", nil, nil, 400, "DIGEST_INVALID"},
			{"manifest under another algorithm's digest", "PUT", "/v2/" + repo + "/manifests/sha512:" + strings.Repeat("a", 128), map[string]string{"Content-Type": mtManifest}, good, 400, "DIGEST_INVALID"},
			{"empty manifest", "PUT", "/v2/" + repo + "/manifests/t", map[string]string{"Content-Type": mtManifest}, []byte{}, 400, "MANIFEST_INVALID"},
			{"schemaVersion 1", "PUT", "/v2/" + repo + "/manifests/t", map[string]string{"Content-Type": mtManifest}, schema1, 400, "MANIFEST_INVALID"},
			{"Content-Type not the body's mediaType", "PUT", "/v2/" + repo + "/manifests/t", map[string]string{"Content-Type": mtIndex}, good, 400, "MANIFEST_INVALID"},
			{"tag over 128 characters", "PUT", "/v2/" + repo + "/manifests/" + strings.Repeat("t", 129), map[string]string{"Content-Type": mtManifest}, good, 400, "MANIFEST_INVALID"},
			{"layer size differs from the uploaded blob", "PUT", "/v2/" + repo + "/manifests/t", map[string]string{"Content-Type": mtManifest}, wrongSizeBody, 400, "MANIFEST_INVALID"},
			{"unknown config blob", "PUT", "/v2/" + repo + "/manifests/t", map[string]string{"Content-Type": mtManifest}, unknownConfigBody, 404, "MANIFEST_BLOB_UNKNOWN"},
			{"child of another repository", "PUT", "/v2/" + repo + "/manifests/t", map[string]string{"Content-Type": mtIndex}, foreignChild, 404, "MANIFEST_UNKNOWN"},
			{"Content-Range not a range", "PATCH", loc, map[string]string{"Content-Range": "abc"}, []byte("x"), 416, "BLOB_UPLOAD_INVALID"},
			{"Content-Range ending before it starts", "PATCH", loc, map[string]string{"Content-Range": "9-5"}, []byte("x"), 416, "BLOB_UPLOAD_INVALID"},
			{"out-of-order last chunk", "PUT", loc + "?digest=" + blobD, map[string]string{"Content-Range": "7-13"}, []byte("payload"), 416, "BLOB_UPLOAD_INVALID"},
			{"upload of another repository", "PATCH", strings.Replace(loc, "/"+repo+"/", "/other/", 1), nil, []byte("x"), 404, "BLOB_UPLOAD_UNKNOWN"},
			{"malformed digest", "GET", "/v2/" + repo + "/blobs/sha256:abc", nil, nil, 400, "DIGEST_INVALID"},
			{"wrong digest monolithic", "POST", "/v2/" + repo + "/blobs/uploads/?digest=" + blobD, nil, []byte("other"), 400, "DIGEST_INVALID"},
			{"malformed digest monolithic", "POST", "/v2/" + repo + "/blobs/uploads/?digest=sha256:zz", nil, []byte("x"), 400, "DIGEST_INVALID"},
			{"wrong manifest digest", "PUT", "/v2/" + repo + "/manifests/" + digest.FromString("x").String(), map[string]string{"Content-Type": mtManifest}, good, 400, "DIGEST_INVALID"},
			{"truncated manifest", "PUT", "/v2/" + repo + "/manifests/t", map[string]string{"Content-Type": mtManifest}, good[:len(good)/2], 400, "MANIFEST_INVALID"},
			{"non-JSON manifest", "PUT", "/v2/" + repo + "/manifests/t", map[string]string{"Content-Type": mtManifest}, []byte("hello"), 400, "MANIFEST_INVALID"},
			{"invalid tag", "PUT", "/v2/" + repo + "/manifests/-t", map[string]string{"Content-Type": mtManifest}, good, 400, "MANIFEST_INVALID"},
			{"unknown blob", "PUT", "/v2/" + repo + "/manifests/t", map[string]string{"Content-Type": mtManifest}, unknownBlobBody, 404, "MANIFEST_BLOB_UNKNOWN"},
			{"unknown blob, new repo", "PUT", "/v2/fresh/manifests/t", map[string]string{"Content-Type": mtManifest}, good, 404, "MANIFEST_BLOB_UNKNOWN"},
			{"unknown child", "PUT", "/v2/" + repo + "/manifests/t", map[string]string{"Content-Type": mtIndex}, unknownChild, 404, "MANIFEST_UNKNOWN"},
			{"oversized manifest", "PUT", "/v2/" + repo + "/manifests/t", map[string]string{"Content-Type": mtManifest}, big, 413, "SIZE_INVALID"},
			{"out-of-order chunk", "PATCH", loc, map[string]string{"Content-Range": "10-14"}, []byte("67890"), 416, "BLOB_UPLOAD_INVALID"},
			{"chunk shorter than its range", "PATCH", loc, map[string]string{"Content-Range": "5-14"}, []byte("67890"), 400, "SIZE_INVALID"},
			{"unknown upload", "PATCH", "/v2/" + repo + "/blobs/uploads/0123abcd", nil, []byte("x"), 404, "BLOB_UPLOAD_UNKNOWN"},
			{"finish without digest", "PUT", loc, nil, nil, 400, "DIGEST_INVALID"},
			{"delete blob in use", "DELETE", "/v2/" + repo + "/blobs/" + doc.Layers[0].Digest.String(), nil, nil, 403, "DENIED"},
			{"unknown route", "GET", "/v2/" + repo + "/nothing/here", nil, nil, 404, "NOT_FOUND"},
			{"method not allowed", "POST", "/v2/" + repo + "/tags/list", nil, nil, 405, "UNSUPPORTED"},
			{"bad n", "GET", "/v2/" + repo + "/tags/list?n=-1", nil, nil, 400, "PAGINATION_NUMBER_INVALID"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := e.counts()
				resp, body := e.do(tt.method, tt.path, tt.hdr, tt.body)
				if resp.StatusCode != tt.status || ociCode(body) != tt.code {
					t.Errorf("got %d %s, want %d %s (body %s)", resp.StatusCode, ociCode(body), tt.status, tt.code, body)
				}
				if after := e.counts(); after.String() != before.String() {
					t.Errorf("state changed:\ngot  %s\nwant %s", after, before)
				}
			})
		}

		// Bodies shorter than their Content-Length, sent on a raw connection
		// that then half-closes.
		lying := []struct {
			name, req string
			status    int
			code      string
		}{
			{"lying monolithic blob", "POST /v2/" + repo + "/blobs/uploads/?digest=" + blobD + " HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npayload", 400, "BLOB_UPLOAD_INVALID"},
			{"lying manifest", "PUT /v2/" + repo + "/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Type: " + mtManifest + "\r\nContent-Length: 10000\r\n\r\n" + string(good), 400, "SIZE_INVALID"},
			{"lying chunk", "PATCH " + loc + " HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n67890", 400, "BLOB_UPLOAD_INVALID"},
		}
		for _, tt := range lying {
			t.Run(tt.name, func(t *testing.T) {
				before := e.counts()
				status, body := rawRequest(t, e.srv.Listener.Addr().String(), tt.req)
				// The half-close may also be seen as the client going away
				// before the short read (499, logged only); either way the
				// request must fail and leave nothing.
				if (status != tt.status || ociCode(body) != tt.code) && status != 499 {
					t.Errorf("got %d %s, want %d %s (body %s)", status, ociCode(body), tt.status, tt.code, body)
				}
				// The handler finishes after the client hangs up: wait for it.
				deadline := time.Now().Add(5 * time.Second)
				for {
					after := e.counts()
					if after.String() == before.String() {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("state changed:\ngot  %s\nwant %s", after, before)
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
		// The session survived the refused chunks at its size.
		resp, body = e.do("GET", loc, nil, nil)
		e.expect(resp, body, http.StatusNoContent)
		if got := resp.Header.Get("Range"); got != "0-4" {
			t.Errorf("upload after refused chunks: got Range %q, want 0-4", got)
		}

		// Closing a session with the wrong digest commits nothing and, as in
		// distribution, ends the session: its rows and bytes go too.
		t.Run("finish with the wrong digest", func(t *testing.T) {
			before := e.counts()
			resp, body := e.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
			e.expect(resp, body, http.StatusAccepted)
			loc := resp.Header.Get("Location")
			resp, body = e.do("PATCH", loc, nil, []byte("some bytes"))
			e.expect(resp, body, http.StatusAccepted)
			resp, body = e.do("PUT", loc+"?digest="+blobD, nil, nil)
			if resp.StatusCode != http.StatusBadRequest || ociCode(body) != "DIGEST_INVALID" {
				t.Errorf("PUT with the wrong digest: got %d %s, want 400 DIGEST_INVALID", resp.StatusCode, ociCode(body))
			}
			resp, body = e.do("GET", loc, nil, nil)
			if resp.StatusCode != http.StatusNotFound || ociCode(body) != "BLOB_UPLOAD_UNKNOWN" {
				t.Errorf("session after the refused PUT: got %d %s, want 404 BLOB_UPLOAD_UNKNOWN", resp.StatusCode, ociCode(body))
			}
			if after := e.counts(); after.String() != before.String() {
				t.Errorf("state changed:\ngot  %s\nwant %s", after, before)
			}
		})
	})
}

// rawRequest writes req on a new connection, half-closes it and returns
// the status and body of the answer (0 if the server dropped it).
func rawRequest(t *testing.T, addr, req string) (int, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(conn)
	head, body, _ := strings.Cut(buf.String(), "\r\n\r\n")
	var status int
	fmt.Sscanf(head, "HTTP/1.1 %d", &status)
	return status, []byte(body)
}

func registryTarget(d digest.Digest) registry.RestoreTarget {
	return registry.RestoreTarget{Digest: d.String()}
}
