package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/berth/berth/internal/api"
)

// The audit's two ways around the time machine, over HTTP on every backend
// (docs/design/gc.md, "The time machine").

// PUT .../expiry with a past "at" is refused and changes nothing; "in":"0s"
// ends the tag now and it is restorable for the whole window.
func TestTimeMachinePastExpiryRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		d := e.mustPutManifest("demo/hello", "v1", mtManifest, e.image("demo/hello", nil, 1))
		resp, body := e.do("PUT", "/berth/v1/repositories/demo/hello/_tags/v1/expiry", nil, []byte(`{"at":"2000-01-01T00:00:00Z"}`))
		e.expect(resp, body, http.StatusBadRequest)
		if code := ociCode(body); code != "INVALID_ARGUMENT" || !strings.Contains(string(body), "in the past") {
			t.Fatalf("past expiry: got %s, want INVALID_ARGUMENT saying it is in the past", body)
		}
		resp, body = e.do("GET", "/v2/demo/hello/manifests/v1", map[string]string{"Accept": mtManifest}, nil)
		e.expect(resp, body, http.StatusOK)
		var h api.TagHistory
		resp, body = e.do("GET", "/berth/v1/repositories/demo/hello/_tags/v1/history", nil, nil)
		e.expect(resp, body, http.StatusOK)
		if err := json.Unmarshal(body, &h); err != nil || len(h.Lifetimes) != 1 || h.Lifetimes[0].ExpiresAt != nil || !h.Lifetimes[0].Live {
			t.Fatalf("history after a refused expiry: %s", body)
		}

		resp, body = e.do("PUT", "/berth/v1/repositories/demo/hello/_tags/v1/expiry", nil, []byte(`{"in":"0s"}`))
		e.expect(resp, body, http.StatusOK)
		var l api.TagLifetime
		if err := json.Unmarshal(body, &l); err != nil || l.Live || !l.Restorable || l.RestorableUntil == nil {
			t.Fatalf("expiry in 0s: %s, want ended and restorable", body)
		}
		resp, body = e.do("GET", "/v2/demo/hello/manifests/v1", map[string]string{"Accept": mtManifest}, nil)
		e.expect(resp, body, http.StatusNotFound)
		resp, body = e.do("POST", "/berth/v1/repositories/demo/hello/_tags/v1/restore", nil, []byte(`{"digest":"`+d.String()+`"}`))
		e.expect(resp, body, http.StatusOK)
	})
}

// DELETE by digest answers 404 for the manifest at once; the history says
// its tags are restorable, and restore brings tag, manifest and blobs back.
func TestTimeMachineDeleteByDigestRestorable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		body := e.image("demo/hello", nil, 2)
		d := e.mustPutManifest("demo/hello", "v1", mtManifest, body)
		var m manifestDoc
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		resp, b := e.do("DELETE", "/v2/demo/hello/manifests/"+d.String(), nil, nil)
		e.expect(resp, b, http.StatusAccepted)
		for _, ref := range []string{d.String(), "v1"} {
			resp, b = e.do("GET", "/v2/demo/hello/manifests/"+ref, map[string]string{"Accept": mtManifest}, nil)
			e.expect(resp, b, http.StatusNotFound)
		}
		var h api.TagHistory
		resp, b = e.do("GET", "/berth/v1/repositories/demo/hello/_tags/v1/history", nil, nil)
		e.expect(resp, b, http.StatusOK)
		if err := json.Unmarshal(b, &h); err != nil || len(h.Lifetimes) != 1 || h.Lifetimes[0].Live || !h.Lifetimes[0].Restorable {
			t.Fatalf("history after DELETE by digest: %s, want one ended, restorable lifetime", b)
		}
		resp, b = e.do("POST", "/berth/v1/repositories/demo/hello/_tags/v1/restore", nil, []byte(`{"digest":"`+d.String()+`"}`))
		e.expect(resp, b, http.StatusOK)
		resp, b = e.do("GET", "/v2/demo/hello/manifests/v1", map[string]string{"Accept": mtManifest}, nil)
		e.expect(resp, b, http.StatusOK)
		if got := resp.Header.Get("Docker-Content-Digest"); got != d.String() {
			t.Fatalf("restored tag serves %s, want %s", got, d)
		}
		for _, l := range append([]desc{*m.Config}, m.Layers...) {
			resp, b = e.do("GET", "/v2/demo/hello/blobs/"+l.Digest.String(), nil, nil)
			e.expect(resp, b, http.StatusOK)
		}
	})
}
