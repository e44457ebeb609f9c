// Package api serves the OCI Distribution API (v1.1) over the registry's use
// cases. It parses each request path once into a Route, calls one handler
// per resource (one file each), and maps every returned error to an OCI
// error code through one table (errors.go). It logs once per request.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/registry"
)

// Options configures the handler.
type Options struct {
	// Logger receives one line per request; default discards.
	Logger *slog.Logger
	// MaxManifestBytes bounds manifest bodies (default and maximum
	// oci.MaxManifestSize).
	MaxManifestBytes int64
	// Collector serves the management API's purge and gc status
	// (mgmt.go); nil answers them 501.
	Collector Collector
	// BodyIdleTimeout, when positive, cuts a request body that sends
	// nothing for that long (idleBody): the request is answered 408 and
	// an upload keeps what it held before it. Zero never cuts one.
	BodyIdleTimeout time.Duration
	// BlobRedirectTTL, when positive and the registry's byte store can
	// redirect (registry.Redirects), answers blob GETs with 307 Temporary
	// Redirect to a URL valid that long, so the bytes bypass berth; HEAD
	// is still answered here. Zero streams every blob through berth.
	BlobRedirectTTL time.Duration
	// Auth, when set, turns access control on (auth.go): every request
	// must be permitted, and /auth/token issues tokens. nil: anyone may
	// do anything (the configuration keeps such a server on loopback).
	Auth Authenticator
	// AuthRealm is the token endpoint's URL in challenges; "" derives it
	// from each request (scheme and Host + /auth/token).
	AuthRealm string
	// Accounts serves the account endpoints of the management API
	// (mgmt_accounts.go): users, robots, grants, visibility, key
	// rotation; nil answers them 501.
	Accounts AccountService
	// TrustedProxies are the peers whose X-Forwarded-For header names the
	// client (peerAddr); none: the client is the connection's peer.
	TrustedProxies []netip.Prefix
	// Registerer, when set, receives the request metrics (metrics.go).
	Registerer prometheus.Registerer
}

type handler struct {
	reg     *registry.Registry
	opts    Options
	log     *slog.Logger
	metrics *httpMetrics

	basicWarned warnOnce
}

// New returns the HTTP handler of the registry.
func New(reg *registry.Registry, opts Options) http.Handler {
	if opts.MaxManifestBytes <= 0 || opts.MaxManifestBytes > oci.MaxManifestSize {
		opts.MaxManifestBytes = oci.MaxManifestSize
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &handler{reg: reg, opts: opts, log: log, metrics: newHTTPMetrics(opts.Registerer)}
}

type routeKey struct{}

// routeOf returns the route ServeHTTP parsed for r.
func routeOf(r *http.Request) Route {
	rt, _ := r.Context().Value(routeKey{}).(Route)
	return rt
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	rt := ParseRoute(requestPath(r.URL))
	route := routeName(rt)
	info := &requestInfo{id: requestID(r), client: peerAddr(r, h.opts.TrustedProxies)}
	ctx := context.WithValue(r.Context(), routeKey{}, rt)
	r = r.WithContext(context.WithValue(ctx, requestInfoKey{}, info))
	rec.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	rec.Header().Set(requestIDHeader, info.id)
	h.metrics.begin()

	in := &countingBody{ReadCloser: http.NoBody}
	if r.Body != nil && r.Body != http.NoBody {
		in.ReadCloser = r.Body
		r.Body = in
	}
	var body *idleBody
	if h.opts.BodyIdleTimeout > 0 && r.Body != http.NoBody && r.Body != nil {
		body = newIdleBody(rec, r.Body, h.opts.BodyIdleTimeout)
		r.Body = body
	}
	err := h.serveRecovering(rec, r, rt)
	var pe *panicError
	panicked := errors.As(err, &pe)
	if body != nil {
		body.done()
		if body.stalled && err != nil && !panicked {
			// Whatever the handler made of the failed read (net/http
			// cancels the request's context with it), this is why.
			err = fmt.Errorf("no byte of the request body for %s: %w", h.opts.BodyIdleTimeout, errBodyIdle)
		}
	}
	if err != nil && rec.status == 0 && !(panicked && pe.abort) {
		var ce *challengeError
		if errors.As(err, &ce) {
			rec.Header().Set("WWW-Authenticate", h.challenge(r, ce))
		}
		if panicked {
			// The handler stopped anywhere: do not reuse the connection.
			rec.Header().Set("Connection", "close")
		}
		writeError(rec, r, err)
	}

	took := time.Since(start)
	status := rec.status
	if status == 0 && !panicked {
		status = http.StatusOK
	}
	h.metrics.end(r.Method, route, status, took, in.n, rec.bytes)
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("uri", requestURI(r)),
		slog.Int("status", status),
		slog.Duration("duration", took),
		slog.Int64("bytes_in", in.n),
		slog.Int64("bytes_out", rec.bytes),
		slog.String("route", route),
		// The subject is "" when the request did not authenticate.
		slog.String("subject", string(info.subject.Actor)),
		slog.String("client", info.client),
		slog.String("request_id", info.id),
		slog.String("user_agent", r.UserAgent()),
	}
	level := slog.LevelInfo
	switch {
	case probe(r, rt, status):
		// A push asks whether each blob and manifest is already there;
		// most are not, and that is the answer it wanted.
		level = slog.LevelDebug
		attrs = append(attrs, slog.String("result", "absent"))
	case err != nil:
		attrs = append(attrs, slog.String("error", err.Error()))
		if status >= http.StatusInternalServerError || (panicked && !pe.abort) {
			level = slog.LevelError
		}
	}
	if panicked && pe.stack != nil {
		attrs = append(attrs, slog.String("stack", string(pe.stack)))
	}
	h.log.LogAttrs(r.Context(), level, "request", attrs...)
	if panicked && pe.afterHeader {
		// The response is under way and cannot say 500 (or the handler
		// aborted it): cut the connection so the client sees it
		// incomplete. net/http does not log ErrAbortHandler (the line
		// above did).
		panic(http.ErrAbortHandler)
	}
}

// probe reports whether r is an existence check answered "no": a HEAD of
// a blob or a manifest answered 404, which every push sends before it
// uploads what is missing.
func probe(r *http.Request, rt Route, status int) bool {
	return r.Method == http.MethodHead && status == http.StatusNotFound && (rt.Kind == KindBlob || rt.Kind == KindManifest)
}

// requestURI is the request target as the client sent it (path and query,
// escapes included), for the log: r.RequestURI, or, for a request built in
// Go rather than read from a client, its URL's.
func requestURI(r *http.Request) string {
	if r.RequestURI != "" {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// panicError is a handler's panic turned into an error, so that the
// request is answered 500 and logged once, with the stack, like any other
// internal error.
type panicError struct {
	value       any
	stack       []byte
	afterHeader bool // the response status was already sent, or abort
	abort       bool // the handler panicked with http.ErrAbortHandler
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// serveRecovering is serve, with a panic recovered into a *panicError.
// The handler's deferred calls (closing a blob reader, rolling back a
// transaction) have run by then. http.ErrAbortHandler, a handler's
// deliberate abort, is recovered too, so that the request is logged, and
// passed on by ServeHTTP afterwards.
func (h *handler) serveRecovering(rec *recorder, r *http.Request, rt Route) (err error) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v == http.ErrAbortHandler {
			err = &panicError{value: v, afterHeader: true, abort: true}
			return
		}
		err = &panicError{value: v, stack: debug.Stack(), afterHeader: rec.status != 0}
	}()
	return h.serve(rec, r, rt)
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, rt Route) error {
	if rt.Kind == KindToken {
		return h.token(w, r)
	}
	a := &access{subject: auth.Anonymous} // access control off: anyone, anonymous
	if h.opts.Auth != nil {
		var err error
		if a, err = h.authenticate(r, needsOf(r, rt), wantsOf(r, rt)); err != nil {
			return err
		}
	}
	r = r.WithContext(withAccess(r.Context(), a))
	if err := rt.Check(); err != nil {
		return err
	}
	switch rt.Kind {
	case KindBase:
		return h.base(w, r)
	case KindCatalog:
		return h.catalog(w, r)
	case KindManifest:
		return h.manifest(w, r, rt)
	case KindBlob:
		return h.blob(w, r, rt)
	case KindUploads:
		return h.uploads(w, r, rt)
	case KindUpload:
		return h.upload(w, r, rt)
	case KindTags:
		return h.tags(w, r, rt)
	case KindReferrers:
		return h.referrers(w, r, rt)
	case KindManagement:
		return h.mgmt(w, r, rt)
	}
	return errRouteUnknown
}

// requestInfo is what the request log knows of a request: its id and
// client from the start (request.go), its subject once authenticated.
type requestInfo struct {
	id      string
	client  string
	subject auth.Subject
}

type requestInfoKey struct{}

// withAccess records the request's access in ctx, and its subject for the
// log and (as the actor) for the registry.
func withAccess(ctx context.Context, a *access) context.Context {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		info.subject = a.subject
	}
	ctx = registry.WithActor(ctx, a.subject.Actor)
	return context.WithValue(ctx, accessKey{}, a)
}

// recorder remembers the status and counts the body bytes sent, for the
// log and the metrics.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (rec *recorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
	rec.ResponseWriter.WriteHeader(status)
}

func (rec *recorder) Write(p []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	n, err := rec.ResponseWriter.Write(p)
	rec.bytes += int64(n)
	return n, err
}

func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// writeJSON writes body (already encoded) with status.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// allow returns errMethodNotAllowed, with an Allow header, unless r's
// method is one of methods.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) error {
	for _, m := range methods {
		if r.Method == m {
			return nil
		}
	}
	allowed := ""
	for i, m := range methods {
		if i > 0 {
			allowed += ", "
		}
		allowed += m
	}
	w.Header().Set("Allow", allowed)
	return errMethodNotAllowed
}
