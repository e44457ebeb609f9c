package web_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/meta"
)

var wantHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "same-origin",
	"X-Frame-Options":        "DENY",
}

func checkHeaders(t *testing.T, p page, cache string) {
	t.Helper()
	for k, v := range wantHeaders {
		if got := p.Header.Get(k); got != v {
			t.Errorf("%s %s: %s = %q, want %q", p.Request.Method, p.Request.URL.Path, k, got, v)
		}
	}
	if got := p.Header.Get("Cache-Control"); got != cache {
		t.Errorf("%s %s: Cache-Control = %q, want %q", p.Request.Method, p.Request.URL.Path, got, cache)
	}
}

var assetURL = regexp.MustCompile(`(?:href|src)="(/-/assets/([0-9a-f]{16})/([a-z]+\.(?:css|js)))"`)

// Every response carries CSP and the security headers; pages are not
// cached, assets are, for a year under their content hash.
func TestHeadersAndAssets(t *testing.T) {
	e := newWebEnv(t, backend(t))
	b := e.browser()
	home := b.get("/")
	if home.StatusCode != http.StatusOK || home.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: got %d %q", home.StatusCode, home.Header.Get("Content-Type"))
	}
	checkHeaders(t, home, "no-store")
	for _, path := range []string{"/-/nope", "/-/namespaces/a/b", "/-/repositories/-/x", "/-/assets/0000000000000000/style.css", "/-/%73ign-in"} {
		p := b.get(path)
		if p.StatusCode != http.StatusNotFound || !strings.Contains(p.Body, "<h1>Not found</h1>") {
			t.Errorf("GET %s: got %d, want the 404 page; body\n%s", path, p.StatusCode, p.Body)
		}
		checkHeaders(t, p, "no-store")
	}
	if p := b.do(http.MethodPut, "/", nil, nil); p.StatusCode != http.StatusMethodNotAllowed || p.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("PUT /: got %d, Allow %q; want 405, GET, HEAD", p.StatusCode, p.Header.Get("Allow"))
	} else {
		checkHeaders(t, p, "no-store")
	}
	if p := b.get("/-/sign-out"); p.StatusCode != http.StatusMethodNotAllowed || p.Header.Get("Allow") != "POST" {
		t.Errorf("GET /-/sign-out: got %d, Allow %q; want 405, POST", p.StatusCode, p.Header.Get("Allow"))
	}

	// No inline script or style: every script and stylesheet is an
	// asset, and no element has a style= or an on…= attribute.
	for _, bad := range []string{"<style", "style=", " onclick=", " onload=", "<script>"} {
		if strings.Contains(home.Body, bad) {
			t.Errorf("the home page contains %q", bad)
		}
	}
	found := assetURL.FindAllStringSubmatch(home.Body, -1)
	if len(found) != 2 {
		t.Fatalf("the layout links %d assets, want the stylesheet and the script: %v", len(found), found)
	}
	types := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
	for _, m := range found {
		p := b.get(m[1])
		want := types[m[3][strings.LastIndex(m[3], "."):]]
		if p.StatusCode != http.StatusOK || p.Header.Get("Content-Type") != want || len(p.Body) == 0 {
			t.Errorf("GET %s: got %d %q (%d bytes), want 200 %q", m[1], p.StatusCode, p.Header.Get("Content-Type"), len(p.Body), want)
		}
		checkHeaders(t, p, "public, max-age=31536000, immutable")
		if p := b.do(http.MethodHead, m[1], nil, nil); p.StatusCode != http.StatusOK || p.Body != "" {
			t.Errorf("HEAD %s: got %d with %d bytes", m[1], p.StatusCode, len(p.Body))
		}
	}
	// The layout's landmarks and skip link.
	for _, want := range []string{`<a class="skip" href="#main">`, `<header`, `<nav aria-label="Main">`, `<main id="main"`, `<h1>Namespaces</h1>`, `lang="en"`} {
		if !strings.Contains(home.Body, want) {
			t.Errorf("the home page lacks %s", want)
		}
	}
	if strings.Count(home.Body, "<h1") != 1 {
		t.Errorf("the home page has %d h1, want 1", strings.Count(home.Body, "<h1"))
	}
}

// names lists the namespaces the home page links, in order.
func names(p page) []string {
	var out []string
	for _, m := range regexp.MustCompile(`<th scope="row"><a href="/-/namespaces/([^"]+)">`).FindAllStringSubmatch(p.Body, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestHome(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *webEnv) {
		e.addUser("root", "root-password", true)
		e.addUser("alice", "alice-password", false)
		e.PushImage("open/app", "1.0", []byte("layer of open/app"))
		e.PushImage("acme/app", "1.0", []byte("layer of acme/app"))
		e.PushImage("alice/tools", "1.0", []byte("layer of alice/tools"))
		e.PushImage("secret/app", "1.0", []byte("layer of secret/app"))
		e.createNamespace("empty", true)
		e.Exec(`UPDATE namespace SET public = TRUE WHERE name = 'open'`)
		if err := e.Auth.Grant(e.Ctx, "alice", auth.RoleRead, "acme/app", meta.ActorOperator); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Registry.SetQuota(e.Ctx, "open", 1<<20, nil); err != nil {
			t.Fatal(err)
		}

		anon := e.browser().get("/")
		if got, want := strings.Join(names(anon), " "), "empty open"; got != want {
			t.Errorf("anonymous sees %q, want only the public namespaces %q", got, want)
		}
		for _, secret := range []string{"acme", "secret", "alice"} {
			if strings.Contains(anon.Body, secret) {
				t.Errorf("the anonymous home page names the private namespace %q", secret)
			}
		}
		if !strings.Contains(anon.Body, "1.0 MiB") || !strings.Contains(anon.Body, `<meter`) {
			t.Errorf("the home page does not show open's quota of 1 MiB with a meter:\n%s", anon.Body)
		}

		alice := e.browser()
		alice.signIn("alice", "alice-password")
		if got, want := strings.Join(names(alice.get("/")), " "), "acme alice empty open"; got != want {
			t.Errorf("alice sees %q, want %q (public, her own, her grants')", got, want)
		}
		root := e.browser()
		root.signIn("root", "root-password")
		rootHome := root.get("/")
		if got, want := strings.Join(names(rootHome), " "), "acme alice empty open secret"; got != want {
			t.Errorf("an administrator sees %q, want every namespace %q", got, want)
		}
		if !strings.Contains(rootHome.Body, `href="/-/collector"`) {
			t.Errorf("the collector's link is not shown to an administrator")
		}
	})
}

// With access control off every visitor sees every namespace, and the
// pages say access control is off; a default quota applies to those with
// none of their own.
func TestHomeAuthOff(t *testing.T) {
	e := newWebEnv(t, backend(t), func(o *envOptions) { o.noAuth = true })
	e.PushImage("acme/app", "1.0", []byte("layer"))
	e.createNamespace("other", false)
	if _, err := e.Registry.SetQuota(e.Ctx, "", 10<<30, nil); err != nil {
		t.Fatal(err)
	}
	p := e.browser().get("/")
	if got, want := strings.Join(names(p), " "), "acme other"; got != want {
		t.Errorf("access control off: got %q, want %q", got, want)
	}
	for _, want := range []string{"Access control is off", "10.0 GiB", "(default)", `href="/-/collector"`} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("the home page lacks %q:\n%s", want, p.Body)
		}
	}
	if strings.Contains(p.Body, "Sign in") {
		t.Errorf("the home page offers a sign-in with access control off")
	}
	// A POST is still checked: the double-submit cookie.
	if p := e.browser().post("/-/sign-out", nil, ""); p.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-out with access control off: got %d, want 303 (nothing to end)", p.StatusCode)
	}
}

// The home page is paginated by name, 50 at a time.
func TestHomePages(t *testing.T) {
	e := newWebEnv(t, backend(t), func(o *envOptions) { o.noAuth = true })
	var all []string
	for i := range 60 {
		n := "ns" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		e.createNamespace(n, false)
		all = append(all, n)
	}
	b := e.browser()
	first := b.get("/")
	if got := names(first); len(got) != 50 || got[0] != all[0] || got[49] != all[49] {
		t.Fatalf("first page: got %d namespaces %v", len(got), got)
	}
	next := regexp.MustCompile(`href="(/\?after=[^"]+)" rel="next"`).FindStringSubmatch(first.Body)
	if next == nil || next[1] != "/?after="+all[49] {
		t.Fatalf("first page: next link %v, want /?after=%s", next, all[49])
	}
	second := b.get(next[1])
	if got := names(second); len(got) != 10 || got[0] != all[50] {
		t.Errorf("second page: got %v, want %v", got, all[50:])
	}
	if strings.Contains(second.Body, `rel="next"`) {
		t.Errorf("the last page links a next one")
	}
	if p := b.get("/?after=a/b"); p.StatusCode != http.StatusBadRequest {
		t.Errorf("?after=a/b: got %d, want 400", p.StatusCode)
	}
}
