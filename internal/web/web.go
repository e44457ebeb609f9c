// Package web is berth's web interface (docs/design/web.md): server-rendered
// pages on / and /-/ of the registry's port, over the same use cases the
// API calls (internal/registry, internal/auth, the collector's status),
// never the store. Templates, the stylesheet and the script are embedded.
//
// A request is parsed once into a Route; the page of its kind answers it,
// returning an error that one table maps to a status and the error page
// (errors.go). Every response carries the security headers (headers.go);
// every page is rendered into the layout by render (render.go), which
// gives it the visitor, the CSRF token and the flash message. Sessions,
// sign-in and CSRF are in session.go.
//
// Adding a page: one file with a handler, registered in Handler.pages by
// its Kind, and one template (templates/<name>.html) defining the blocks
// "title" and "main" of the layout.
package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/registry"
)

// Authenticator is what the web interface needs of access control
// (*auth.Service).
type Authenticator interface {
	StartSession(ctx context.Context, name, password, client string) (auth.Session, error)
	Session(ctx context.Context, token string) (auth.Session, error)
	EndSession(ctx context.Context, token string) error
	Authorize(ctx context.Context, sub auth.Subject, needs ...auth.Need) error
	AccountGrants(ctx context.Context, account string) ([]meta.Grant, error)
}

var _ Authenticator = (*auth.Service)(nil)

// Collector is what the pages read of the garbage collector.
type Collector interface {
	Status(ctx context.Context, reclaimable bool) (gc.Status, error)
	Activity() gc.Activity
}

var _ Collector = (*gc.Collector)(nil)

// Options configures the Handler.
type Options struct {
	// Registry serves every page's data.
	Registry *registry.Registry
	// Auth, when set, turns access control on: visitors sign in, and
	// every page is authorized from the database. nil: everyone may do
	// everything, and the pages say so.
	Auth Authenticator
	// Collector serves the collector page; nil when there is none.
	Collector Collector
	// CollectorWorkers is how many background workers the collector runs
	// in this process (gc.workers); 0: none, and the page says so.
	CollectorWorkers int
	// Logger receives one line per request; default discards.
	Logger *slog.Logger
	// TrustedProxies are the peers whose X-Forwarded-Proto says whether
	// the client spoke TLS (for the cookies' Secure flag and name).
	TrustedProxies []netip.Prefix
	// ClientAddr is the client's address (for the sign-in throttle and
	// the log), as the API sees it; default: the connection's peer.
	ClientAddr func(r *http.Request) string
	// RequestID is the id the request's log line carries and its answer
	// returns in X-Request-Id, as the API chooses it (the client's, when
	// sane); default: a fresh random one.
	RequestID func(r *http.Request) string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Handler serves the web interface.
type Handler struct {
	opts   Options
	reg    *registry.Registry
	log    *slog.Logger
	now    func() time.Time
	pages  map[Kind]page
	views  map[string]*template.Template
	assets *assets
}

// page is one kind of route's handlers by method; nil: not allowed.
type page struct {
	get  func(w http.ResponseWriter, r *http.Request) error
	post func(w http.ResponseWriter, r *http.Request) error
}

// New returns the Handler. It parses the templates and hashes the assets
// once; an error is a template that does not parse.
func New(opts Options) (*Handler, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ClientAddr == nil {
		opts.ClientAddr = peerHost
	}
	if opts.RequestID == nil {
		opts.RequestID = func(*http.Request) string { return rand.Text() }
	}
	h := &Handler{opts: opts, reg: opts.Registry, log: opts.Logger, now: opts.Now}
	var err error
	if h.assets, err = loadAssets(); err != nil {
		return nil, err
	}
	if h.views, err = parseViews(); err != nil {
		return nil, err
	}
	h.pages = h.routes()
	return h, nil
}

// routes maps each kind of route to its page. A kind absent here answers
// 404: the pages of docs/design/web.md are added one file at a time.
func (h *Handler) routes() map[Kind]page {
	return map[Kind]page{
		KindHome:       {get: h.home},
		KindSignIn:     {get: h.signInForm, post: h.signIn},
		KindSignOut:    {post: h.signOut},
		KindNamespace:  {get: h.namespace},
		KindRepository: {get: h.repository},
		KindTag:        {get: h.tag},
		KindTagRestore: {post: h.tagRestore},
		KindTagExpiry:  {post: h.tagExpiry},
		KindPolicies:   {get: h.policies},
		KindCollector:  {get: h.collector},
	}
}

// Kind is what a path names.
type Kind int

const (
	KindUnknown    Kind = iota
	KindHome            // /
	KindSignIn          // /-/sign-in
	KindSignOut         // /-/sign-out
	KindNamespace       // /-/namespaces/<ns>
	KindRepository      // /-/repositories/<repo>
	KindTag             // /-/repositories/<repo>/-/tags/<tag>
	KindTagRestore      // /-/repositories/<repo>/-/tags/<tag>/restore
	KindTagExpiry       // /-/repositories/<repo>/-/tags/<tag>/expiry
	KindPolicies        // /-/policies
	KindCollector       // /-/collector
	KindAsset           // /-/assets/<hash>/<file>
)

var kindNames = [...]string{"unknown", "home", "sign-in", "sign-out", "namespace", "repository", "tag",
	"tag-restore", "tag-expiry", "policies", "collector", "asset"}

func (k Kind) String() string { return kindNames[k] }

// Route is a parsed path. Names are validated: a Route of a known kind
// names a well-formed namespace, repository or tag.
type Route struct {
	Kind      Kind
	Namespace string // KindNamespace
	Repo      string // KindRepository and the tag kinds
	Tag       string // the tag kinds
	Hash      string // KindAsset: the content hash in the URL
	File      string // KindAsset: the file name
}

// ParseRoute parses a path as the client sent it, escapes included (no
// name of the interface needs one, so a path holding "%" names nothing).
// A repository name never has a component "-" (the OCI grammar starts a
// component with a letter or digit), so "/-/" separates it from what
// follows.
func ParseRoute(path string) Route {
	if path == "/" {
		return Route{Kind: KindHome}
	}
	rest, ok := strings.CutPrefix(path, "/-/")
	if !ok || strings.Contains(rest, "%") {
		return Route{}
	}
	switch rest {
	case "sign-in":
		return Route{Kind: KindSignIn}
	case "sign-out":
		return Route{Kind: KindSignOut}
	case "policies":
		return Route{Kind: KindPolicies}
	case "collector":
		return Route{Kind: KindCollector}
	}
	if ns, ok := strings.CutPrefix(rest, "namespaces/"); ok {
		if !strings.Contains(ns, "/") && oci.ValidateRepoName(ns) == nil {
			return Route{Kind: KindNamespace, Namespace: ns}
		}
		return Route{}
	}
	if a, ok := strings.CutPrefix(rest, "assets/"); ok {
		hash, file, ok := strings.Cut(a, "/")
		if ok && hash != "" && file != "" && !strings.Contains(file, "/") {
			return Route{Kind: KindAsset, Hash: hash, File: file}
		}
		return Route{}
	}
	if r, ok := strings.CutPrefix(rest, "repositories/"); ok {
		return parseRepoRoute(r)
	}
	return Route{}
}

// parseRepoRoute parses what follows /-/repositories/: a name, then
// optionally /-/tags/<tag>[/restore|/expiry].
func parseRepoRoute(s string) Route {
	repo, sub, hasSub := strings.Cut(s, "/-/")
	if oci.ValidateRepoName(repo) != nil {
		return Route{}
	}
	if !hasSub {
		return Route{Kind: KindRepository, Repo: repo}
	}
	t, ok := strings.CutPrefix(sub, "tags/")
	if !ok {
		return Route{}
	}
	tag, action, _ := strings.Cut(t, "/")
	if oci.ValidateTag(tag) != nil {
		return Route{}
	}
	rt := Route{Repo: repo, Tag: tag}
	switch {
	case !strings.Contains(t, "/"):
		rt.Kind = KindTag
	case action == "restore":
		rt.Kind = KindTagRestore
	case action == "expiry":
		rt.Kind = KindTagExpiry
	default:
		return Route{}
	}
	return rt
}

// Paths of the pages, for links and redirects; names are valid path
// segments by the OCI grammar, so they need no escaping.
func NamespacePath(ns string) string    { return "/-/namespaces/" + ns }
func RepositoryPath(repo string) string { return "/-/repositories/" + repo }
func TagPath(repo, tag string) string   { return RepositoryPath(repo) + "/-/tags/" + tag }

type routeKey struct{}

// routeOf is the route ServeHTTP parsed for r.
func routeOf(r *http.Request) Route {
	rt, _ := r.Context().Value(routeKey{}).(Route)
	return rt
}

// ServeHTTP answers one request and logs it once.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	id := h.opts.RequestID(r)
	rec.Header().Set("X-Request-Id", id)
	rt := ParseRoute(escapedPath(r))
	v := &visit{client: h.opts.ClientAddr(r), secure: h.secure(r), subject: auth.Anonymous}
	r = r.WithContext(context.WithValue(context.WithValue(r.Context(), routeKey{}, rt), visitKey{}, v))
	securityHeaders(rec.Header())

	err := h.serve(rec, r, rt, v)
	if err != nil && rec.status == 0 {
		h.fail(rec, r, err)
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("uri", requestURI(r)),
		slog.Int("status", status),
		slog.Duration("duration", time.Since(start)),
		slog.Int64("bytes_out", rec.bytes),
		slog.String("route", "web-"+rt.Kind.String()),
		slog.String("subject", subjectName(v)),
		slog.String("client", v.client),
		slog.String("user_agent", r.UserAgent()),
		slog.String("request_id", id),
	}
	level := slog.LevelInfo
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
		if status >= http.StatusInternalServerError {
			level = slog.LevelError
		}
	}
	h.log.LogAttrs(r.Context(), level, "request", attrs...)
}

// serve finds the visitor and runs the page of rt.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, rt Route, v *visit) error {
	if rt.Kind == KindAsset {
		return h.serveAsset(w, r, rt)
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	}
	if err := h.identify(w, r, v); err != nil {
		return err
	}
	p, ok := h.pages[rt.Kind]
	if !ok {
		return errNotFound
	}
	var fn func(w http.ResponseWriter, r *http.Request) error
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		fn = p.get
	case http.MethodPost:
		fn = p.post
	}
	if fn == nil {
		var allow []string
		if p.get != nil {
			allow = append(allow, "GET, HEAD")
		}
		if p.post != nil {
			allow = append(allow, "POST")
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return fmt.Errorf("%s %s: %w", r.Method, rt.Kind, errMethod)
	}
	if r.Method == http.MethodPost && rt.Kind != KindSignOut {
		// Every POST handler checks it first too; checked here as well so
		// that a page added later cannot forget it. Sign-out is the one
		// exception: with no session left (it expired under an open page,
		// whose token was the session's) it only forgets the cookie, and
		// with one it checks the token itself.
		if err := checkCSRF(r); err != nil {
			return err
		}
	}
	return fn(w, r)
}

// escapedPath is the path as the client sent it.
func escapedPath(r *http.Request) string {
	if r.URL.RawPath != "" {
		return r.URL.RawPath
	}
	return r.URL.EscapedPath()
}

// requestURI is the request target as sent, for the log.
func requestURI(r *http.Request) string {
	if r.RequestURI != "" {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// recorder remembers the status and counts the bytes of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// newToken is a 256-bit random token, URL-safe.
func newToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Errors of the interface itself; the error table maps them with the
// registry's and auth's sentinels.
var (
	errNotFound  = errors.New("page not found")
	errMethod    = errors.New("method not allowed")
	errForbidden = errors.New("not permitted")
	errBadForm   = errors.New("bad request")
	// errCSRF: a POST whose CSRF token or origin does not check out.
	errCSRF = errors.New("the form could not be verified as coming from this site")
)

// errorEntry is one row of the error table.
type errorEntry struct {
	err    error
	status int
	title  string
}

// errorTable maps an error to the status and title of the error page,
// first match wins. Anything else is a 500, whose text is not shown.
var errorTable = []errorEntry{
	{errNotFound, http.StatusNotFound, "Not found"},
	{registry.ErrNamespaceUnknown, http.StatusNotFound, "Not found"},
	{registry.ErrNameUnknown, http.StatusNotFound, "Not found"},
	{registry.ErrNameInvalid, http.StatusNotFound, "Not found"},
	{registry.ErrTagUnknown, http.StatusNotFound, "Not found"},
	{registry.ErrTagInvalid, http.StatusNotFound, "Not found"},
	{registry.ErrManifestUnknown, http.StatusNotFound, "Not found"},
	{registry.ErrPolicyUnknown, http.StatusNotFound, "Not found"},
	{errMethod, http.StatusMethodNotAllowed, "Method not allowed"},
	{errCSRF, http.StatusForbidden, "Request refused"},
	{errForbidden, http.StatusForbidden, "Not permitted"},
	{auth.ErrDenied, http.StatusForbidden, "Not permitted"},
	{registry.ErrImmutable, http.StatusConflict, "Refused by an immutable rule"},
	{errBadForm, http.StatusBadRequest, "Bad request"},
	{registry.ErrInvalidArgument, http.StatusBadRequest, "Bad request"},
	{registry.ErrDigestInvalid, http.StatusBadRequest, "Bad request"},
	{auth.ErrThrottled, http.StatusTooManyRequests, "Too many attempts"},
	{registry.ErrUnavailable, http.StatusServiceUnavailable, "Storage unavailable"},
}

// errorView is the error page's data.
type errorView struct {
	Status  int
	Title   string
	Message string
}

// fail answers err with the error page (the message is err's text for a
// 4xx: the registry's messages are written for people; never for a
// 5xx, logged instead).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	ev := errorView{Status: http.StatusInternalServerError, Title: "Something went wrong",
		Message: "The server failed to answer; the error is in its log."}
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			ev.Status, ev.Title, ev.Message = e.status, e.title, err.Error()
			break
		}
	}
	var te *auth.ThrottledError
	if errors.As(err, &te) {
		w.Header().Set("Retry-After", strconv.Itoa(int(te.RetryAfter.Round(time.Second)/time.Second)))
	}
	if ev.Status == http.StatusNotFound {
		// Never say which: a private namespace answers as one that does
		// not exist.
		ev.Message = "There is no page here, or you may not see it."
	}
	if rerr := h.render(w, r, ev.Status, "error", ev); rerr != nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(ev.Status)
		fmt.Fprintln(w, ev.Title)
	}
}
