package app

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

// answer is what a test compares of a response: everything but the
// headers that differ by request (date, request id).
type answer struct {
	status int
	ctype  string
	dist   string // Docker-Distribution-API-Version
	body   string
}

func fetchAnswer(t *testing.T, method, u string) answer {
	t.Helper()
	resp := do(t, method, u, "", nil)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Docker-Distribution-API-Version"), string(b)}
}

// TestServeWeb: serve mounts the web interface on / and /-/ (GET, HEAD,
// POST) when web.enabled, and leaves every other request, /v2/ first, to
// the API exactly as without it; each web request is logged once.
func TestServeWeb(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			if b.Name != "sqlite" {
				cfg.DB = b.DSN(t)
			}
			var logs syncBuffer
			base, stop := start(t, cfg, &logs)
			pushImage(t, base, "acme/app", "1.0")

			home := fetchAnswer(t, http.MethodGet, base+"/")
			if home.status != http.StatusOK || home.ctype != "text/html; charset=utf-8" || home.dist != "" ||
				!strings.Contains(home.body, `href="/-/namespaces/acme"`) {
				t.Errorf("GET /: got %d %q (API version %q), want the home page listing acme; body\n%s", home.status, home.ctype, home.dist, home.body)
			}
			if a := fetchAnswer(t, http.MethodGet, base+"/-/sign-in"); a.status != http.StatusOK || !strings.Contains(a.body, "Access control is off") {
				t.Errorf("GET /-/sign-in: got %d; body\n%s", a.status, a.body)
			}
			if a := fetchAnswer(t, http.MethodGet, base+"/-/nope"); a.status != http.StatusNotFound || a.ctype != "text/html; charset=utf-8" {
				t.Errorf("GET /-/nope: got %d %q, want the 404 page", a.status, a.ctype)
			}
			if !strings.Contains(logs.String(), `msg=request method=GET uri=/ status=200`) || !strings.Contains(logs.String(), "route=web-home") {
				t.Errorf("the web request is not logged:\n%s", logs.String())
			}

			targets := []struct{ method, path string }{
				{http.MethodGet, "/v2/"},
				{http.MethodGet, "/v2/_catalog"},
				{http.MethodGet, "/v2/acme/app/tags/list"},
				{http.MethodHead, "/v2/acme/app/manifests/1.0"},
				{http.MethodGet, "/v2/acme/app/manifests/nope"},
				{http.MethodGet, "/v2/-/x/tags/list"},
				{http.MethodDelete, "/"},
				{http.MethodPut, "/-/sign-in"},
				{http.MethodGet, "/healthz"},
			}
			with := map[string]answer{}
			for _, tg := range targets {
				with[tg.method+" "+tg.path] = fetchAnswer(t, tg.method, base+tg.path)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}

			// The same data with web.enabled off: / is the API's, and
			// every answer above but the web's is the same.
			cfg.Web.Enabled = false
			base, _ = start(t, cfg, io.Discard)
			if a := fetchAnswer(t, http.MethodGet, base+"/"); a.status != http.StatusNotFound || a.dist == "" || !strings.Contains(a.body, `"NOT_FOUND"`) {
				t.Errorf("GET / with web off: got %d; body %s; want the API's 404", a.status, a.body)
			}
			for _, tg := range targets {
				key := tg.method + " " + tg.path
				if got := fetchAnswer(t, tg.method, base+tg.path); got != with[key] {
					t.Errorf("%s: with the web interface %s, without %s; want the same", key, show(with[key]), show(got))
				}
			}
		})
	}
}

func show(a answer) string {
	return fmt.Sprintf("%d %q %q %.200q", a.status, a.ctype, a.dist, a.body)
}
