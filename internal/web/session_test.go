package web_test

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/meta"
)

// cookieNamed is the response's Set-Cookie of name, or nil.
func cookieNamed(p page, name string) *http.Cookie {
	for _, c := range p.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestSignIn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *webEnv) {
		e.addUser("alice", "alice-password", false)
		b := e.browser()

		form := b.get("/-/sign-in?next=/-/namespaces/acme")
		if form.StatusCode != http.StatusOK || !strings.Contains(form.Body, `name="password"`) {
			t.Fatalf("GET /-/sign-in: got %d, want 200 and the form; body\n%s", form.StatusCode, form.Body)
		}
		c := cookieNamed(form, "berth_csrf")
		if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Path != "/" {
			t.Fatalf("berth_csrf cookie: got %+v, want HttpOnly, SameSite=Strict, Path=/, not Secure over plain HTTP", c)
		}
		csrf := csrfOf(t, form)
		if csrf != c.Value {
			t.Errorf("the form's csrf %q is not the cookie's %q", csrf, c.Value)
		}
		if !strings.Contains(form.Body, `name="next" value="/-/namespaces/acme"`) {
			t.Errorf("the form does not carry next=/-/namespaces/acme")
		}

		// A wrong password: 401, the form again with the name kept.
		p := b.post("/-/sign-in", url.Values{"user": {"alice"}, "password": {"nope"}, "next": {"/-/namespaces/acme"}}, csrf)
		if p.StatusCode != http.StatusUnauthorized || !strings.Contains(p.Body, "Wrong user name or password") ||
			!strings.Contains(p.Body, `value="alice"`) {
			t.Errorf("a wrong password: got %d, want 401 and the form with the message; body\n%s", p.StatusCode, p.Body)
		}
		if cookieNamed(p, "berth_session") != nil || e.countSessions() != 0 {
			t.Errorf("a wrong password started a session")
		}

		// The right one: 303 to next, the session cookie, one row.
		p = b.post("/-/sign-in", url.Values{"user": {"alice"}, "password": {"alice-password"}, "next": {"/-/namespaces/acme"}}, csrf)
		if p.StatusCode != http.StatusSeeOther || p.Header.Get("Location") != "/-/namespaces/acme" {
			t.Fatalf("signing in: got %d to %q, want 303 to /-/namespaces/acme; body\n%s", p.StatusCode, p.Header.Get("Location"), p.Body)
		}
		s := cookieNamed(p, "berth_session")
		if s == nil || !s.HttpOnly || s.SameSite != http.SameSiteLaxMode || s.Path != "/" || s.Secure || s.MaxAge <= 0 {
			t.Fatalf("session cookie: got %+v, want HttpOnly, SameSite=Lax, Path=/, not Secure, with a lifetime", s)
		}
		if want := 12 * 3600; s.MaxAge < want-5 || s.MaxAge > want {
			t.Errorf("session cookie Max-Age: got %d, want about %d (web.session_ttl)", s.MaxAge, want)
		}
		if e.countSessions() != 1 {
			t.Errorf("after sign-in: %d sessions, want 1", e.countSessions())
		}
		home := b.get("/")
		if !strings.Contains(home.Body, "Signed in as <strong>alice</strong>") || !strings.Contains(home.Body, `action="/-/sign-out"`) {
			t.Errorf("the home page does not show alice signed in with a sign-out form:\n%s", home.Body)
		}
		if strings.Contains(home.Body, `href="/-/collector"`) {
			t.Errorf("the collector's link is shown to a user who is not an administrator")
		}
		// Signed in, the sign-in page sends the visitor on.
		if p := b.get("/-/sign-in?next=/-/policies"); p.StatusCode != http.StatusSeeOther || p.Header.Get("Location") != "/-/policies" {
			t.Errorf("GET /-/sign-in signed in: got %d to %q, want 303 to /-/policies", p.StatusCode, p.Header.Get("Location"))
		}

		// Sign out: the row goes, the cookie is cleared, the old cookie
		// signs no one in.
		old := *s
		p = b.post("/-/sign-out", nil, csrfOf(t, home))
		if p.StatusCode != http.StatusSeeOther || p.Header.Get("Location") != "/?done=signed-out" {
			t.Fatalf("signing out: got %d to %q, want 303 to /?done=signed-out", p.StatusCode, p.Header.Get("Location"))
		}
		if c := cookieNamed(p, "berth_session"); c == nil || c.MaxAge >= 0 {
			t.Errorf("sign-out: session cookie %+v, want it deleted", c)
		}
		if e.countSessions() != 0 {
			t.Errorf("after sign-out: %d sessions, want 0", e.countSessions())
		}
		if p := b.get("/?done=signed-out"); !strings.Contains(p.Body, "You are signed out.") || !strings.Contains(p.Body, `href="/-/sign-in?next=`) {
			t.Errorf("after sign-out the home page has no flash or no sign-in link:\n%s", p.Body)
		}
		b.cookies["berth_session"] = &old
		if p := b.get("/"); strings.Contains(p.Body, "Signed in as") {
			t.Errorf("the signed-out session's cookie still signs in")
		}
	})
}

// Only a local path is a destination after sign-in.
func TestSignInNext(t *testing.T) {
	e := newWebEnv(t, backend(t))
	e.addUser("alice", "alice-password", false)
	for _, tc := range []struct{ next, want string }{
		{"/-/repositories/acme/app?after=v1", "/-/repositories/acme/app?after=v1"},
		{"", "/"},
		{"//evil.example/x", "/"},
		{"/\\evil.example", "/"},
		{"https://evil.example/", "/"},
		{"javascript:alert(1)", "/"},
		{"/-/sign-out", "/"},
		{"/a\nb", "/"},
	} {
		b := e.browser()
		csrf := csrfOf(t, b.get("/-/sign-in"))
		p := b.post("/-/sign-in", url.Values{"user": {"alice"}, "password": {"alice-password"}, "next": {tc.next}}, csrf)
		if got := p.Header.Get("Location"); p.StatusCode != http.StatusSeeOther || got != tc.want {
			t.Errorf("next=%q: got %d to %q, want 303 to %q", tc.next, p.StatusCode, got, tc.want)
		}
	}
}

func TestSignInRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *webEnv) {
		e.addUser("alice", "alice-password", false)
		e.createNamespace("acme", false)
		robot, err := e.Auth.AddRobot(e.Ctx, "acme+ci", auth.RoleWrite, "", nil, meta.ActorOperator)
		if err != nil {
			t.Fatal(err)
		}
		good := url.Values{"user": {"alice"}, "password": {"alice-password"}}

		b := e.browser()
		csrf := csrfOf(t, b.get("/-/sign-in"))
		// A robot.
		p := b.post("/-/sign-in", url.Values{"user": {robot.Name}, "password": {robot.Secret}}, csrf)
		if p.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, "Robot accounts cannot sign in") {
			t.Errorf("a robot signing in: got %d, want 403 and why; body\n%s", p.StatusCode, p.Body)
		}
		// CSRF: no token, a wrong token, another site's Origin, a
		// cross-site fetch. Each 403, no session.
		for name, req := range map[string]func() page{
			"no token":    func() page { return b.post("/-/sign-in", good, "") },
			"wrong token": func() page { return b.post("/-/sign-in", good, strings.Repeat("x", 43)) },
			"origin": func() page {
				f := url.Values{"csrf": {csrf}, "user": good["user"], "password": good["password"]}
				return b.do(http.MethodPost, "/-/sign-in", f, map[string]string{"Origin": "https://evil.example"})
			},
			"sec-fetch-site": func() page {
				f := url.Values{"csrf": {csrf}, "user": good["user"], "password": good["password"]}
				return b.do(http.MethodPost, "/-/sign-in", f, map[string]string{"Sec-Fetch-Site": "cross-site"})
			},
			"another browser's token": func() page {
				other := e.browser()
				return other.post("/-/sign-in", good, csrf)
			},
		} {
			p := req()
			if p.StatusCode != http.StatusForbidden || !strings.Contains(p.Body, "Request refused") {
				t.Errorf("%s: got %d, want 403 Request refused; body\n%s", name, p.StatusCode, p.Body)
			}
			if cookieNamed(p, "berth_session") != nil || e.countSessions() != 0 {
				t.Errorf("%s: a session was started", name)
			}
			if p.Header.Get("Content-Security-Policy") == "" {
				t.Errorf("%s: the refusal has no CSP", name)
			}
		}
		// The same form without the extra headers (an older browser) is
		// accepted: they are checked only when present.
		f := url.Values{"csrf": {csrf}, "user": good["user"], "password": good["password"]}
		if p := b.do(http.MethodPost, "/-/sign-in", f, nil); p.StatusCode != http.StatusSeeOther {
			t.Errorf("a same-site POST without Origin: got %d, want 303", p.StatusCode)
		}

		// A signed-in POST must carry the session's token, not the
		// signed-out cookie's.
		if p := b.post("/-/sign-out", nil, csrf); p.StatusCode != http.StatusForbidden || e.countSessions() != 1 {
			t.Errorf("sign-out with the signed-out token: got %d and %d sessions, want 403 and 1", p.StatusCode, e.countSessions())
		}

		// The throttle: five failures, then even the right password
		// waits, answered 429 with Retry-After. (Bob: alice's right
		// password is remembered a minute, as on the API's Basic path.)
		e.addUser("bob", "bob-password", false)
		good = url.Values{"user": {"bob"}, "password": {"bob-password"}}
		t2 := e.browser()
		csrf = csrfOf(t, t2.get("/-/sign-in"))
		for range 5 {
			t2.post("/-/sign-in", url.Values{"user": {"bob"}, "password": {"wrong"}}, csrf)
		}
		p = t2.post("/-/sign-in", good, csrf)
		if p.StatusCode != http.StatusTooManyRequests || p.Header.Get("Retry-After") == "" || !strings.Contains(p.Body, "Too many failed sign-ins") {
			t.Errorf("after 5 failures: got %d, Retry-After %q, want 429 with the wait; body\n%s", p.StatusCode, p.Header.Get("Retry-After"), p.Body)
		}
		e.Clock.Add(2 * time.Second)
		if p := t2.post("/-/sign-in", good, csrf); p.StatusCode != http.StatusSeeOther {
			t.Errorf("after the wait: got %d, want 303", p.StatusCode)
		}
	})
}

// A password change and an account deletion end the account's sessions
// at the next click.
func TestSessionEnds(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *webEnv) {
		e.addUser("alice", "alice-password", false)
		e.addUser("bob", "bob-password", false)
		a, bob := e.browser(), e.browser()
		a.signIn("alice", "alice-password")
		bob.signIn("bob", "bob-password")
		if err := e.Auth.SetPassword(e.Ctx, "alice", "alice-password-2"); err != nil {
			t.Fatal(err)
		}
		p := a.get("/")
		if strings.Contains(p.Body, "Signed in as") {
			t.Errorf("alice is still signed in after her password changed")
		}
		if c := cookieNamed(p, "berth_session"); c == nil || c.MaxAge >= 0 {
			t.Errorf("the ended session's cookie is not cleared: %+v", c)
		}
		if !strings.Contains(bob.get("/").Body, "Signed in as <strong>bob</strong>") {
			t.Errorf("bob was signed out by alice's password change")
		}
		if err := e.Auth.DeleteAccount(e.Ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(bob.get("/").Body, "Signed in as") {
			t.Errorf("bob is still signed in after his account was deleted")
		}
		if n := e.countSessions(); n != 0 {
			t.Errorf("%d sessions left, want 0", n)
		}
		// Idle for web.session_idle: signed out.
		a.signIn("alice", "alice-password-2")
		e.Clock.Add(2 * time.Hour)
		if strings.Contains(a.get("/").Body, "Signed in as") {
			t.Errorf("alice is still signed in after 2 h idle")
		}
	})
}

// Over TLS, directly or through a trusted proxy, the cookies are Secure
// and named with the __Host- prefix.
func TestCookiesOverTLS(t *testing.T) {
	check := func(t *testing.T, e *webEnv, hdr map[string]string, secure bool) {
		t.Helper()
		b := e.browser()
		for k, v := range hdr {
			b.header.Set(k, v)
		}
		session, csrfName := "berth_session", "berth_csrf"
		if secure {
			session, csrfName = "__Host-berth_session", "__Host-berth_csrf"
		}
		form := b.get("/-/sign-in")
		if c := cookieNamed(form, csrfName); c == nil || c.Secure != secure {
			t.Fatalf("CSRF cookie %s: got %+v, want Secure %v", csrfName, c, secure)
		}
		origin := e.Web.URL
		if secure {
			origin = "https://" + strings.TrimPrefix(strings.TrimPrefix(e.Web.URL, "http://"), "https://")
		}
		f := url.Values{"csrf": {csrfOf(t, form)}, "user": {"alice"}, "password": {"alice-password"}}
		p := b.do(http.MethodPost, "/-/sign-in", f, map[string]string{"Origin": origin, "Sec-Fetch-Site": "same-origin"})
		c := cookieNamed(p, session)
		if p.StatusCode != http.StatusSeeOther || c == nil || c.Secure != secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" {
			t.Fatalf("signing in: got %d and cookie %s %+v, want 303 and Secure %v, HttpOnly, Path=/, no Domain", p.StatusCode, session, c, secure)
		}
		if !strings.Contains(b.get("/").Body, "Signed in as") {
			t.Errorf("the %s cookie does not sign in", session)
		}
	}
	b := backend(t)
	t.Run("tls", func(t *testing.T) {
		e := newWebEnv(t, b, func(o *envOptions) { o.tls = true })
		e.addUser("alice", "alice-password", false)
		check(t, e, nil, true)
	})
	t.Run("trusted proxy", func(t *testing.T) {
		e := newWebEnv(t, b, func(o *envOptions) { o.proxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
		e.addUser("alice", "alice-password", false)
		check(t, e, map[string]string{"X-Forwarded-Proto": "https"}, true)
	})
	t.Run("untrusted proxy", func(t *testing.T) {
		e := newWebEnv(t, b, func(o *envOptions) { o.proxies = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")} })
		e.addUser("alice", "alice-password", false)
		check(t, e, map[string]string{"X-Forwarded-Proto": "https"}, false)
	})
}
