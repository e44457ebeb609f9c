package web

// Sign-in, sign-out, the session cookie and CSRF (docs/design/web.md,
// "Sign-in and sessions", "CSRF, CSP, headers").

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/berth/berth/internal/auth"
)

// Cookie names; over TLS they take the __Host- prefix, which the browser
// only accepts from a secure origin for the whole host (no Domain, Path
// /), so a sibling subdomain cannot plant one.
const (
	sessionCookie = "berth_session"
	csrfCookie    = "berth_csrf"
	hostPrefix    = "__Host-"
)

// maxFormBytes bounds a POST body: the forms are a few short fields.
const maxFormBytes = 64 << 10

// visit is what the interface knows of a request's visitor.
type visit struct {
	subject  auth.Subject
	signedIn bool
	token    string // the session's token, when signed in
	// csrf is the token this response's forms carry: the session's, or,
	// signed out, the berth_csrf cookie's (a new one is set when the
	// request had none).
	csrf string
	// csrfCookie is the berth_csrf cookie as the request sent it: what a
	// signed-out POST's form must match.
	csrfCookie string
	client     string
	secure     bool // the client spoke TLS, directly or to a trusted proxy
}

type visitKey struct{}

// visitOf is the visitor ServeHTTP found for r.
func visitOf(r *http.Request) *visit {
	if v, ok := r.Context().Value(visitKey{}).(*visit); ok {
		return v
	}
	return &visit{subject: auth.Anonymous}
}

// subjectOf is who makes the request: the session's user, or anonymous
// (also with access control off, where everyone may everything).
func subjectOf(r *http.Request) auth.Subject { return visitOf(r).subject }

// subjectName is the visitor as the log names them: "" when anonymous, as
// the API logs a request that did not authenticate.
func subjectName(v *visit) string {
	if v.subject.IsAnonymous() {
		return ""
	}
	return string(v.subject.Actor)
}

// may reports whether the visitor may do need: always with access control
// off; otherwise as auth.Service.Authorize decides from the database, at
// every request. A failure to decide is a no.
func (h *Handler) may(r *http.Request, need auth.Need) bool {
	return h.authorize(r, need) == nil
}

// authorize is nil when the visitor may do need; otherwise errNotFound for
// a read (a private namespace answers as one that does not exist) and
// errForbidden for anything else, or the failure to decide.
func (h *Handler) authorize(r *http.Request, need auth.Need) error {
	if h.opts.Auth == nil {
		return nil
	}
	err := h.opts.Auth.Authorize(r.Context(), subjectOf(r), need)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, auth.ErrDenied):
		return err
	case need.Action == auth.ActionPull:
		return fmt.Errorf("%w: %w", errNotFound, err)
	default:
		return fmt.Errorf("%w: %w", errForbidden, err)
	}
}

// cookieName is name with the __Host- prefix over TLS.
func cookieName(name string, secure bool) string {
	if secure {
		return hostPrefix + name
	}
	return name
}

// identify finds the visitor: the session of the session cookie, else a
// signed-out visitor with a berth_csrf cookie (set now if absent).
func (h *Handler) identify(w http.ResponseWriter, r *http.Request, v *visit) error {
	if h.opts.Auth != nil {
		if c, err := r.Cookie(cookieName(sessionCookie, v.secure)); err == nil && c.Value != "" {
			s, err := h.opts.Auth.Session(r.Context(), c.Value)
			switch {
			case err == nil:
				v.subject, v.signedIn, v.token, v.csrf = s.Subject, true, c.Value, s.CSRF
				return nil
			case errors.Is(err, auth.ErrUnauthenticated):
				// Ended (expired, idle, signed out elsewhere, password
				// changed): forget the cookie.
				h.setSessionCookie(w, v, "", time.Time{})
			default:
				return err
			}
		}
	}
	if c, err := r.Cookie(cookieName(csrfCookie, v.secure)); err == nil && len(c.Value) >= 32 {
		v.csrfCookie, v.csrf = c.Value, c.Value
		return nil
	}
	v.csrf = newToken()
	http.SetCookie(w, &http.Cookie{Name: cookieName(csrfCookie, v.secure), Value: v.csrf, Path: "/",
		HttpOnly: true, Secure: v.secure, SameSite: http.SameSiteStrictMode})
	return nil
}

// setSessionCookie sets the session cookie to token until expires, or,
// with token "", deletes it.
func (h *Handler) setSessionCookie(w http.ResponseWriter, v *visit, token string, expires time.Time) {
	c := &http.Cookie{Name: cookieName(sessionCookie, v.secure), Value: token, Path: "/",
		HttpOnly: true, Secure: v.secure, SameSite: http.SameSiteLaxMode}
	if token == "" {
		c.MaxAge = -1
	} else {
		c.Expires = expires.UTC()
		c.MaxAge = max(1, int(expires.Sub(h.now()).Seconds()))
	}
	http.SetCookie(w, c)
}

// checkCSRF checks that a POST comes from this site's own form: the
// browser's Sec-Fetch-Site and Origin, when sent, name this origin, and
// the form's csrf field equals the session's token (signed in) or the
// berth_csrf cookie (signed out), compared in constant time. It parses
// the form. Every POST handler calls it first; a refusal is errCSRF (403)
// and must change nothing.
func checkCSRF(r *http.Request) error {
	if r.Method != http.MethodPost {
		return fmt.Errorf("%s, want POST: %w", r.Method, errMethod)
	}
	v := visitOf(r)
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return fmt.Errorf("the browser says the form came from another site (Sec-Fetch-Site: %s): %w", site, errCSRF)
	}
	if origin := r.Header.Get("Origin"); origin != "" && !strings.EqualFold(origin, ownOrigin(r, v.secure)) {
		return fmt.Errorf("the form came from %s, not from this site: %w", origin, errCSRF)
	}
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("reading the form: %w: %w", err, errBadForm)
	}
	want := v.csrf
	if !v.signedIn {
		want = v.csrfCookie
	}
	got := r.PostForm.Get("csrf")
	if want == "" || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return fmt.Errorf("the form's token does not match (reload the page and try again): %w", errCSRF)
	}
	return nil
}

// ownOrigin is the origin the browser sees for this server.
func ownOrigin(r *http.Request, secure bool) string {
	if secure {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// secure reports whether the client spoke TLS: to berth, or to a trusted
// proxy that says so (X-Forwarded-Proto: https, the hop nearest berth).
func (h *Handler) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	peer, err := netip.ParseAddr(peerHost(r))
	if err != nil {
		return false
	}
	trusted := false
	for _, p := range h.opts.TrustedProxies {
		if p.Contains(peer.Unmap()) {
			trusted = true
			break
		}
	}
	if !trusted {
		return false
	}
	proto := r.Header.Get("X-Forwarded-Proto")
	if i := strings.LastIndexByte(proto, ','); i >= 0 {
		proto = proto[i+1:]
	}
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

// peerHost is the address of the connection's peer.
func peerHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// localPath returns next when it is a path on this site ("/…", not
// "//host" nor "/\host", no scheme, no control character), else "/": a
// sign-in never sends its visitor elsewhere.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsRune(next, '\\') {
		return "/"
	}
	for i := 0; i < len(next); i++ {
		if next[i] < 0x20 || next[i] == 0x7f {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || strings.HasPrefix(u.Path, "/-/sign-") {
		return "/"
	}
	return next
}

// signInView is the sign-in page's data.
type signInView struct {
	Next  string
	User  string
	Error string
}

// signInForm shows the sign-in form (GET /-/sign-in?next=).
func (h *Handler) signInForm(w http.ResponseWriter, r *http.Request) error {
	next := localPath(r.URL.Query().Get("next"))
	if visitOf(r).signedIn {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return nil
	}
	return h.render(w, r, http.StatusOK, "signin", signInView{Next: next})
}

// signIn checks the user's name and password (POST /-/sign-in) and starts
// a session: 303 to the local path in next. A wrong password answers 401,
// a robot 403, the throttle 429 with the wait, each on the form again.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) error {
	if h.opts.Auth == nil {
		return fmt.Errorf("access control is off; there is nothing to sign in to: %w", errNotFound)
	}
	if err := checkCSRF(r); err != nil {
		return err
	}
	v := visitOf(r)
	form := signInView{Next: localPath(r.PostForm.Get("next")), User: r.PostForm.Get("user")}
	s, err := h.opts.Auth.StartSession(r.Context(), form.User, r.PostForm.Get("password"), v.client)
	var te *auth.ThrottledError
	status := 0
	switch {
	case err == nil:
	case errors.As(err, &te):
		form.Error = fmt.Sprintf("Too many failed sign-ins. Try again in %s.", te.RetryAfter.Round(time.Second))
		w.Header().Set("Retry-After", fmt.Sprint(int(te.RetryAfter.Round(time.Second)/time.Second)))
		status = http.StatusTooManyRequests
	case errors.Is(err, auth.ErrUnauthenticated):
		form.Error = "Wrong user name or password."
		status = http.StatusUnauthorized
	case errors.Is(err, auth.ErrRobotSignIn):
		form.Error = "Robot accounts cannot sign in: they are for machines. Sign in as a user."
		status = http.StatusForbidden
	default:
		return err
	}
	if status != 0 {
		if rerr := h.render(w, r, status, "signin", form); rerr != nil {
			return rerr
		}
		return fmt.Errorf("signing in %q: %w", form.User, err) // for the log
	}
	v.subject = s.Subject // the log names who signed in
	h.setSessionCookie(w, v, s.Token, s.ExpiresAt)
	http.Redirect(w, r, form.Next, http.StatusSeeOther)
	return nil
}

// signOut ends the session (POST /-/sign-out): 303 to the home page.
func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) error {
	v := visitOf(r)
	if !v.signedIn {
		// Nothing to end (the session ended already): forget the cookie.
		h.setSessionCookie(w, v, "", time.Time{})
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return nil
	}
	if err := checkCSRF(r); err != nil {
		return err
	}
	if err := h.opts.Auth.EndSession(r.Context(), v.token); err != nil {
		return err
	}
	h.setSessionCookie(w, v, "", time.Time{})
	http.Redirect(w, r, "/?done=signed-out", http.StatusSeeOther)
	return nil
}
