package api_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/berth/berth/internal/api"
)

// rawRequest sends method and target exactly as written on the request
// line (a Go client would re-encode the path) and returns the response
// with its body read.
func (e *env) rawRequest(method, target string) (*http.Response, []byte) {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n\r\n", method, target)
	req, _ := http.NewRequest(method, target, nil)
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, target, err)
	}
	return resp, body
}

// TestEscapedPaths: berth routes on the path as the client sent it. An
// escaped spelling of a prefix or of a word of the API names nothing (404
// NOT_FOUND); a repository name with an escape, %2F above all, is refused
// NAME_INVALID instead of being read as another repository; a reference
// with an encoded "/" is an invalid tag or digest; the ":" of a digest may
// come as %3A. The request log shows the target as sent.
func TestEscapedPaths(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			var logs syncBuffer
			e := newEnvWith(t, backend, api.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			const repo = "demo/hello"
			m := e.image(repo, nil, 1)
			d := e.mustPutManifest(repo, "v1", mtManifest, m)
			layer := e.pushBlob(repo, []byte("layer"))
			hex := d.Encoded()

			tests := []struct {
				method, target string
				status         int
				code           string
			}{
				// Literal forms work.
				{"GET", "/v2/demo/hello/manifests/v1", 200, ""},
				{"GET", "/berth/v1/gc/status", 501, "UNSUPPORTED"}, // reached: this server has no collector
				// Escaped prefixes and words name nothing.
				{"GET", "/%62erth/v1/gc/status", 404, "NOT_FOUND"},
				{"GET", "/berth/v1/gc%2Fstatus", 404, "NOT_FOUND"},
				{"GET", "/berth%2Fv1/gc/status", 404, "NOT_FOUND"},
				{"GET", "/%762/", 404, "NOT_FOUND"},
				{"GET", "/v2/%5Fcatalog", 404, "NOT_FOUND"},
				{"GET", "/v2/demo/hello/%6danifests/v1", 404, "NOT_FOUND"},
				{"GET", "/v2/demo/hello/tags%2Flist", 404, "NOT_FOUND"},
				{"GET", "/berth/v1/repositories/demo/hello/%5Ftags/history", 404, "NOT_FOUND"},
				// An escape in a name is refused, not decoded.
				{"GET", "/v2/demo%2fhello/manifests/v1", 400, "NAME_INVALID"},
				{"GET", "/v2/demo%2Fhello/manifests/v1", 400, "NAME_INVALID"},
				{"GET", "/v2/d%65mo/hello/manifests/v1", 400, "NAME_INVALID"},
				{"GET", "/v2/demo%2fhello/tags/list", 400, "NAME_INVALID"},
				{"POST", "/v2/demo%2fhello/blobs/uploads/", 400, "NAME_INVALID"},
				{"GET", "/berth/v1/repositories/demo%2fhello/_tags/history", 400, "NAME_INVALID"},
				{"GET", "/berth/v1/namespaces/d%65mo/retention", 400, "NAME_INVALID"},
				{"GET", "/berth/v1/repositories/demo/hello/_tags/v%31/history", 400, "MANIFEST_INVALID"},
				// References are decoded; an encoded "/" in one is refused.
				{"GET", "/v2/demo/hello/manifests/sha256%3A" + hex, 200, ""},
				{"GET", "/v2/demo/hello/manifests/sha256%3a" + hex, 200, ""},
				{"HEAD", "/v2/demo/hello/blobs/sha256%3A" + layer.Encoded(), 200, ""},
				{"GET", "/v2/demo/hello/referrers/sha256%3A" + hex, 200, ""},
				{"GET", "/v2/demo/hello/manifests/v%31", 200, ""},
				{"GET", "/v2/demo/hello/manifests/v1%2Fx", 400, "MANIFEST_INVALID"},
				{"GET", "/v2/demo/hello/blobs/sha256%3A" + hex[:10] + "%2F" + hex[10:], 400, "DIGEST_INVALID"},
			}
			for _, tt := range tests {
				resp, body := e.rawRequest(tt.method, tt.target)
				if resp.StatusCode != tt.status || tt.method != "HEAD" && ociCode(body) != tt.code {
					t.Errorf("%s %s: got %d %s, want %d %s; body %s", tt.method, tt.target, resp.StatusCode, ociCode(body), tt.status, tt.code, body)
				}
			}
			if got := e.counts()["repository"]; got != 1 {
				t.Errorf("repositories: got %d, want 1 (demo/hello)", got)
			}
			for _, l := range logLines(t, logs.String()) {
				if l["status"] == float64(400) && strings.Contains(l["uri"].(string), "demo%2fhello/manifests") {
					return
				}
			}
			t.Errorf("no request log line with uri /v2/demo%%2fhello/manifests/v1 as sent; log:\n%s", logs.String())
		})
	}
}
