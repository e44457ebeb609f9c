package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/testenv/registryenv"
	"github.com/berth/berth/internal/web"
)

// webEnv is a registry (registryenv: real store, real bytes, the API
// served for pushes) with the web interface served over httptest on its
// own server.
type webEnv struct {
	*registryenv.Env
	Auth *auth.Service // nil: access control off
	Web  *httptest.Server
	// client follows no redirect: tests look at the 303s.
	client *http.Client
}

type envOptions struct {
	noAuth  bool
	tls     bool
	proxies []netip.Prefix
}

// forEachBackend runs fn on SQLite and PostgreSQL (S3 adds nothing to the
// pages).
func forEachBackend(t *testing.T, fn func(t *testing.T, e *webEnv), opts ...func(*envOptions)) {
	for _, name := range []string{registryenv.SQLite, registryenv.Postgres} {
		t.Run(name, func(t *testing.T) {
			fn(t, newWebEnv(t, registryenv.ByName(t, name), opts...))
		})
	}
}

func newWebEnv(t *testing.T, b registryenv.Backend, opts ...func(*envOptions)) *webEnv {
	t.Helper()
	var o envOptions
	for _, f := range opts {
		f(&o)
	}
	e := &webEnv{Env: registryenv.New(t, b)}
	wo := web.Options{Registry: e.Registry, Now: e.Clock.Now, TrustedProxies: o.proxies}
	if !o.noAuth {
		e.Auth = auth.New(e.Store, auth.Options{Service: "registry.test", Now: e.Clock.Now, HashCost: bcrypt.MinCost})
		if err := e.Auth.Start(e.Ctx); err != nil {
			t.Fatal(err)
		}
		wo.Auth = e.Auth
	}
	h, err := web.New(wo)
	if err != nil {
		t.Fatalf("web.New: %v", err)
	}
	if o.tls {
		e.Web = httptest.NewTLSServer(h)
	} else {
		e.Web = httptest.NewServer(h)
	}
	t.Cleanup(e.Web.Close)
	e.client = e.Web.Client()
	e.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return e
}

// browser is one visitor: the cookies it holds, sent back by name only
// (what a browser would send to this origin).
type browser struct {
	e       *webEnv
	cookies map[string]*http.Cookie
	header  http.Header // sent with every request
}

func (e *webEnv) browser() *browser {
	return &browser{e: e, cookies: map[string]*http.Cookie{}, header: http.Header{}}
}

// page is a response with its body read.
type page struct {
	*http.Response
	Body string
}

func (b *browser) do(method, path string, form url.Values, hdr map[string]string) page {
	b.e.T.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(b.e.Ctx, method, b.e.Web.URL+path, body)
	if err != nil {
		b.e.T.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range b.header {
		req.Header[k] = v
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	for _, c := range b.cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	resp, err := b.e.client.Do(req)
	if err != nil {
		b.e.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.e.T.Fatal(err)
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return page{Response: resp, Body: string(raw)}
}

func (b *browser) get(path string) page { return b.do(http.MethodGet, path, nil, nil) }

// post sends form to path from this site's own page: with the CSRF token
// of the last form seen, and the headers a browser adds to a same-origin
// POST.
func (b *browser) post(path string, form url.Values, csrf string) page {
	b.e.T.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	if csrf != "" {
		f.Set("csrf", csrf)
	}
	return b.do(http.MethodPost, path, f, map[string]string{"Origin": b.e.Web.URL, "Sec-Fetch-Site": "same-origin"})
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf is the CSRF token of the page's forms.
func csrfOf(t *testing.T, p page) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("%s: no csrf field in\n%s", p.Request.URL.Path, p.Body)
	}
	return m[1]
}

// signIn signs the browser in as user and returns the home page's CSRF
// token (the session's).
func (b *browser) signIn(user, password string) string {
	b.e.T.Helper()
	form := b.get("/-/sign-in")
	p := b.post("/-/sign-in", url.Values{"user": {user}, "password": {password}}, csrfOf(b.e.T, form))
	if p.StatusCode != http.StatusSeeOther {
		b.e.T.Fatalf("signing in %s: got %d, want 303; body\n%s", user, p.StatusCode, p.Body)
	}
	return csrfOf(b.e.T, b.get("/"))
}

func (e *webEnv) addUser(name, password string, admin bool) {
	e.T.Helper()
	if err := e.Auth.AddUser(e.Ctx, name, password, admin, meta.ActorOperator); err != nil {
		e.T.Fatal(err)
	}
}

func (e *webEnv) createNamespace(name string, public bool) {
	e.T.Helper()
	if _, _, err := e.Registry.CreateNamespace(e.Ctx, name, nil); err != nil {
		e.T.Fatal(err)
	}
	if public {
		e.Exec(`UPDATE namespace SET public = TRUE WHERE name = '` + name + `'`)
	}
}

// countSessions counts the rows of web_session.
func (e *webEnv) countSessions() int {
	e.T.Helper()
	var n int
	if err := e.Store.DB().QueryRowContext(e.Ctx, `SELECT COUNT(*) FROM web_session`).Scan(&n); err != nil {
		e.T.Fatal(err)
	}
	return n
}

// backend is SQLite, for tests whose subject does not touch the store's
// dialect.
func backend(t *testing.T) registryenv.Backend {
	return registryenv.ByName(t, registryenv.SQLite)
}
